"""The plan of a convolution run, made once and executed by every route.

``FilterOptions`` is what the caller asked for; ``FilterPlan`` adds what
follows from it once, before any image is read: the kernels as they are
applied (rotated 180 degrees unless ``correlate``), the backend that serves
them (checked up front, chosen once per kind of input), and the geometry's
fit check.  Integer forms and separable factors live on each ``Kernel`` and
are computed once.  A plan is picklable: batch workers and remote tasks run
the very plan the command parsed.

>>> from imgconv.kernels import parse_spec
>>> plan = FilterPlan.make([parse_spec('sharpen'), parse_spec('blur')], FilterOptions(geometry='valid'))
>>> plan.output_shape((10, 12)), plan.engine(integer_input=True).name
((6, 8), 'numpy')
>>> plan.check_fits((3, 3), subject='in.png')
Traceback (most recent call last):
...
imgconv.errors.InputError: in.png: the image (1x1) is smaller than kernel 'blur' (3x3), so --geometry valid leaves nothing; use --geometry same or full
>>> plan.check_fits((3, 3))
Traceback (most recent call last):
...
imgconv.errors.ParameterError: geometry: the image (1x1) is smaller than kernel 'blur' (3x3), so 'valid' leaves nothing; use geometry='same'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgconv import backends
from imgconv.choices import (
    ALPHA_MODES,
    AUTO,
    BORDERS,
    GEOMETRIES,
    RANGES,
    AlphaMode,
    Border,
    Geometry,
    ValueRange,
    check,
)
from imgconv.errors import InputError, ParameterError
from imgconv.kernels import Kernel
from imgconv.limits import quote
from imgconv.padding import output_shape

if TYPE_CHECKING:
    from imgconv.backends import Backend

#: The smallest scale whose reciprocal is finite.
_TINY = 2.2250738585072014e-308


@dataclass(frozen=True)
class FilterOptions:
    """Every option of a convolution run, independent of files.

    Parameters
    ----------
    geometry : {'same', 'full', 'valid'}
        Output size, as ``scipy.signal.convolve``'s ``mode``.
    border : {'zero', 'nearest', 'reflect', 'mirror', 'wrap'}
        How the image is extended past its edges (scipy.ndimage's names).
    correlate : bool
        Apply kernels as written instead of rotated 180 degrees.
    backend : str
        ``'auto'`` or a backend name (``imgconv.backends.names()``).
    scale, offset : float
        The final ``/ scale + offset``.
    relu : bool
        Negative results become 0 before the range step.
    value_range : {'clip', 'abs', 'normalize', 'float'} or None
        None: clip for images, float for matrices.
    alpha_mode : {'carry', 'premultiplied', 'separate'}
        What happens to an alpha channel: carried unfiltered, premultiplied
        into the colour while both are filtered, or filtered as a channel.
    linear : bool
        Filter in linear light (images only): decode with the sRGB transfer
        function, filter, encode back before rounding.
    """

    geometry: Geometry = "same"
    border: Border = "zero"
    correlate: bool = False
    backend: str = AUTO
    scale: float = 1.0
    offset: float = 0.0
    relu: bool = False
    value_range: ValueRange | None = None
    alpha_mode: AlphaMode = "carry"
    linear: bool = False

    def __post_init__(self) -> None:
        import math

        check("geometry", self.geometry, GEOMETRIES)
        check("border", self.border, BORDERS)
        check("alpha_mode", self.alpha_mode, ALPHA_MODES)
        if self.value_range is not None:
            check("value_range", self.value_range, RANGES)
        for name in ("correlate", "relu", "linear"):
            _check_flag(name, getattr(self, name))
        for name in ("scale", "offset"):
            _check_number(name, getattr(self, name))
        if not isinstance(self.backend, str) or (self.backend != AUTO and self.backend not in backends.names()):
            raise ParameterError(
                f"unknown backend {quote(str(self.backend))} (choose from {', '.join([AUTO, *backends.names()])})",
                parameter="backend",
            )
        if not math.isfinite(self.scale) or abs(self.scale) < _TINY:
            raise ParameterError(
                f"must be a finite non-zero number above 2.2e-308, got {self.scale}", parameter="scale"
            )
        if not math.isfinite(self.offset):
            raise ParameterError(f"must be a finite number, got {self.offset}", parameter="offset")
        if self.alpha_mode == "premultiplied" and self.offset != 0:
            raise ParameterError(
                f"premultiplied filtering divides colour by the filtered alpha, so it takes no offset (got {self.offset:g})",
                parameter="alpha_mode",
            )


def _check_flag(parameter: str, value: object) -> None:
    """A yes/no option takes True or False: ``relu='no'`` would read as yes."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"expected True or False, got {quote(str(value))}", parameter=parameter)


def _check_number(parameter: str, value: object) -> None:
    """A real number (int, float, Fraction, numpy scalar), not text or a bool."""
    import numbers

    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"expected a number, got {quote(str(value))}", parameter=parameter)


