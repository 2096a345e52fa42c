"""A PNG's chunks, checked as Pillow checks them, for imgconv's own reader.

``layout_of`` walks the chunks of a file (any buffer: bytes or a mapping)
and gives the ``Layout`` of a still image that ``imgconv.png_read`` can
decode exactly as Pillow would: its header, palette and transparency, ICC
profile and the IDAT pieces as views of the buffer (nothing copied).
Anything Pillow might read differently (EXIF that could turn the image,
animation, a bad checksum Pillow checks, an unknown critical chunk) gives
None, and the file goes to Pillow.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from imgconv.png import SIGNATURE, isal_zlib

#: (bit depth, colour type) -> channels, for the combinations PNG allows.
CHANNELS = {
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


@dataclass
class Layout:
    """What a PNG's chunks say: the header, the colour tables, the profile and the image data's pieces."""

    width: int
    height: int
    bits: int
    color_type: int
    interlaced: bool = False
    palette: bytes | None = None
    transparency: bytes | None = None
    gray_or_rgb_transparency: bool = False
    idat: list[memoryview] = field(default_factory=list)
    icc: bytes | None = None
    icc_seen: bool = False

    @property
    def channels(self) -> int:
        return CHANNELS[(self.bits, self.color_type)]

    @property
    def stride(self) -> int:
        """Bytes per row, without the filter-type byte."""
        return (self.width * self.bits * self.channels + 7) // 8

    @property
    def bpp(self) -> int:
        """The byte distance of the Sub filter: bytes per pixel, at least 1."""
        return max(1, self.bits * self.channels // 8)


def layout_of(view: memoryview) -> Layout | None:
    """The chunks that matter, checked; None if anything is off."""
    if bytes(view[:8]) != SIGNATURE:
        return None
    position, size = 8, len(view)
    layout: Layout | None = None
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
                if (
                    (bits, color_type) not in CHANNELS
                    or width == 0
                    or height == 0
                    or (compression, filtering) != (0, 0)
                    or interlace > 1
                ):
                    return None
                layout = Layout(width, height, bits, color_type, interlaced=interlace == 1)
            elif layout is None:
                return None  # IHDR must come first
            elif kind == b"IEND":
                break
            elif kind == b"PLTE":
                if (
                    layout.color_type != 3
                    or layout.palette is not None
                    or length % 3
                    or not 0 < length <= 768
                    or layout.idat
                ):
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
                if layout.icc_seen:
                    return None  # Pillow would keep the last one: rare enough to leave to it
                layout.icc_seen = True
                profile = _icc_profile(body)
                if profile is False:
                    return None
                layout.icc = profile if isinstance(profile, bytes) else None
            elif kind in _HARMLESS:
                if length < _HARMLESS[kind]:
                    return None
            elif kind in _DECLINED or not kind[0] & 0x20:
                return None  # EXIF, animation, or an unknown critical chunk
        position = end
    if layout is None or not layout.idat or (layout.color_type == 3 and layout.palette is None):
        return None
    return layout


def _icc_profile(body: memoryview) -> bytes | bool | None:
    """The profile Pillow reads from this iCCP chunk (None: it drops a broken
    one and reads the pixels), or False where Pillow raises (left to it)."""
    raw = bytes(body)
    name_end = raw.find(b"\0")
    if name_end < 0 or len(raw) < name_end + 2 or raw[name_end + 1] != 0:
        return False
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(raw[name_end + 2 :], _ICC_LIMIT)
    except zlib.error:
        return None
    if inflater.unconsumed_tail:
        return False  # a larger profile makes Pillow raise
    return profile or None
