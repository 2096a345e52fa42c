"""The one finishing step: raw sums to output values.

``Finish`` holds what a run does after its last kernel: ``/ scale +
offset``, optional ReLU, the range (clip / abs / normalize / float), round
half up and clip to the output type.  ``Finish.after(divisor, offset)``
puts the last kernel's own ``/ divisor + offset`` in front, and finishes
integer sums in integers where that provably gives the float formula's
bytes.  Whole images, row strips and pooled windows all end here.

Two routes of ``apply`` end here too, so that they round once: a finish
made with ``linear=True`` takes linear light (``--linear``) and encodes it
with the sRGB transfer function just before rounding, and
``Unpremultiply`` divides premultiplied colour by the filtered alpha
(``--alpha premultiplied``) before the colour and the alpha are rounded.

>>> import numpy as np
>>> finish(np.array([-3.0, 0.5, 1.49, 254.5, 300.0]), maxval=255).tolist()
[0, 1, 1, 255, 255]
>>> finish(np.array([-3.0, 2.5]), maxval=255, value_range='abs').tolist()
[3, 3]
>>> finish(np.array([-1.0, 0.0, 1.0]), maxval=255, value_range='normalize').tolist()
[0, 128, 255]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from imgconv.choices import RANGES, ValueRange, check
from imgconv.errors import ParameterError
from imgconv.kernels.model import Number


def dtype_for(maxval: int) -> np.dtype:
    """The unsigned type that holds ``0..maxval``."""
    return np.dtype(np.uint8) if maxval <= 255 else np.dtype(np.uint16) if maxval <= 65535 else np.dtype(np.uint32)


def scale_offset(values: np.ndarray, divisor: Number, offset: Number) -> np.ndarray:
    """``values / divisor + offset`` as float64, skipping identity steps."""
    by, plus = float(divisor), float(offset)
    values = np.asarray(values, dtype=np.float64)
    if by != 1.0:
        values = values / by
    if plus != 0.0:
        values = values + plus
    return values


def depth_divisor(source_max: int | None, maxval: int | None, value_range: str) -> float:
    """What divides input levels to give output levels: 1/257 from 8 to 16
    bits, 257 from 16 to 8, and 1 for matrices, float results or one depth.

    >>> depth_divisor(65535, 255, 'clip'), depth_divisor(None, 255, 'clip'), depth_divisor(255, 255, 'abs')
    (257.0, 1.0, 1.0)
    """
    if source_max is None or maxval is None or value_range == "float" or source_max == maxval:
        return 1.0
    return source_max / maxval


@dataclass(frozen=True)
class Finish:
    """What a run does to its results after the last kernel.

    ``maxval`` is 255 or 65535 for 8- and 16-bit outputs (None only with
    ``value_range='float'``).  ``Finish.make`` folds a change of bit depth
    into the scale and offset, so levels keep their meaning across depths.

    ``srgb_levels`` set: the values are linear light (1.0 is white); after
    the range step (which then works on light: ``clip`` to 0..1,
    ``normalize`` to 0..1) they are encoded with the sRGB transfer function
    and multiplied by it, the output's levels (the input's for ``float``).
    """

    maxval: int | None
    value_range: ValueRange = "clip"
    scale: float = 1.0
    offset: float = 0.0
    relu: bool = False
    srgb_levels: float | None = None
    #: ``normalize``'s minimum and maximum when known beforehand (from a
    #: first pass over an image finished in strips); None: the values' own.
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check("value_range", self.value_range, RANGES)
        if self.value_range != "float" and self.maxval is None:
            raise ParameterError("an integer output needs a maximum value", parameter="maxval")

    @classmethod
    def make(
        cls,
        *,
        maxval: int | None,
        value_range: ValueRange,
        scale: float = 1.0,
        offset: float = 0.0,
        relu: bool = False,
        source_max: int | None = None,
        linear: bool = False,
    ) -> Finish:
        """The finish for an output of ``maxval`` from input levels of ``source_max``.

        ``out = (conv / scale + offset) / divisor``, with divisor 257 from 16
        to 8 bits (1/257 the other way).  ``linear``: the values are linear
        light, encoded to the output's levels (no divisor: light has no depth).
        """
        if linear:
            if source_max is None:
                raise ParameterError(
                    "applies to 8- and 16-bit images, not to matrices or float images", parameter="linear"
                )
            levels = source_max if value_range == "float" or maxval is None else maxval
            return cls(
                maxval=maxval,
                value_range=value_range,
                scale=scale,
                offset=offset,
                relu=relu,
                srgb_levels=float(levels),
            )
        divisor = depth_divisor(source_max, maxval, value_range)
        if divisor != 1:
            scale, offset = scale * divisor, offset / divisor
        return cls(maxval=maxval, value_range=value_range, scale=scale, offset=offset, relu=relu)

    @property
    def dtype(self) -> np.dtype:
        """What the finished values are: float64, or the output's integer type."""
        if self.value_range == "float" or self.maxval is None:
            return np.dtype(np.float64)
        return dtype_for(self.maxval)

    @property
    def elementwise(self) -> bool:
        """False for ``normalize`` until its bounds are known: it needs the
        whole result's minimum and maximum."""
        return self.value_range != "normalize" or self.bounds is not None

    def extent(self, values: np.ndarray) -> tuple[float, float]:
        """The minimum and maximum ``normalize`` maps from, over ``values``.

        >>> Finish(maxval=255, value_range='normalize', scale=2, relu=True).extent(np.array([-4.0, 6.0]))
        (0.0, 3.0)
        """
        result = self._prepared(values)
        return (float(result.min()), float(result.max())) if result.size else (0.0, 0.0)

    def with_bounds(self, low: float, high: float) -> Finish:
        """This finish with ``normalize``'s bounds fixed (from a first pass), so it is elementwise.

        >>> values = np.array([1.0, 2.0, 5.0])
        >>> f = Finish(maxval=255, value_range='normalize')
        >>> f.with_bounds(*f.extent(values))(values[:2]).tolist() == f(values)[:2].tolist()
        True
        """
        return replace(self, bounds=(low, high))

    def _prepared(self, values: np.ndarray) -> np.ndarray:
        result = scale_offset(values, self.scale, self.offset)
        return np.maximum(result, 0.0) if self.relu else result

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Finish float (or integer) ``values``; a new array."""
        result = self._prepared(values)
        if self.srgb_levels is not None:
            return self._encoded(result, self.srgb_levels)
        if self.value_range == "float":
            return result
        assert self.maxval is not None  # checked in __post_init__
        if self.value_range == "abs":
            result = np.abs(result)
        elif self.value_range == "normalize":
            if self.bounds is not None:
                low, high = self.bounds
            else:
                low, high = (float(result.min()), float(result.max())) if result.size else (0.0, 0.0)
            if high == low:
                return np.zeros(result.shape, dtype=dtype_for(self.maxval))
            result = (result - low) * (self.maxval / (high - low))
        return self._rounded(result)

    def _encoded(self, light: np.ndarray, levels: float) -> np.ndarray:
        """Linear light through the range step, the sRGB encoding and the rounding."""
        from imgconv import srgb

        if self.value_range == "float":
            return srgb.encode(light) * levels
        if self.value_range == "abs":
            light = np.abs(light)
        elif self.value_range == "normalize":
            if self.bounds is not None:
                low, high = self.bounds
            else:
                low, high = (float(light.min()), float(light.max())) if light.size else (0.0, 0.0)
            if high == low:
                return np.zeros(light.shape, dtype=self.dtype)
            light = (light - low) / (high - low)
        return self._rounded(srgb.encode(np.clip(light, 0.0, 1.0)) * levels)

    def _rounded(self, result: np.ndarray) -> np.ndarray:
        """The one rounding step: half up, clipped to the output type."""
        assert self.maxval is not None  # checked in __post_init__
        rounded = np.floor(result + 0.5)
        np.clip(rounded, 0, self.maxval, out=rounded)
        return rounded.astype(dtype_for(self.maxval))

    def after(self, divisor: Number, kernel_offset: Number) -> Finisher:
        """This finish preceded by a kernel's own ``/ divisor + offset``."""
        return Finisher(divisor=divisor, kernel_offset=kernel_offset, finish=self)


