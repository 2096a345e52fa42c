"""The scipy backend: ``scipy.ndimage.correlate`` on float64 planes.

Any kernel size and shape; rank-1 kernels run as two ``correlate1d``
passes.  ndimage computes in float64, so integer weights on integer-valued
planes give exact sums.
"""

from __future__ import annotations

import numpy as np

from imgconv.backends import Request


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

    def correlate_valid(self, planes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        kh, kw = weights.shape
        height, width = planes.shape[0] - kh + 1, planes.shape[1] - kw + 1
        values = np.asarray(planes, dtype=np.float64)
        factors = rank_one(weights)
        if factors is not None and kh > 1 and kw > 1:
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
        return full[kh // 2 : kh // 2 + height, kw // 2 : kw // 2 + width]


def rank_one(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A column and a row whose outer product is ``weights`` (integers stay
    integers when the weights are), or None.

    >>> [v.tolist() for v in rank_one(np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0]]))]
    [[1.0, 2.0], [1.0, 2.0, 1.0]]
    """
    r, c = np.unravel_index(int(np.argmax(np.abs(weights))), weights.shape)
    pivot = weights[r, c]
    if pivot == 0:
        return None
    row = weights[r] / pivot
    column = weights[:, c].copy()
    if np.array_equal(weights, np.round(weights)):
        # Prefer integer factors: scale the row to its smallest integer form.
        smallest = np.min(np.abs(row[row != 0]))
        if np.array_equal(row / smallest, np.round(row / smallest)):
            row, column = row / smallest, column * smallest
    if not np.allclose(np.outer(column, row), weights, rtol=0, atol=1e-12 * abs(pivot)):
        return None
    if np.array_equal(weights, np.round(weights)) and not np.array_equal(np.outer(column, row), weights):
        return None
    return column, row


BACKEND = ScipyBackend()
