"""Picture files read in row strips, for images too large to decode whole.

``open_source(path)`` looks at a file's first bytes and, when it can be
read a band of rows at a time, returns a ``Source``: its shape, type and
depth, and its colour planes and alpha as row sources (``imgconv.rows``).
Three kinds stream:

* TIFF and BigTIFF, stripped or tiled, through ``tifffile``: only the
  strips or tiles a band covers are read and decoded (uncompressed strips
  are read row by row, so even a one-strip file streams);
* ``.npy`` matrices, read by offset (C order);
* binary PGM and PPM (``P5``, ``P6``), read by offset.

The headers of the last two are parsed in ``imgconv.rawfiles``, which the
whole-image route maps the same files with.

The rows are exactly the planes the whole-image route gives (Pillow's
decode and ``--color`` conversion, ``imgconv.reading``): 8-bit colour
conversions go through Pillow's own ``convert`` strip by strip.  Anything
this module is not sure of (a compression tifffile cannot decode without
extra codecs, an orientation tag, premultiplied alpha, odd PPM maxvals)
gives None, and the whole-image route reads the file as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from imgconv.choices import Color
from imgconv.errors import InputError
from imgconv.rawfiles import OffsetSamples, Samples, open_npy, open_pnm

if TYPE_CHECKING:
    from imgconv.metadata import Metadata
    from imgconv.rows import Rows

#: Bytes read to recognise a file.
_HEAD = 64


def _cause(exc: BaseException) -> str:
    """A codec's message on one line, without a repeated ``error:`` prefix."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    while text.lower().startswith("error: "):
        text = text[7:]
    return text


