"""PNG, written by imgconv itself with ISA-L's deflate.

PNG is the default output, and its encoder used to be most of a whole run.
The PNG format logic stays here (a few numpy passes) and the byte crunching
goes to ISA-L (the ``isal`` package: Intel's deflate, written in assembly
for speed), which deflates 4-10x faster than zlib's level 1 at the same or
a smaller size.

Every row gets the "Up" filter (one numpy subtraction, which suits
photographs and filtered images), and the filtered bytes are deflated in
fixed 1 MiB pieces on all cores, each by a fresh compressor, joined as pigz
does: every piece but the last ends with a sync flush, so the pieces form
one valid zlib stream, one IDAT chunk each.  No library encoder does this:
libpng, libspng and Pillow deflate on one core (imagecodecs' libpng with
zlib's RLE strategy, the fastest of them, took 7x this writer's time on a
4K photo), which is why the writer is imgconv's own.  The pieces do not
depend on the number of threads, so the bytes are the same on any core
count; they depend on the deflate library's version (and, for ISA-L, on
the CPU family: one algorithm is compiled for every x86-64 level, another
for ARM).  ``--png-level`` 1-3 use ISA-L's levels 1-3; 0 stores and 4-9 use
zlib's levels, which are smaller and far slower.  Without ``isal`` (a
platform with no wheel) zlib does every level.

Reading is ``imgconv.png_read`` (and ``imgconv.png_vips`` for the rows
numpy cannot unfilter fast).

>>> import io, numpy as np
>>> from PIL import Image
>>> pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
>>> buffer = io.BytesIO()
>>> write_png(pixels, buffer, level=1)
>>> np.array_equal(np.asarray(Image.open(buffer)), pixels)
True
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np

isal_zlib: Any  # the isal_zlib module, or None
try:  # Wheels exist for the common platforms; elsewhere zlib does the work, slower.
    from isal import isal_zlib
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    isal_zlib = None

SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Uncompressed bytes per deflate piece: large enough that cutting the
#: stream costs nothing measurable in size, small enough to spread a 4K frame
#: over every core.
PIECE = 1 << 20

#: Channels -> PNG colour type (gray, gray + alpha, RGB, RGBA).
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}

_UP = 2

#: The levels ISA-L serves (when installed); 0 and 4-9 are zlib's.
ISAL_LEVELS = range(1, 4)


def _threads() -> int:
    """``IMGCONV_THREADS`` (batch workers set 1), else the number of CPUs."""
    text = os.environ.get("IMGCONV_THREADS", "")
    return int(text) if text.isdigit() and int(text) > 0 else (os.cpu_count() or 1)


def parallel_map(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """``map`` on a thread pool when there is more than one item and core:
    ISA-L and zlib release the GIL while they work."""
    workers = min(len(items), _threads())
    if workers < 2:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(function, items))
    finally:  # on Ctrl-C, drop the pieces not yet started instead of finishing them
        pool.shutdown(wait=True, cancel_futures=True)


def parallel_imap(function: Callable[[Any], Any], items: list[Any]) -> Iterator[Any]:
    """``parallel_map``, its results given in order as they are ready: a
    consumer that writes each one and lets it go never holds them all."""
    workers = min(len(items), _threads())
    if workers < 2:
        yield from map(function, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers)
    try:
        yield from pool.map(function, items)
    finally:  # on Ctrl-C, or a failed write, drop the pieces not yet started
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------
# Writing


def write_png(pixels: np.ndarray, stream: BinaryIO, *, level: int = 1) -> None:
    """Write an H x W x C (C = 1..4) uint8 or uint16 array as a PNG file.

    The streaming writer fed with one strip, so a file written strip by
    strip has the same bytes.
    """
    height, width, channels = pixels.shape
    writer = PngWriter(stream, width=width, height=height, channels=channels, dtype=pixels.dtype, level=level)
    writer.write(pixels)
    writer.close()


class PngWriter:
    """A PNG file written strip by strip: ``write(rows)`` in order, then ``close()``.

    Rows are Up-filtered as they come (the first row of a strip against the
    last row of the previous one) and the filtered bytes are cut into the
    same fixed pieces whatever the strips are: a piece is deflated once the
    bytes after it have arrived (so only the very last piece ends the zlib
    stream), one IDAT chunk each.  Memory holds one strip and less than a
    piece besides.

    >>> import io
    >>> pixels = np.arange(24, dtype=np.uint8).reshape(4, 2, 3)
    >>> whole, strips = io.BytesIO(), io.BytesIO()
    >>> write_png(pixels, whole)
    >>> writer = PngWriter(strips, width=2, height=4, channels=3, dtype=np.dtype(np.uint8), level=1)
    >>> for top in range(4):
    ...     writer.write(pixels[top : top + 1])
    >>> writer.close()
    >>> whole.getvalue() == strips.getvalue()
    True
    """

    def __init__(
        self, stream: BinaryIO, *, width: int, height: int, channels: int, dtype: np.dtype, level: int = 1
    ) -> None:
        if dtype not in (np.uint8, np.uint16) or channels not in _COLOR_TYPES:
            raise ValueError(f"cannot write {dtype} with {channels} channels as PNG")
        self.stream, self.level, self.height = stream, level, height
        self._rows = 0
        self._previous: np.ndarray | None = None  # the last row written, as PNG bytes
        self._pending = bytearray()  # filtered bytes not yet deflated
        self._adler = 1  # adler32's start value
        self._started = False  # the zlib header is written with the first piece
        depth = 16 if dtype == np.uint16 else 8
        stream.write(SIGNATURE)
        _chunk(stream, b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPES[channels], 0, 0, 0))

    def write(self, pixels: np.ndarray) -> None:
        """The next rows (R x W x C); strips may have any height."""
        if not len(pixels):
            return
        rows = _png_rows(pixels)
        filtered = memoryview(_filtered_rows(rows, self._previous).data)
        self._previous = rows[-1].copy()
        self._rows += len(rows)
        self._adler = _checksums().adler32(filtered, self._adler)
        if self._pending:
            self._pending += filtered
            data = memoryview(self._pending)
        else:
            data = filtered  # no copy of a whole image
        # Keep the bytes past the last whole piece: the piece that ends the
        # stream is known only when no more rows come.
        whole = (len(data) - 1) // PIECE * PIECE
        if whole > 0:
            # Each piece is written as soon as it and those before it are deflated.
            self._emit(_deflate_pieces(data[:whole], self.level, last=False))
        rest = bytearray(data[whole:])
        data.release()
        self._pending = rest

    def close(self) -> None:
        """Deflate the last piece and end the file."""
        if self._rows != self.height:
            raise ValueError(f"PNG got {self._rows} rows, its header says {self.height}")
        bodies = list(_deflate_pieces(memoryview(self._pending), self.level, last=True))
        bodies[-1] += struct.pack(">I", self._adler & 0xFFFFFFFF)
        self._emit(bodies)
        self._pending = bytearray()
        _chunk(self.stream, b"IEND", b"")

    def _emit(self, bodies: Iterable[bytes]) -> None:
        for body in bodies:
            if not self._started:
                self._started = True
                level = self.level
                flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
                cmf, flg = 0x78, flevel << 6
                flg |= 31 - (cmf * 256 + flg) % 31
                body = bytes((cmf, flg)) + body
            _chunk(self.stream, b"IDAT", body)


def _png_rows(pixels: np.ndarray) -> np.ndarray:
    """R x W x C pixels as R rows of PNG bytes (16-bit big-endian)."""
    raw = pixels.astype(">u2", copy=False) if pixels.dtype == np.uint16 else pixels
    return np.ascontiguousarray(raw).view(np.uint8).reshape(len(pixels), -1)


def _filtered_rows(rows: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Rows of PNG bytes Up-filtered against the row above (``previous``
    for the first; none above the image's first row), each led by its filter type."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _UP
    if previous is None:
        out[0, 1:] = rows[0]  # the row above the first is all zeros
    else:
        np.subtract(rows[0], previous, out=out[0, 1:])
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # modulo 256, as PNG wants
    return out.reshape(-1)


def _compressor(level: int) -> Any:
    """A raw-deflate compressor: ISA-L for levels 1-3 when installed, else zlib."""
    if isal_zlib is not None and level in ISAL_LEVELS:
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    return zlib.compressobj(level, zlib.DEFLATED, -15)


def _deflate_pieces(view: memoryview, level: int, *, last: bool) -> Iterator[bytes]:
    """Raw deflate of ``view`` in ``PIECE``-sized pieces, in parallel; the
    last piece ends the stream when ``last``, every other one is sync-flushed."""
    starts = list(range(0, max(len(view), 1), PIECE))

    def deflate(start: int) -> bytes:
        compressor = _compressor(level)
        final = last and start + PIECE >= len(view)
        body = compressor.compress(view[start : start + PIECE])
        return bytes(body + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH))

    return parallel_imap(deflate, starts)


def _checksums() -> Any:
    """ISA-L's checksums are the same numbers as zlib's, several times faster."""
    return isal_zlib if isal_zlib is not None else zlib


def _chunk(stream: BinaryIO, kind: bytes, data: bytes) -> None:
    crc = _checksums().crc32(data, _checksums().crc32(kind))
    stream.write(struct.pack(">I", len(data)))
    stream.write(kind)
    stream.write(data)
    stream.write(struct.pack(">I", crc & 0xFFFFFFFF))
