"""The scipy backend: ``scipy.ndimage.correlate`` on float64 planes.

Any kernel size and shape; rank-1 kernels run as two ``correlate1d``
passes.  ndimage computes in float64, so integer weights on integer-valued
planes give exact sums.
"""

from __future__ import annotations

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
            column, row = factors
            full = ndimage.correlate1d(values, row, axis=1, mode="constant", cval=0.0)
            full = ndimage.correlate1d(full, column, axis=0, mode="constant", cval=0.0)
        else:
            full = ndimage.correlate(values, weights[:, :, np.newaxis], mode="constant", cval=0.0)
        # ndimage centres the window at (kh // 2, kw // 2); the valid part of
        # its zero-padded output starts there.
        valid: np.ndarray = full[kh // 2 : kh // 2 + height, kw // 2 : kw // 2 + width]
        return valid


BACKEND = ScipyBackend()
