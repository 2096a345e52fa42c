"""Output formats written in row strips: PNG, TIFF/BigTIFF, ``.npy``, PPM/PGM.

A sink writes a file of a known shape and type from an iterable of bands
of rows (R x W x C, alpha as the last channel), to a binary stream.  The
whole-image encoders of these formats are the same sinks fed with one band
(``encode_whole``), so a file written strip by strip has the bytes of the
file written whole, by construction.

* PNG: ``imgconv.png.PngWriter`` (Up filter, fixed deflate pieces).
* TIFF: uncompressed strips of about 1 MiB through ``tifffile``, BigTIFF
  when the pixels pass 4 GiB; float results as 32-bit floats (as before).
* ``.npy``: numpy's header, then the rows (the bytes of ``numpy.save``).
* PPM/PGM: Pillow's header (``P5``/``P6``, width, height, maxval), then the
  rows, 16-bit big-endian (the bytes Pillow writes).

>>> import io, numpy as np
>>> pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
>>> whole, strips = io.BytesIO(), io.BytesIO()
>>> write_npy(whole, (2, 2, 3), np.dtype(np.uint8), [pixels])
>>> write_npy(strips, (2, 2, 3), np.dtype(np.uint8), [pixels[:1], pixels[1:]])
>>> whole.getvalue() == strips.getvalue() and np.array_equal(np.load(io.BytesIO(whole.getvalue())), pixels)
True
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from imgconv.encoders import EncodeOptions, Writer
    from imgconv.formats import Format
    from imgconv.metadata import Metadata
    from imgconv.picture import Picture

Shape = tuple[int, int, int]
Sink = Callable[..., None]

#: Bytes per TIFF strip (rows are never split).
TIFF_STRIP = 1 << 20

#: Past this many bytes of pixels a TIFF is written as BigTIFF (classic TIFF
#: offsets are 32-bit; the margin leaves room for the directory).
BIGTIFF_AFTER = (1 << 32) - (1 << 25)


def sink_for(fmt: Format) -> Sink:
    """The strip writer that ``fmt.sink`` names."""
    assert fmt.sink is not None
    module, function = fmt.sink.split(":")
    sink: Sink = getattr(importlib.import_module(module), function)
    return sink


def combined(data: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Colour planes with alpha as their last channel, in the planes' type."""
    if alpha is None:
        return data
    return np.concatenate([data, alpha.astype(data.dtype).reshape(*alpha.shape[:2], 1)], axis=2)


def encode_whole(picture: Picture, fmt: Format, options: EncodeOptions, target: str) -> Writer:
    """The whole-image encoder of a streaming format: its sink fed with one band."""
    pixels = combined(picture.data, picture.alpha)
    sink = sink_for(fmt)

    def write(stream: BinaryIO) -> None:
        sink(stream, pixels.shape, pixels.dtype, [pixels], options=options)

    return write


def encode_tiff(picture: Picture, fmt: Format, options: EncodeOptions, target: str) -> Writer:
    """TIFF: the strip writer fed with one band, the profile and the first
    folder's descriptive tags included; EXIF with its own folders (camera
    settings, GPS) goes to Pillow, which writes them, and such inputs are
    not streamed (``tiff_tags``)."""
    if picture.metadata and tiff_tags(picture.metadata) is None:
        from imgconv.encoders import encode_pillow

        return encode_pillow(picture, fmt, options, target)
    pixels = combined(picture.data, picture.alpha)

    def write(stream: BinaryIO) -> None:
        write_tiff(stream, pixels.shape, pixels.dtype, [pixels], options=options, metadata=picture.metadata)

    return write


#: The first folder's descriptive text tags (``imgconv.metadata``), written as they are.
_TEXT_TAGS = frozenset({270, 271, 272, 305, 306, 315, 316, 33432})
_RESOLUTION = frozenset({282, 283, 296})


def tiff_tags(metadata: Metadata) -> dict[str, Any] | None:
    """tifffile's arguments for ``metadata`` (profile, text tags, resolution),
    or None when its EXIF holds more (folders of camera settings, GPS).

    >>> from imgconv.metadata import Metadata
    >>> tiff_tags(Metadata(icc=b'profile'))
    {'iccprofile': b'profile', 'extratags': []}
    """
    arguments: dict[str, Any] = {"iccprofile": metadata.icc} if metadata.icc else {}
    extratags: list[tuple[int, str, int, str, bool]] = []
    if metadata.exif:
        from PIL import Image

        exif = Image.Exif()
        exif.load(metadata.exif)
        tags = dict(exif)
        if set(tags) - _TEXT_TAGS - _RESOLUTION:
            return None
        for code in sorted(_TEXT_TAGS & set(tags)):
            if not isinstance(tags[code], str):
                return None
            extratags.append((code, "s", 0, tags[code], True))
        if 282 in tags and 283 in tags:
            x, y = tags[282], tags[283]
            if not hasattr(x, "numerator") or not hasattr(y, "numerator"):
                return None
            arguments["resolution"] = ((x.numerator, x.denominator), (y.numerator, y.denominator))
            arguments["resolutionunit"] = int(tags.get(296, 2))
    arguments["extratags"] = extratags
    return arguments


