"""GIF, written frame by frame: Pillow makes each frame's palette and LZW
data, this module puts the frames into one file.

A GIF frame holds at most 256 colours and 1-bit transparency.  Each frame
is quantised on its own with Pillow's median cut (``Image.quantize`` with
``Quantize.MEDIANCUT``, Floyd-Steinberg dithering) to 256 colours, or 255
and one transparent index when some of its pixels have alpha below half; a
frame of 256 colours or fewer keeps them exactly, and gray frames without
transparency are written with the 256 gray levels.  Pillow encodes the
frame as a one-frame GIF; its colour table becomes the frame's own (local)
table and its image data is copied as it is.  Memory holds one frame.

Frames are whole pictures, and a GIF frame cannot say "replace": its
transparent pixels show whatever the previous frame left.  So a frame that
is followed by one with transparent pixels is disposed to background
(cleared); every other frame keeps the disposal the input gave it.

>>> import io, numpy as np
>>> from PIL import Image
>>> from imgconv.picture import Picture
>>> buffer = io.BytesIO()
>>> encode_gif(Picture(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), None, 'PNG', 8))(buffer)
>>> np.asarray(Image.open(buffer).convert('RGB')).reshape(-1).tolist()
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from imgconv.picture import Animation, Picture, Timing

if TYPE_CHECKING:
    from imgconv.encoders import EncodeOptions, Writer
    from imgconv.formats import Format

#: Our disposal words as GIF's numbers (0: not specified).
_DISPOSALS = {"none": 1, "background": 2, "previous": 3}
_BACKGROUND = 2

#: Alpha below this (of 255) is transparent in a GIF.
_HALF = 128


@dataclass(frozen=True)
class _Frame:
    """One encoded frame: its colour table and image data, as Pillow wrote them."""

    width: int
    height: int
    table_bits: int  # the table holds 2 ** (table_bits + 1) colours
    table: bytes
    transparent: int | None
    interlaced: bool
    data: bytes  # the LZW code size and the data sub-blocks


class GifWriter:
    """A ``FrameWriter`` for GIF (see the module docstring)."""

    def __init__(
        self,
        stream: BinaryIO,
        fmt: Format | None = None,
        options: EncodeOptions | None = None,
        animation: Animation | None = None,
        target: str = "output",
    ) -> None:
        self.stream = stream
        self.animation = animation or Animation()
        self.target = target
        self.first: Picture | None = None
        self.first_transparent = False
        self.pending: tuple[_Frame, Timing | None] | None = None

    def add(self, picture: Picture) -> None:
        from imgconv.containers import conform

        if self.first is None:
            self.first = picture
            self._header(picture)
        else:
            picture = conform(picture, self.first, "GIF", self.target)
        frame = _encode_frame(picture)
        if self.pending is None:
            self.first_transparent = frame.transparent is not None
        else:
            self._write(*self.pending, next_transparent=frame.transparent is not None)
        self.pending = (frame, picture.timing)

    def close(self) -> None:
        if self.pending is not None:
            # A looping animation starts again with its first frame.
            again = _repeats(self.animation.loop) is not None and self.first_transparent
            self._write(*self.pending, next_transparent=again)
        self.stream.write(b";")

    def _header(self, picture: Picture) -> None:
        height, width = picture.data.shape[:2]
        # No global colour table (each frame has its own), 8-bit colour resolution.
        self.stream.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x70, 0, 0))
        repeats = _repeats(self.animation.loop)
        if repeats is not None:
            self.stream.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", repeats) + b"\x00")

    def _write(self, frame: _Frame, timing: Timing | None, *, next_transparent: bool) -> None:
        disposal = _DISPOSALS.get(timing.disposal, 0) if timing and timing.disposal else 0
        if next_transparent:
            disposal = _BACKGROUND
        duration = timing.duration if timing and timing.duration else 0.0
        delay = min(int(np.floor(duration / 10 + 0.5)), 0xFFFF)  # centiseconds, rounded half up
        flags = disposal << 2 | (frame.transparent is not None)
        if flags or delay:
            index = frame.transparent or 0
            self.stream.write(b"!\xf9\x04" + struct.pack("<BHB", flags, delay, index) + b"\x00")
        descriptor = struct.pack("<HHHH", 0, 0, frame.width, frame.height)
        packed = 0x80 | (0x40 if frame.interlaced else 0) | frame.table_bits
        self.stream.write(b"," + descriptor + bytes([packed]) + frame.table + frame.data)


def _repeats(plays: int | None) -> int | None:
    """GIF's loop count from the number of plays: GIF counts the repeats
    after the first play (0 for ever); an animation that plays once has no
    loop extension.

    >>> [_repeats(plays) for plays in (None, 0, 1, 2, 70000)]
    [None, 0, None, 1, 65535]
    """
    if plays is None or plays == 1:
        return None
    return 0 if plays == 0 else min(plays - 1, 0xFFFF)


def plays_of_gif(loop: int | None) -> int | None:
    """The number of plays from a GIF's loop count (the inverse of ``_repeats``).

    >>> [plays_of_gif(loop) for loop in (None, 0, 1, 2)]
    [None, 0, 2, 3]
    """
    if loop is None or loop == 0:
        return loop
    return loop + 1


def encode_gif(
    picture: Picture, fmt: Format | None = None, options: EncodeOptions | None = None, target: str = "output"
) -> Writer:
    """A one-frame GIF (the format's still encoder)."""

    def write(stream: BinaryIO) -> None:
        writer = GifWriter(stream, fmt, options, Animation(), target)
        writer.add(picture)
        writer.close()

    return write


def _encode_frame(picture: Picture) -> _Frame:
    """Quantise a frame and let Pillow encode it as a one-frame GIF."""
    data, alpha = picture.data, picture.alpha
    if alpha is None and data.shape[2] in (2, 4):  # a matrix's last channel is alpha, as PNG and WebP take it
        data, alpha = data[:, :, :-1], data[:, :, -1]
    clear = None if alpha is None else alpha < _HALF
    if clear is not None and not clear.any():
        clear = None
    params: dict[str, Any] = {"optimize": False, "interlace": False}
    if data.shape[2] == 1 and clear is None:
        from PIL import Image

        image = Image.fromarray(np.ascontiguousarray(data[:, :, 0]), "L")
    else:
        rgb = data if data.shape[2] == 3 else np.repeat(data, 3, axis=2)
        image, params["transparency"] = _quantised(rgb, clear)
        if params["transparency"] is None:
            del params["transparency"]
    buffer = io.BytesIO()
    image.save(buffer, "GIF", **params)
    return _one_frame(buffer.getvalue())


def _quantised(rgb: np.ndarray, clear: np.ndarray | None) -> tuple[Any, int | None]:
    """A palette image of ``rgb`` (median cut, dithered) and its transparent index.

    Transparent pixels take the colour of a visible one before quantising,
    so they spend no palette entry, and then the index after the palette.
    """
    from PIL import Image

    if clear is not None:
        rgb = rgb.copy()
        visible = np.flatnonzero(~clear.reshape(-1))
        rgb[clear] = rgb.reshape(-1, 3)[visible[0]] if visible.size else 0
    colours = 256 if clear is None else 255
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB").quantize(
        colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
    )
    if clear is None:
        return image, None
    palette = image.getpalette() or []
    used = len(palette) // 3
    indices = np.asarray(image).copy()
    indices[clear] = used
    result = Image.fromarray(indices, "P")
    result.putpalette([*palette, 0, 0, 0])
    return result, used


def _one_frame(data: bytes) -> _Frame:
    """The colour table, transparency and image data of a one-frame GIF."""
    flags = data[10]
    position = 13
    bits, table = 0, b""
    if flags & 0x80:
        size = 3 << ((flags & 7) + 1)
        bits, table = flags & 7, data[position : position + size]
        position += size
    transparent = None
    while data[position] == 0x21:  # extensions before the image
        if data[position + 1] == 0xF9 and data[position + 3] & 1:
            transparent = data[position + 6]
        position = _skip_blocks(data, position + 2)
    if data[position] != 0x2C:
        raise ValueError("Pillow's GIF has no image descriptor")
    width, height, packed = struct.unpack_from("<HHB", data, position + 5)
    position += 10
    if packed & 0x80:
        size = 3 << ((packed & 7) + 1)
        bits, table = packed & 7, data[position : position + size]
        position += size
    start = position
    position = _skip_blocks(data, position + 1)
    return _Frame(width, height, bits, table, transparent, bool(packed & 0x40), data[start:position])


def _skip_blocks(data: bytes, position: int) -> int:
    """The position after a chain of GIF data sub-blocks."""
    while position < len(data):
        size = data[position]
        position += 1 + size
        if size == 0:
            break
    return position
