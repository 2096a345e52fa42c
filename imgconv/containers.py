"""Files of several frames, and PNG's metadata chunks, assembled from frames
encoded one at a time.

An animated PNG or WebP and a multi-page TIFF are written frame by frame
as the frames come out of the pipeline, so memory holds one frame and its
encoded bytes whatever the frame count (GIF: ``imgconv.gif``).  Each frame
is encoded by the format's still encoder and its image data is moved into
the container:

* APNG: imgconv's PNG writer encodes the frame; its IDAT chunks become the
  first frame's image data, or a later frame's fdAT chunks, each frame led
  by an fcTL chunk (size, delay, disposal, blend "source").
* WebP: Pillow's (libwebp's) encoder writes the frame as a still WebP; its
  VP8, VP8L and ALPH chunks go into an ANMF chunk ("do not blend").
* TIFF: Pillow writes each page into its ``AppendingTiffWriter``.

The frames of an animation are whole pictures (the reader composes each
with the ones before it), so every frame covers the canvas and replaces
what was shown; their size, channels and depth must be those of the first
frame (``conform``).  Durations, disposal and the loop count are written
where the format holds them.

The PNG metadata chunks (iCCP, eXIf) are written here, apart from the
PNG codec, so that any writer of the PNG pixels can be used: the chunks
follow the IHDR chunk, which every PNG writer writes first.

>>> import io, numpy as np
>>> from PIL import Image
>>> from imgconv.picture import Animation, Picture, Timing
>>> from imgconv.formats import by_name
>>> from imgconv.encoders import EncodeOptions
>>> buffer = io.BytesIO()
>>> writer = ApngWriter(buffer, by_name('PNG'), EncodeOptions(), Animation(count=2, loop=0), 'x.png')
>>> for level in (10, 200):
...     writer.add(Picture(np.full((2, 3, 1), level, np.uint8), None, 'PNG', 8, timing=Timing(duration=40.0)))
>>> writer.close()
>>> image = Image.open(buffer)
>>> image.n_frames, image.info['loop'], image.info['duration']
(2, 0, 40.0)
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from imgconv.errors import UsageFailure
from imgconv.metadata import Metadata
from imgconv.picture import Animation, Picture, Timing

if TYPE_CHECKING:
    from imgconv.encoders import EncodeOptions
    from imgconv.formats import Format

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The PNG signature and the IHDR chunk (13 bytes of data) that every PNG starts with.
_PNG_HEADER = len(PNG_SIGNATURE) + 12 + 13

_APNG_DISPOSALS = {"none": 0, "background": 1, "previous": 2}


def conform(picture: Picture, first: Picture, format_name: str, target: str) -> Picture:
    """``picture`` in the layout of the animation's ``first`` frame.

    A gray frame among colour ones becomes colour, and an opaque frame
    among ones with alpha gets opaque alpha; a frame of another size or
    depth, or with more than the first frame holds, is refused.
    """
    (height, width), (first_height, first_width) = picture.data.shape[:2], first.data.shape[:2]
    why = None
    if (height, width) != (first_height, first_width):
        why = f"is {width}x{height} and the first frame {first_width}x{first_height}"
    elif picture.data.dtype != first.data.dtype:
        why = "has another bit depth than the first frame"
    elif picture.data.shape[2] > first.data.shape[2]:
        why = "is in colour and the first frame in gray"
    elif picture.alpha is not None and first.alpha is None:
        why = "has alpha and the first frame has none"
    if why is not None:
        raise UsageFailure(
            f"a frame {why}; the frames of a {format_name} share one layout: write .tif, or give --frames first",
            subject=target,
        )
    data, alpha = picture.data, picture.alpha
    if data.shape[2] < first.data.shape[2]:
        data = np.repeat(data, first.data.shape[2], axis=2)
    if alpha is None and first.alpha is not None:
        opaque = np.iinfo(data.dtype).max if data.dtype.kind in "ui" else 1.0
        alpha = np.full(data.shape[:2], opaque, dtype=first.alpha.dtype)
    return replace(picture, data=data, alpha=alpha)


# --------------------------------------------------------------------------
# PNG and APNG


def png_chunk(stream: BinaryIO, kind: bytes, body: bytes | memoryview) -> None:
    """One PNG chunk: length, type, data, CRC."""
    stream.write(struct.pack(">I", len(body)) + kind)
    stream.write(body)
    stream.write(struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF))


def png_chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """The (type, data) of each chunk of a PNG file written by imgconv."""
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, position)
        yield kind, view[position + 8 : position + 8 + length]
        position += 12 + length


def metadata_chunks(metadata: Metadata) -> list[tuple[bytes, bytes]]:
    """The iCCP and eXIf chunks of ``metadata`` (as Pillow writes them)."""
    chunks = []
    if metadata.icc is not None:
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc)))
    if metadata.exif is not None:
        chunks.append((b"eXIf", metadata.exif.removeprefix(b"Exif\0\0")))
    return chunks


def write_png_with_metadata(pixels: np.ndarray, stream: BinaryIO, metadata: Metadata, *, level: int) -> None:
    """imgconv's PNG of ``pixels`` with the metadata's chunks after IHDR, streamed."""
    from imgconv.png import write_png

    extra = io.BytesIO()
    for kind, body in metadata_chunks(metadata):
        png_chunk(extra, kind, body)
    write_png(pixels, _AfterHeader(stream, extra.getvalue()), level=level)  # type: ignore[arg-type]


class _AfterHeader:
    """A stream that inserts bytes after a PNG's signature and IHDR chunk."""

    def __init__(self, stream: BinaryIO, extra: bytes) -> None:
        self.stream, self.extra, self.head = stream, extra, b""

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        if self.extra is None:
            return self.stream.write(data)
        self.head += bytes(data)
        if len(self.head) >= _PNG_HEADER:
            if not self.head.startswith(PNG_SIGNATURE) or self.head[12:16] != b"IHDR":
                raise ValueError("the PNG writer did not start with IHDR")
            self.stream.write(self.head[:_PNG_HEADER] + self.extra)
            self.stream.write(self.head[_PNG_HEADER:])
            self.extra, self.head = None, b""  # type: ignore[assignment]
        return len(data)


