"""Every bound imgconv puts on what it reads, and the helpers that hold it.

One place for the limits the README's "Safety" section states, so that no
read, message or setting escapes them:

* bytes: every input is read through ``open_input`` / ``read_all``, which
  refuse a file larger than its limit before reading it (by its size) and a
  stream (stdin, a pipe, ``/dev/zero``) as soon as it passes the limit,
  reading in chunks so that Ctrl-C and SIGTERM act during a read;
* values: ``--max-pixels`` pixels per image, and four values per pixel for
  matrices (an RGBA image's worth), so channels count too;
* messages: input is quoted through ``quote``, a short excerpt elided in the
  middle, and ``bounded_message`` caps any message as a last resort;
* settings: ``env_int`` reads ``IMGCONV_*`` numbers strictly, so a typo is a
  usage error rather than a silently ignored limit.

This module imports nothing heavy (``imgconv kernels list`` uses it).

>>> quote('1,2,3')
"'1,2,3'"
>>> quote('x' * 100)
"'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' (100 characters)"
>>> input_byte_limit(100_000_000)
3216777216
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable
from typing import BinaryIO

from imgconv.errors import ImgconvError, UsageFailure

#: Characters of an input a message quotes at most (the middle is elided).
EXCERPT_CHARS = 60

#: No message is longer than this; a longer one loses its middle.
MESSAGE_CHARS = 1000

#: The densest pixel imgconv reads: a float64 RGBA ``.npy`` matrix (4 x 8
#: bytes).  Every image format needs at most 8 bytes a pixel (16-bit RGBA,
#: uncompressed), and a CSV value is rarely written in more than 25 characters.
BYTES_PER_PIXEL = 32

#: Room for what is not pixels: headers, colour profiles, EXIF, XMP, comments.
METADATA_BYTES = 1 << 24

#: A matrix may hold as many values as an RGBA image of ``--max-pixels`` pixels.
VALUES_PER_PIXEL = 4

#: A kernel value written out: ``-0.0751136079541115`` and a separator, with room.
BYTES_PER_KERNEL_VALUE = 64

#: Room in a kernel file for what is not values (a YAML entry's fields).
KERNEL_FILE_SLACK = 1 << 16

#: A registry may hold this many kernels of the largest accepted size.
REGISTRY_KERNELS = 4

#: Bytes read at a time: small enough that a signal is handled within a
#: fraction of a second, large enough that reading costs nothing measurable.
CHUNK_BYTES = 1 << 20

#: What is read first to recognise an input (and to refuse garbage early).
HEAD_BYTES = 1 << 16


# --------------------------------------------------------------------------
# Messages


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` with control characters escaped, its middle elided past ``limit``.

    >>> excerpt('a\\nb'), excerpt('abcdefghij', 4)
    ('a\\\\nb', 'ab…ij (10 characters)')
    """
    if len(text) > limit:
        half = max(1, limit // 2)
        return f"{_printable(text[:half])}…{_printable(text[-half:])} ({len(text):,} characters)"
    return _printable(text)


def quote(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` in single quotes for a message, as ``excerpt`` shortens it."""
    shown = excerpt(text, limit)
    if shown.endswith(" characters)"):
        head, _, count = shown.rpartition(" (")
        return f"'{head}' ({count}"
    return f"'{shown}'"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def bounded_message(text: str, limit: int = MESSAGE_CHARS) -> str:
    r"""Any message on one line (control characters, such as a newline in a
    file's name, written as escapes), cut to ``limit`` characters by eliding
    its middle (a last resort).

    >>> len(bounded_message('x' * 5000)) <= MESSAGE_CHARS
    True
    >>> print(bounded_message('a\nb.png: no such file'))
    a\nb.png: no such file
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) <= limit:
        return text
    half = (limit - 40) // 2
    return f"{text[:half]} … ({len(text) - 2 * half:,} characters elided) … {text[-half:]}"


# --------------------------------------------------------------------------
# Numbers and settings


def whole_number(text: str) -> int | None:
    """ASCII digits as an int; None for anything else, or for more than 18
    digits (far past every limit, and Python refuses to convert 4,300).

    >>> whole_number('12'), whole_number('١٢'), whole_number('9' * 5000)
    (12, None, None)
    """
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 18:
        return None
    return int(text)


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """The whole number in environment variable ``name``, or ``default`` if unset or empty.

    Anything else (``abc``, ``1.5``, a number below ``minimum``) is a usage
    error naming the variable: a limit the user meant to set is never
    silently ignored.

    >>> env_int('IMGCONV_NO_SUCH_SETTING', 7)
    7
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = whole_number(text)
    if value is None or value < minimum:
        raise UsageFailure(f"{quote(text)} is not a whole number of at least {minimum}", subject=name)
    return value


#: The integer settings imgconv reads, checked together before a command runs.
INTEGER_SETTINGS = ("IMGCONV_MAX_KERNEL", "IMGCONV_THREADS")


def check_environment() -> None:
    """Refuse unparsable ``IMGCONV_*`` numbers before any work starts."""
    for name in INTEGER_SETTINGS:
        env_int(name, 1)


# --------------------------------------------------------------------------
# Byte limits


def input_byte_limit(max_pixels: int) -> int:
    """The most bytes an image or matrix file of ``max_pixels`` pixels may take."""
    return BYTES_PER_PIXEL * max_pixels + METADATA_BYTES


def kernel_file_byte_limit(side: int) -> int:
    """The most bytes a ``@FILE`` kernel of at most ``side`` x ``side`` values may take."""
    return BYTES_PER_KERNEL_VALUE * side * side + KERNEL_FILE_SLACK


def registry_byte_limit(side: int) -> int:
    """The most bytes a registry file may take: a few kernels of the largest size."""
    return REGISTRY_KERNELS * kernel_file_byte_limit(side)


def human_bytes(count: int) -> str:
    """``3216777216`` -> ``'3.2 GB'``.

    >>> human_bytes(999), human_bytes(4_259_840), human_bytes(3_216_777_216)
    ('999 bytes', '4.3 MB', '3.2 GB')
    """
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


# --------------------------------------------------------------------------
# Reading within the limits


class Limit:
    """A byte limit and how a refusal is worded: who raises it, and how to raise it."""

    def __init__(self, count: int, *, subject: str, error: type[ImgconvError], hint: str) -> None:
        self.count, self.subject, self.error, self.hint = count, subject, error, hint

    def refuse(self, size: str) -> ImgconvError:
        return self.error(f"{size}, over the limit of {human_bytes(self.count)}; {self.hint}", subject=self.subject)


def open_input(name: str, limit: Limit, *, stdin: bool = False) -> BinaryIO:
    """A seekable binary stream over file ``name`` (``stdin``: standard input).

    A regular file larger than the limit is refused by its size, before a
    byte is read.  Anything else (a pipe, a terminal, ``/dev/zero``) is
    buffered as it is read, so it can be sniffed and seeked, and refused
    once it passes the limit.  Opening a FIFO waits for a writer, as
    reading one always does; a signal still stops it.
    """
    error, subject = limit.error, limit.subject
    if stdin:
        if sys.stdin is None:
            raise error("standard input is closed", subject=subject)
        try:
            descriptor = os.dup(sys.stdin.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):  # a stand-in stdin (a test runner, an IDE)
            source = sys.stdin.buffer
            reader = getattr(source, "read1", source.read)
            return io.BufferedReader(_StreamBuffer(reader, lambda: None, limit), buffer_size=CHUNK_BYTES)
    else:
        try:
            descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise error("no such file", subject=subject) from None
        except PermissionError:
            raise error("permission denied", subject=subject) from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise error(getattr(exc, "strerror", None) or str(exc), subject=subject) from None
    try:
        info = os.fstat(descriptor)
        if stat.S_ISDIR(info.st_mode):
            raise error("is a directory", subject=subject)
        if stat.S_ISREG(info.st_mode):
            # stdin may start past the file's beginning: count from where it is.
            start = os.lseek(descriptor, 0, os.SEEK_CUR) if stdin else 0
            if info.st_size - start > limit.count:
                raise limit.refuse(f"the file is {human_bytes(info.st_size - start)}")
            if not stdin:
                return _LimitedFile(descriptor, limit)
        stream = _StreamBuffer(lambda size: os.read(descriptor, size), lambda: os.close(descriptor), limit)
        return io.BufferedReader(stream, buffer_size=CHUNK_BYTES)
    except BaseException:
        os.close(descriptor)
        raise


def read_all(stream: BinaryIO, limit: Limit) -> bytes:
    """The rest of ``stream``, read a chunk at a time; refused past the limit."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = _read(stream, CHUNK_BYTES, limit)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit.count:
            raise limit.refuse(f"more than {human_bytes(limit.count)} arrived")
        chunks.append(chunk)


def read_head(stream: BinaryIO, limit: Limit, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes (fewer at the end), leaving the stream at its start."""
    head = _read(stream, size, limit)
    stream.seek(0)
    return head


def read_text(name: str, limit: Limit) -> str:
    """A whole text file (UTF-8) within the limit; binary data is refused at its first chunk."""
    with open_input(name, limit) as stream:
        head = read_head(stream, limit)
        if b"\0" in head:
            raise limit.error("holds binary data (NUL bytes), not text", subject=limit.subject)
        data = read_all(stream, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise limit.error(f"is not UTF-8 text (byte {exc.start + 1})", subject=limit.subject) from None


def _read(stream: BinaryIO, size: int, limit: Limit) -> bytes:
    try:
        return stream.read(size)
    except IsADirectoryError:
        raise limit.error("is a directory", subject=limit.subject) from None
    except OSError as exc:
        raise limit.error(exc.strerror or str(exc), subject=limit.subject) from None


class _LimitedFile(io.BufferedReader):
    """A regular file: buffered reads through the OS, which Pillow can seek."""

    def __init__(self, descriptor: int, limit: Limit) -> None:
        super().__init__(io.FileIO(descriptor, "rb", closefd=True), buffer_size=CHUNK_BYTES)
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        # A plain read() is one uninterruptible system call over the whole
        # file; read it a chunk at a time instead (a file may also grow).
        if size is None or size < 0:
            return read_all(self, self.limit)
        return super().read(size)


class _StreamBuffer(io.RawIOBase):
    """A non-seekable input made seekable by keeping what has been read.

    Bytes come from the source one read at a time, and only as
    far as the reader asks, so a decoder that stops early (a garbage
    header) stops the reading too; past the limit, reading is refused.
    """

    def __init__(self, read: Callable[[int], bytes], release: Callable[[], None], limit: Limit) -> None:
        self.source_read, self.release, self.limit = read, release, limit
        self.data = bytearray()
        self.position = 0
        self.ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a buffered stream has no file descriptor of its own")

    def _fill(self, wanted: int) -> None:
        while len(self.data) < wanted and not self.ended:
            chunk = self.source_read(CHUNK_BYTES)
            if not chunk:
                self.ended = True
                break
            self.data += chunk
            if len(self.data) > self.limit.count:
                raise self.limit.refuse(f"more than {human_bytes(self.limit.count)} arrived")

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._fill(self.position + len(buffer))
        piece = self.data[self.position : self.position + len(buffer)]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._fill(self.limit.count + 1)
            offset += len(self.data)
        elif whence == io.SEEK_CUR:
            offset += self.position
        if offset < 0:
            raise OSError("negative seek position")
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        if not self.closed:
            self.release()
            self.data = bytearray()
        super().close()


def clean_cause(exc: BaseException, limit: int = 200) -> str:
    """A decoder's error as a message's cause: its first line, as an excerpt."""
    text = str(exc).strip() or type(exc).__name__
    return excerpt(text.splitlines()[0], limit)
