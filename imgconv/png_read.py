"""PNG, read by imgconv itself when it provably gives Pillow's pixels.

A PNG that is decoded exactly as Pillow decodes it (see ``read_png``; its
chunks are checked by ``imgconv.png_chunks``) is
inflated by ISA-L, in parallel when its IDAT chunks are independent pieces
like the ones imgconv's writer makes, and unfiltered with numpy: 2-3.5x
Pillow's speed on a 4K frame.  Rows filtered with "Average" or "Paeth"
(Pillow's and libpng's adaptive choice) need a sequential loop per byte,
which numpy cannot do fast: such files, and interlaced ones, go to libvips
(``imgconv.png_vips``) when the optional ``pyvips`` is installed.  The
library decoders on PyPI (libspng through pyspng, libpng and libspng
through imagecodecs) were only 1.3-1.4x faster than Pillow on a 4K photo,
as their inflate is zlib's (pyspng's a 2017 zlib 1.2.11), so none of them
is used.  Everything else is left to Pillow.

>>> import io, numpy as np
>>> from imgconv.png import write_png
>>> pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
>>> buffer = io.BytesIO()
>>> write_png(pixels, buffer, level=1)
>>> decoded = read_png(buffer.getvalue())
>>> np.array_equal(decoded.planes, pixels), decoded.alpha, decoded.depth, decoded.icc
(True, None, 8, None)
"""

from __future__ import annotations

import itertools
import struct
from typing import NamedTuple

import numpy as np

from imgconv.png import isal_zlib, parallel_map
from imgconv.png_chunks import Layout, layout_of

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


class DecodedPNG(NamedTuple):
    """What ``read_png`` gives: what imgconv's Pillow route would read."""

    planes: np.ndarray  # H x W x C
    alpha: np.ndarray | None
    depth: int  # 8 or 16
    icc: bytes | None  # the ICC profile, as Pillow's ``info['icc_profile']``


def read_png(data: bytes | memoryview, *, color: str = "auto", max_pixels: int | None = None) -> DecodedPNG | None:
    """The planes, alpha, depth and ICC profile as imgconv's Pillow route
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
    layout = layout_of(memoryview(data))
    if layout is None or (max_pixels is not None and layout.width * layout.height > max_pixels):
        return None
    if color == "gray" and (layout.color_type not in (0, 4) or (layout.bits == 16 and layout.color_type == 4)):
        return None  # a colour source: Pillow's own luma conversion decides
    rows = None
    if not layout.interlaced:
        filtered = _inflate(layout)
        rows = None if filtered is None else _unfilter(filtered, layout)
    if rows is None:
        from imgconv.png_vips import vips_rows

        rows = vips_rows(data, layout)
    if rows is None:
        return None
    planes = _planes(rows, layout, color)
    return None if planes is None else DecodedPNG(*planes, layout.icc)


def _inflate(layout: Layout) -> np.ndarray | None:
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
    chunks = parallel_map(
        lambda index: _inflate_piece(bodies[index], expected, last=index == last), list(range(len(bodies)))
    )
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
        chunk: bytes = inflater.decompress(body, limit + 1)
        if len(chunk) > limit or inflater.unconsumed_tail:
            return None
        if last:
            return chunk if inflater.eof and len(inflater.unused_data) == 4 else None
        if inflater.eof or inflater.decompress(_END_PROBE) or not inflater.eof or inflater.unused_data:
            return None
        return chunk
    except isal_zlib.error:
        return None


def _unfilter(filtered: np.ndarray, layout: Layout) -> np.ndarray | None:
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
    for top, bottom in itertools.pairwise(starts):
        source, target = rows[top:bottom, 1:], out[top:bottom]
        kind = kinds[top]
        if kind == 1:  # Sub: a running sum along the row, per byte of the pixel
            count = bottom - top  # stride is a whole number of pixels, or bpp is 1
            np.add.accumulate(
                source.reshape(count, stride // bpp, bpp),
                axis=1,
                dtype=np.uint8,
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


def _planes(rows: np.ndarray, layout: Layout, color: str) -> tuple[np.ndarray, np.ndarray | None, int] | None:
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


def _expand_palette(indices: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """Palette indices -> RGB (+ alpha from tRNS), as Pillow's convert does."""
    assert layout.palette is not None  # layout_of refuses a palette image without PLTE
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