class ApngWriter:
    """A ``FrameWriter`` for animated PNG (see the module docstring)."""

    def __init__(self, stream: BinaryIO, fmt: Format, options: EncodeOptions, animation: Animation, target: str):
        self.stream, self.options, self.animation, self.target = stream, options, animation, target
        self.first: Picture | None = None
        self.sequence = 0  # fcTL and fdAT chunks share one count

    def add(self, picture: Picture) -> None:
        from imgconv.encoders import png_pixels
        from imgconv.png import write_png

        if self.first is not None:
            picture = conform(picture, self.first, "PNG", self.target)
        encoded = io.BytesIO()
        write_png(png_pixels(picture), encoded, level=self.options.png_level)
        chunks = list(png_chunks(encoded.getvalue()))
        header = chunks[0][1]
        if self.first is None:
            self.first = picture
            self.stream.write(PNG_SIGNATURE)
            png_chunk(self.stream, b"IHDR", header)
            for kind, extra in metadata_chunks(picture.metadata):
                png_chunk(self.stream, kind, extra)
            plays = 1 if self.animation.loop is None else self.animation.loop
            png_chunk(self.stream, b"acTL", struct.pack(">II", self.animation.count, plays))
            data_kind = b"IDAT"
        else:
            data_kind = b"fdAT"
        width, height = struct.unpack_from(">II", header)
        timing = picture.timing or Timing()
        numerator, denominator = _delay(timing.duration)
        dispose = _APNG_DISPOSALS.get(timing.disposal or "none", 0)
        control = struct.pack(">IIIIIHHBB", self._next(), width, height, 0, 0, numerator, denominator, dispose, 0)
        png_chunk(self.stream, b"fcTL", control)
        for kind, body in chunks:
            if kind == b"IDAT":
                if data_kind == b"IDAT":
                    png_chunk(self.stream, b"IDAT", body)
                else:
                    png_chunk(self.stream, b"fdAT", struct.pack(">I", self._next()) + bytes(body))

    def close(self) -> None:
        png_chunk(self.stream, b"IEND", b"")

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence - 1


def _delay(duration: float | None) -> tuple[int, int]:
    """A duration in milliseconds as APNG's delay fraction of a second (16-bit parts).

    >>> _delay(100.0), _delay(1000 / 30), _delay(None), _delay(90_000.0)
    ((1, 10), (1, 30), (0, 1), (90, 1))
    """
    if not duration or duration < 0:
        return 0, 1
    seconds = Fraction(int(duration), 1000) if float(duration).is_integer() else Fraction(duration / 1000)
    seconds = seconds.limit_denominator(0xFFFF)
    if seconds.numerator > 0xFFFF:
        return min(round(seconds), 0xFFFF), 1
    return seconds.numerator, seconds.denominator


