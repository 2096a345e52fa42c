"""Pooling: the max, mean or min of each window, with Keras's shapes.

The meaning is that of Keras ``MaxPooling2D`` / ``AveragePooling2D`` and
TensorFlow's ``VALID`` / ``SAME`` padding, so a CNN's pooling layer and
imgconv give the same array:

* ``valid``: only windows that fit inside the image; ``floor((n - size) /
  stride) + 1`` outputs per axis (and none when the window is larger than
  the image, which is refused);
* ``same``: ``ceil(n / stride)`` outputs per axis; the windows are laid out
  as if the image were padded by ``pad_total = max((out - 1) * stride + size
  - n, 0)`` cells, ``pad_total // 2`` before and the rest after, and the
  padded cells are *ignored*: a max over negative values stays negative and a
  mean divides by the number of cells inside the image.

The 4 x 4 to 2 x 2 max pooling of the blog post:

>>> import numpy as np
>>> a = np.array([[1, 3, 2, 1], [4, 6, 5, 0], [3, 1, 1, 2], [0, 2, 7, 4]])
>>> pool(a, size=2).tolist()
[[6, 5], [3, 7]]
>>> pool(a, size=2, op='mean').tolist()
[[3.5, 2.0], [1.5, 3.5]]
>>> pool(a, size=3, stride=2, padding='same').tolist()
[[6, 5], [7, 7]]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgconv.choices import PADDINGS, POOL_OPS, RANGES, Padding, PoolOp, ValueRange, check
from imgconv.errors import InputError, ParameterError
from imgconv.limits import quote, whole_number

if TYPE_CHECKING:
    from imgconv.rows import Rows

_WINDOW = re.compile(r"\s*([0-9]+)\s*(?:[xX]\s*([0-9]+)\s*)?")


def parse_window(text: str, *, parameter: str = "size") -> tuple[int, int]:
    """``'2'`` -> ``(2, 2)``, ``'2x3'`` -> ``(2, 3)`` (rows x columns).

    >>> parse_window('2'), parse_window('2x3')
    ((2, 2), (2, 3))
    >>> parse_window('2x')
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: size: '2x' is not a window; give N or ROWSxCOLS with positive integers (up to 18 digits), e.g. 2 or 2x3
    """
    match = _WINDOW.fullmatch(text)
    rows = whole_number(match.group(1)) if match else None
    cols = whole_number(match.group(2) or match.group(1)) if match else None
    if not rows or not cols:
        raise ParameterError(
            f"{quote(text)} is not a window; give N or ROWSxCOLS with positive integers (up to 18 digits), e.g. 2 or 2x3",
            parameter=parameter,
        )
    return rows, cols


def _pair(value: object, parameter: str) -> tuple[int, int]:
    """``size`` or ``stride`` as a (rows, cols) pair of positive integers:
    N or a pair; anything else (text, floats, bools, three numbers) is refused.

    >>> _pair(2, 'size'), _pair((2, 3), 'size')
    ((2, 2), (2, 3))
    >>> _pair('2x2', 'size')
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: size: expected N or (rows, cols) with positive integers, got '2x2'
    """

    def whole(item: object) -> int | None:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            return None
        return int(item)

    single = whole(value)
    if single is not None:
        rows, cols = single, single
    else:
        items = list(value) if isinstance(value, (tuple, list)) else []
        pair = [whole(item) for item in items]
        if len(pair) != 2 or pair[0] is None or pair[1] is None:
            raise ParameterError(
                f"expected N or (rows, cols) with positive integers, got {quote(str(value))}", parameter=parameter
            )
        rows, cols = pair[0], pair[1]
    if rows < 1 or cols < 1:
        raise ParameterError(f"must be positive, got {rows}x{cols}", parameter=parameter)
    return rows, cols


@dataclass(frozen=True)
class PoolOptions:
    """One pooling run, independent of files (picklable, like FilterOptions).

    ``size`` and ``stride`` are N or (rows, cols); ``stride`` None means the
    window size, as in Keras.  Both are stored as (rows, cols) pairs.
    """

    size: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: Padding = "valid"
    op: PoolOp = "max"
    value_range: ValueRange | None = None  # None: clip for images, float for matrices

    def __post_init__(self) -> None:
        size = _pair(self.size, "size")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", size if self.stride is None else _pair(self.stride, "stride"))
        check("padding", self.padding, PADDINGS)
        check("op", self.op, POOL_OPS)
        if self.value_range is not None:
            check("value_range", self.value_range, RANGES)

    @property
    def window(self) -> tuple[int, int]:
        return self.size  # type: ignore[return-value]  # a pair after __post_init__

    @property
    def steps(self) -> tuple[int, int]:
        return self.stride  # type: ignore[return-value]  # a pair after __post_init__

    @property
    def label(self) -> str:
        """What ``{kernel}`` reads in output templates: ``maxpool2x2``."""
        return f"{self.op}pool{self.window[0]}x{self.window[1]}"


def output_length(n: int, *, size: int, stride: int, padding: str) -> int:
    """Outputs along an axis of ``n`` cells, as Keras computes them.

    >>> output_length(5, size=2, stride=2, padding='valid'), output_length(5, size=2, stride=2, padding='same')
    (2, 3)
    >>> output_length(1, size=2, stride=1, padding='valid')
    0
    """
    if padding == "same":
        return -(-n // stride)
    return max((n - size) // stride + 1, 0)


def pad_before(n: int, *, size: int, stride: int, padding: str) -> int:
    """Cells of (ignored) padding before the first window: TensorFlow's rule.

    >>> pad_before(4, size=3, stride=1, padding='same'), pad_before(5, size=4, stride=1, padding='same')
    (1, 1)
    """
    if padding != "same":
        return 0
    out = output_length(n, size=size, stride=stride, padding=padding)
    return max((out - 1) * stride + size - n, 0) // 2


def pool_shape(
    shape: tuple[int, int], *, size: tuple[int, int], stride: tuple[int, int], padding: str
) -> tuple[int, int]:
    """The H x W of the pooled result.

    >>> pool_shape((32, 32), size=(2, 2), stride=(2, 2), padding='valid')
    (16, 16)
    >>> pool_shape((7, 5), size=(3, 2), stride=(2, 3), padding='same')
    (4, 2)
    """
    rows = output_length(shape[0], size=size[0], stride=stride[0], padding=padding)
    cols = output_length(shape[1], size=size[1], stride=stride[1], padding=padding)
    return rows, cols


def check_pool_fits(
    shape: tuple[int, int],
    *,
    size: tuple[int, int],
    padding: str,
    subject: str | None = None,
    remedy: str | None = None,
) -> None:
    """Refuse a ``valid`` pooling whose window is larger than the image: the
    file ``subject``'s failure, or without one the caller's ``padding``.

    >>> check_pool_fits((2, 2), size=(3, 3), padding='valid')
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: padding: the image (2x2) is smaller than the pooling window (3x3), so 'valid' leaves nothing; use padding='same'
    """
    if padding == "valid" and (size[0] > shape[0] or size[1] > shape[1]):
        smaller = f"the image ({shape[0]}x{shape[1]}) is smaller than the pooling window ({size[0]}x{size[1]})"
        if subject is None:
            raise ParameterError(f"{smaller}, so 'valid' leaves nothing", parameter="padding", suggestion="same")
        if remedy is not None:  # a caller without --padding (features) names its own way out
            raise InputError(f"{smaller}; {remedy}", subject=subject)
        raise InputError(f"{smaller}, so --padding valid leaves nothing; use --padding same", subject=subject)


def pool(
    image: np.ndarray,
    *,
    size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: Padding = "valid",
    op: PoolOp = "max",
) -> np.ndarray:
    """Pool ``image`` window by window, each channel on its own.

    Parameters
    ----------
    image : ndarray
        H x W or H x W x C, not empty, of bools, integers or floats (any
        byte order).
    size : int or (int, int)
        The window, N or (rows, cols), positive integers.
    stride : int or (int, int), optional
        The step between windows; the window size by default, as in Keras.
    padding : {'valid', 'same'}
        Keras's padding: ``same`` ignores the cells outside the image.
    op : {'max', 'mean', 'min'}
        What each window gives.

    Returns
    -------
    ndarray
        ``max`` and ``min`` keep the input's dtype (they pick values; bool
        gives any / all of each window; NaN propagates as in
        ``numpy.maximum``); ``mean`` is float64, unrounded.  Always in
        native byte order (``>u2`` in, uint16 out).

    Raises
    ------
    ValueError
        ``imgconv.errors.ParameterError`` naming the bad parameter: a
        ``size`` or ``stride`` that is not N or (rows, cols) of positive
        integers, an unknown ``padding`` or ``op``, an ``image`` that is not
        a non-empty H x W (x C) array of real numbers, or a window larger
        than the image with ``padding='valid'`` (names ``padding``).

    Examples
    --------
    >>> import numpy as np
    >>> pool(np.array([[-5.0, -1.0, -3.0]]), size=2, padding='same').tolist()
    [[-1.0, -3.0]]
    >>> pool(np.array([[1, 2, 3, 4, 5]]), size=(1, 2), padding='same', op='mean').tolist()
    [[1.5, 3.5, 5.0]]
    """
    from imgconv.filtering import image_array

    options = PoolOptions(size=size, stride=stride, padding=padding, op=op)
    return pool_planes(image_array(image), options)


def pool_planes(
    planes: np.ndarray, options: PoolOptions, *, subject: str | None = None, checked: bool = False
) -> np.ndarray:
    """``pool`` with the options made once; the image's shape is checked
    here unless ``checked`` says it was (an alpha plane beside its colour)."""
    if not checked:
        check_pool_fits(planes.shape[:2], size=options.window, padding=options.padding, subject=subject)
    return pool_band(planes, options, height=planes.shape[0], first_row=0, outputs=(0, None))


def band_rows(height: int, options: PoolOptions, outputs: tuple[int, int]) -> tuple[int, int]:
    """The input rows (start, stop) that output rows ``outputs`` pool over:
    a band of windows aligned to its own rows, so bands of output rows can be
    pooled one after the other from bands of input.

    >>> band_rows(10, PoolOptions(size=3, stride=2, padding='same'), (1, 3))
    (2, 7)
    """
    size, stride, padding = options.window[0], options.steps[0], options.padding
    before = pad_before(height, size=size, stride=stride, padding=padding)
    start, stop = outputs
    return max(0, start * stride - before), min(height, (stop - 1) * stride - before + size)


def pool_band(
    planes: np.ndarray, options: PoolOptions, *, height: int, first_row: int, outputs: tuple[int, int | None]
) -> np.ndarray:
    """Output rows ``outputs`` of pooling an image ``height`` rows tall, from
    ``planes``, its rows from ``first_row`` on (at least ``band_rows``'s).

    Each output gets the same cells folded in the same order however the
    rows are banded, so a band equals those rows of the whole result.
    """
    size, stride, padding = options.window, options.steps, options.padding
    # A window's max (min, sum) is the max over its rows of the max over its
    # columns, so each axis is reduced on its own: O(size) work per output
    # instead of O(rows * cols), and the only temporary is H x out_W.
    ufunc = {"max": np.maximum, "min": np.minimum, "mean": np.add}[options.op]
    start, stop = outputs
    stop = output_length(height, size=size[0], stride=stride[0], padding=padding) if stop is None else stop
    result = _reduce_axis(planes, 1, ufunc, size=size[1], stride=stride[1], padding=padding)
    result = _reduce_axis(
        result,
        0,
        ufunc,
        size=size[0],
        stride=stride[0],
        padding=padding,
        n=height,
        offset=first_row,
        outputs=(start, stop),
    )
    if options.op == "mean":
        rows = _cells_inside(height, size[0], stride[0], padding)[start:stop]
        counts = np.outer(rows, _cells_inside(planes.shape[1], size[1], stride[1], padding))
        result = result / (counts if planes.ndim == 2 else counts[:, :, np.newaxis])
    return result


def _reduce_axis(
    values: np.ndarray,
    axis: int,
    ufunc: np.ufunc,
    *,
    size: int,
    stride: int,
    padding: str,
    n: int | None = None,
    offset: int = 0,
    outputs: tuple[int, int] | None = None,
) -> np.ndarray:
    """Reduce each window along ``axis`` with ``ufunc``, ignoring padded cells.

    Offset ``j`` of every window is one strided view of ``values``; the
    result is ``ufunc`` folded over those views, so the Python loop runs over
    the window's cells (at most the image's ``n`` plus the span of the
    outputs, whatever the window's size), never over pixels, and nothing is
    padded: an output whose cell ``j`` lies outside the image skips that view.
    ``values`` may be a band: cells ``offset`` on of an axis ``n`` long,
    giving the outputs ``outputs`` (start, stop).
    """
    n = values.shape[axis] if n is None else n
    before = pad_before(n, size=size, stride=stride, padding=padding)
    low, high = (0, output_length(n, size=size, stride=stride, padding=padding)) if outputs is None else outputs
    shape = list(values.shape)
    shape[axis] = high - low
    result = np.full(shape, _identity(ufunc, values.dtype), dtype=np.float64 if ufunc is np.add else values.dtype)

    def along(index: slice) -> tuple[slice, ...]:
        return (slice(None),) * axis + (index,)

    # Only offsets that reach the image for some output: a window far larger
    # than the image (--size 100000000 --padding same) costs what the image
    # does, not what the window would.
    for j in range(max(0, before - (high - 1) * stride), min(size, before + n - low * stride)):
        # Output i reads cell i * stride - before + j; keep the i inside the image.
        first = max(low, -(-(before - j) // stride))
        last = min(high - 1, (n - 1 + before - j) // stride)
        if first > last:
            continue
        cells = slice(first * stride - before + j - offset, last * stride - before + j - offset + 1, stride)
        target = result[along(slice(first - low, last - low + 1))]
        ufunc(target, values[along(cells)], out=target)
    return result


class PoolRows:
    """The pooled rows of a row source, band by band (windows aligned to the bands)."""

    def __init__(self, source: Rows, options: PoolOptions) -> None:
        self.source, self.options = source, options
        height, width, channels = source.shape
        out = pool_shape((height, width), size=options.window, stride=options.steps, padding=options.padding)
        self._shape = (*out, channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def read(self, start: int, stop: int) -> np.ndarray:
        height = self.source.shape[0]
        first, last = band_rows(height, self.options, (start, stop))
        block = self.source.read(first, last)
        return pool_band(block, self.options, height=height, first_row=first, outputs=(start, stop))


def _identity(ufunc: np.ufunc, dtype: np.dtype) -> float | int:
    """The start value of a fold; every window has a cell inside, so it never survives."""
    if ufunc is np.add:
        return 0.0
    if dtype.kind == "b":
        return ufunc is np.minimum  # max: any cell True; min: every cell True
    if dtype.kind == "f":
        return -np.inf if ufunc is np.maximum else np.inf
    info = np.iinfo(dtype)
    return info.min if ufunc is np.maximum else info.max


def _cells_inside(n: int, size: int, stride: int, padding: str) -> np.ndarray:
    """How many cells of each window lie inside the image (the mean's divisor)."""
    out = output_length(n, size=size, stride=stride, padding=padding)
    starts = np.arange(out) * stride - pad_before(n, size=size, stride=stride, padding=padding)
    return np.minimum(starts + size, n) - np.maximum(starts, 0)
