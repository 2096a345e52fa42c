"""The scipy backend: ``scipy.ndimage.correlate`` on float64 planes.

Any kernel size and shape.  ndimage computes in float64, so integer weights
on integer-valued planes give exact sums.
"""

from __future__ import annotations

import numpy as np

from imgconv.backends import Request


class ScipyBackend:
    name = "scipy"
    summary = "scipy.ndimage.correlate, float64"
    limits = "any kernel size and shape"

    def unavailable(self) -> str | None:
        try:
            import scipy.ndimage  # noqa: F401
        except ImportError as exc:  # pragma: no cover - scipy is a dependency
            return f"scipy is not installed ({exc})"
        return None

    def refuse(self, request: Request) -> str | None:
        return None

    def correlate_valid(self, planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        kh, kw = weights.shape
        height, width = planes.shape[0] - kh + 1, planes.shape[1] - kw + 1
        # ndimage centres the window at (kh // 2, kw // 2); the valid part of
        # its zero-padded output starts there.
        full = ndimage.correlate(
            np.asarray(planes, dtype=np.float64), weights[:, :, np.newaxis], mode="constant", cval=0.0
        )
        return full[kh // 2 : kh // 2 + height, kw // 2 : kw // 2 + width]


BACKEND = ScipyBackend()
