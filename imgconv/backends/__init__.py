"""The backend protocol and registry.

A backend computes one thing: the *valid* correlation of already padded
planes with a small weight matrix.  Orientation, borders, geometry, scale,
rounding and clipping all live in ``imgconv.convolve``, outside the backends,
which is what lets different engines agree to the byte.

Backends are imported lazily, by name, so that starting the command line
never loads an engine it does not use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from imgconv.errors import UsageFailure

if TYPE_CHECKING:
    import numpy as np

#: name -> module; each module exposes ``BACKEND``, an object of the protocol.
BACKEND_MODULES: dict[str, str] = {
    "scipy": "imgconv.backends.scipy_backend",
    "numpy": "imgconv.backends.numpy_backend",
    "pil": "imgconv.backends.pil_backend",
}

AUTO = "auto"


@dataclass(frozen=True)
class Request:
    """What a run asks of a backend, known before any image is read."""

    kernel_shapes: tuple[tuple[int, int], ...]
    integer_kernels: tuple[bool, ...]
    geometry: str = "same"
    border: str = "zero"
    value_range: str = "clip"
    #: Per kernel step: True when it sums integer weights over integer-valued
    #: planes, so its exact result is an integer that every engine can reach
    #: (see ``imgconv.convolve.exact_steps``).  Empty means unknown: no step
    #: is assumed exact.
    exact_steps: tuple[bool, ...] = ()


class Backend(Protocol):
    """What every backend provides (see ``scipy_backend`` for the model)."""

    name: str
    summary: str
    limits: str

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine, or None."""

    def refuse(self, request: Request) -> str | None:
        """Why this backend cannot serve ``request``, or None if it can."""

    def correlate_valid(self, planes: "np.ndarray", weights: "np.ndarray") -> "np.ndarray":
        """Valid correlation of ``planes`` (H x W x C) with ``weights`` (kh x kw).

        Returns shape (H - kh + 1, W - kw + 1, C): float64, or an integer
        array holding the exact sums.  For integer weights and integer-valued
        planes the sums must be exact either way.
        """


def names() -> list[str]:
    """Every registered backend name, in preference order."""
    return list(BACKEND_MODULES)


def get(name: str) -> Backend:
    """The backend called ``name``; a usage error lists the valid names."""
    try:
        module = BACKEND_MODULES[name]
    except KeyError:
        raise UsageFailure(
            f"unknown backend '{name}' (choose from {', '.join([AUTO, *BACKEND_MODULES])})",
            subject="--backend",
        ) from None
    return importlib.import_module(module).BACKEND


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
            hint = f"; use --backend {able[0]}" if able else ""
            raise UsageFailure(f"backend '{name}' cannot do this: {reason}{hint}", subject="--backend")
        return backend
    for candidate in auto_order(request):
        backend = get(candidate)
        if _serves(backend, request):
            return backend
    raise UsageFailure("no backend can serve this request", subject="--backend")


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
    preferred = ["numpy", "scipy", "pil"] if exact else ["scipy", "numpy", "pil"]
    return [n for n in preferred if n in BACKEND_MODULES] + [n for n in names() if n not in preferred]


def _serves(backend: Backend, request: Request) -> bool:
    return not (backend.unavailable() or backend.refuse(request))
