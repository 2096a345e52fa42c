"""Pictures and what happens to them as a whole: alpha and bit depth.

A ``Picture`` is what the pipeline works on: an H x W x C array of colour
(or matrix) values plus an alpha plane kept aside.  ``transform`` is the one
picture-level step that ``apply`` and ``pool`` share: it runs their planes
function with a finish that keeps levels' meaning across bit depths, carries
alpha through their alpha function, and rescales it to the output depth.

>>> import numpy as np
>>> from imgconv.finishing import Finish
>>> p = Picture(np.full((2, 2, 1), 65535, np.uint16), np.full((2, 2), 65535, np.uint16), 'PNG', 16)
>>> out = transform(p, lambda data, finish: finish(data), lambda alpha: alpha, maxval=255, value_range='clip')
>>> out.data[0, 0, 0], out.alpha[0, 0], out.depth
(np.uint8(255), np.uint8(255), 8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgconv.choices import ValueRange
from imgconv.errors import InputError
from imgconv.finishing import Finish


@dataclass
class Picture:
    """Planes (H x W x C) with alpha kept aside, and where they came from.

    ``format`` is the source's format name (Pillow's, or NPY/CSV/TXT);
    ``depth`` is 8 or 16 for images and None for matrices and float results.
    """

    data: np.ndarray
    alpha: np.ndarray | None
    format: str
    depth: int | None

    @property
    def is_matrix(self) -> bool:
        return self.depth is None

    @property
    def maxval(self) -> int | None:
        return None if self.depth is None else (1 << self.depth) - 1


def transform(
    picture: Picture,
    planes: Callable[[np.ndarray, Finish], np.ndarray],
    alpha: Callable[[np.ndarray], np.ndarray],
    *,
    maxval: int | None,
    value_range: ValueRange,
    scale: float = 1.0,
    offset: float = 0.0,
    relu: bool = False,
) -> Picture:
    """A new Picture: ``planes(data, finish)`` and ``alpha(alpha)``, at ``maxval``'s depth.

    ``finish`` folds the change of depth into the scale, so an 8-bit level
    and the 16-bit level 257 times it mean the same; alpha (opacity) is
    rescaled the same way and rounded half up.
    """
    finish = Finish.make(
        maxval=maxval, value_range=value_range, scale=scale, offset=offset, relu=relu, source_max=picture.maxval
    )
    data = planes(picture.data, finish)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InputError("the result overflows float64 (values beyond 1.8e308); scale the input or the kernel down")
    carried = None
    if picture.alpha is not None:
        carried = alpha(picture.alpha).astype(np.float64)
        if value_range != "float" and maxval is not None:
            if picture.maxval is not None and picture.maxval != maxval:
                carried = carried * (maxval / picture.maxval)
            carried = Finish(maxval=maxval)(carried)
    depth = None if value_range == "float" or maxval is None else maxval.bit_length()
    return Picture(data, carried, picture.format, depth)