def exact_steps(kernels: Sequence[Kernel], *, integer_input: bool) -> tuple[bool, ...]:
    """Which kernel steps sum integer weights over integer-valued planes.

    Padding keeps integers (zero, or copies of pixels); a step passes
    integers on only when its divisor is 1 (or -1) and its offset is whole,
    so ``blur`` (divisor 9) makes every later step inexact.

    >>> from imgconv.kernels import parse_spec
    >>> exact_steps([parse_spec('sharpen'), parse_spec('blur'), parse_spec('edge3')], integer_input=True)
    (True, True, False)
    >>> exact_steps([parse_spec('gaussian:sigma=1')], integer_input=True)
    (False,)
    """
    steps = []
    integer = integer_input
    for kernel in kernels:
        exact = integer and kernel.integer_weights
        steps.append(exact)
        divisor = kernel.integer_form()[1]
        integer = exact and abs(divisor) == 1 and float(kernel.offset).is_integer()
    return tuple(steps)


@dataclass(frozen=True)
class FilterPlan:
    """Kernels, options and backend of one run, made once (see the module doc).

    ``applied`` holds the kernels as the backends correlate them; ``kernels``
    as the user named them (for messages).
    """

    kernels: tuple[Kernel, ...]
    applied: tuple[Kernel, ...]
    options: FilterOptions
    _engines: dict[bool, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def make(
        cls, kernels: Sequence[Kernel], options: FilterOptions, *, integer_input: bool | None = True
    ) -> FilterPlan:
        """Orient ``kernels`` and, for ``integer_input`` planes (images; None:
        not known yet), choose the backend now, so a request no backend can
        serve is refused before any file is read."""
        kernels = tuple(kernels)
        if not kernels:
            raise ParameterError("give at least one kernel", parameter="kernels")
        if options.alpha_mode == "premultiplied":
            offset = next((k for k in kernels if k.offset != 0), None)
            if offset is not None:
                raise ParameterError(
                    f"premultiplied filtering divides colour by the filtered alpha, so its kernels take no offset "
                    f"('{offset.name}' adds {offset.offset})",
                    parameter="alpha_mode",
                )
        applied = kernels if options.correlate else tuple(k.flipped() for k in kernels)
        plan = cls(kernels, applied, options)
        if integer_input is not None:
            plan.engine(integer_input=integer_input)
        return plan

    def request(self, *, integer_input: bool) -> backends.Request:
        """What the backend is asked; ``integer_input``: the planes hold integers (images do)."""
        return backends.Request(
            kernel_shapes=tuple(k.shape for k in self.kernels),
            integer_kernels=tuple(k.integer_weights for k in self.kernels),
            geometry=self.options.geometry,
            border=self.options.border,
            value_range=self.options.value_range or "clip",
            exact_steps=exact_steps(self.kernels, integer_input=integer_input),
        )

    def engine(self, *, integer_input: bool) -> Backend:
        """The backend for integer or real-valued planes, chosen once per kind."""
        name = self._engines.get(integer_input)
        if name is None:
            name = backends.choose(self.options.backend, self.request(integer_input=integer_input)).name
            self._engines[integer_input] = name
        return backends.get(name)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """H x W after every kernel step."""
        for kernel in self.kernels:
            shape = output_shape(shape, kernel.shape, self.options.geometry)
        return shape

    def check_fits(self, shape: tuple[int, int], *, subject: str | None = None) -> None:
        """Refuse a ``valid`` run whose kernels do not fit inside the image.

        For the file ``subject`` it is that file's failure (``InputError``,
        worded with the command's option); without one, the library caller's
        ``geometry`` argument is at fault (``ParameterError``).
        """
        current = shape
        for kernel in self.kernels:
            after = output_shape(current, kernel.shape, self.options.geometry)
            if after[0] < 1 or after[1] < 1:
                smaller = (
                    f"the image ({current[0]}x{current[1]}) is smaller than kernel '{kernel.name}' "
                    f"({kernel.shape[0]}x{kernel.shape[1]})"
                )
                if subject is None:
                    # The library's caller chose the geometry: a bad argument, named as the parameter.
                    raise ParameterError(
                        f"{smaller}, so 'valid' leaves nothing", parameter="geometry", suggestion="same"
                    )
                raise InputError(
                    f"{smaller}, so --geometry valid leaves nothing; use --geometry same or full", subject=subject
                )
            current = after
