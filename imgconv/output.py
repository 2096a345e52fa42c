"""Where results go, safely: files replaced atomically, and standard output.

**Atomic files.**  ``write_atomic`` writes into a temporary file in the
target's folder and renames it over the target, so a reader sees the old
file or the new one, never a part.  The temporary file is one no other
process can harm and no crash leaves behind:

* On Linux it is an unnamed file (``O_TMPFILE``): invisible while it is
  written, and freed by the kernel if the process dies, even by ``kill
  -9``.  Once complete it is linked as the target if there is none, or else
  under a short-lived name and renamed over it (a link cannot replace a
  file), all under the lock described next.
* Elsewhere, or where the file system has no ``O_TMPFILE``, it is
  ``.NAME.RANDOM.imgconv.part`` (NAME shortened so the whole stays within
  255 bytes), created exclusively and locked (``flock``) by its writer
  until it is renamed.  The lock dies with its process, so a leftover whose
  lock can be taken is stale: ``sweep_temporaries`` removes those, and never
  a file another live run is writing.  Every run sweeps a folder before it
  writes there for the first time.

**Standard output.**  ``write_stdout`` refuses binary data for a terminal,
and turns a closed, full or vanished stdout into one ``OutputError``.

This module imports nothing heavy.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_atomic(folder / 'a.txt', b'new')
>>> sorted(p.name for p in folder.iterdir())
['a.txt']
>>> len(temporary_name('x' * 247).encode()) <= 255
True
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from imgconv.errors import OutputError, UsageFailure

try:  # POSIX; elsewhere temporaries are named and never swept
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: What marks imgconv's named temporaries (and nobody else's ``.part`` files).
TEMP_SUFFIX = ".imgconv.part"

#: The longest file name most file systems take, in bytes.
NAME_BYTES = 255

#: Whether to try unnamed temporary files (tests turn it off to exercise the named scheme).
USE_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: Folders this process has swept already (once each is enough).
_swept: set[str] = set()


def temporary_name(target: str) -> str:
    """``.TARGET.RANDOM.imgconv.part``, with TARGET cut to keep the name within 255 bytes."""
    token = os.urandom(4).hex()  # not secrets: it imports hmac and more, at every start
    room = NAME_BYTES - len(f"..{token}{TEMP_SUFFIX}".encode())
    stem = os.fsencode(target)[:room].decode("utf-8", "ignore")
    return f".{stem}.{token}{TEMP_SUFFIX}"


def special_file(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` exists and is neither a regular file, a folder nor
    a symbolic link: a device, a FIFO or a socket, which replacing would destroy.

    A link is not followed: it is replaced by the new file, as ``mv`` does.

    >>> special_file('/dev/null'), special_file('/no/such/file')
    (True, False)
    """
    try:
        info = os.lstat(target)
    except (OSError, ValueError):
        return False  # absent or unreachable: writing it says why
    return not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode))


#: Why a special file is refused as an output.
NOT_REGULAR = "not a regular file; write to '-' for standard output"


def check_target(target: str) -> None:
    """Refuse, before any work, an existing output that is not a regular
    file (``special_file``); ``-`` is standard output."""
    if target != "-" and special_file(target):
        raise UsageFailure(NOT_REGULAR, subject=target)


def _folder_failure(folder: Path, exc: OSError) -> str:
    blocker = None
    for parent in (folder, *folder.parents):
        try:
            if parent.is_file():
                blocker = parent
                break
        except OSError:  # a name too long to look at
            continue
    return f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)


def write_atomic(path: Path, payload: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``payload`` (bytes, or a function writing to a stream) to ``path``
    atomically: complete or not at all, and nothing else left behind.

    Every failure of the file system (a folder that cannot be made, a name
    too long, a full disk) is an ``OutputError`` naming ``path``; an
    existing device, FIFO or socket at ``path`` is refused, never replaced.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {folder}: {_folder_failure(folder, exc)}", subject=str(path)) from None
    try:
        if path.is_dir():
            raise OutputError("is a directory", subject=str(path))
    except OSError as exc:  # e.g. a file name longer than the file system takes
        raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
    if special_file(path):
        raise OutputError(NOT_REGULAR, subject=str(path))
    try:
        sweep_once(folder)
        descriptor, temp = _create(folder, path.name)
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
    try:
        # Readable too: a multi-page TIFF writer reads back the offsets it patches.
        with os.fdopen(descriptor, "w+b", closefd=False) as stream:
            if callable(payload):
                payload(stream)
            else:
                stream.write(payload)
        _publish(descriptor, temp, path)
    except BaseException as exc:
        if temp is not None:
            _unlink(temp)
        if isinstance(exc, OSError):
            raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
        raise
    finally:
        os.close(descriptor)  # for the named scheme, only now is its lock released


def _create(folder: Path, name: str) -> tuple[int, Path | None]:
    """An open temporary file in ``folder``, locked; its path, or None if it has none."""
    if USE_TMPFILE:
        try:
            descriptor = os.open(folder, os.O_TMPFILE | os.O_RDWR | _CLOEXEC, 0o666)
        except OSError as exc:
            # Old kernels answer EISDIR, file systems without it EOPNOTSUPP.
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOTSUP):
                raise
        else:
            _lock(descriptor)
            return descriptor, None
    for _ in range(100):
        temp = folder / temporary_name(name)
        try:
            descriptor = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        except FileExistsError:
            continue
        # A sweeper may take the lock in the instant before we do (and then
        # remove the file): check that the name is still ours once locked.
        if _lock(descriptor) and _still_named(temp, descriptor):
            return descriptor, temp
        os.close(descriptor)
    raise OSError(errno.EEXIST, "could not create a temporary file")


