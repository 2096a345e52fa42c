"""The ``Kernel`` type: values as written, a divisor and an offset.

A kernel keeps its values exactly (``Fraction`` where the text was an
integer, a decimal or a fraction; ``float`` for computed weights such as a
Gaussian), so ``out = conv(image, values) / scale + offset`` can be done in
exact integers wherever the values allow it.  What every backend needs from
a kernel (its integer form, its separable factors) is computed here, once.

This module stays free of numpy at import time (``imgconv kernels list``
imports it); the array properties import numpy when asked.

>>> k = Kernel("gauss", ((1, 2, 1), (2, 4, 2), (1, 2, 1)), scale=16)
>>> k.shape, k.total, k.separable
((3, 3), Fraction(16, 1), True)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from imgconv.errors import KernelError

if TYPE_CHECKING:
    import numpy as np

Number = Fraction | float

#: Kernels larger than this on either side are refused: a 1001x1001 kernel is
#: almost certainly a mistake, and direct convolution with it would run for
#: hours.  Raise it with ``IMGCONV_MAX_KERNEL``.
MAX_KERNEL_SIDE = 256

#: Integer weights are accumulated exactly in float64 as long as every partial
#: sum stays below 2**53; this bounds ``sum(|w|) * 65535`` for 16-bit input.
EXACT_LIMIT = 2**53 // 65536


@dataclass(frozen=True)
class Kernel:
    """A 2-D kernel: values as written, a divisor and an offset.

    Parameters
    ----------
    name : str
        What messages and ``{kernel}`` templates call it.
    values : sequence of rows of numbers
        Integers and ``Fraction`` stay exact; floats are kept as given.
    scale, offset : number
        ``out = conv(image, values) / scale + offset``.
    description, source, origin : str
        What it is, where its numbers come from, and where it was defined.

    Examples
    --------
    >>> k = Kernel("gauss", ((1, 2, 1), (2, 4, 2), (1, 2, 1)), scale=16)
    >>> k.factors()
    ((Fraction(1, 1), Fraction(2, 1), Fraction(1, 1)), (Fraction(1, 1), Fraction(2, 1), Fraction(1, 1)))
    >>> k.flipped().values == k.values
    True
    """

    name: str
    values: tuple[tuple[Number, ...], ...]
    scale: Number = Fraction(1)
    offset: Number = Fraction(0)
    description: str = ""
    source: str = ""
    origin: str = "inline"

    def __post_init__(self) -> None:
        rows = tuple(tuple(_exact(v) for v in row) for row in self.values)
        object.__setattr__(self, "values", rows)
        object.__setattr__(self, "scale", _exact(self.scale))
        object.__setattr__(self, "offset", _exact(self.offset))
        _validate(rows, self.scale, self.offset, subject=f"kernel '{self.name}'")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), len(self.values[0])

    @property
    def total(self) -> Number:
        """The sum of the values (before the scale is applied)."""
        return sum((v for row in self.values for v in row), Fraction(0))

    @cached_property
    def exact(self) -> bool:
        """True when every value is a rational."""
        return all(isinstance(v, Fraction) for row in self.values for v in row)

    @cached_property
    def weights(self) -> np.ndarray:
        """The values as a read-only float64 array (scale not applied)."""
        import numpy as np

        array = np.array([[float(v) for v in row] for row in self.values], dtype=np.float64)
        array.setflags(write=False)
        return array

    def integer_form(self) -> tuple[np.ndarray, Number]:
        """Integer weights and a divisor giving the same convolution.

        Rational kernels (``1/9``, ``0.25``) are scaled by the least common
        denominator so that every backend accumulates exact integers and the
        only rounding is the final division, done once, the same way
        everywhere.  Kernels with real values come back unchanged.

        >>> from imgconv.kernels import parse_spec
        >>> w, d = parse_spec('1/4,1/2,1/4').integer_form()
        >>> w.tolist(), d
        ([[1.0, 2.0, 1.0]], Fraction(4, 1))
        """
        return self._integer_form

    @cached_property
    def _integer_form(self) -> tuple[np.ndarray, Number]:
        import numpy as np

        if not self.exact:
            return self.weights, self.scale
        denominator = math.lcm(*(v.denominator for row in self.values for v in row))  # type: ignore[union-attr]
        integers = [[int(v * denominator) for v in row] for row in self.values]
        too_large = sum(abs(v) for row in integers for v in row) > EXACT_LIMIT or denominator > EXACT_LIMIT
        if too_large or abs(float(self.scale)) * denominator > sys.float_info.max:
            return self.weights, self.scale
        array = np.array(integers, dtype=np.float64)
        array.setflags(write=False)
        return array, self.scale * denominator

    @property
    def integer_weights(self) -> bool:
        """True when ``integer_form()`` gives whole numbers whose sums are exact.

        Whole numbers alone are not enough: ``1e19`` is one, but no integer
        type holds it, and with 16-bit pixels only a sum of magnitudes up to
        ``EXACT_LIMIT`` stays exact in float64, where every backend agrees.
        """
        return self._integer_weights

    @cached_property
    def _integer_weights(self) -> bool:
        import numpy as np

        weights = self.integer_form()[0]
        return bool(np.array_equal(weights, np.round(weights))) and float(np.abs(weights).sum()) <= EXACT_LIMIT

    @property
    def separable(self) -> bool:
        """True when the kernel is an outer product of a column and a row."""
        return self.factors() is not None

    def factors(self) -> tuple[tuple[Number, ...], tuple[Number, ...]] | None:
        """The column and row whose outer product is the kernel, or None.

        Exact for rational kernels, whose row is the smallest integer row
        (``[1, 4, 6, 4, 1]``, not ``[1/6, ...]``); real kernels are tested
        to 1e-12 of their largest value.
        """
        return self._factors

    @cached_property
    def _factors(self) -> tuple[tuple[Number, ...], tuple[Number, ...]] | None:
        if self.exact:
            return _exact_factors(cast("tuple[tuple[Fraction, ...], ...]", self.values))
        # Mixed values: Fraction-with-float arithmetic converts to float first anyway.
        return _float_factors(tuple(tuple(float(v) for v in row) for row in self.values))

    def separable_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Float64 column and row whose outer product is ``integer_form()[0]``.

        Whole numbers when the integer form is (so a row pass then a column
        pass sums exactly); None for kernels that are one row or one column
        already, or not separable.

        >>> from imgconv.kernels import parse_spec
        >>> [v.tolist() for v in parse_spec('1/16,2/16,1/16;2/16,4/16,2/16;1/16,2/16,1/16').separable_weights()]
        [[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]
        """
        return self._separable_weights

    @cached_property
    def _separable_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        import numpy as np

        factors = self.factors()
        if factors is None or 1 in self.shape:
            return None
        column, row = factors
        weights, divisor = self.integer_form()
        # integer_form multiplied the values by divisor / scale; the row
        # (smallest integers when exact) keeps its form, the column takes it.
        multiplier = divisor / self.scale
        column_array = np.array([float(v * multiplier) for v in column], dtype=np.float64)
        row_array = np.array([float(v) for v in row], dtype=np.float64)
        if self.exact and not np.array_equal(np.outer(column_array, row_array), weights):
            return None  # the integer form fell back to floats (sums past 2**53)
        column_array.setflags(write=False)
        row_array.setflags(write=False)
        return column_array, row_array

    def flipped(self) -> Kernel:
        """The kernel rotated by 180 degrees (what convolution applies)."""
        return replace(self, values=tuple(tuple(reversed(row)) for row in reversed(self.values)))


