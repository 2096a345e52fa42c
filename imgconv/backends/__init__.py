"""The backend protocol and registry.

A backend computes one thing: the *valid* correlation of already padded
planes with one kernel, as the plan applies it (already rotated for
convolution).  Orientation, borders, geometry, scale, rounding and clipping
all live outside the backends (``imgconv.plan``, ``imgconv.padding``,
``imgconv.finishing``), which is what lets different engines agree to the
byte.  What a backend needs from a kernel (its integer weights, their
separable factors) is computed once on the ``Kernel``.

A backend is one module in this package named ``NAME_backend.py`` that
exposes ``BACKEND``, an object of the protocol below; its name is found from
the file name, so listing backends (``--backend`` choices, ``--help``)
imports none of them, and a run imports only the engine it uses.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Protocol, cast

from imgconv.choices import AUTO
from imgconv.errors import ParameterError
from imgconv.limits import quote

if TYPE_CHECKING:
    import numpy as np

    from imgconv.kernels import Kernel

_SUFFIX = "_backend.py"

#: Backends ``auto`` prefers, in order, for exact integer sums and for float
#: sums (see ``auto_order``); any other backend comes after these.
PREFERENCE = {True: ("numpy", "scipy", "pil"), False: ("scipy", "numpy", "pil")}


@dataclass(frozen=True)
class Request:
    """What a run asks of a backend, known before any image is read."""

    kernel_shapes: tuple[tuple[int, int], ...]
    #: Per kernel: its weights are integers small enough for exact sums (``Kernel.integer_weights``).
    integer_kernels: tuple[bool, ...]
    geometry: str = "same"
    border: str = "zero"
    value_range: str = "clip"
    #: Per kernel step: True when it sums integer weights over integer-valued
    #: planes, so its exact result is an integer that every engine can reach
    #: (see ``imgconv.plan.exact_steps``).  Empty means unknown: no step
    #: is assumed exact.
    exact_steps: tuple[bool, ...] = ()


class Backend(Protocol):
    """What every backend provides (see ``scipy_backend`` for the model)."""

    name: str
    summary: str
    limits: str

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine, or None."""
        ...

    def refuse(self, request: Request) -> str | None:
        """Why this backend cannot serve ``request``, or None if it can."""
        ...

    def correlate_valid(self, planes: np.ndarray, kernel: Kernel) -> np.ndarray:
        """Valid correlation of ``planes`` (H x W x C) with ``kernel.integer_form()[0]``.

        Returns shape (H - kh + 1, W - kw + 1, C): float64, or an integer
        array holding the exact sums.  For integer weights and integer-valued
        planes the sums must be exact either way.
        """
        ...


def names() -> list[str]:
    """Every backend's name: the general-purpose ones first, then the rest, sorted.

    >>> names()
    ['scipy', 'numpy', 'pil']
    """
    return list(_found())


@cache
def _found() -> tuple[str, ...]:
    found = sorted(f[: -len(_SUFFIX)] for f in os.listdir(os.path.dirname(__file__)) if f.endswith(_SUFFIX))
    preferred = [n for n in PREFERENCE[False] if n in found]
    return (*preferred, *(n for n in found if n not in preferred))


def get(name: str) -> Backend:
    """The backend called ``name``; a usage error lists the valid names."""
    if name not in names():
        raise ParameterError(
            f"unknown backend {quote(name)} (choose from {', '.join([AUTO, *names()])})", parameter="backend"
        )
    return cast("Backend", importlib.import_module(f"{__name__}.{name}_backend").BACKEND)


def choose(name: str, request: Request) -> Backend:
    """Resolve ``name`` (or ``auto``) to a backend that can serve ``request``.

    A named backend that cannot serve the request is a usage error that names
    one that can; ``auto`` takes the first able backend in preference order.
    """
    if name != AUTO:
        backend = get(name)
        reason = backend.unavailable() or backend.refuse(request)
        if reason:
            able = [n for n in names() if n != name and _serves(get(n), request)]
            raise ParameterError(
                f"backend '{name}' cannot do this: {reason}", parameter="backend", suggestion=able[0] if able else None
            )
        return backend
    for candidate in auto_order(request):
        backend = get(candidate)
        if _serves(backend, request):
            return backend
    raise ParameterError("no backend can serve this request", parameter="backend")


def auto_order(request: Request) -> list[str]:
    """The order in which ``auto`` tries backends for ``request``.

    From the benchmark harness (README, "Backends" and "Performance"): when
    every step sums integers exactly, numpy's integer sums in cache-sized
    strips are the fastest at every kernel size, and they also spare the
    half second that importing scipy.ndimage costs a fresh process.  Float
    sums (real-valued weights, or a step after a divisor) go to scipy's C
    loops; Pillow, once made exact, is never the fastest, so it comes last.

    >>> auto_order(Request(((3, 3),), (True,), exact_steps=(True,)))
    ['numpy', 'scipy', 'pil']
    >>> auto_order(Request(((7, 7),), (False,), exact_steps=(False,)))
    ['scipy', 'numpy', 'pil']
    """
    exact = bool(request.exact_steps) and all(request.exact_steps)
    preferred = [n for n in PREFERENCE[exact] if n in names()]
    return preferred + [n for n in names() if n not in preferred]


def _serves(backend: Backend, request: Request) -> bool:
    return not (backend.unavailable() or backend.refuse(request))