def _publish(descriptor: int, temp: Path | None, path: Path) -> None:
    """Give the complete file its name, replacing any old one in one step."""
    if temp is None:
        folder = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        try:
            # linkat(..., AT_SYMLINK_FOLLOW) through /proc names an unnamed file;
            # os.link uses linkat only when given a directory descriptor.
            unnamed = f"/proc/self/fd/{descriptor}"
            try:
                os.link(unnamed, path.name, dst_dir_fd=folder, follow_symlinks=True)
                return
            except FileExistsError:
                pass
            temp = path.parent / temporary_name(path.name)
            os.link(unnamed, temp.name, dst_dir_fd=folder, follow_symlinks=True)  # still locked: safe from sweepers
        finally:
            os.close(folder)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink(temp)
        raise


def _lock(descriptor: int) -> bool:
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _still_named(path: Path | str, descriptor: int) -> bool:
    try:
        named, opened = os.stat(path, follow_symlinks=False), os.fstat(descriptor)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def sweep_once(folder: Path | str) -> None:
    """``sweep_temporaries(folder)`` the first time this process writes there."""
    key = os.path.abspath(folder)
    if key not in _swept:
        _swept.add(key)
        sweep_temporaries(folder)


def sweep_temporaries(folder: Path | str) -> int:
    """Remove the stale imgconv temporaries in ``folder``; return how many.

    A temporary is stale when its lock can be taken: the process that
    wrote it is gone.  One whose writer is alive is left alone.
    """
    if fcntl is None:  # pragma: no cover - without locks, liveness cannot be told
        return 0
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue  # only regular files are temporaries: never a link, a FIFO or a folder
        except OSError:
            continue
        try:
            descriptor = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC)
        except OSError:
            continue
        try:
            if _lock(descriptor) and _still_named(entry.path, descriptor):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass
        finally:
            os.close(descriptor)
    return removed


# --------------------------------------------------------------------------
# Standard output

#: Errors of a write to a stream: a full disk, a vanished reader, a closed descriptor.
_WRITE_ERRORS = {errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EBADF}


class ClosedStream(io.RawIOBase):
    """What ``sys.stdout`` writes to when descriptor 1 was closed (``>&-``):
    every write fails, so a command that prints meets a clean error, until
    ``abandon_stdout`` lets what is still buffered drain away at exit."""

    discard = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if ClosedStream.discard:
            return len(data)
        raise OSError(errno.EBADF, "it is closed")


def closed_stdout() -> io.TextIOWrapper:
    """A ``sys.stdout`` for a closed descriptor 1 (see ``ClosedStream``)."""
    return io.TextIOWrapper(io.BufferedWriter(ClosedStream()), encoding="utf-8", line_buffering=True)


def write_stdout(payload: bytes, *, text: bool, stream: BinaryIO | None = None) -> None:
    """Write to stdout; binary data is never sent to a terminal."""
    if stream is None:
        if sys.stdout is None:
            raise OutputError("cannot write to standard output: it is closed", subject="-")
        stream = sys.stdout.buffer
    if not text and stream.isatty():
        raise UsageFailure("refusing to write binary image data to a terminal; redirect it or give a file", subject="-")
    view = memoryview(payload)
    try:
        # A raw or non-blocking stream may take only part: a cut image must not pass for success.
        while view:
            written = stream.write(view)
            if not written:
                raise OutputError("stdout took no more data; the output is incomplete", subject="-")
            view = view[written:]
        stream.flush()
    except BrokenPipeError:
        abandon_stdout()
        raise OutputError("the reader closed the pipe before the whole output was written", subject="-") from None
    except OSError as exc:
        abandon_stdout()
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}", subject="-") from None


def stdout_failure(exc: BaseException) -> OutputError | None:
    """A failed write to stdout outside ``write_stdout`` (the command line's text) as an OutputError.

    An I/O error that names no file reaching the top comes from a stream,
    and the only stream written besides stderr is stdout.
    """
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRORS:
        abandon_stdout()
        return OutputError(f"cannot write to standard output: {exc.strerror or exc}", subject="-")
    return None


def abandon_stdout() -> None:
    """Point descriptor 1 at the null device, so that what is still buffered
    for stdout drains there at exit instead of failing again with a traceback."""
    ClosedStream.discard = True
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
