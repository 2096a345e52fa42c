"""Reading pictures: image files through Pillow, matrix files, stdin.

Image files become 8- or 16-bit planes following the colour policy
(``--color``), with the metadata an output may carry (ICC profile, EXIF);
``.npy``, ``.csv`` and ``.txt`` files are numeric matrices, read by the
reader their ``Format`` names.  ``-`` reads stdin and sniffs the format
from the bytes.

Every byte comes through ``imgconv.limits``: a file larger than
``--max-pixels`` allows is refused by its size, and stdin or a pipe is read
only as far as its decoder asks, so garbage is refused at its first bytes
and an endless stream at the limit, while Ctrl-C and SIGTERM still act.

``read_frames`` opens a file and says how many frames it holds before any
frame of an animation is decoded, then decodes them one at a time as they
are asked for: the frames of an animated GIF, PNG (APNG) or WebP and the
pages of a TIFF (``frames='first'``: only the first).  Other formats give
one picture, whatever Pillow counts in them (a camera's JPEG may hold a
preview image as a second "frame", a PSD its layers).  ``read_picture``
is the first frame.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
>>> _ = open(path, 'w').write('1.5,-2\\n')
>>> read_picture(path).data[:, :, 0].tolist()
[[1.5, -2.0]]
"""

from __future__ import annotations

import array
import importlib
import io
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from imgconv.choices import COLORS, FRAME_CHOICES, Color, FrameChoice, check
from imgconv.errors import InputError
from imgconv.formats import STDIO, Format, by_extension, by_name, streaming_hint
from imgconv.limits import (
    METADATA_BYTES,
    VALUES_PER_PIXEL,
    Limit,
    excerpt,
    input_byte_limit,
    open_input,
    quote,
    read_all,
    read_head,
)
from imgconv.picture import Animation, Disposal, Picture, Timing

#: Refuse images above this many pixels before decoding them (decompression
#: bombs); ``--max-pixels`` raises it.  An 8K frame is 33 million pixels.
DEFAULT_MAX_PIXELS = 100_000_000


#: The formats whose frames are frames of one picture (animation) or pages.
FRAMED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "TIFF"})

#: Pillow's GIF and APNG disposal numbers in our words (GIF's 0, "not
#: specified", is left unsaid).
_GIF_DISPOSALS: dict[int, Disposal] = {1: "none", 2: "background", 3: "previous"}
_APNG_DISPOSALS: dict[int, Disposal] = {0: "none", 1: "background", 2: "previous"}


@dataclass
class Frames:
    """The frames of one input, known in number when the file is opened.

    A still image is decoded when it is opened; the frames of an animation
    (or the pages of a TIFF) one at a time as they are iterated (once).

    ``format`` is the source's format name; ``animation`` the frame count
    and loop count.
    """

    format: str
    animation: Animation
    pictures: Iterator[Picture]

    def __iter__(self) -> Iterator[Picture]:
        return self.pictures