# --------------------------------------------------------------------------
# Numbers and validation


_N = TypeVar("_N", Fraction, float)


def _pivot(values: Sequence[Sequence[_N]]) -> tuple[int, int]:
    """The first cell of largest magnitude, in row-major order."""
    rows, cols = len(values), len(values[0])
    return max(((r, c) for r in range(rows) for c in range(cols)), key=lambda rc: abs(values[rc[0]][rc[1]]))


def _exact_factors(
    values: tuple[tuple[Fraction, ...], ...],
) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]] | None:
    pivot_r, pivot_c = _pivot(values)
    pivot = values[pivot_r][pivot_c]
    if pivot == 0:
        return None
    row = tuple(v / pivot for v in values[pivot_r])
    content = _content(row)
    row = tuple(v / content for v in row)  # the smallest integer row
    column = tuple(values[r][pivot_c] / row[pivot_c] for r in range(len(values)))
    if any(column[r] * row[c] != v for r, line in enumerate(values) for c, v in enumerate(line)):
        return None
    return column, row


def _float_factors(values: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    pivot_r, pivot_c = _pivot(values)
    pivot = values[pivot_r][pivot_c]
    if pivot == 0:
        return None
    row = tuple(v / pivot for v in values[pivot_r])
    column = tuple(values[r][pivot_c] / row[pivot_c] for r in range(len(values)))
    tolerance = 1e-12 * abs(pivot)
    if any(abs(column[r] * row[c] - v) > tolerance for r, line in enumerate(values) for c, v in enumerate(line)):
        return None
    return column, row


def _content(values: Sequence[Fraction]) -> Fraction:
    """The largest rational dividing every value into integers, signed so the
    first non-zero value comes out positive."""
    numerators = math.gcd(*(v.numerator for v in values))
    denominators = math.lcm(*(v.denominator for v in values))
    first = next(v for v in values if v != 0)
    return Fraction(numerators, denominators) * (1 if first > 0 else -1)


def _exact(value: Any) -> Number:
    """Keep rationals exact; bools, strings and other types are refused."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a kernel value")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return value
    raise TypeError(f"{value!r} is not a number")


def _validate(rows: Sequence[Sequence[Number]], scale: Number, offset: Number, *, subject: str) -> None:
    if not rows or not rows[0]:
        raise KernelError("the kernel is empty", subject=subject)
    width = len(rows[0])
    for index, row in enumerate(rows, start=1):
        if len(row) != width:
            raise KernelError(
                f"row {index} has {len(row)} values, row 1 has {width} (rows must be equally long)",
                subject=subject,
            )
    check_size(len(rows), width, subject=subject)
    for value in (*(v for row in rows for v in row), scale, offset):
        if isinstance(value, float) and not math.isfinite(value):
            raise KernelError(f"non-finite value {value}", subject=subject)
    if scale == 0:
        raise KernelError("the scale (divisor) is 0", subject=subject)


def check_size(height: int, width: int, *, subject: str) -> None:
    """Refuse kernels above the documented side limit."""
    limit = max_kernel_side()
    if height > limit or width > limit:
        raise KernelError(
            f"{height}x{width} is larger than the limit of {limit}x{limit} (set IMGCONV_MAX_KERNEL to raise it)",
            subject=subject,
        )


def max_kernel_side() -> int:
    """The largest accepted kernel side (``IMGCONV_MAX_KERNEL`` overrides)."""
    from imgconv.limits import env_int

    return env_int("IMGCONV_MAX_KERNEL", MAX_KERNEL_SIDE)


def format_number(value: Number) -> str:
    """Show a value as written: ``-1/256``, ``4``, ``0.0751``.

    >>> format_number(Fraction(-1, 256)), format_number(Fraction(4)), format_number(0.5)
    ('-1/256', '4', '0.5')
    """
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return f"{value:.6g}"