# --------------------------------------------------------------------------
# WebP


def _riff(kind: bytes, body: bytes) -> bytes:
    """One RIFF chunk: type, length, data, padded to an even length."""
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _riff_chunk(stream: BinaryIO, kind: bytes, body: bytes) -> None:
    stream.write(_riff(kind, body))


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (type, data) of each chunk of a WebP file."""
    position = 12
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        (length,) = struct.unpack_from("<I", data, position + 4)
        yield kind, data[position + 8 : position + 8 + length]
        position += 8 + length + length % 2


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


class WebpWriter:
    """A ``FrameWriter`` for animated WebP (see the module docstring)."""

    #: The chunks of a still WebP that hold its pixels.
    _FRAME_CHUNKS = (b"ALPH", b"VP8 ", b"VP8L")

    def __init__(self, stream: BinaryIO, fmt: Format, options: EncodeOptions, animation: Animation, target: str):
        self.stream, self.fmt, self.options, self.animation, self.target = stream, fmt, options, animation, target
        self.first: Picture | None = None
        self.start = stream.tell()
        stream.write(b"RIFF\0\0\0\0WEBP")  # the size is written when the file is complete

    def add(self, picture: Picture) -> None:
        from imgconv.encoders import pil_image, save_with_pillow

        if self.first is None:
            self.first = picture
            self._header(picture)
        else:
            picture = conform(picture, self.first, "WebP", self.target)
        encoded = io.BytesIO()
        save_with_pillow(pil_image(picture), encoded, self.fmt, {"quality": self.options.quality}, self.target)
        chunks = _riff_chunks(encoded.getvalue())
        pixels = b"".join(_riff(kind, body) for kind, body in chunks if kind in self._FRAME_CHUNKS)
        height, width = picture.data.shape[:2]
        timing = picture.timing or Timing()
        duration = min(int(np.floor((timing.duration or 0.0) + 0.5)), 0xFFFFFF)
        flags = 0b10 | (timing.disposal == "background")  # do not blend; dispose to background
        frame = _u24(0) + _u24(0) + _u24(width - 1) + _u24(height - 1) + _u24(duration) + bytes([flags])
        _riff_chunk(self.stream, b"ANMF", frame + pixels)

    def close(self) -> None:
        assert self.first is not None  # a file of frames has at least one
        exif = self.first.metadata.exif
        if exif is not None:
            _riff_chunk(self.stream, b"EXIF", exif.removeprefix(b"Exif\0\0"))
        end = self.stream.tell()
        self.stream.seek(self.start + 4)
        self.stream.write(struct.pack("<I", end - self.start - 8))
        self.stream.seek(end)

    def _header(self, picture: Picture) -> None:
        height, width = picture.data.shape[:2]
        metadata = picture.metadata
        flags = 0x02 | (0x10 if picture.alpha is not None else 0)  # animation, alpha
        flags |= (0x20 if metadata.icc is not None else 0) | (0x08 if metadata.exif is not None else 0)
        _riff_chunk(self.stream, b"VP8X", bytes([flags, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1))
        if metadata.icc is not None:
            _riff_chunk(self.stream, b"ICCP", metadata.icc)
        loop = 1 if self.animation.loop is None else min(self.animation.loop, 0xFFFF)
        _riff_chunk(self.stream, b"ANIM", struct.pack("<IH", 0, loop))  # transparent background


# --------------------------------------------------------------------------
# TIFF


class TiffWriter:
    """A ``FrameWriter`` for multi-page TIFF: Pillow appends each page, with its own metadata."""

    def __init__(self, stream: BinaryIO, fmt: Format, options: EncodeOptions, animation: Animation, target: str):
        from PIL import TiffImagePlugin

        self.fmt, self.options, self.target = fmt, options, target
        self.pages = TiffImagePlugin.AppendingTiffWriter(stream)

    def add(self, picture: Picture) -> None:
        from imgconv.encoders import pil_image, pillow_params, save_with_pillow

        params = pillow_params(picture, self.fmt, self.options)
        save_with_pillow(pil_image(picture), self.pages, self.fmt, params, self.target)
        self.pages.newFrame()

    def close(self) -> None:
        """Each page was finished by ``newFrame``: nothing is left to write."""
