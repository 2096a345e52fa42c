"""Pictures and what happens to them as a whole: alpha, light and bit depth.

A ``Picture`` is what the pipeline works on: an H x W x C array of colour
(or matrix) values plus an alpha plane kept aside, the metadata an output
may carry, and, for a frame of an animation, its timing.  A file of several
frames is read and written one ``Picture`` at a time, so memory holds one
frame whatever the frame count; ``Animation`` is what the whole file says
(frame count, loop count).

``transform`` is the one picture-level step that ``apply`` and ``pool``
share: it runs their planes function with a finish that keeps levels'
meaning across bit depths, treats alpha as asked (carried, premultiplied
into the colour, or filtered as one more channel), optionally filters in
linear light, and rescales alpha to the output depth.

>>> import numpy as np
>>> from imgconv.finishing import Finish
>>> p = Picture(np.full((2, 2, 1), 65535, np.uint16), np.full((2, 2), 65535, np.uint16), 'PNG', 16)
>>> out = transform(p, lambda data, finish: finish(data), lambda alpha: alpha, maxval=255, value_range='clip')
>>> out.data[0, 0, 0], out.alpha[0, 0], out.depth
(np.uint8(255), np.uint8(255), 8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from imgconv.choices import ALPHA_MODES, AlphaMode, Color, ValueRange, check
from imgconv.errors import InputError, ParameterError
from imgconv.finishing import AnyFinish, Finish, Unpremultiply
from imgconv.metadata import Metadata

#: What happens to a frame's area before the next frame is drawn (GIF's and
#: APNG's disposal): left as it is, cleared to transparent, or restored.
Disposal = Literal["none", "background", "previous"]


@dataclass(frozen=True)
class Timing:
    """How one frame of an animation is shown: ``duration`` in milliseconds
    and its ``disposal``; None where the input does not say."""

    duration: float | None = None
    disposal: Disposal | None = None


@dataclass(frozen=True)
class Animation:
    """What a file of frames says as a whole: how many frames, and how often
    they play (``loop``: the number of plays as APNG and WebP count them, 0
    for ever, None where the input does not say; GIF counts repeats, see
    ``imgconv.gif``)."""

    count: int = 1
    loop: int | None = None


@dataclass
class Picture:
    """Planes (H x W x C) with alpha kept aside, and where they came from.

    ``format`` is the source's format name (Pillow's, or NPY/CSV/TXT);
    ``depth`` is 8 or 16 for images and None for matrices and float results.
    ``metadata`` is what an output may carry (ICC profile, EXIF); ``timing``
    is set on the frames of an animation.
    """

    data: np.ndarray
    alpha: np.ndarray | None
    format: str
    depth: int | None
    metadata: Metadata = field(default_factory=Metadata)
    timing: Timing | None = None

    @property
    def is_matrix(self) -> bool:
        return self.depth is None

    @property
    def maxval(self) -> int | None:
        return None if self.depth is None else (1 << self.depth) - 1


def to_color(picture: Picture, color: Color) -> Picture:
    """Apply ``--color`` to planes that did not go through Pillow's convert
    (16-bit and float images, matrices); ``picture`` is changed and returned."""
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


def transform(
    picture: Picture,
    planes: Callable[[np.ndarray, AnyFinish], np.ndarray],
    alpha: Callable[[np.ndarray], np.ndarray],
    *,
    maxval: int | None,
    value_range: ValueRange,
    scale: float = 1.0,
    offset: float = 0.0,
    relu: bool = False,
    alpha_mode: AlphaMode = "carry",
    linear: bool = False,
) -> Picture:
    """A new Picture: ``planes(data, finish)`` and the alpha as asked, at ``maxval``'s depth.

    ``finish`` folds the change of depth into the scale, so an 8-bit level
    and the 16-bit level 257 times it mean the same.  ``alpha_mode``:

    * ``carry``: ``alpha(alpha)`` (geometry only), rescaled and rounded half up;
    * ``separate``: alpha goes through ``planes`` like a colour channel;
    * ``premultiplied``: ``planes`` runs on colour x alpha and alpha (one
      more channel) with an ``Unpremultiply`` finish, which divides and
      rounds both once.

    ``linear``: the colour is decoded to linear light with the sRGB transfer
    function before ``planes`` and encoded back by the finish.
    """
    check("alpha_mode", alpha_mode, ALPHA_MODES)
    source_max = picture.maxval
    finish = Finish.make(
        maxval=maxval,
        value_range=value_range,
        scale=scale,
        offset=offset,
        relu=relu,
        source_max=source_max,
        linear=linear,
    )
    colour = picture.data
    if linear:
        from imgconv import srgb

        assert source_max is not None  # Finish.make refuses linear light without levels
        colour = srgb.decode_levels(colour, source_max)
    carried = None
    if picture.alpha is not None and alpha_mode == "premultiplied":
        if offset != 0:
            raise ParameterError(
                "premultiplied filtering divides by the filtered alpha, so it takes no offset", parameter="alpha_mode"
            )
        # Colour x alpha and alpha, as one set of planes through the same kernels.
        wide = _product_type(colour, source_max)
        alpha_planes: np.ndarray = picture.alpha[:, :, np.newaxis].astype(wide)
        premultiplied = np.concatenate([colour * alpha_planes, alpha_planes], axis=2)
        unpremultiply = Unpremultiply(
            colour=Finish.make(maxval=maxval, value_range=value_range, relu=relu, source_max=source_max, linear=linear),
            alpha=Finish.make(
                maxval=maxval, value_range="float" if value_range == "float" else "clip", source_max=source_max
            ),
            scale=scale,
        )
        result = finite(planes(premultiplied, unpremultiply))
        data, carried = result[:, :, :-1], result[:, :, -1]
    else:
        data = finite(planes(colour, finish))
        if picture.alpha is not None and alpha_mode == "separate":
            plain = Finish.make(
                maxval=maxval, value_range=value_range, scale=scale, offset=offset, relu=relu, source_max=source_max
            )
            carried = finite(planes(picture.alpha[:, :, np.newaxis], plain))[:, :, 0]
        elif picture.alpha is not None:
            carried = finish_alpha(alpha(picture.alpha), source_max, finish)
    depth = None if value_range == "float" or maxval is None else maxval.bit_length()
    return Picture(data, carried, picture.format, depth, picture.metadata, picture.timing)


def _product_type(colour: np.ndarray, source_max: int | None) -> type:
    """The type in which colour x alpha is exact: 8-bit products fit uint16,
    16-bit ones uint32; linear light is float64 already."""
    if colour.dtype.kind == "f":
        return np.float64
    return np.uint16 if source_max is not None and source_max <= 255 else np.uint32


def finite(values: np.ndarray) -> np.ndarray:
    """``values``, after refusing float results past float64's range."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InputError("the result overflows float64 (values beyond 1.8e308); scale the input or the kernel down")
    return values


def finish_alpha(values: np.ndarray, source_max: int | None, finish: Finish) -> np.ndarray:
    """A carried alpha plane (through the geometry, unfiltered) at the output's
    depth: rescaled from ``source_max`` levels and rounded half up; float for float results.

    >>> finish_alpha(np.array([[255]], np.uint8), 255, Finish(maxval=65535)).tolist()
    [[65535]]
    """
    carried = values.astype(np.float64)
    if finish.value_range != "float" and finish.maxval is not None:
        if source_max is not None and source_max != finish.maxval:
            carried = carried * (finish.maxval / source_max)
        carried = Finish(maxval=finish.maxval)(carried)
    return carried
