"""Files whose samples are stored row after row: binary PGM/PPM and ``.npy``.

Their headers are parsed here, once, for both routes: the streaming route
reads bands of rows by offset (``OffsetSamples.read``, also used for
uncompressed TIFF strips), the whole-image route maps the file
(``OffsetSamples.mapped``), so its samples are never read into bytes
first and, for 8-bit colour as stored, are the planes the pipeline reads
without a copy.  Only the variants Pillow reads the same way are taken
(``open_pnm``: ``P5``/``P6`` at maxval 255, and 65535 for gray); anything
else gives None and goes to Pillow (or numpy's loader), which reports it.
Nothing here imports Pillow.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'a.ppm')
>>> _ = open(path, 'wb').write(b'P6\\n2 1\\n255\\n' + bytes(range(6)))
>>> kind, samples, depth, pages = open_pnm(path, os.path.getsize(path))
>>> kind, depth, samples.mapped().tolist()
('PPM', 8, [[[0, 1, 2], [3, 4, 5]]])
>>> samples.close()
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from imgconv.errors import InputError


class Samples:
    """A file's stored samples (H x W x S in their own type), read by bands of rows."""

    height: int
    width: int
    samples: int
    dtype: np.dtype
    #: Bytes one read holds beyond its rows (a decoded TIFF segment row).
    overhead: int = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""


class OffsetSamples(Samples):
    """Samples stored row after row from ``offset`` (PPM, .npy, uncompressed TIFF strips)."""

    def __init__(self, path: str, *, offset: int, height: int, width: int, samples: int, dtype: np.dtype) -> None:
        self.file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.offset, self.height, self.width, self.samples, self.dtype = offset, height, width, samples, dtype
        self.row_bytes = width * samples * dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        self.file.seek(self.offset + start * self.row_bytes)
        count = (stop - start) * self.width * self.samples
        values = np.fromfile(self.file, dtype=self.dtype, count=count)
        if values.size != count:
            raise InputError("the file is truncated (fewer pixels than its header declares)", subject=self.file.name)
        return values.reshape(stop - start, self.width, self.samples)

    def mapped(self) -> np.ndarray:
        """Every row at once, mapped from the file (read-only, no copy): the
        whole-image route's samples.  The file was checked to hold them all;
        the mapping covers exactly those bytes, from the file's start (an
        offset into a mapping must fall on a page boundary)."""
        import mmap

        length = self.offset + self.height * self.row_bytes
        mapping = mmap.mmap(self.file.fileno(), length, access=mmap.ACCESS_READ)
        values = np.frombuffer(
            mapping, dtype=self.dtype, count=self.height * self.width * self.samples, offset=self.offset
        )
        return values.reshape(self.height, self.width, self.samples)

    def close(self) -> None:
        self.file.close()  # a mapping made by ``mapped`` lives on with its array


def open_npy(path: str, size: int) -> tuple[str, OffsetSamples, int | None, int] | None:
    """A C-ordered .npy matrix of real numbers, complete."""
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as handle:
            version = npy.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = npy.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = npy.read_array_header_2_0(handle)
            else:
                return None
            offset = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError):
        return None
    dtype = np.dtype(dtype)
    if fortran or dtype.kind not in "biuf" or dtype.fields is not None or len(shape) not in (2, 3) or 0 in shape:
        return None
    height, width, channels = (*shape, 1)[:3]
    if size < offset + height * width * channels * dtype.itemsize:
        return None
    samples = OffsetSamples(path, offset=offset, height=height, width=width, samples=channels, dtype=dtype)
    return "NPY", samples, None, 1


def open_pnm(path: str, size: int) -> tuple[str, OffsetSamples, int | None, int] | None:
    """Binary PGM/PPM with maxval 255 (and 65535 for PGM), as Pillow reads them."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    fields: list[int] = []
    position = 2
    while len(fields) < 3:
        while position < len(head) and head[position : position + 1].isspace():
            position += 1
        if head[position : position + 1] == b"#":
            end = head.find(b"\n", position)
            if end < 0:
                return None
            position = end + 1
            continue
        start = position
        while position < len(head) and head[position : position + 1].isdigit():
            position += 1
        if start == position:
            return None
        fields.append(int(head[start:position]))
    if position >= len(head) or not head[position : position + 1].isspace():
        return None
    width, height, maxval = fields
    channels = 3 if head[:2] == b"P6" else 1
    if width < 1 or height < 1 or (maxval, channels) not in ((255, 1), (255, 3), (65535, 1)):
        return None
    dtype = np.dtype(np.uint8 if maxval == 255 else ">u2")
    offset = position + 1
    if size < offset + width * height * channels * dtype.itemsize:
        return None
    samples = OffsetSamples(path, offset=offset, height=height, width=width, samples=channels, dtype=dtype)
    return "PPM", samples, 8 if maxval == 255 else 16, 1
