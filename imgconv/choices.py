"""The words imgconv's options take, in one place that imports nothing heavy.

The command line builds its ``click.Choice`` lists from these tuples and the
library checks its arguments against them, so the two cannot drift apart;
the ``Literal`` types give a type checker the same words.

>>> GEOMETRIES, BORDERS[:2]
(('same', 'full', 'valid'), ('zero', 'nearest'))
>>> check('border', 'edge', BORDERS)
Traceback (most recent call last):
...
imgconv.errors.ParameterError: border: 'edge' is not one of zero, nearest, reflect, mirror, wrap
"""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

Geometry = Literal["same", "full", "valid"]
Border = Literal["zero", "nearest", "reflect", "mirror", "wrap"]
ValueRange = Literal["clip", "abs", "normalize", "float"]
Color = Literal["auto", "gray", "rgb"]
PoolOp = Literal["max", "mean", "min"]
Padding = Literal["valid", "same"]
Display = Literal["normalize", "abs"]
FrameChoice = Literal["all", "first"]
AlphaMode = Literal["carry", "premultiplied", "separate"]

GEOMETRIES: tuple[Geometry, ...] = get_args(Geometry)
BORDERS: tuple[Border, ...] = get_args(Border)
RANGES: tuple[ValueRange, ...] = get_args(ValueRange)
COLORS: tuple[Color, ...] = get_args(Color)
POOL_OPS: tuple[PoolOp, ...] = get_args(PoolOp)
PADDINGS: tuple[Padding, ...] = get_args(Padding)
DISPLAYS: tuple[Display, ...] = get_args(Display)
FRAME_CHOICES: tuple[FrameChoice, ...] = get_args(FrameChoice)
ALPHA_MODES: tuple[AlphaMode, ...] = get_args(AlphaMode)

#: The backend name that picks the fastest able engine for each run.
AUTO = "auto"

_Word = TypeVar("_Word", bound=str)


def check(parameter: str, value: str, choices: tuple[_Word, ...]) -> _Word:
    """Return ``value`` if it is one of ``choices``; else a ParameterError naming ``parameter``."""
    if value not in choices:
        from imgconv.errors import ParameterError
        from imgconv.limits import quote

        raise ParameterError(f"{quote(str(value))} is not one of {', '.join(choices)}", parameter=parameter)
    return value
