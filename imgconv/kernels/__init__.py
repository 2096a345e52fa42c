"""Kernels as data: the model, the spec grammar and the registry.

``imgconv.kernels.model`` is the ``Kernel`` type, ``imgconv.kernels.grammar``
the ``--kernel`` spec forms, and ``imgconv.kernels.registry`` the YAML
registry; this package gathers what callers use.

>>> parse_spec('box:3').shape
(3, 3)
"""

from imgconv.kernels.grammar import (
    PARAMETRIC,
    SPEC_FORMS,
    box,
    gaussian,
    load_kernel_file,
    parse_number,
    parse_spec,
    parse_values,
)
from imgconv.kernels.model import MAX_KERNEL_SIDE, Kernel, Number, check_size, format_number, max_kernel_side
from imgconv.kernels.registry import ENV_REGISTRY, Registry, load_registry, parse_registry

__all__ = [
    "ENV_REGISTRY",
    "MAX_KERNEL_SIDE",
    "PARAMETRIC",
    "SPEC_FORMS",
    "Kernel",
    "Number",
    "Registry",
    "box",
    "check_size",
    "format_number",
    "gaussian",
    "load_kernel_file",
    "load_registry",
    "max_kernel_side",
    "parse_number",
    "parse_registry",
    "parse_spec",
    "parse_values",
]