def read_picture(
    source: str | os.PathLike[str], *, color: Color = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image or matrix file (its first frame).

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
        With the input's ICC profile and EXIF (without orientation) in ``metadata``.
    """
    return next(iter(read_frames(source, color=color, max_pixels=max_pixels, frames="first")))


def read_frames(
    source: str | os.PathLike[str],
    *,
    color: Color = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    frames: FrameChoice = "all",
) -> Frames:
    """Open an image or matrix file; its frames are decoded as they are iterated.

    Parameters
    ----------
    source : path or '-'
    color, max_pixels
        As ``read_picture``.
    frames : {'all', 'first'}
        ``all`` gives every frame of an animated GIF, PNG or WebP and every
        page of a TIFF; ``first`` only the first.

    Returns
    -------
    Frames
        The frames of an animation share one layout (gray or colour, alpha
        or not) and carry their ``timing``; pages keep their own.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
    >>> _ = open(path, 'w').write('1,2\\n')
    >>> found = read_frames(path)
    >>> found.animation.count, [p.data.shape for p in found]
    (1, [(1, 2, 1)])
    """
    check("color", color, COLORS)
    check("frames", frames, FRAME_CHOICES)
    name = os.fspath(source)
    subject = "<stdin>" if name == STDIO else name
    limit = Limit(input_byte_limit(max_pixels), subject=subject, error=InputError, hint=_RAISE_PIXELS)
    stream = open_input(name, limit, stdin=name == STDIO)
    owned = True  # until the image's frames take the stream over
    try:
        head = read_head(stream, limit)
        if not head:
            raise InputError("the file is empty", subject=subject)
        matrix: Format | None
        if name == STDIO:
            matrix = _sniff(head)
        else:
            found = by_extension(name)
            matrix = found if found is not None and found.matrix else None
        if matrix is None:
            owned = False
            return _open_image(stream, limit, subject, color=color, max_pixels=max_pixels, frames=frames)
        # Refuse what the first bytes already show is wrong, before reading the rest.
        if matrix.name == "NPY":
            _check_npy_size(head, subject, max_pixels)
        elif b"\0" in head:
            raise InputError("not a text matrix (it holds NUL bytes)", subject=subject)
        data = read_all(stream, limit)
    finally:
        if owned:
            stream.close()
    assert matrix.reader is not None  # every matrix format has one
    module, function = matrix.reader.split(":")
    reader: Callable[..., Picture] = getattr(importlib.import_module(module), function)
    picture = _to_color(reader(data, subject=subject, max_pixels=max_pixels), color)
    return Frames(picture.format, Animation(), iter([picture]))


#: How a refusal by size tells the user to raise the limit.
_RAISE_PIXELS = "raise it with --max-pixels"


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
        raise InputError(f"not a valid .npy matrix ({_npy_cause(exc)})", subject=subject) from None
    return _matrix(array, "NPY", subject)


def read_csv(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A comma-separated matrix."""
    return _matrix(_parse_text_matrix(data, delimiter=",", subject=subject, max_pixels=max_pixels), "CSV", subject)


def read_txt(data: bytes, *, subject: str, max_pixels: int) -> Picture:
    """A whitespace-separated matrix."""
    return _matrix(_parse_text_matrix(data, delimiter=None, subject=subject, max_pixels=max_pixels), "TXT", subject)


def _check_npy_size(data: bytes, subject: str, max_pixels: int) -> None:
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
    return quote(re.sub(r" at 0x[0-9a-f]+", "", _clean(exc)).split(": ")[0], 200)[1:-1]


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


def _parse_text_matrix(data: bytes, *, delimiter: str | None, subject: str, max_pixels: int) -> np.ndarray:
    try:
        text = data.decode("utf-8")
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


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Images


@contextmanager
def _pillow_reading() -> Iterator[None]:
    """While Pillow reads: our pixel limit is checked on the header, so
    Pillow's guard (twice its own limit) must not fire first with a
    different message; and its warnings about damaged metadata (which is
    then not carried) stay off the user's terminal."""
    import warnings

    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


#: What Pillow raises on a damaged file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def _open_image(
    stream: BinaryIO, limit: Limit, subject: str, *, color: Color, max_pixels: int, frames: FrameChoice
) -> Frames:
    """The frames of an image file, which own ``stream`` from here: a still
    image closes it once decoded, an animation once its frames are read."""
    try:
        head = read_head(stream, limit, 64)
        if head.startswith(PNG_SIGNATURE):
            # imgconv's own reader takes the whole file, read within what its header allows.
            data = read_all(stream, _png_limit(head, limit))
            stream.close()
            stream = io.BytesIO(data)
            fast = _fast_png(data, color=color, max_pixels=max_pixels)
            if fast is not None:
                return Frames("PNG", Animation(), iter([fast]))
        image, source_format, first, count = _identify(stream, subject, max_pixels=max_pixels, frames=frames)
        if count == 1 and first == 0:
            # Decoded now: a generator would hold the decoded image while the picture is filtered.
            pictures = iter([_still(image, source_format, subject, color=color)])
            stream.close()
            return Frames(source_format, Animation(), pictures)
    except BaseException:
        stream.close()
        raise
    loop = image.info.get("loop")
    loop = None if loop is None else int(loop)
    if source_format == "GIF":  # GIF counts repeats after the first play
        from imgconv.gif import plays_of_gif

        loop = plays_of_gif(loop)
    animation = Animation(count=count, loop=loop)
    frames_of = _frames(image, source_format, subject, first, count, color, max_pixels)
    return Frames(source_format, animation, _closing(frames_of, stream))


def _identify(stream: BinaryIO, subject: str, *, max_pixels: int, frames: FrameChoice) -> tuple[Any, str, int, int]:
    """Pillow's image (header read, nothing decoded), its format, and the frames to give."""
    from PIL import Image, UnidentifiedImageError

    image: Any
    with _pillow_reading():
        try:
            image = Image.open(stream)  # Pillow reads as far as the image needs, within the limit
        except UnidentifiedImageError:
            raise InputError("not an image file (or a format imgconv cannot read)", subject=subject) from None
        except _DECODE_ERRORS as exc:
            raise InputError(f"cannot decode the image ({_clean(exc)})", subject=subject) from None
        _check_size(image, subject, max_pixels)
        source_format = image.format or getattr(image, "_imgconv_format", None) or "PNG"
        count, first = 1, 0
        if frames == "all" and source_format in FRAMED_FORMATS:
            try:
                count = int(getattr(image, "n_frames", 1))
            except _DECODE_ERRORS as exc:
                raise InputError(f"cannot decode the image ({_clean(exc)})", subject=subject) from None
            if count > 1 and image.info.get("default_image"):
                # An APNG's image for viewers without animation, not one of its frames.
                count, first = count - 1, 1
    return image, source_format, first, count


