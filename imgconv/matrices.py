"""Matrix files: ``.npy``, ``.csv`` and ``.txt``, read as float64 planes.

Each reader takes the file's bytes (what stdin gives) and the pixel limit;
``map_npy`` reads a ``.npy`` file by mapping it instead, so a float64
matrix is used where it lies in the file, without a copy.  Pickles are
never loaded, and a header is checked against the limits before numpy
allocates what it declares.

>>> read_csv(b'1,2\\n3,4\\n', subject='m.csv', max_pixels=10).data[:, :, 0].tolist()
[[1.0, 2.0], [3.0, 4.0]]
"""

from __future__ import annotations

import array
import io
import math
import re

import numpy as np

from imgconv.errors import InputError
from imgconv.formats import streaming_hint
from imgconv.limits import VALUES_PER_PIXEL, clean_cause, quote
from imgconv.picture import Picture


def map_npy(path: str, size: int, *, subject: str) -> Picture | None:
    """A C-ordered ``.npy`` file of real numbers mapped, not read (its header
    already checked by ``check_npy_size``); None for any other, which
    ``read_npy`` then reads and reports as before."""
    from imgconv.rawfiles import open_npy

    opened = open_npy(path, size)
    if opened is None:
        return None
    samples = opened[1]
    try:
        mapped = samples.mapped()
    finally:
        samples.close()
    return as_matrix(mapped, "NPY", subject)  # an H x W file maps as H x W x 1, as as_matrix shapes it


def read_npy(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A ``.npy`` matrix; pickles are never loaded, the header is checked first."""
    check_npy_size(data, subject, max_pixels)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"not a valid .npy matrix ({_npy_cause(exc)})", subject=subject) from None
    return as_matrix(array, "NPY", subject)


def read_csv(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A comma-separated matrix."""
    return as_matrix(_parse_text_matrix(data, delimiter=",", subject=subject, max_pixels=max_pixels), "CSV", subject)


def read_txt(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A whitespace-separated matrix."""
    return as_matrix(_parse_text_matrix(data, delimiter=None, subject=subject, max_pixels=max_pixels), "TXT", subject)


def check_npy_size(data: bytes, subject: str, max_pixels: int) -> None:
    """Apply the limits to a .npy header before numpy allocates its shape: a
    200-byte file may declare 100000 x 100000 float64 values, or 10 x 10 x
    10**9 (every value counts, channels too).  ``data`` may be the file's
    first bytes only: a header that does not fit in them is refused."""
    from numpy.lib import format as npy

    if not data.startswith(b"\x93NUMPY"):
        raise InputError("not a valid .npy matrix (it does not start with the .npy magic bytes)", subject=subject)
    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape = tuple(read_header(stream)[0])
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InputError(f"not a valid .npy matrix ({_npy_cause(exc)})", subject=subject) from None
    height, width = (*shape, 1, 1)[:2]
    if height * width > max_pixels:
        raise InputError(
            f"the matrix declares {height}x{width} = {height * width:,} values, over the limit of {max_pixels:,}; "
            f"raise it with --max-pixels ({streaming_hint()})",
            subject=subject,
        )
    values = math.prod(shape)
    if values > VALUES_PER_PIXEL * max_pixels:
        raise InputError(
            f"the matrix declares {'x'.join(map(str, shape))} = {values:,} values, over the limit of "
            f"{VALUES_PER_PIXEL * max_pixels:,} ({VALUES_PER_PIXEL} a pixel); raise it with --max-pixels",
            subject=subject,
        )


def _npy_cause(exc: BaseException) -> str:
    """numpy quotes the raw header, object addresses included: keep its first clause."""
    return quote(re.sub(r" at 0x[0-9a-f]+", "", clean_cause(exc)).split(": ")[0], 200)[1:-1]


def as_matrix(array: np.ndarray, kind: str, subject: str) -> Picture:
    """``array`` checked and held as float64 H x W x C planes (no copy when it is float64 already)."""
    if array.dtype.kind not in "biuf":
        raise InputError(f"matrix has dtype {array.dtype}; only real numbers are supported", subject=subject)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or 0 in array.shape:
        raise InputError(f"matrix has shape {array.shape}; expected H x W or H x W x C", subject=subject)
    planes = array.astype(np.float64, copy=False)
    if not np.isfinite(planes).all():
        raise InputError("matrix holds NaN or infinite values", subject=subject)
    return Picture(planes, None, kind, None)


def _parse_text_matrix(data: bytes, *, delimiter: str | None, subject: str, max_pixels: int) -> np.ndarray:
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is not a value
    except UnicodeDecodeError:
        raise InputError("not a text matrix (not UTF-8)", subject=subject) from None
    # Values gather in one float64 array (8 bytes each, not a Python float
    # apiece), and no more of them than the pixel limit allows.
    values = array.array("d")
    width = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.split(delimiter) if delimiter else line.split()
        try:
            if "_" in line or not line.isascii():  # float() also takes '1_000' and other scripts' digits
                for cell in cells:
                    if not _DECIMAL.fullmatch(cell.strip()):
                        raise ValueError(cell)
            values.extend(float(c) for c in cells)
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise InputError(f"line {number}: {quote(bad.strip())} is not a number", subject=subject) from None
        width = width or len(cells)
        if len(cells) != width:
            raise InputError(f"line {number}: {len(cells)} values, the first row has {width}", subject=subject)
        if len(values) > max_pixels:
            raise InputError(
                f"line {number}: more than {max_pixels:,} values, over the limit; raise it with --max-pixels",
                subject=subject,
            )
    if not values:
        raise InputError("no numbers in the matrix file", subject=subject)
    return np.frombuffer(values, dtype=np.float64).reshape(-1, width).copy()


#: A value as the matrix formats write it: ASCII decimal, exponent, or nan/inf.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def _is_float(text: str) -> bool:
    return _DECIMAL.fullmatch(text.strip()) is not None
