"""PNG, written and read by imgconv itself with ISA-L's deflate and inflate.

PNG is the default output, and its codec used to be most of a whole run.
Both directions keep the PNG format logic here (a few numpy passes) and
leave the byte crunching to ISA-L (the ``isal`` package: Intel's deflate,
written in assembly for speed), which deflates 4-10x and inflates about
1.7x faster than zlib's level 1, at the same or a smaller size.

Writing: every row gets the "Up" filter (one numpy subtraction, which suits
photographs and filtered images), and the filtered bytes are deflated in
fixed 1 MiB pieces on all cores, each by a fresh compressor, joined as pigz
does: every piece but the last ends with a sync flush, so the pieces form
one valid zlib stream, one IDAT chunk each.  No library encoder does this:
libpng, libspng and Pillow deflate on one core (imagecodecs' libpng with
zlib's RLE strategy, the fastest of them, took 7x this writer's time on a
4K photo).  The pieces do not depend on the number of threads, so the bytes
are the same on any core count; they depend on the deflate library's
version (and, for ISA-L, on the CPU family: one algorithm is compiled for
every x86-64 level, another for ARM).  ``--png-level`` 1-3 use ISA-L's
levels 1-3; 0 stores and 4-9 use zlib's levels, which are smaller and far
slower.  Without ``isal`` (a platform with no wheel) zlib does every level.

Reading: a PNG that is provably decoded the same way as Pillow decodes it
(see ``read_png``) is inflated by ISA-L, in parallel when its IDAT chunks
are independent pieces like the ones this writer makes, and unfiltered with
numpy.  Rows filtered with "Average" or "Paeth" (Pillow's and libpng's
adaptive choice) need a sequential loop per byte, which numpy cannot do
fast: such files, and interlaced ones, go to libvips when the optional
``pyvips`` is installed (libpng with zlib-ng, about twice Pillow's speed),
for the kinds it returns unchanged.  The other library decoders on PyPI
(libspng through pyspng, libpng and libspng through imagecodecs) were only
1.3-1.4x faster than Pillow on a 4K photo, as their inflate is zlib's
(pyspng's a 2017 zlib 1.2.11), so none of them is used.  Everything else is
left to Pillow.

>>> import io, numpy as np
>>> pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
>>> buffer = io.BytesIO()
>>> write_png(pixels, buffer, level=1)
>>> planes, alpha, depth = read_png(buffer.getvalue())
>>> np.array_equal(planes, pixels), alpha, depth
(True, None, 8)
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

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


def _map(function, items: list) -> list:
    """``map`` on a thread pool when there is more than one item and core:
    ISA-L and zlib release the GIL while they work."""
    workers = min(len(items), _threads())
    if workers < 2:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))


# --------------------------------------------------------------------------
# Writing


def write_png(pixels: np.ndarray, stream: BinaryIO, *, level: int = 1) -> None:
    """Write an H x W x C (C = 1..4) uint8 or uint16 array as a PNG file."""
    height, width, channels = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    if pixels.dtype not in (np.uint8, np.uint16) or channels not in _COLOR_TYPES:
        raise ValueError(f"cannot write {pixels.dtype} with {channels} channels as PNG")
    stream.write(SIGNATURE)
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPES[channels], 0, 0, 0)
    _chunk(stream, b"IHDR", header)
    for piece in _zlib_pieces(_filtered_rows(pixels), level):
        _chunk(stream, b"IDAT", piece)
    _chunk(stream, b"IEND", b"")


def _filtered_rows(pixels: np.ndarray) -> np.ndarray:
    """Rows as PNG bytes (16-bit big-endian), Up-filtered, each led by its filter type."""
    height = pixels.shape[0]
    raw = pixels.astype(">u2", copy=False) if pixels.dtype == np.uint16 else pixels
    rows = np.ascontiguousarray(raw).view(np.uint8).reshape(height, -1)
    out = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = _UP
    out[0, 1:] = rows[0]  # the row above the first is all zeros
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # modulo 256, as PNG wants
    return out.reshape(-1)


def _compressor(level: int):
    """A raw-deflate compressor: ISA-L for levels 1-3 when installed, else zlib."""
    if isal_zlib is not None and level in ISAL_LEVELS:
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    return zlib.compressobj(level, zlib.DEFLATED, -15)


def _zlib_pieces(data: np.ndarray, level: int) -> list[bytes]:
    """One zlib stream over ``data``, deflated in parallel pieces."""
    view = memoryview(data)
    starts = list(range(0, len(view), PIECE))

    def deflate(start: int) -> bytes:
        compressor = _compressor(level)
        last = start + PIECE >= len(view)
        body = compressor.compress(view[start : start + PIECE])
        return body + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    bodies = _map(deflate, starts)
    flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    cmf, flg = 0x78, flevel << 6
    flg |= 31 - (cmf * 256 + flg) % 31
    bodies[0] = bytes((cmf, flg)) + bodies[0]
    bodies[-1] += struct.pack(">I", _checksums().adler32(view) & 0xFFFFFFFF)
    return bodies


def _checksums():
    """ISA-L's checksums are the same numbers as zlib's, several times faster."""
    return isal_zlib if isal_zlib is not None else zlib


def _chunk(stream: BinaryIO, kind: bytes, data: bytes) -> None:
    crc = _checksums().crc32(data, _checksums().crc32(kind))
    stream.write(struct.pack(">I", len(data)))
    stream.write(kind)
    stream.write(data)
    stream.write(struct.pack(">I", crc & 0xFFFFFFFF))


# --------------------------------------------------------------------------
# Reading


#: (bit depth, colour type) -> channels, for the combinations PNG allows.
_CHANNELS = {
    (1, 0): 1, (2, 0): 1, (4, 0): 1, (8, 0): 1, (16, 0): 1,
    (8, 2): 3, (16, 2): 3,
    (1, 3): 1, (2, 3): 1, (4, 3): 1, (8, 3): 1,
    (8, 4): 2, (16, 4): 2,
    (8, 6): 4, (16, 6): 4,
}  # fmt: skip

#: Chunks Pillow reads with no effect on the pixels, and the shortest
#: length it accepts (it raises on a shorter one, so those go to Pillow).
_HARMLESS = {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}

#: Chunks that may change what Pillow returns (EXIF orientation, animation)
#: or make it fail: such files are left to Pillow.
_DECLINED = {b"eXIf", b"zTXt", b"iTXt", b"acTL", b"fcTL", b"fdAT"}

#: tEXt keywords Pillow reads EXIF or XMP (so an orientation) from.
_EXIF_KEYWORDS = {b"exif", b"Raw profile type exif", b"XML:com.adobe.xmp"}

#: Pillow's limit on one decompressed iCCP profile (``ImageFile.SAFEBLOCK``).
_ICC_LIMIT = 1 << 20

#: A final, empty stored block.  Fed to an inflater after a piece, it ends the
#: stream cleanly (eof, no output, nothing left over) only if the piece ended
#: exactly on a block boundary.  Its only set bits are its first (BFINAL) and
#: its last sixteen (NLEN), and the stream can only end in a final block:
#: one whose header starts in the last sixteen reads block type 3 (an
#: error) or runs out of bits; one started inside the piece either takes its
#: end-of-block code from the probe and leaves probe bytes unused, or yields
#: output, or finds LEN != ~NLEN (stored), or lacks the bits for a dynamic
#: block's code tables.  So the final block starts at the probe's first bit,
#: and the piece's own last block ended with the piece: the next piece can be
#: inflated from a fresh state.
_END_PROBE = b"\x01\x00\x00\xff\xff"

#: Rows narrower than this (bytes) undo Up filters faster with one numpy
#: accumulate than with a step per row.
_NARROW = 128

#: Runs of equally filtered rows beyond which the Python loop over them
#: would be slower than Pillow.
_MAX_RUNS = 1 << 16

#: Pieces smaller than this are not worth a thread (libpng and Pillow write
#: 8-64 KiB IDAT chunks that are not independent anyway).
_PARALLEL_MIN = 128 << 10


@dataclass
class _Layout:
    width: int
    height: int
    bits: int
    color_type: int
    interlaced: bool = False
    palette: bytes | None = None
    transparency: bytes | None = None
    gray_or_rgb_transparency: bool = False
    idat: list[memoryview] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return _CHANNELS[(self.bits, self.color_type)]

    @property
    def stride(self) -> int:
        """Bytes per row, without the filter-type byte."""
        return (self.width * self.bits * self.channels + 7) // 8

    @property
    def bpp(self) -> int:
        """The byte distance of the Sub filter: bytes per pixel, at least 1."""
        return max(1, self.bits * self.channels // 8)


def read_png(
    data: bytes | memoryview, *, color: str = "auto", max_pixels: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """(planes H x W x C, alpha or None, depth 8 or 16) as imgconv's Pillow route
    reads them, or None to leave the file to that route.

    It takes only what it can prove gives Pillow's pixels: a well-formed,
    single-frame PNG with the checksums Pillow checks right (all but the
    IDAT chunks'), a complete zlib stream of exactly the image's size, and
    nothing that could carry an EXIF orientation.  Rows filtered with None,
    Sub or Up are inflated by ISA-L and unfiltered here; Paeth, Average and
    interlaced files of the kinds libvips returns unchanged go to libvips
    when it is installed.  Pillow's readings are reproduced exactly: 1/2/4-bit
    gray scaled to 0..255, 16-bit gray kept, 16-bit colour cut to its high
    bytes, 16-bit gray + alpha as RGBA, palette colour looked up (alpha from
    tRNS), tRNS of gray and RGB ignored.  ``color`` follows ``--color``;
    'gray' on a colour source is left to Pillow's luma conversion.  Over
    ``max_pixels`` it declines, so the caller's check reports the file.
    """
    if isal_zlib is None:
        return None  # zlib's inflate is no faster than Pillow's own
    layout = _layout(memoryview(data))
    if layout is None or (max_pixels is not None and layout.width * layout.height > max_pixels):
        return None
    if color == "gray" and (layout.color_type not in (0, 4) or layout.bits == 16 and layout.color_type == 4):
        return None  # a colour source: Pillow's own luma conversion decides
    rows = None
    if not layout.interlaced:
        filtered = _inflate(layout)
        rows = None if filtered is None else _unfilter(filtered, layout)
    if rows is None:
        rows = _vips_rows(data, layout)
    return None if rows is None else _planes(rows, layout, color)


def _layout(view: memoryview) -> _Layout | None:
    """The chunks that matter, checked; None if anything is off."""
    if bytes(view[:8]) != SIGNATURE:
        return None
    position, size = 8, len(view)
    layout: _Layout | None = None
    idat_ended = False
    text = 0
    while True:
        if position + 12 > size:
            return None  # no IEND
        length, kind = struct.unpack_from(">I4s", view, position)
        end = position + 12 + length
        if length > 0x7FFFFFFF or end > size:
            return None
        body = view[position + 8 : position + 8 + length]
        if kind == b"IDAT":
            if layout is None or idat_ended:
                return None  # Pillow stops at the first chunk after the image data
            layout.idat.append(body)
        else:
            if layout is not None and layout.idat:
                idat_ended = True
            # Pillow checks these checksums (not the IDAT ones, nor do we).
            (crc,) = struct.unpack_from(">I", view, position + 8 + length)
            if isal_zlib.crc32(body, isal_zlib.crc32(kind)) & 0xFFFFFFFF != crc:
                return None
            if kind == b"IHDR":
                if layout is not None or length != 13:
                    return None
                width, height, bits, color_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
                if (bits, color_type) not in _CHANNELS or width == 0 or height == 0 or (compression, filtering) != (0, 0) or interlace > 1:
                    return None
                layout = _Layout(width, height, bits, color_type, interlaced=interlace == 1)
            elif layout is None:
                return None  # IHDR must come first
            elif kind == b"IEND":
                break
            elif kind == b"PLTE":
                if layout.color_type != 3 or layout.palette is not None or length % 3 or not 0 < length <= 768 or layout.idat:
                    return None  # a colour type's optional PLTE only suggests colours; odd files go to Pillow
                layout.palette = bytes(body)
            elif kind == b"tRNS":
                if layout.idat or layout.transparency is not None:
                    return None  # Pillow would read a late one after the pixels
                if layout.color_type == 3:
                    if layout.palette is None or length > len(layout.palette) // 3:
                        return None
                    layout.transparency = bytes(body)
                elif layout.color_type in (0, 2):
                    if length < (2 if layout.color_type == 0 else 6):
                        return None  # Pillow raises "Truncated tRNS chunk"
                    layout.gray_or_rgb_transparency = True  # Pillow notes the colour, which imgconv ignores
            elif kind == b"tEXt":
                keyword = bytes(body[:80]).split(b"\0", 1)[0]
                text += length
                if keyword in _EXIF_KEYWORDS or text > _ICC_LIMIT:
                    return None
            elif kind == b"iCCP":
                if not _icc_reads(body):
                    return None
            elif kind in _HARMLESS:
                if length < _HARMLESS[kind]:
                    return None
            elif kind in _DECLINED or not kind[0] & 0x20:
                return None  # EXIF, animation, or an unknown critical chunk
        position = end
    if layout is None or not layout.idat or (layout.color_type == 3 and layout.palette is None):
        return None
    return layout


def _icc_reads(body: memoryview) -> bool:
    """Whether Pillow reads this iCCP chunk without raising."""
    raw = bytes(body)
    name_end = raw.find(b"\0")
    if name_end < 0 or len(raw) < name_end + 2 or raw[name_end + 1] != 0:
        return False
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(raw[name_end + 2 :], _ICC_LIMIT)
    except zlib.error:
        return True  # Pillow drops a broken profile and reads the pixels
    return not inflater.unconsumed_tail  # a larger profile makes Pillow raise


def _inflate(layout: _Layout) -> np.ndarray | None:
    """The filtered rows (H x (1 + stride) bytes), or None."""
    expected = layout.height * (1 + layout.stride)
    pieces = layout.idat
    if len(pieces) > 1 and len(pieces[0]) >= _PARALLEL_MIN:
        out = _inflate_pieces(pieces, expected)
        if out is not None:
            return out
    return _inflate_serial(pieces, expected, 1 + layout.stride)


def _inflate_serial(pieces: list[memoryview], expected: int, row: int) -> np.ndarray | None:
    out = np.empty(expected, dtype=np.uint8)
    inflater = isal_zlib.decompressobj()
    filled = 0
    try:
        for piece in pieces:
            chunk = inflater.decompress(piece, expected - filled + 1)
            if len(chunk) > expected - filled or inflater.unconsumed_tail:
                return None  # more data than the image holds
            out[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            # Give up at the first row filtered with Average or Paeth (most
            # files from Pillow or libpng have one within a few rows).
            first = -(-(filled) // row) * row
            filled += len(chunk)
            if first < filled and out[first:filled:row].max() > 2:
                return None
    except isal_zlib.error:
        return None
    # eof comes only after the Adler-32 check; anything after it is not ours to judge.
    if not inflater.eof or inflater.unused_data or filled != expected:
        return None
    return out


def _inflate_pieces(pieces: list[memoryview], expected: int) -> np.ndarray | None:
    """Inflate IDAT chunks independently and in parallel, when each one is a
    piece that needs nothing from the ones before it (see ``_END_PROBE``)."""
    head = bytes(pieces[0][:2])
    if len(head) < 2 or head[0] & 0x0F != 8 or head[0] >> 4 > 7 or head[1] & 0x20 or (head[0] << 8 | head[1]) % 31:
        return None
    bodies = [pieces[0][2:], *pieces[1:]]
    last = len(bodies) - 1
    chunks = _map(lambda index: _inflate_piece(bodies[index], expected, last=index == last), list(range(len(bodies))))
    if any(chunk is None for chunk in chunks) or sum(map(len, chunks)) != expected:
        return None
    out = np.empty(expected, dtype=np.uint8)
    filled = 0
    for chunk in chunks:
        out[filled : filled + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        filled += len(chunk)
    (stored,) = struct.unpack(">I", bytes(pieces[-1][-4:]))
    return out if isal_zlib.adler32(out) & 0xFFFFFFFF == stored else None


def _inflate_piece(body: memoryview, limit: int, *, last: bool) -> bytes | None:
    """One piece of raw deflate on its own: its bytes if it starts and ends on
    block boundaries (the last piece: ends the stream, then the Adler-32)."""
    inflater = isal_zlib.decompressobj(-15)
    try:
        # A distance reaching before the piece's start is an error here.
        chunk = inflater.decompress(body, limit + 1)
        if len(chunk) > limit or inflater.unconsumed_tail:
            return None
        if last:
            return chunk if inflater.eof and len(inflater.unused_data) == 4 else None
        if inflater.eof or inflater.decompress(_END_PROBE) or not inflater.eof or inflater.unused_data:
            return None
        return chunk
    except isal_zlib.error:
        return None


def _unfilter(filtered: np.ndarray, layout: _Layout) -> np.ndarray | None:
    """Undo None/Sub/Up row filters into H x stride bytes; None for other filters."""
    height, stride, bpp = layout.height, layout.stride, layout.bpp
    rows = filtered.reshape(height, 1 + stride)
    kinds = rows[:, 0]
    if kinds.max() > 2:
        return None  # Average or Paeth: a byte-by-byte loop, left to Pillow
    out = np.empty((height, stride), dtype=np.uint8)
    starts = [0, *(np.flatnonzero(np.diff(kinds)) + 1).tolist(), height]
    if len(starts) > _MAX_RUNS:
        return None  # a Python step per run of rows: a tall picture of alternating filters is Pillow's
    for top, bottom in zip(starts[:-1], starts[1:]):
        source, target = rows[top:bottom, 1:], out[top:bottom]
        kind = kinds[top]
        if kind == 1:  # Sub: a running sum along the row, per byte of the pixel
            count = bottom - top  # stride is a whole number of pixels, or bpp is 1
            np.add.accumulate(
                source.reshape(count, stride // bpp, bpp), axis=1, dtype=np.uint8,
                out=target.reshape(count, stride // bpp, bpp),
            )
        else:
            np.copyto(target, source)
            if kind == 2:  # Up: a running sum down the rows, modulo 256 as PNG wants
                if top:
                    target[0] += out[top - 1]
                if stride < _NARROW:
                    np.add.accumulate(target, axis=0, dtype=np.uint8, out=target)
                else:  # numpy accumulates down a column at a time; row by row stays in the cache
                    previous = target[0]
                    for row in target[1:]:
                        np.add(previous, row, out=row)
                        previous = row
    return out


def _vips_rows(data: bytes | memoryview, layout: _Layout) -> np.ndarray | None:
    """The unfiltered rows (H x stride bytes, 16-bit big-endian, as ``_unfilter``
    gives them) decoded by libvips, when ``pyvips`` is installed: its libpng
    with zlib-ng unfilters Paeth and Average rows and de-interlaces in C,
    about twice Pillow's speed (a system libvips may use libspng instead).  Only for the kinds where libvips returns the stored
    samples unchanged: 8- and 16-bit gray, gray + alpha, RGB and RGBA without
    a tRNS chunk (libvips would turn one into an alpha band).  Palette and
    1/2/4-bit files are left to Pillow."""
    if layout.color_type == 3 or layout.bits < 8 or layout.gray_or_rgb_transparency:
        return None
    pyvips = _pyvips()
    if pyvips is None:
        return None
    try:
        # fail_on="warning": a damaged file is an error here, never a guess; Pillow then has its say.
        image = pyvips.Image.new_from_buffer(bytes(data), "", access="sequential", fail_on="warning")
        if image.get("vips-loader") != "pngload_buffer":
            return None
        expected = ("ushort" if layout.bits == 16 else "uchar", layout.channels, layout.width, layout.height)
        if (image.format, image.bands, image.width, image.height) != expected:
            return None
        samples = image.write_to_memory()
    except pyvips.Error:
        return None
    if layout.bits == 16:
        values = np.frombuffer(samples, dtype=np.uint16).astype(">u2")
        return values.view(np.uint8).reshape(layout.height, layout.stride)
    return np.frombuffer(samples, dtype=np.uint8).reshape(layout.height, layout.stride)


def _pyvips():
    """The ``pyvips`` module with its operation cache off (a decoded file is
    used once), or None when it or libvips is missing."""
    global _PYVIPS
    if _PYVIPS is False:
        try:
            import pyvips
        except Exception:  # ImportError, or OSError/cffi errors when libvips cannot be loaded
            _PYVIPS = None
        else:
            pyvips.cache_set_max(0)
            _quiet(pyvips)
            _PYVIPS = pyvips
    return _PYVIPS


def _quiet(pyvips) -> None:
    """Keep libvips' messages out of Python while it decodes.

    pyvips routes every libvips message through a Python callback, and
    libvips reports each finished thread pool, so each decode calls back into
    Python; a signal handled during that callback has its exception swallowed
    by cffi, and a batch worker told to stop (SIGTERM raises SystemExit)
    carried on.  Keep the callback for warnings and errors only (a decode
    that warns fails anyway), and keep those off stderr: imgconv reports a
    failed file in one line of its own.
    """
    import logging

    logging.getLogger("pyvips").addHandler(logging.NullHandler())
    try:
        flags = pyvips.GLogLevelFlags
        pyvips._remove_log_handler()
        levels = flags.LEVEL_WARNING | flags.LEVEL_CRITICAL | flags.LEVEL_ERROR | flags.FLAG_FATAL | flags.FLAG_RECURSION
        pyvips._log_handler_id = pyvips.glib_lib.g_log_set_handler(b"VIPS", levels, pyvips._log_handler_cb, pyvips.ffi.NULL)
    except AttributeError:  # another pyvips: its own handler stays
        pass


_PYVIPS = False  # not yet imported: pyvips costs ~20 ms, paid only for PNGs that need it


def _planes(rows: np.ndarray, layout: _Layout, color: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Unfiltered bytes -> (planes, alpha, depth) as Pillow's route gives them."""
    height, width, bits, color_type = layout.height, layout.width, layout.bits, layout.color_type
    if bits < 8:
        values = _unpack(rows, bits, width)
        if color_type == 0:
            values = values * np.uint8(255 // ((1 << bits) - 1))  # Pillow's "1", "L;2", "L;4" scale to 0..255
        pixels = values[:, :, np.newaxis]
    elif bits == 16:
        wide = rows.view(">u2").reshape(height, width, layout.channels)
        if color_type == 0:
            gray = wide.astype(np.uint16)  # Pillow keeps 16-bit gray ("I;16")
            return (np.repeat(gray, 3, axis=2) if color == "rgb" else gray), None, 16
        # Pillow reads 16-bit colour as 8 bits: the high byte, not a rounding.
        pixels = rows.reshape(height, width, layout.channels, 2)[:, :, :, 0]
        if color_type == 4:  # Pillow reads 16-bit gray + alpha as RGBA
            pixels = pixels[:, :, [0, 0, 0, 1]]
    else:
        pixels = rows.reshape(height, width, layout.channels)
    if color_type == 3:
        return _expand_palette(pixels[:, :, 0], layout)
    if color == "rgb" and pixels.shape[2] in (1, 2):  # Pillow's L -> RGB and LA -> RGBA copy the gray
        pixels = pixels[:, :, [0, 0, 0] if pixels.shape[2] == 1 else [0, 0, 0, 1]]
    if pixels.shape[2] in (2, 4):
        return np.ascontiguousarray(pixels[:, :, :-1]), np.ascontiguousarray(pixels[:, :, -1]), 8
    return np.ascontiguousarray(pixels), None, 8


def _unpack(rows: np.ndarray, bits: int, width: int) -> np.ndarray:
    """1/2/4-bit samples, first sample in the high bits, to one byte each."""
    per_byte = 8 // bits
    shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
    samples = (rows[:, :, np.newaxis] >> shifts) & np.uint8((1 << bits) - 1)
    return samples.reshape(rows.shape[0], rows.shape[1] * per_byte)[:, :width]


def _expand_palette(indices: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """Palette indices -> RGB (+ alpha from tRNS), as Pillow's convert does."""
    palette = np.frombuffer(layout.palette, dtype=np.uint8).reshape(-1, 3)
    if int(indices.max()) >= len(palette):
        return None  # Pillow's colours for such indices are its own business
    rgb = palette[indices]
    if layout.transparency is None:
        return rgb, None, 8
    # Pillow: entries past the tRNS table are opaque.
    table = np.full(256, 255, dtype=np.uint8)
    table[: len(layout.transparency)] = np.frombuffer(layout.transparency, dtype=np.uint8)
    return rgb, table[indices], 8