def write_png(
    stream: BinaryIO,
    shape: Shape,
    dtype: np.dtype,
    bands: Iterable[np.ndarray],
    *,
    options: EncodeOptions | None = None,
    metadata: Metadata | None = None,
) -> None:
    """PNG through imgconv's writer, one band at a time; ``metadata``'s chunks
    after IHDR, as ``containers.write_png_with_metadata`` puts them."""
    from imgconv.png import PngWriter

    if metadata:
        from imgconv.containers import _AfterHeader, metadata_chunks, png_chunk

        extra = io.BytesIO()
        for kind, body in metadata_chunks(metadata):
            png_chunk(extra, kind, body)
        stream = _AfterHeader(stream, extra.getvalue())  # type: ignore[assignment]
    level = options.png_level if options is not None else 1
    height, width, channels = shape
    writer = PngWriter(stream, width=width, height=height, channels=channels, dtype=dtype, level=level)
    for band in bands:
        writer.write(band)
    writer.close()


def write_npy(
    stream: BinaryIO,
    shape: Shape,
    dtype: np.dtype,
    bands: Iterable[np.ndarray],
    *,
    options: EncodeOptions | None = None,
) -> None:
    """``.npy`` with ``numpy.save``'s bytes: one channel is stored 2-D."""
    from numpy.lib import format as npy

    height, width, channels = shape
    header = {
        "descr": npy.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (height, width) if channels == 1 else (height, width, channels),
    }
    try:
        npy.write_array_header_1_0(stream, header)
    except ValueError:  # a header too long for version 1.0, as numpy.save decides
        npy.write_array_header_2_0(stream, header)
    for band in bands:
        stream.write(np.ascontiguousarray(band, dtype=dtype).data.cast("B"))


def write_pnm(
    stream: BinaryIO,
    shape: Shape,
    dtype: np.dtype,
    bands: Iterable[np.ndarray],
    *,
    options: EncodeOptions | None = None,
) -> None:
    """Binary PGM (gray, 8 or 16 bits) or PPM (RGB, 8 bits), as Pillow writes them."""
    height, width, channels = shape
    magic = b"P5" if channels == 1 else b"P6"
    maxval = 65535 if dtype == np.uint16 else 255
    stream.write(magic + b"\n%d %d\n%d\n" % (width, height, maxval))
    stored = np.dtype(">u2") if dtype == np.uint16 else np.dtype(np.uint8)
    for band in bands:
        stream.write(np.ascontiguousarray(band[:, :, :3], dtype=stored).data.cast("B"))


def write_tiff(
    stream: BinaryIO,
    shape: Shape,
    dtype: np.dtype,
    bands: Iterable[np.ndarray],
    *,
    options: EncodeOptions | None = None,
    metadata: Metadata | None = None,
) -> None:
    """Uncompressed TIFF (BigTIFF past 4 GiB) in strips of about ``TIFF_STRIP``
    bytes, with ``metadata`` as ``tiff_tags`` gives it."""
    import tifffile

    tags = tiff_tags(metadata) if metadata else {}
    if tags is None:
        raise ValueError("EXIF with folders of its own is written by Pillow, whole")

    height, width, channels = shape
    stored = np.dtype(np.float32) if dtype.kind == "f" else dtype
    row_bytes = width * channels * stored.itemsize
    rows_per_strip = max(1, min(height, TIFF_STRIP // row_bytes))
    photometric = "minisblack" if channels <= 2 else "rgb"
    extra = ["unassalpha"] if channels in (2, 4) else None
    # A named handle: tifffile would take the name of a stream from os.fdopen (an int) for a path.
    handle = tifffile.FileHandle(stream, mode="wb", name="output.tif")
    with tifffile.TiffWriter(handle, bigtiff=height * row_bytes > BIGTIFF_AFTER) as tiff:
        tiff.write(
            _strips(bands, rows_per_strip, stored),
            shape=(height, width, channels) if channels > 1 else (height, width),
            dtype=stored,
            photometric=photometric,
            extrasamples=extra,
            planarconfig="contig",
            rowsperstrip=rows_per_strip,
            metadata=None,
            software=False,
            **tags,
        )


def _strips(bands: Iterable[np.ndarray], rows: int, dtype: np.dtype) -> Iterator[bytes]:
    """Bands of any height regrouped as the bytes of strips of ``rows`` rows."""
    pending: list[np.ndarray] = []
    held = 0
    for band in bands:
        band = band.astype(dtype, copy=False)
        while len(band):
            take = min(rows - held, len(band))
            if take == rows:  # a whole strip inside the band: one copy, not two
                yield band[:take].tobytes()
            else:
                pending.append(band[:take])
                held += take
                if held == rows:
                    yield np.concatenate(pending).tobytes()
                    pending, held = [], 0
            band = band[take:]
    if pending:
        yield np.concatenate(pending).tobytes()