@dataclass(frozen=True)
class Unpremultiply:
    """The finish of premultiplied planes (``--alpha premultiplied``).

    The planes are colour x alpha and, as the last channel, alpha, filtered
    with the same kernels; ``scale`` is the run's ``--scale``, which applies
    to both (and cancels in the colour).  The colour is divided back by the
    filtered alpha, then ``colour`` finishes it and ``alpha`` the alpha: the
    one rounding step of this route.  Where the finished alpha is 0
    (invisible) the colour is 0.  It is elementwise unless the colour is
    normalized, so it runs inside the pipeline's strips like any finish.

    >>> import numpy as np
    >>> planes = np.array([[[100.0 * 255 / 2, 255.0 / 2], [5.0, 0.2]]])  # half a pixel of colour 100, opaque
    >>> Unpremultiply(colour=Finish(maxval=255), alpha=Finish(maxval=255))(planes).tolist()
    [[[100, 128], [0, 0]]]
    """

    colour: Finish
    alpha: Finish
    scale: float = 1.0

    @property
    def dtype(self) -> np.dtype:
        return self.colour.dtype

    @property
    def elementwise(self) -> bool:
        return self.colour.elementwise

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Finish H x W x (C + 1) premultiplied sums; a new array of the same shape."""
        values = scale_offset(values, self.scale, 0)
        alpha = values[:, :, -1]
        out = np.empty(values.shape, dtype=self.dtype)
        out[:, :, -1] = finished_alpha = self.alpha(alpha)
        visible = finished_alpha > 0
        colour = np.zeros((*values.shape[:2], values.shape[2] - 1), dtype=np.float64)
        np.divide(values[:, :, :-1], alpha[:, :, np.newaxis], out=colour, where=visible[:, :, np.newaxis])
        out[:, :, :-1] = self.colour(colour)
        out[~visible, :-1] = 0
        return out

    def after(self, divisor: Number, kernel_offset: Number) -> Finisher:
        """This finish preceded by a kernel's own ``/ divisor`` (premultiplied kernels have no offset)."""
        return Finisher(divisor=divisor, kernel_offset=kernel_offset, finish=self)


