"""Image files decoded by Pillow: the formats imgconv has no reader of its own for.

``identify`` opens a file (its header only) and says how many frames to
give; ``still`` decodes a still image, ``animation_frames`` the frames of an
animation or the pages of a TIFF one at a time.  Every picture follows
the colour policy (``--color``) and carries the metadata an output may
keep (ICC profile, EXIF without its orientation, which is applied).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np

from imgconv.choices import Color, FrameChoice
from imgconv.errors import InputError
from imgconv.formats import streaming_hint
from imgconv.limits import clean_cause
from imgconv.picture import Disposal, Picture, Timing, to_color

#: The formats whose frames are frames of one picture (animation) or pages.
FRAMED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "TIFF"})

#: Pillow's GIF and APNG disposal numbers in our words (GIF's 0, "not
#: specified", is left unsaid).
_GIF_DISPOSALS: dict[int, Disposal] = {1: "none", 2: "background", 3: "previous"}
_APNG_DISPOSALS: dict[int, Disposal] = {0: "none", 1: "background", 2: "previous"}


@contextmanager
def pillow_reading() -> Iterator[None]:
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
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def identify(stream: BinaryIO, subject: str, *, max_pixels: int, frames: FrameChoice) -> tuple[Any, str, int, int]:
    """Pillow's image (header read, nothing decoded), its format, and the frames to give."""
    from PIL import Image, UnidentifiedImageError

    image: Any
    with pillow_reading():
        try:
            image = Image.open(stream)  # Pillow reads as far as the image needs, within the limit
        except UnidentifiedImageError:
            raise InputError("not an image file (or a format imgconv cannot read)", subject=subject) from None
        except DECODE_ERRORS as exc:
            raise InputError(f"cannot decode the image ({clean_cause(exc)})", subject=subject) from None
        check_size(image.size, subject, max_pixels)
        source_format = image.format or getattr(image, "_imgconv_format", None) or "PNG"
        count, first = 1, 0
        if frames == "all" and source_format in FRAMED_FORMATS:
            try:
                count = int(getattr(image, "n_frames", 1))
            except DECODE_ERRORS as exc:
                raise InputError(f"cannot decode the image ({clean_cause(exc)})", subject=subject) from None
            if count > 1 and image.info.get("default_image"):
                # An APNG's image for viewers without animation, not one of its frames.
                count, first = count - 1, 1
    return image, source_format, first, count


def closing(pictures: Iterator[Picture], stream: BinaryIO) -> Iterator[Picture]:
    """``pictures``, then the stream they are read from closed (also if abandoned)."""
    try:
        yield from pictures
    finally:
        stream.close()


def check_size(size: tuple[int, int], subject: str, max_pixels: int) -> None:
    """Refuse an image of ``size`` (width, height) over ``max_pixels``, or with no pixels."""
    width, height = size
    if width * height > max_pixels:
        raise InputError(
            f"{width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} "
            f"(a decompression bomb?); raise it with --max-pixels ({streaming_hint()})",
            subject=subject,
        )
    if width == 0 or height == 0:
        raise InputError("the image has no pixels", subject=subject)


def still(image: Any, source_format: str, subject: str, *, color: Color) -> Picture:
    """The first (or only) frame, decoded as it always was."""
    from PIL import ImageOps

    from imgconv.metadata import from_pillow

    with pillow_reading():
        try:
            image.load()
            metadata = from_pillow(image, source_format)
            # In place: no second copy of the decoded pixels (the caller still holds the image).
            ImageOps.exif_transpose(image, in_place=True)
        except DECODE_ERRORS as exc:
            raise InputError(f"cannot decode the image ({clean_cause(exc)})", subject=subject) from None
    picture = from_pil(image, source_format, subject, color=color)
    picture.metadata = metadata
    return picture


def animation_frames(
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
        with pillow_reading():
            try:
                image.seek(first + index)
                check_size(image.size, subject, max_pixels)
                image.load()
                metadata = from_pillow(image, source_format)
                upright = ImageOps.exif_transpose(image)
            except DECODE_ERRORS as exc:
                raise InputError(
                    f"cannot decode frame {index + 1} of {count} ({clean_cause(exc)})", subject=subject
                ) from None
        picture = from_pil(upright, source_format, subject, color=color, gray=gray, with_alpha=alpha)
        del upright  # not held while the frame is filtered
        if source_format != "TIFF" and alpha is None:
            gray, alpha = picture.data.shape[2] == 1, picture.alpha is not None
        picture.metadata = metadata
        picture.timing = frame_timing(image, source_format)
        yield picture


def frame_timing(image: Any, source_format: str) -> Timing | None:
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


def from_pil(
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
        return to_color(Picture(planes, None, source_format, 16), color)
    if mode == "I":
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise InputError("32-bit integer image with values outside 0..65535", subject=subject)
        return to_color(Picture(values.astype(np.uint16)[:, :, np.newaxis], None, source_format, 16), color)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError("float image holds NaN or infinite values", subject=subject)
        return to_color(Picture(values[:, :, np.newaxis], None, source_format, None), color)
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
