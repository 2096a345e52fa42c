"""The numpy backend: stride tricks and shifted-slice accumulation, in row strips.

Any kernel size and shape.  ``sliding_window_view`` gives every kernel-sized
window of a strip of rows without copying; the sum over a window is built
one kernel element at a time (``acc += window[..., i, j] * w[i, j]``), in
row-major kernel order, as ``scipy.ndimage.correlate`` adds its products.

Integer weights on integer planes (8- and 16-bit images) are summed in the
narrowest integer type that cannot overflow (int16 for a 3x3 sharpen on
8-bit pixels, int32 or int64 otherwise) and returned as integers: the exact
sums, which is also what float64 reaches below 2**53, so every backend
agrees.  Rank-1 integer kernels (Gaussians, boxes, Sobel) are summed as a
row pass then a column pass, which is exact too and needs kh + kw taps
instead of kh * kw.  Working strip by strip keeps temporaries to a few MiB.

>>> import numpy as np
>>> from imgconv.kernels import parse_spec
>>> planes = np.arange(12.0).reshape(3, 4, 1)
>>> BACKEND.correlate_valid(planes, parse_spec('1,-1'))[:, :, 0].tolist()
[[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]
>>> BACKEND.correlate_valid(np.full((3, 3, 1), 200, np.uint8), parse_spec('box:3')).tolist()
[[[1800]]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgconv.backends import Request

if TYPE_CHECKING:
    from imgconv.kernels import Kernel

#: Bytes of output a strip covers; each strip's temporaries are a small
#: multiple of this, so peak memory stays near input + output planes.
STRIP_BYTES = 1 << 21

#: Integer sums at or beyond this are not exact in float64, so the integer
#: path (which would be exact) would disagree with the float engines.
_FLOAT_EXACT = 2**53

_INT_TYPES = (np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64))
_UINT_TYPES = (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64))


class NumpyBackend:
    name = "numpy"
    summary = "numpy sliding_window_view, shifted-slice sums in row strips (exact integer sums when it can)"
    limits = "any kernel size and shape"

    def unavailable(self) -> str | None:
        return None  # numpy is a hard dependency of imgconv

    def correlate_valid(self, planes: np.ndarray, kernel: Kernel) -> np.ndarray:
        weights = kernel.integer_form()[0]
        if planes.dtype.kind in "iu" and kernel.integer_weights:
            plan = _plan(kernel, _dtype_bound(planes.dtype), planes.dtype.kind == "u")
            if plan is not None:
                return plan.run(planes)
        return _correlate_float(np.asarray(planes, dtype=np.float64), weights)

    def refuse(self, request: Request) -> str | None:
        return None


#: (id(kernel), bound, unsigned) -> (kernel, plan): the kernel is kept so its id stays its own.
_PLANS: dict[tuple[int, int, bool], tuple[Kernel, IntegerPlan | None]] = {}


def _plan(kernel: Kernel, high: int, unsigned_input: bool) -> IntegerPlan | None:
    """The integer plan for a kernel and a pixel type, made once, not per strip.

    Keyed by identity: hashing a kernel hashes all its values, which for a
    large kernel would cost more than the strip.
    """
    key = (id(kernel), high, unsigned_input)
    found = _PLANS.get(key)
    if found is None or found[0] is not kernel:
        if len(_PLANS) >= 64:
            _PLANS.clear()
        found = _PLANS[key] = (kernel, IntegerPlan.make(kernel, high=high, unsigned_input=unsigned_input))
    return found[1]


def _dtype_bound(dtype: np.dtype) -> int:
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max))


def _narrowest(bound: int, *, signed: bool = True) -> np.dtype | None:
    """The first integer type holding every value up to ``bound`` in size.

    Sums of non-negative weights over unsigned pixels never go below 0, so
    they may use unsigned types: a 5x5 Gaussian over 8-bit pixels fits uint16.
    """
    for dtype in _INT_TYPES if signed else _UINT_TYPES:
        if bound <= np.iinfo(dtype).max:
            return dtype
    return None


class IntegerPlan:
    """Exact integer correlation: either one 2-D pass or a row then a column pass."""

    def __init__(self, shape: tuple[int, int], passes: list[tuple[np.ndarray, np.dtype]]) -> None:
        self.shape = shape
        self.passes = passes

    @classmethod
    def make(cls, kernel: Kernel, *, high: int, unsigned_input: bool = False) -> IntegerPlan | None:
        weights = kernel.integer_form()[0].astype(np.int64)
        factors = kernel.separable_weights()
        if factors is not None:
            column, row = (f.astype(np.int64) for f in factors)
            if unsigned_input and row.min() >= 0 and column.min() >= 0:
                signed = False
            else:
                signed = True
            middle = high * int(np.abs(row).sum())
            final = middle * int(np.abs(column).sum())
            first, second = _narrowest(middle, signed=signed), _narrowest(final, signed=signed)
            if first is not None and second is not None and final < _FLOAT_EXACT:
                return cls(kernel.shape, [(row[np.newaxis, :], first), (column[:, np.newaxis], second)])
        final = high * int(np.abs(weights).sum())
        dtype = _narrowest(final, signed=not (unsigned_input and weights.min() >= 0))
        if dtype is None or final >= _FLOAT_EXACT:
            return None
        return cls(kernel.shape, [(weights, dtype)])

    def run(self, planes: np.ndarray) -> np.ndarray:
        kh, kw = self.shape
        height, width, channels = planes.shape
        out_dtype = self.passes[-1][1]
        out = np.empty((height - kh + 1, width - kw + 1, channels), dtype=out_dtype)
        rows = max(1, STRIP_BYTES // max(1, out.shape[1] * channels * out_dtype.itemsize))
        for top in range(0, out.shape[0], rows):
            values = planes[top : top + rows + kh - 1]
            for weights, dtype in self.passes:
                values = _integer_taps(values, weights, dtype)
            out[top : top + rows] = values
        return out


def _integer_taps(strip: np.ndarray, weights: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Valid correlation of ``strip`` with integer ``weights``, summed in ``dtype``.

    Weights of +1 and -1 are adds and subtracts; zeros are skipped.
    """
    kh, kw = weights.shape
    height, width = strip.shape[0] - kh + 1, strip.shape[1] - kw + 1
    acc: np.ndarray | None = None
    product = None
    for i in range(kh):
        for j in range(kw):
            w = int(weights[i, j])
            if w == 0:
                continue
            window = strip[i : i + height, j : j + width]
            if acc is None:
                acc = np.multiply(window, dtype.type(w), dtype=dtype)
            elif w == 1:
                np.add(acc, window, out=acc, dtype=dtype)
            elif w == -1:
                np.subtract(acc, window, out=acc, dtype=dtype)
            else:
                if product is None:
                    product = np.empty(acc.shape, dtype=dtype)
                np.multiply(window, dtype.type(w), out=product, dtype=dtype)
                np.add(acc, product, out=acc)
    if acc is None:
        acc = np.zeros((height, width, strip.shape[2]), dtype=dtype)
    return acc