#: Any finish a pipeline run can end with.
AnyFinish = Finish | Unpremultiply


def finish(
    values: np.ndarray,
    *,
    maxval: int | None,
    value_range: ValueRange = "clip",
    scale: float = 1.0,
    offset: float = 0.0,
    relu: bool = False,
) -> np.ndarray:
    """Scale, offset, ReLU, range, round half up and clip to ``0..maxval``.

    Parameters
    ----------
    values : ndarray
        Convolution results (any shape).
    maxval : int or None
        255 or 65535 for 8- and 16-bit outputs; None with ``value_range='float'``.
    value_range : {'clip', 'abs', 'normalize', 'float'}
        ``float`` returns the float64 values unrounded.
    scale, offset : float
        ``values / scale + offset`` first.
    relu : bool
        Negative values become 0 before the range step.

    Returns
    -------
    ndarray
        uint8 or uint16 (float64 for ``value_range='float'``).

    Examples
    --------
    >>> import numpy as np
    >>> finish(np.array([-32.0, 32.0]), maxval=255, scale=16, offset=1).tolist()
    [0, 3]
    >>> finish(np.array([np.nan]), maxval=255)
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: values: holds NaN or infinite values, which no level stands for
    """
    import numbers

    if maxval is not None and (isinstance(maxval, bool) or not isinstance(maxval, numbers.Integral) or maxval < 1):
        raise ParameterError(f"expected a positive whole number or None, got {maxval!r}", parameter="maxval")
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise ParameterError(f"expected numbers, got {values.dtype}", parameter="values")
    if value_range != "float" and values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ParameterError("holds NaN or infinite values, which no level stands for", parameter="values")
    return Finish(maxval=maxval, value_range=value_range, scale=scale, offset=offset, relu=relu)(values)


