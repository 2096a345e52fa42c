"""Reading and writing pictures: image files, matrices, stdin and stdout.

A ``Picture`` is what the pipeline works on: an H x W x C array of colour
(or matrix) values plus an alpha plane kept aside.  Image files become 8- or
16-bit planes; ``.npy``, ``.csv`` and ``.txt`` files are numeric matrices.

Every output is written atomically: encoded into a temporary file in the
target folder, then renamed over the target, so a failed run never leaves a
partial file behind.

>>> import numpy as np, tempfile, os
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, 'm.csv')
>>> write_picture(Picture(np.array([[1.5, -2.0]])[:, :, None], None, 'CSV', None), path)
>>> open(path).read()
'1.5,-2\\n'
>>> read_picture(path).data[:, :, 0].tolist()
[[1.5, -2.0]]
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from imgconv.errors import InputError, OutputError, UsageFailure

STDIO = "-"

#: Refuse images above this many pixels before decoding them (decompression
#: bombs); ``--max-pixels`` raises it.  An 8K frame is 33 million pixels.
DEFAULT_MAX_PIXELS = 100_000_000

MATRIX_FORMATS = ("NPY", "CSV", "TXT")

#: File extension -> format name (Pillow's names for images).
EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pnm": "PPM",
    ".npy": "NPY",
    ".csv": "CSV",
    ".txt": "TXT",
}

#: ``--format`` names -> format.
FORMAT_NAMES = {
    "png": "PNG",
    "jpeg": "JPEG",
    "jpg": "JPEG",
    "tiff": "TIFF",
    "tif": "TIFF",
    "bmp": "BMP",
    "webp": "WEBP",
    "ppm": "PPM",
    "pnm": "PPM",
    "npy": "NPY",
    "csv": "CSV",
    "txt": "TXT",
}

#: What each output format can hold.
_HOLDS_16BIT = {"PNG", "TIFF", "PPM", *MATRIX_FORMATS}
_HOLDS_ALPHA = {"PNG", "TIFF", "WEBP", "NPY"}
_HOLDS_FLOAT = {"TIFF", *MATRIX_FORMATS}
_TEXT_FORMATS = {"CSV", "TXT"}

COLORS = ("auto", "gray", "rgb")


@dataclass
class Picture:
    """Planes (H x W x C) with alpha kept aside, and where they came from.

    ``depth`` is 8 or 16 for images and None for matrices.
    """

    data: np.ndarray
    alpha: np.ndarray | None
    format: str
    depth: int | None

    @property
    def is_matrix(self) -> bool:
        return self.depth is None

    @property
    def maxval(self) -> int | None:
        return None if self.depth is None else (1 << self.depth) - 1


def format_for(target: str, explicit: str | None = None, *, fallback: str | None = None) -> str:
    """The output format: ``explicit`` (``--format``), else the extension.

    ``-`` without ``--format`` takes ``fallback`` (the input's format), else PNG.

    >>> format_for('out.JPG'), format_for('-', fallback='CSV'), format_for('x.bin', 'png')
    ('JPEG', 'CSV', 'PNG')
    """
    if explicit:
        try:
            return FORMAT_NAMES[explicit.lower()]
        except KeyError:
            raise UsageFailure(
                f"unknown format '{explicit}' (choose from {', '.join(sorted(set(FORMAT_NAMES)))})",
                subject="--format",
            ) from None
    if target == STDIO:
        return fallback or "PNG"
    suffix = Path(target).suffix.lower()
    try:
        return EXTENSIONS[suffix]
    except KeyError:
        known = " ".join(sorted(EXTENSIONS))
        raise UsageFailure(
            f"unknown output extension '{suffix or '(none)'}' (known: {known}; or give --format)",
            subject=target,
        ) from None


# --------------------------------------------------------------------------
# Reading


def read_picture(source: str | os.PathLike[str], *, color: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image or matrix file (``-`` reads stdin, sniffing the format)."""
    if color not in COLORS:
        raise UsageFailure(f"'{color}' is not one of {', '.join(COLORS)}", subject="--color")
    name = os.fspath(source)
    if name == STDIO:
        data = sys.stdin.buffer.read()
        subject = "<stdin>"
        kind = _sniff(data)
    else:
        subject = name
        data = _read_bytes(Path(name))
        kind = EXTENSIONS.get(Path(name).suffix.lower())
        if kind not in MATRIX_FORMATS:
            kind = "IMAGE"
    if not data:
        raise InputError("the file is empty", subject=subject)
    if kind == "NPY":
        _check_npy_size(data, subject, max_pixels)
    if kind in MATRIX_FORMATS:
        return _to_color(_read_matrix(data, kind, subject), color)
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


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x93NUMPY"):
        return "NPY"
    head = data[:4096]
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return "IMAGE"
    stripped = text.strip()
    if stripped and all(ch in "0123456789+-.eE,; \t\r\n" for ch in stripped):
        return "CSV" if "," in stripped else "TXT"
    return "IMAGE"


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
    height, width = (tuple(shape) + (1, 1))[:2]
    if height * width > max_pixels:
        raise InputError(
            f"the matrix declares {height}x{width} = {height * width:,} values, over the limit of {max_pixels:,}; "
            "raise it with --max-pixels",
            subject=subject,
        )


def _read_matrix(data: bytes, kind: str, subject: str) -> Picture:
    if kind == "NPY":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            # numpy quotes the raw header, object addresses included: keep its first clause.
            cause = re.sub(r" at 0x[0-9a-f]+", "", _clean(exc)).split(": ")[0]
            raise InputError(f"not a valid .npy matrix ({cause})", subject=subject) from None
    else:
        array = _parse_text_matrix(data, delimiter="," if kind == "CSV" else None, subject=subject)
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
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
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


def _read_image(data: bytes, subject: str, *, color: str, max_pixels: int) -> Picture:
    from imgconv.png import read_png

    # imgconv's own PNG decoder takes the PNGs it reads exactly as Pillow would, faster; None: Pillow's turn.
    fast = read_png(data, color=color, max_pixels=max_pixels)
    if fast is not None:
        planes, alpha, depth = fast
        return Picture(planes, alpha, "PNG", depth)

    from PIL import Image, ImageOps, UnidentifiedImageError

    saved_limit = Image.MAX_IMAGE_PIXELS
    # Our own limit is checked on the header below; Pillow's guard (twice its
    # limit) must not fire first with a different message.
    Image.MAX_IMAGE_PIXELS = None
    try:
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


def _from_pil(image, source_format: str, subject: str, *, color: str) -> Picture:
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


def _to_color(picture: Picture, color: str) -> Picture:
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


# --------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode outputs; defaults favour speed (see the README)."""

    png_level: int = 1
    quality: int = 90


def check_capacity(fmt: str, *, is_float: bool, depth: int | None, channels: int, has_alpha: bool, target: str) -> None:
    """Refuse a format that cannot hold the result (a usage error)."""
    if is_float and fmt not in _HOLDS_FLOAT:
        raise UsageFailure(
            f"{fmt} cannot hold --range float values; write .npy, .csv, .txt or a one-channel .tif",
            subject=target,
        )
    if is_float and fmt == "TIFF" and (channels != 1 or has_alpha):
        raise UsageFailure("a float TIFF holds one channel only; write .npy for colour", subject=target)
    if depth == 16 and fmt not in _HOLDS_16BIT:
        raise UsageFailure(f"{fmt} cannot hold 16-bit values; write .png, .tif or .npy, or give --depth 8", subject=target)
    if depth == 16 and fmt in ("TIFF", "PPM") and (channels != 1 or has_alpha):
        raise UsageFailure(
            f"16-bit {fmt} output is written for grayscale only; write .npy, or give --depth 8", subject=target
        )
    if has_alpha and fmt not in _HOLDS_ALPHA:
        raise UsageFailure(
            f"{fmt} cannot hold the alpha channel; write .png, .tif, .webp or .npy",
            subject=target,
        )
    if fmt in _TEXT_FORMATS and (channels != 1 or has_alpha):
        raise UsageFailure(f"{fmt} holds a 2-D matrix; this result has {channels + has_alpha} channels, write .npy", subject=target)


def encoder_for(
    picture: Picture, fmt: str, *, options: EncodeOptions = EncodeOptions(), target: str = "output"
) -> Callable[[BinaryIO], None]:
    """Check that ``fmt`` can hold ``picture``, then return what writes it to a stream.

    Encoding straight into the output's temporary file keeps no second copy
    of the encoded image in memory; the output is deterministic.
    """
    data, alpha = picture.data, picture.alpha
    check_capacity(
        fmt,
        is_float=data.dtype.kind == "f",
        depth=16 if data.dtype == np.uint16 else None,
        channels=data.shape[2],
        has_alpha=alpha is not None,
        target=target,
    )
    if fmt == "NPY":
        array = data if alpha is None else np.dstack([data, alpha.astype(data.dtype)])
        array = np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array)
        return lambda stream: np.save(stream, array, allow_pickle=False)
    if fmt in _TEXT_FORMATS:
        text = _format_text_matrix(data[:, :, 0], delimiter="," if fmt == "CSV" else " ").encode("ascii")
        return lambda stream: stream.write(text)
    return _image_encoder(data, alpha, fmt, options, target)


