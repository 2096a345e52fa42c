"""imgconv: filter images with convolution kernels and pool them.

The library under the ``imgconv`` command.  It never imports click or rich,
and loads numpy, scipy and Pillow only when a function needs them.

>>> import numpy as np
>>> from imgconv import apply_kernels, finish, parse_spec
>>> apply_kernels(np.eye(3), [parse_spec('box:3')]).round(3).tolist()[1]
[0.222, 0.333, 0.222]
>>> finish(apply_kernels(np.eye(3) * 90, [parse_spec('box:3')]), maxval=255).tolist()[1]
[20, 30, 20]
"""

from __future__ import annotations

import importlib

# typing costs the thin client of the resident server ~10 ms (it pulls in
# re); the annotations below are strings, so the import is for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

#: public name -> (module, attribute), imported on first use.
_EXPORTS = {
    "Kernel": ("imgconv.kernels", "Kernel"),
    "parse_spec": ("imgconv.kernels", "parse_spec"),
    "load_kernel": ("imgconv.kernels", "parse_spec"),
    "load_registry": ("imgconv.kernels", "load_registry"),
    "apply_kernels": ("imgconv.convolve", "convolve"),
    "finish": ("imgconv.convolve", "finish"),
    "filter_image": ("imgconv.convolve", "filter_image"),
    "FilterOptions": ("imgconv.convolve", "FilterOptions"),
    "pool": ("imgconv.pooling", "pool"),
    "PoolOptions": ("imgconv.pooling", "PoolOptions"),
    "Picture": ("imgconv.images", "Picture"),
    "read_picture": ("imgconv.images", "read_picture"),
    "write_picture": ("imgconv.images", "write_picture"),
    "apply_file": ("imgconv.jobs", "apply_file"),
    "OutputOptions": ("imgconv.jobs", "OutputOptions"),
    "pool_file": ("imgconv.jobs", "pool_file"),
    "ImgconvError": ("imgconv.errors", "ImgconvError"),
    "UsageFailure": ("imgconv.errors", "UsageFailure"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'imgconv' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attribute)
