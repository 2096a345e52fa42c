"""Reading pictures: image files through Pillow, matrix files, stdin.

Image files become 8- or 16-bit planes following the colour policy
(``--color``); ``.npy``, ``.csv`` and ``.txt`` files are numeric matrices,
read by the reader their ``Format`` names.  ``-`` reads stdin and sniffs
the format from the bytes.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
>>> _ = open(path, 'w').write('1.5,-2\\n')
>>> read_picture(path).data[:, :, 0].tolist()
[[1.5, -2.0]]
"""

from __future__ import annotations

import importlib
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imgconv.choices import COLORS, Color, check
from imgconv.errors import InputError
from imgconv.formats import STDIO, Format, by_extension, by_name
from imgconv.picture import Picture

#: Refuse images above this many pixels before decoding them (decompression
#: bombs); ``--max-pixels`` raises it.  An 8K frame is 33 million pixels.
DEFAULT_MAX_PIXELS = 100_000_000


def read_picture(
    source: str | os.PathLike[str], *, color: Color = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image or matrix file.

    Parameters
    ----------
    source : path or '-'
        ``-`` reads stdin, sniffing the format from the bytes.
    color : {'auto', 'gray', 'rgb'}
        ``auto`` keeps gray as gray and colour as colour; ``gray`` uses
        ITU-R 601-2 luma; ``rgb`` repeats a gray plane.
    max_pixels : int
        Images (and matrices) declaring more pixels are refused before decoding.

    Returns
    -------
    Picture
    """
    check("color", color, COLORS)
    name = os.fspath(source)
    matrix: Format | None
    if name == STDIO:
        data = sys.stdin.buffer.read()
        subject = "<stdin>"
        matrix = _sniff(data)
    else:
        subject = name
        data = _read_bytes(Path(name))
        found = by_extension(name)
        matrix = found if found is not None and found.matrix else None
    if not data:
        raise InputError("the file is empty", subject=subject)
    if matrix is not None:
        assert matrix.reader is not None  # every matrix format has one
        module, function = matrix.reader.split(":")
        reader: Callable[..., Picture] = getattr(importlib.import_module(module), function)
        return _to_color(reader(data, subject=subject, max_pixels=max_pixels), color)
    return _read_image(data, subject, color=color, max_pixels=max_pixels)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", subject=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an image", subject=str(path)) from None
    except PermissionError:
        raise InputError("permission denied", subject=str(path)) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), subject=str(path)) from None


def _sniff(data: bytes) -> Format | None:
    """The matrix format of stdin's bytes, or None for an image."""
    if data.startswith(b"\x93NUMPY"):
        return by_name("NPY")
    head = data[:4096]
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    stripped = text.strip()
    if stripped and all(ch in "0123456789+-.eE,; \t\r\n" for ch in stripped):
        return by_name("CSV" if "," in stripped else "TXT")
    return None


# --------------------------------------------------------------------------
# Matrices


def read_npy(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A ``.npy`` matrix; pickles are never loaded, the header is checked first."""
    _check_npy_size(data, subject, max_pixels)
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        # numpy quotes the raw header, object addresses included: keep its first clause.
        cause = re.sub(r" at 0x[0-9a-f]+", "", _clean(exc)).split(": ")[0]
        raise InputError(f"not a valid .npy matrix ({cause})", subject=subject) from None
    return _matrix(array, "NPY", subject)


def read_csv(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A comma-separated matrix."""
    return _matrix(_parse_text_matrix(data, delimiter=",", subject=subject), "CSV", subject)


def read_txt(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A whitespace-separated matrix."""
    return _matrix(_parse_text_matrix(data, delimiter=None, subject=subject), "TXT", subject)


def _check_npy_size(data: bytes, subject: str, max_pixels: int) -> None:
    """Apply the pixel limit to a .npy header before numpy allocates its
    shape: a 200-byte file may declare 100000 x 100000 float64 values."""
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    try:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape = read_header(stream)[0]
    except (ValueError, OSError, EOFError, SyntaxError):
        return  # np.load reports the malformed header in its own words
    height, width = (*tuple(shape), 1, 1)[:2]
    if height * width > max_pixels:
        raise InputError(
            f"the matrix declares {height}x{width} = {height * width:,} values, over the limit of {max_pixels:,}; "
            "raise it with --max-pixels",
            subject=subject,
        )


def _matrix(array: np.ndarray, kind: str, subject: str) -> Picture:
    if array.dtype.kind not in "biuf":
        raise InputError(f"matrix has dtype {array.dtype}; only real numbers are supported", subject=subject)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or 0 in array.shape:
        raise InputError(f"matrix has shape {array.shape}; expected H x W or H x W x C", subject=subject)
    planes = array.astype(np.float64)
    if not np.isfinite(planes).all():
        raise InputError("matrix holds NaN or infinite values", subject=subject)
    return Picture(planes, None, kind, None)


def _parse_text_matrix(data: bytes, *, delimiter: str | None, subject: str) -> np.ndarray:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a text matrix (not UTF-8)", subject=subject) from None
    rows: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = line.split(delimiter) if delimiter else line.split()
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise InputError(f"line {number}: '{bad.strip()}' is not a number", subject=subject) from None
        if len(rows[-1]) != len(rows[0]):
            raise InputError(
                f"line {number}: {len(rows[-1])} values, the first row has {len(rows[0])}", subject=subject
            )
    if not rows:
        raise InputError("no numbers in the matrix file", subject=subject)
    return np.array(rows, dtype=np.float64)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Images


def _read_image(data: bytes, subject: str, *, color: Color, max_pixels: int) -> Picture:
    from PIL import Image, ImageOps, UnidentifiedImageError

    saved_limit = Image.MAX_IMAGE_PIXELS
    # Our own limit is checked on the header below; Pillow's guard (twice its
    # limit) must not fire first with a different message.
    Image.MAX_IMAGE_PIXELS = None
    try:
        image: Any
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise InputError("not an image file (or a format imgconv cannot read)", subject=subject) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"cannot decode the image ({_clean(exc)})", subject=subject) from None
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(
                f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} "
                "(a decompression bomb?); raise it with --max-pixels",
                subject=subject,
            )
        if width == 0 or height == 0:
            raise InputError("the image has no pixels", subject=subject)
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"cannot decode the image ({_clean(exc)})", subject=subject) from None
        source_format = image.format or getattr(image, "_imgconv_format", None) or "PNG"
        return _from_pil(image, source_format, subject, color=color)
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _clean(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _from_pil(image: Any, source_format: str, subject: str, *, color: Color) -> Picture:
    """Pillow image -> Picture, following the colour policy."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        planes = np.asarray(image).astype(np.uint16)[:, :, np.newaxis]
        return _to_color(Picture(planes, None, source_format, 16), color)
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise InputError("32-bit integer image with values outside 0..65535", subject=subject)
        return _to_color(Picture(values.astype(np.uint16)[:, :, np.newaxis], None, source_format, 16), color)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError("float image holds NaN or infinite values", subject=subject)
        return _to_color(Picture(values[:, :, np.newaxis], None, source_format, None), color)
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in image.info)
    gray_source = mode in ("1", "L", "LA", "La")
    if color == "gray" or (color == "auto" and gray_source):
        target = "LA" if has_alpha else "L"
    else:
        target = "RGBA" if has_alpha else "RGB"
    if mode != target:
        image = image.convert(target)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    alpha = None
    if has_alpha:
        alpha = np.ascontiguousarray(array[:, :, -1])
        array = array[:, :, :-1]
    return Picture(np.ascontiguousarray(array), alpha, source_format, 8)


def _to_color(picture: Picture, color: Color) -> Picture:
    """Apply ``--color`` to planes that did not go through Pillow's convert."""
    channels = picture.data.shape[2]
    if color == "gray" and channels == 3:
        # ITU-R 601-2 luma, the weights of Pillow's convert('L').
        data = picture.data.astype(np.float64)
        luma = data[:, :, 0] * 0.299 + data[:, :, 1] * 0.587 + data[:, :, 2] * 0.114
        if not picture.is_matrix:
            luma = np.floor(luma + 0.5).astype(picture.data.dtype)
        picture.data = luma[:, :, np.newaxis]
    elif color == "rgb" and channels == 1:
        picture.data = np.repeat(picture.data, 3, axis=2)
    return picture