def encode_picture(picture: Picture, fmt: str, *, options: EncodeOptions = EncodeOptions(), target: str = "output") -> bytes:
    """Encode to bytes in ``fmt``; deterministic for equal input."""
    buffer = io.BytesIO()
    encoder_for(picture, fmt, options=options, target=target)(buffer)
    return buffer.getvalue()


def _format_text_matrix(matrix: np.ndarray, *, delimiter: str) -> str:
    if matrix.dtype.kind in "iu":
        cells = matrix.astype(str)
    else:
        # repr gives the shortest text that reads back to the same float.
        cells = np.vectorize(_short_float, otypes=[object])(matrix)
    return "".join(delimiter.join(row) + "\n" for row in cells.tolist())


def _short_float(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _image_encoder(data: np.ndarray, alpha: np.ndarray | None, fmt: str, options: EncodeOptions, target: str):
    if fmt == "PNG" and data.dtype in (np.uint8, np.uint16):
        from imgconv.png import write_png

        pixels = data if alpha is None else np.dstack([data, alpha.astype(data.dtype)])
        return lambda stream: write_png(pixels, stream, level=options.png_level)

    from PIL import Image

    if data.dtype.kind == "f":
        image = Image.fromarray(data[:, :, 0].astype(np.float32), mode="F")
    elif data.dtype == np.uint16:
        image = Image.fromarray(np.ascontiguousarray(data[:, :, 0]))
        if image.mode != "I;16":
            image = image.convert("I;16")
    else:
        planes = np.ascontiguousarray(data if alpha is None else np.dstack([data, alpha]))
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes.shape[2]]
        # frombuffer shares the array's memory: no copy of a large image.
        image = Image.frombuffer(mode, (planes.shape[1], planes.shape[0]), planes, "raw", mode, 0, 1)
    params: dict[str, object] = {}
    if fmt == "PNG":
        params["compress_level"] = options.png_level
    elif fmt in ("JPEG", "WEBP"):
        params["quality"] = options.quality
    elif fmt == "TIFF":
        params["compression"] = "raw"

    def encode(stream: BinaryIO) -> None:
        try:
            image.save(stream, format=fmt, **params)
        except OSError as exc:
            if exc.errno is not None:
                raise  # the disk, not the encoder: reported as an output error
            raise UsageFailure(f"cannot encode as {fmt}: {_clean(exc)}", subject=target) from None
        except (ValueError, KeyError) as exc:
            raise UsageFailure(f"cannot encode as {fmt}: {_clean(exc)}", subject=target) from None

    return encode


