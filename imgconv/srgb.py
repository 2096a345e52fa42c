"""The sRGB transfer function (IEC 61966-2-1), exactly, in float64.

Image levels are not proportional to light: level 128 of 255 is about 22%
of white's light, not 50%.  A blur averages levels, so in gamma space a
black/white edge comes out darker and narrower than a lens would make it,
and fine bright detail loses light.  ``--linear`` decodes levels to linear
light with this function, filters, and encodes the result back just before
the one rounding step (``imgconv.finishing``).

The function is the standard's piecewise one (a straight segment near
black, then a 2.4 power), not the 2.2 power approximation.  ``encode``
extends it to negative values by symmetry, so float results of edge
kernels keep their sign.

>>> import numpy as np
>>> decode(np.array([0.0, 0.04045, 0.5, 1.0])).round(6).tolist()
[0.0, 0.003131, 0.214041, 1.0]
>>> encode(np.array([0.0, 0.214041, 1.0, -0.214041])).round(4).tolist()
[0.0, 0.5, 1.0, -0.5]
>>> bool(np.allclose(encode(decode(np.linspace(0, 1, 256))), np.linspace(0, 1, 256), atol=1e-12))
True
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Where the straight segment meets the power curve, in encoded and linear units.
_ENCODED_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308


def decode(encoded: np.ndarray) -> np.ndarray:
    """Encoded values (0..1) to linear light (0..1), float64."""
    x = np.asarray(encoded, dtype=np.float64)
    return np.where(x <= _ENCODED_KNEE, x / 12.92, ((np.maximum(x, _ENCODED_KNEE) + 0.055) / 1.055) ** 2.4)


def encode(linear: np.ndarray) -> np.ndarray:
    """Linear light to encoded values, float64; negative values by symmetry."""
    x = np.asarray(linear, dtype=np.float64)
    magnitude = np.abs(x)
    curve = 1.055 * np.maximum(magnitude, _LINEAR_KNEE) ** (1 / 2.4) - 0.055
    return np.copysign(np.where(magnitude <= _LINEAR_KNEE, magnitude * 12.92, curve), x)


def decode_levels(levels: np.ndarray, maxval: int) -> np.ndarray:
    """Levels 0..maxval (8- or 16-bit) to linear light 0..1, float64.

    Integer levels are looked up in a table of ``decode`` at every level:
    the same numbers, without a power per pixel.

    >>> decode_levels(np.array([0, 255], np.uint8), 255).tolist()
    [0.0, 1.0]
    """
    levels = np.asarray(levels)
    if levels.dtype.kind in "ui" and maxval <= 65535:
        light: np.ndarray = _table(maxval)[levels]
        return light
    return decode(levels.astype(np.float64) / maxval)


@cache
def _table(maxval: int) -> np.ndarray:
    table = decode(np.arange(maxval + 1, dtype=np.float64) / maxval)
    table.flags.writeable = False
    return table