def _correlate_float(planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Float64 sums in scipy's order; integer-valued strips summed exactly."""
    kh, kw = weights.shape
    height, width, channels = planes.shape
    out = np.empty((height - kh + 1, width - kw + 1, channels), dtype=np.float64)
    taps = [(i, j, weights[i, j]) for i in range(kh) for j in range(kw) if weights[i, j] != 0]
    integer = all(float(w).is_integer() for _, _, w in taps)
    rows = max(1, STRIP_BYTES // max(1, out.shape[1] * channels * 8))
    for top in range(0, out.shape[0], rows):
        strip = planes[top : top + rows + kh - 1]
        target = out[top : top + rows]
        dtype = _strip_integer_dtype(strip, taps) if integer else None
        if dtype is None:
            _accumulate(strip, taps, (kh, kw), target)
        else:
            acc = np.zeros(target.shape, dtype=dtype)
            _accumulate(strip.astype(dtype), [(i, j, dtype.type(w)) for i, j, w in taps], (kh, kw), acc)
            target[...] = acc
    return out


def _accumulate(strip: np.ndarray, taps: list, shape: tuple[int, int], acc: np.ndarray) -> None:
    """``acc = sum of window[..., i, j] * w`` over the taps, in the taps' order."""
    windows = sliding_window_view(strip, shape, axis=(0, 1))  # rows x cols x C x kh x kw, no copy
    product = np.empty_like(acc)
    acc[...] = 0
    for i, j, w in taps:
        np.multiply(windows[:, :, :, i, j], w, out=product)
        np.add(acc, product, out=acc)


def _strip_integer_dtype(strip: np.ndarray, taps: list) -> np.dtype | None:
    """int32 or int64 when a float strip holds integers whose sums stay exact."""
    if not strip.size:
        return None
    high = float(np.abs(strip).max())
    bound = high * sum(abs(w) for _, _, w in taps)
    if bound >= _FLOAT_EXACT or not np.array_equal(strip, np.floor(strip)):
        return None
    return np.dtype(np.int32) if bound < 2**31 else np.dtype(np.int64)


BACKEND = NumpyBackend()