def write_picture(
    picture: Picture,
    target: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    options: EncodeOptions = EncodeOptions(),
) -> None:
    """Encode and write ``picture``; ``-`` writes stdout."""
    name = os.fspath(target)
    fmt = fmt or format_for(name)
    encode = encoder_for(picture, fmt, options=options, target=name)
    if name == STDIO:
        buffer = io.BytesIO()
        encode(buffer)
        write_stdout(buffer.getvalue(), text=fmt in _TEXT_FORMATS)
    else:
        write_atomic(Path(name), encode)


def write_stdout(payload: bytes, *, text: bool, stream: BinaryIO | None = None) -> None:
    """Write to stdout; binary data is never sent to a terminal."""
    stream = stream or sys.stdout.buffer
    if not text and stream.isatty():
        raise UsageFailure("refusing to write binary image data to a terminal; redirect it or give a file", subject="-")
    view = memoryview(payload)
    try:
        # A raw or non-blocking stream may take only part: a cut image must not pass for success.
        while view:
            written = stream.write(view)
            if not written:
                raise OutputError("stdout took no more data; the output is incomplete", subject="-")
            view = view[written:]
        stream.flush()
    except BrokenPipeError:
        raise OutputError("the reader closed the pipe before the whole output was written", subject="-") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomic(path: Path, payload: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``payload`` (bytes, or a function writing to a stream) to ``path``
    via a temporary file in the same folder and a rename."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        cause = f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
        raise OutputError(f"cannot create folder {folder}: {cause}", subject=str(path)) from None
    if path.is_dir():
        raise OutputError("is a directory", subject=str(path))
    try:
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            if callable(payload):
                payload(stream)
            else:
                stream.write(payload)
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException as exc:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
        raise