def _closing(pictures: Iterator[Picture], stream: BinaryIO) -> Iterator[Picture]:
    """``pictures``, then the stream they are read from closed (also if abandoned)."""
    try:
        yield from pictures
    finally:
        stream.close()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_limit(head: bytes, limit: Limit) -> Limit:
    """The bytes a PNG may take, from its header: the rows its IHDR declares
    (a deflate stream is never much larger than its data) twice over, plus
    room for metadata; so a PNG header followed by endless garbage is
    refused after megabytes, not gigabytes.  A header that is not right
    keeps the general limit (Pillow reports it)."""
    import struct

    if len(head) < 33 or head[12:16] != b"IHDR":
        return limit
    width, height, bits, color_type = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color_type, 4)
    rows = height * (1 + (width * channels * max(bits, 1) + 7) // 8)
    bound = 2 * rows + METADATA_BYTES
    if bound >= limit.count:
        return limit
    return Limit(bound, subject=limit.subject, error=limit.error, hint=f"more than its {width}x{height} pixels need")


def _fast_png(data: bytes, *, color: Color, max_pixels: int) -> Picture | None:
    """A still PNG decoded by imgconv's own reader (``imgconv.png_read``) when
    it provably gives what Pillow would; None leaves it to Pillow."""
    from imgconv import png_read
    from imgconv.metadata import Metadata

    decoded = png_read.read_png(data, color=color, max_pixels=max_pixels)
    if decoded is None:
        return None
    return Picture(decoded.planes, decoded.alpha, "PNG", decoded.depth, metadata=Metadata(icc=decoded.icc))


def _check_size(image: Any, subject: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise InputError(
            f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} "
            f"(a decompression bomb?); raise it with --max-pixels ({streaming_hint()})",
            subject=subject,
        )
    if width == 0 or height == 0:
        raise InputError("the image has no pixels", subject=subject)


def _still(image: Any, source_format: str, subject: str, *, color: Color) -> Picture:
    """The first (or only) frame, decoded as it always was."""
    from PIL import ImageOps

    from imgconv.metadata import from_pillow

    with _pillow_reading():
        try:
            image.load()
            metadata = from_pillow(image, source_format)
            # In place: no second copy of the decoded pixels (the caller still holds the image).
            ImageOps.exif_transpose(image, in_place=True)
        except _DECODE_ERRORS as exc:
            raise InputError(f"cannot decode the image ({_clean(exc)})", subject=subject) from None
    picture = _from_pil(image, source_format, subject, color=color)
    picture.metadata = metadata
    return picture


def _frames(
    image: Any, source_format: str, subject: str, first: int, count: int, color: Color, max_pixels: int
) -> Iterator[Picture]:
    """Each frame in turn: decoded, turned upright, in the animation's layout.

    Pillow gives every frame of an animation whole (composed with the ones
    before it), so a frame is a complete picture.  The frames of a GIF,
    PNG or WebP share the first frame's layout (gray or colour, alpha or
    not); Pillow decodes a GIF's later frames as colour, with alpha when the
    first frame has a transparent colour, so a GIF's first frame is read as
    colour too.  A TIFF's pages keep their own.
    """
    from PIL import ImageOps

    from imgconv.metadata import from_pillow

    gray: bool | None = (color == "gray") if source_format == "GIF" else None
    alpha: bool | None = None
    for index in range(count):
        with _pillow_reading():
            try:
                image.seek(first + index)
                _check_size(image, subject, max_pixels)
                image.load()
                metadata = from_pillow(image, source_format)
                upright = ImageOps.exif_transpose(image)
            except _DECODE_ERRORS as exc:
                raise InputError(
                    f"cannot decode frame {index + 1} of {count} ({_clean(exc)})", subject=subject
                ) from None
        picture = _from_pil(upright, source_format, subject, color=color, gray=gray, with_alpha=alpha)
        del upright  # not held while the frame is filtered
        if source_format != "TIFF" and alpha is None:
            gray, alpha = picture.data.shape[2] == 1, picture.alpha is not None
        picture.metadata = metadata
        picture.timing = _timing(image, source_format)
        yield picture


def _timing(image: Any, source_format: str) -> Timing | None:
    """The current frame's duration and disposal, as Pillow read them."""
    if source_format == "TIFF":
        return None
    duration = image.info.get("duration")
    disposal: Disposal | None = None
    if source_format == "GIF":
        disposal = _GIF_DISPOSALS.get(getattr(image, "disposal_method", 0))
    elif source_format == "PNG":
        disposal = _APNG_DISPOSALS.get(image.info.get("disposal", -1))
    return Timing(duration=None if duration is None else float(duration), disposal=disposal)


def _clean(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return excerpt(text.splitlines()[0], 200)


def _from_pil(
    image: Any,
    source_format: str,
    subject: str,
    *,
    color: Color,
    gray: bool | None = None,
    with_alpha: bool | None = None,
) -> Picture:
    """Pillow image -> Picture, following the colour policy; ``gray`` and
    ``with_alpha`` given, the frame takes that layout (an animation's)."""
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
    if with_alpha is not None:
        has_alpha = with_alpha
    if gray is not None:
        gray_source = gray
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
