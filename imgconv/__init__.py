"""imgconv: filter images with convolution kernels and pool them.

The library under the ``imgconv`` command.  It never imports click or rich,
and loads numpy, scipy and Pillow only when a function needs them.

>>> import numpy as np
>>> from imgconv import convolve, parse_spec
>>> convolve(np.eye(3), [parse_spec('box:3')]).round(3).tolist()[1]
[0.222, 0.333, 0.222]
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first use).
_EXPORTS = {
    "Kernel": "imgconv.kernels",
    "parse_spec": "imgconv.kernels",
    "load_kernel": "imgconv.kernels",
    "load_registry": "imgconv.kernels",
    "convolve": "imgconv.convolve",
    "finish": "imgconv.convolve",
    "FilterOptions": "imgconv.convolve",
    "pool": "imgconv.pooling",
    "PoolOptions": "imgconv.pooling",
    "Picture": "imgconv.images",
    "read_picture": "imgconv.images",
    "write_picture": "imgconv.images",
    "apply_file": "imgconv.jobs",
    "OutputOptions": "imgconv.jobs",
    "pool_file": "imgconv.jobs",
    "ImgconvError": "imgconv.errors",
    "UsageFailure": "imgconv.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgconv' has no attribute {name!r}")
    attribute = "parse_spec" if name == "load_kernel" else name
    return getattr(importlib.import_module(module), attribute)
