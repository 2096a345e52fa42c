"""The scipy backend: ``scipy.ndimage.correlate`` on float64 planes.

Any kernel size and shape; rank-1 kernels run as two ``correlate1d``
passes.  ndimage computes in float64, so integer weights on integer-valued
planes give exact sums.

ndimage skips every weight whose magnitude is at most DBL_EPSILON (2.2e-16)
and treats weights that differ by less than that as equal, which turns a
kernel of tiny weights (``1e-17``, then ``--scale 1e-17``: an identity)
into zeros.  So real-valued weights are first multiplied by the power of
two that brings the largest to between 1 and 2, and the sums divided by it
again: both steps are exact in binary floating point, so the result is what
ndimage would give if it kept every weight.

>>> import numpy as np
>>> from imgconv.kernels import Kernel
>>> bool(BACKEND.correlate_valid(np.full((1, 1, 1), 200.0), Kernel("tiny", ((1e-17,),)))[0, 0, 0] == 200 * 1e-17)
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from imgconv.backends import Request

if TYPE_CHECKING:
    from imgconv.kernels import Kernel


class ScipyBackend:
    name = "scipy"
    summary = "scipy.ndimage.correlate (correlate1d twice for rank-1 kernels), float64"
    limits = "any kernel size and shape"

    def unavailable(self) -> str | None:
        import importlib.util

        # Looking scipy up is enough: importing scipy.ndimage costs half a
        # second, which only a run that uses this backend should pay.
        if importlib.util.find_spec("scipy") is None:  # pragma: no cover - scipy is a dependency
            return "scipy is not installed"
        return None

    def refuse(self, request: Request) -> str | None:
        return None

    def correlate_valid(self, planes: np.ndarray, kernel: Kernel) -> np.ndarray:
        from scipy import ndimage

        weights = kernel.integer_form()[0]
        kh, kw = weights.shape
        height, width = planes.shape[0] - kh + 1, planes.shape[1] - kw + 1
        values = np.asarray(planes, dtype=np.float64)
        factors = kernel.separable_weights()
        if factors is not None:
            # A row pass then a column pass: kh + kw products instead of kh * kw.
            # Exact for integer factors; for real ones the sums may differ from
            # the 2-D order in the last bit (the documented tolerance).
            (column, up_column), (row, up_row) = (_normalised(f) for f in factors)
            full = ndimage.correlate1d(values, row, axis=1, mode="constant", cval=0.0)
            full = ndimage.correlate1d(full, column, axis=0, mode="constant", cval=0.0)
            up = up_column + up_row
        elif _offsets_bytes(weights.shape, values.shape) > OFFSETS_BYTES:
            scaled, up = _normalised(weights)
            # Kernel row by kernel row, each a 1-D pass over the rows it meets:
            # the same products, in a memory proportional to the strip.
            sums = np.zeros((height, width, values.shape[2]))
            for u in range(kh):
                if scaled[u].any():
                    line = ndimage.correlate1d(values[u : u + height], scaled[u], axis=1, mode="constant", cval=0.0)
                    sums += line[:, kw // 2 : kw // 2 + width]
            return np.ldexp(sums, -up) if up else sums
        else:
            scaled, up = _normalised(weights)
            full = ndimage.correlate(values, scaled[:, :, np.newaxis], mode="constant", cval=0.0)
        # ndimage centres the window at (kh // 2, kw // 2); the valid part of
        # its zero-padded output starts there.
        valid: np.ndarray = full[kh // 2 : kh // 2 + height, kw // 2 : kw // 2 + width]
        if up:
            valid = np.ldexp(valid, -up)  # exact: undoes the scaling of the weights
        return valid


#: ndimage.correlate keeps a table of kh * kw offsets for each of min(H, kh) *
#: min(W, kw) border positions: 34 GB for a 256 x 256 kernel.  Past this
#: size the kernel is applied one row at a time instead.
OFFSETS_BYTES = 1 << 26


def _offsets_bytes(kernel: tuple[int, ...], planes: tuple[int, ...]) -> int:
    kh, kw = kernel[:2]
    return kh * kw * min(planes[0], kh) * min(planes[1], kw) * 8


def _normalised(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """``weights * 2**up`` with the largest magnitude in [1, 2), and ``up``.

    Integer weights (the exact route) are left as they are: none of them is
    small, and their sums must stay the exact integers every backend gives.
    """
    largest = float(np.abs(weights).max()) if weights.size else 0.0
    if largest == 0.0 or np.array_equal(weights, np.round(weights)):
        return weights, 0
    up = 1 - math.frexp(largest)[1]
    return np.ldexp(weights, up), up


BACKEND = ScipyBackend()