@dataclass(frozen=True)
class Finisher:
    """The last steps for one kernel's raw sums: ``S / divisor + kernel offset``,
    then the run's ``Finish``.

    Integer sums take a pure-integer route when it provably gives the bytes
    the float64 formula gives: an integer divisor d and no offsets or extra
    scale, where ``floor(S / d + 0.5) == (2S + d) // 2d`` for every ``|S| <
    2**51`` (a tie is exact in both, and otherwise the float error is far
    below the 1/2d gap to the next integer).

    >>> import numpy as np
    >>> f = Finish(maxval=255).after(9, 0)
    >>> sums = np.array([-5, 4, 5, 13, 2300, 2294])
    >>> f(sums).tolist() == f(sums.astype(float)).tolist() == [0, 0, 1, 1, 255, 255]
    True
    """

    divisor: Number
    kernel_offset: Number
    finish: Finish | Unpremultiply

    @property
    def dtype(self) -> np.dtype:
        return self.finish.dtype

    def integer_divisor(self) -> int | None:
        d, f = self.divisor, self.finish
        if not isinstance(f, Finish):
            return None
        plain = self.kernel_offset == 0 and f.scale == 1 and f.offset == 0 and f.srgb_levels is None
        if not plain or f.value_range not in ("clip", "abs") or float(d) != int(d) or d == 0:
            return None
        return int(d)

    def __call__(self, sums: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Finish ``sums`` (which may be changed in place), into ``out`` if given."""
        divisor = self.integer_divisor()
        if sums.dtype.kind in "iu" and divisor is not None and isinstance(self.finish, Finish) and self.finish.maxval:
            finished = self._integer(sums, divisor, self.finish.maxval)
        else:
            finished = self.finish(scale_offset(sums, self.divisor, self.kernel_offset))
        if out is None:
            return finished.astype(self.dtype, copy=False)
        np.copyto(out, finished, casting="unsafe")  # values are already within the output's range
        return out

    def _integer(self, sums: np.ndarray, divisor: int, maxval: int) -> np.ndarray:
        assert isinstance(self.finish, Finish)  # integer_divisor said so
        relu, value_range = self.finish.relu, self.finish.value_range
        if divisor == 1 and not relu and value_range == "clip" and maxval <= np.iinfo(sums.dtype).max:
            # The common case (sharpen, emboss): clip the sums where they are.
            return np.clip(sums, 0, maxval, out=sums)
        # Signed, with room for the rounding term (2S + d) and a 16-bit maxval.
        narrow = sums.dtype.itemsize <= 2 and abs(divisor) < 2**14
        wide = sums.astype(np.int32 if narrow else np.int64)
        if divisor < 0:  # S / -d == -S / d
            np.negative(wide, out=wide)
            divisor = -divisor
        if relu:
            np.maximum(wide, 0, out=wide)
        if value_range == "abs":
            np.abs(wide, out=wide)
        if divisor != 1:
            if divisor & (divisor - 1) == 0:  # a power of two: add half, shift (floors)
                np.add(wide, divisor >> 1, out=wide)
                np.right_shift(wide, divisor.bit_length() - 1, out=wide)
            else:
                np.multiply(wide, 2, out=wide)
                np.add(wide, divisor, out=wide)
                np.floor_divide(wide, 2 * divisor, out=wide)
        return np.clip(wide, 0, maxval, out=wide)
