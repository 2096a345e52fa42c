"""The numpy backend: stride tricks and shifted-slice accumulation, in row strips.

Any kernel size and shape.  ``sliding_window_view`` gives every kernel-sized
window of a strip of rows without copying; the sum over a window is built
one kernel element at a time (``acc += window[..., i, j] * w[i, j]``), in
row-major kernel order, as ``scipy.ndimage.correlate`` adds its products.

Where a strip holds integers and the weights are integers, the strip is
summed in int32 (or int64 when int32 could overflow): the exact integer
sum is what float64 also reaches as long as it stays below 2**53, so the
result is identical and the integer adds are faster.  Working strip by strip
keeps the temporaries to a few MiB whatever the image and kernel size.

>>> import numpy as np
>>> planes = np.arange(12.0).reshape(3, 4, 1)
>>> BACKEND.correlate_valid(planes, np.array([[1.0, -1.0]]))[:, :, 0].tolist()
[[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]]
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgconv.backends import Request

#: Bytes of output a strip covers; each strip's temporaries are a small
#: multiple of this, so peak memory stays near input + output planes.
STRIP_BYTES = 1 << 21

#: Integer sums at or beyond this are not exact in float64, so the integer
#: path (which would be exact) would disagree with the float engines.
_FLOAT_EXACT = 2**53


class NumpyBackend:
    name = "numpy"
    summary = "numpy sliding_window_view, shifted-slice sums in row strips (int32/int64 when exact)"
    limits = "any kernel size and shape"

    def unavailable(self) -> str | None:
        return None  # numpy is a hard dependency of imgconv

    def refuse(self, request: Request) -> str | None:
        return None

    def correlate_valid(self, planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        planes = np.asarray(planes, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        kh, kw = weights.shape
        height, width, channels = planes.shape
        out = np.empty((height - kh + 1, width - kw + 1, channels), dtype=np.float64)
        taps = [(i, j, weights[i, j]) for i in range(kh) for j in range(kw) if weights[i, j] != 0]
        integer_taps = _integer_taps(taps)
        rows = max(1, STRIP_BYTES // max(1, out.shape[1] * channels * 8))
        for top in range(0, out.shape[0], rows):
            strip = planes[top : top + rows + kh - 1]
            target = out[top : top + rows]
            dtype = _integer_dtype(strip, integer_taps)
            if dtype is None:
                _accumulate(strip, taps, (kh, kw), target)
            else:
                acc = np.zeros(target.shape, dtype=dtype)
                _accumulate(strip.astype(dtype), [(i, j, dtype.type(w)) for i, j, w in integer_taps], (kh, kw), acc)
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


def _integer_taps(taps: list) -> list | None:
    """The taps as Python ints when every weight is a whole number, else None."""
    if not all(float(w).is_integer() for _, _, w in taps):
        return None
    return [(i, j, int(w)) for i, j, w in taps]


def _integer_dtype(strip: np.ndarray, integer_taps: list | None) -> np.dtype | None:
    """int32 or int64 when the strip's sums are exact integers in it, else None (float64)."""
    if integer_taps is None or not strip.size:
        return None
    high = float(np.abs(strip).max())
    bound = high * sum(abs(w) for _, _, w in integer_taps)
    if bound >= _FLOAT_EXACT or not np.array_equal(strip, np.floor(strip)):
        return None
    return np.dtype(np.int32) if bound < 2**31 else np.dtype(np.int64)


BACKEND = NumpyBackend()