class _TiffSamples(Samples):
    """A TIFF page's samples, decoded strip by strip or tile row by tile row."""

    def __init__(self, tiff: Any, page: Any, path: str) -> None:
        self.tiff, self.page, self.path = tiff, page, path
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.samples = int(page.samplesperpixel)
        self.dtype = np.dtype(page.dtype)
        self.tiled = bool(page.is_tiled)
        self.segment_height = int(page.tilelength if self.tiled else page.rowsperstrip)
        self.segment_height = max(1, min(self.segment_height, self.height))
        self.across = -(-self.width // int(page.tilewidth)) if self.tiled else 1
        self.overhead = 2 * self.segment_height * self.width * self.samples * self.dtype.itemsize
        self._cached: tuple[int, np.ndarray] | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.width, self.samples), dtype=self.dtype)
        height = self.segment_height
        for index in range(start // height, (stop - 1) // height + 1):
            top = index * height
            rows = self._segment_row(index)
            first, last = max(start, top), min(stop, top + len(rows))
            out[first - start : last - start] = rows[first - top : last - top]
        return out

    def _segment_row(self, index: int) -> np.ndarray:
        """One strip, or one row of tiles, decoded (the last one is kept:
        a band's halo often starts in the segment the band before ended in)."""
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        page, height = self.page, self.segment_height
        rows = min(height, self.height - index * height)
        block = np.zeros((rows, self.width, self.samples), dtype=self.dtype)
        first = index * self.across
        indices = list(range(first, first + self.across))
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        handle = self.tiff.filehandle
        try:
            for data, number in handle.read_segments(offsets, counts, indices=indices, sort=True, flat=True):
                segment, (_, _, _, x, _), _ = page.decode(data, number, _fullsize=self.tiled)
                if segment is None:
                    continue  # a missing segment reads as zeros, as in tifffile and libtiff
                segment = segment.reshape(segment.shape[-3:])
                width = min(segment.shape[1], self.width - x)
                block[:, x : x + width] = segment[:rows, :width]
        except MemoryError:
            raise
        except Exception as exc:
            # A damaged file (a truncated or corrupt strip) fails in the codec, in
            # tifffile or in reshaping what it gave: the file's error, not ours.
            what = "tile row" if self.tiled else "strip"
            raise InputError(
                f"cannot decode the image ({what} {index + 1}: {_cause(exc)})", subject=self.path
            ) from None
        self._cached = (index, block)
        return block

    def close(self) -> None:
        self.tiff.close()


@dataclass
class Source:
    """A picture file opened to be read in row strips.

    ``planes`` gives H x W x C rows as the whole-image route's
    ``Picture.data`` holds them (after ``--color``), ``alpha`` H x W x 1
    rows of the alpha plane (None without alpha).  ``depth`` is 8 or 16
    for images and None for matrices and float images.
    """

    path: str
    format: str
    height: int
    width: int
    channels: int
    dtype: np.dtype
    depth: int | None
    has_alpha: bool
    samples: Samples
    color: Color
    file_size: int
    #: Pages (frames) in the file; only the first is read in strips.
    pages: int = 1
    #: The last band of converted rows, shared by the planes and the alpha.
    band: tuple[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] | None = field(default=None, repr=False)

    @property
    def maxval(self) -> int | None:
        return None if self.depth is None else (1 << self.depth) - 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.channels

    @property
    def planes(self) -> Rows:
        return _Planes(self, alpha=False)

    @property
    def alpha(self) -> Rows | None:
        return _Planes(self, alpha=True) if self.has_alpha else None

    def metadata(self) -> Metadata:
        """The colour profile and EXIF the whole-image route reads from this file
        (``imgconv.metadata``): Pillow parses the header only, no pixels."""
        from imgconv.metadata import Metadata, from_pillow

        if self.format != "TIFF":
            return Metadata()  # PGM/PPM and .npy hold none
        from PIL import Image

        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(self.path) as image:
                return from_pillow(image, "TIFF")
        finally:
            Image.MAX_IMAGE_PIXELS = saved

    def convert(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Stored samples -> (planes, alpha), as the whole-image route converts them."""
        from imgconv.picture import Picture, to_color

        if self.depth == 8:
            return convert_8bit(raw, self.color)
        planes = raw.astype(self.dtype)
        converted = to_color(Picture(planes, None, self.format, self.depth), self.color)
        return converted.data, None

    def scan(self) -> bool:
        """Read every row once before the run, as the whole-image route checks a
        decoded float picture: refuse NaN and infinities, and tell whether the
        values are whole numbers (which chooses the backend).  True without reading
        for integer samples."""
        if self.samples.dtype.kind in "biu":
            return True
        integer = True
        step = max(1, (16 << 20) // max(1, self.width * self.samples.samples * 8))
        for top in range(0, self.height, step):
            values = self.samples.read(top, min(top + step, self.height)).astype(np.float64)
            if not np.isfinite(values).all():
                what = "matrix" if self.format == "NPY" else "float image"
                raise InputError(f"{what} holds NaN or infinite values", subject=self.path)
            integer = integer and bool(np.array_equal(values, np.floor(values)))
        return integer

    def close(self) -> None:
        self.samples.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Planes:
    """The colour planes or the alpha of a Source, as rows (a band's samples are
    read and converted once for both)."""

    def __init__(self, source: Source, *, alpha: bool) -> None:
        self.source, self.alpha = source, alpha

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.source
        return s.height, s.width, 1 if self.alpha else s.channels

    def read(self, start: int, stop: int) -> np.ndarray:
        cached = self.source.band
        if cached is None or cached[0] != (start, stop):
            cached = ((start, stop), self.source.convert(self.source.samples.read(start, stop)))
            self.source.band = cached
        planes, alpha = cached[1]
        if self.alpha:
            assert alpha is not None
            return alpha[:, :, np.newaxis]
        return planes


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def convert_8bit(raw: np.ndarray, color: Color) -> tuple[np.ndarray, np.ndarray | None]:
    """8-bit samples through the colour policy of ``pillow_read.from_pil``, with
    Pillow's own ``convert`` (ITU-R 601-2 luma in Pillow's integer arithmetic)."""
    samples = raw.shape[2]
    mode = _MODES[samples]
    has_alpha = samples in (2, 4)
    if color == "gray" or (color == "auto" and samples in (1, 2)):
        target = "LA" if has_alpha else "L"
    else:
        target = "RGBA" if has_alpha else "RGB"
    array = raw
    if mode != target:
        from PIL import Image

        rows, width = raw.shape[:2]
        contiguous = np.ascontiguousarray(raw)
        image = Image.frombuffer(mode, (width, rows), contiguous, "raw", mode, 0, 1)
        array = np.asarray(image.convert(target))
        if array.ndim == 2:
            array = array[:, :, np.newaxis]
    if has_alpha:
        return np.ascontiguousarray(array[:, :, :-1]), np.ascontiguousarray(array[:, :, -1])
    return array, None


def open_source(path: str, *, color: Color = "auto", max_pixels: int | None = None) -> Source | None:
    """The file at ``path`` opened for reading in strips, or None when it
    must be decoded whole (not a regular file, any other format, or a
    variant this module does not read exactly as the whole-image route does).

    ``max_pixels`` given, a TIFF declaring more pixels gives None before
    any of it is decoded (the whole-image route refuses it in its words)."""
    import stat

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            # A pipe, a FIFO or a device can be read only once: the whole-image
            # route reads it (through its bounded read); probing it here would
            # consume its head, or wait for a writer that comes only once.
            return None
        size = info.st_size
        with open(path, "rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        return None  # the whole-image route reports it in its own words
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        opened = _open_tiff(path, max_pixels)
    elif head.startswith(b"\x93NUMPY"):
        opened = open_npy(path, size)
    elif head[:2] in (b"P5", b"P6"):
        opened = open_pnm(path, size)
    else:
        return None
    if opened is None:
        return None
    kind, samples, depth, pages = opened
    stored = samples.samples
    has_alpha = depth == 8 and stored in (2, 4)
    channels = stored - has_alpha
    if depth == 8:
        gray = color == "gray" or (color == "auto" and stored in (1, 2))
        channels = 1 if gray else 3
    elif color == "rgb" and stored == 1:
        channels = 3
    elif color == "gray" and stored == 3 and depth is None:
        channels = 1
    dtype = np.dtype(np.uint8 if depth == 8 else np.uint16 if depth == 16 else np.float64)
    return Source(
        path, kind, samples.height, samples.width, channels, dtype, depth, has_alpha, samples, color, size, pages
    )


def _open_tiff(path: str, max_pixels: int | None = None) -> tuple[str, Samples, int | None, int] | None:
    """A TIFF whose first page tifffile decodes as Pillow would read it
    (within ``max_pixels``, if given)."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile is a dependency
        return None
    try:
        tiff = tifffile.TiffFile(path)
    except Exception:  # any parse failure: Pillow's route reports the file
        return None
    try:
        page = tiff.pages.first
        pages = len(tiff.pages)
        depth = _tiff_depth(page)
        if depth == 0:
            tiff.close()
            return None
        samples = _TiffSamples(tiff, page, path)
        if max_pixels is not None and samples.height * samples.width > max_pixels:
            tiff.close()
            return None
        if page.compression == 1 and not page.is_tiled and _contiguous(page, samples):
            # Uncompressed and stored in row order: read exactly the rows asked for.
            dtype = np.dtype(page.dtype).newbyteorder(tiff.byteorder)
            offset = int(page.dataoffsets[0])
            tiff.close()
            return (
                "TIFF",
                OffsetSamples(
                    path,
                    offset=offset,
                    height=samples.height,
                    width=samples.width,
                    samples=samples.samples,
                    dtype=dtype,
                ),
                depth,
                pages,
            )
        samples.read(0, 1)  # decodes one segment now: a codec tifffile lacks falls back to Pillow
        return "TIFF", samples, depth, pages
    except Exception:
        tiff.close()
        return None


def _tiff_depth(page: Any) -> int | None:
    """8 or 16 (None: float) for the page layouts both routes read alike; 0 for any other."""
    tags = page.tags
    orientation = tags.get(274)
    if orientation is not None and int(orientation.value) != 1:
        return 0  # Pillow's EXIF transpose would turn it
    if page.imagedepth != 1 or int(page.fillorder) != 1:
        return 0
    spp, bits, kind = int(page.samplesperpixel), int(page.bitspersample), int(page.sampleformat)
    if spp > 1 and int(page.planarconfig) != 1:
        return 0
    extra = tuple(int(e) for e in page.extrasamples)
    photometric = int(page.photometric)
    if extra not in ((), (2,)) or (extra and spp not in (2, 4)) or (not extra and spp in (2, 4)):
        return 0  # only unassociated alpha is read the same way by both routes
    if photometric == 1 and spp in (1, 2) and bits == 8 and kind == 1:
        return 8
    if photometric == 2 and spp in (3, 4) and bits == 8 and kind == 1:
        return 8
    if photometric == 1 and spp == 1 and bits == 16 and kind == 1:
        return 16
    if photometric == 1 and spp == 1 and bits == 32 and kind == 3:
        return None
    return 0


def _contiguous(page: Any, samples: _TiffSamples) -> bool:
    """Uncompressed strips that follow each other in the file, with no gaps."""
    row_bytes = samples.width * samples.samples * samples.dtype.itemsize
    expected = int(page.dataoffsets[0])
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
        if int(offset) != expected:
            return False
        expected += int(count)
    return expected - int(page.dataoffsets[0]) == samples.height * row_bytes
