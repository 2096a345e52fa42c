"""imgconv: filter images with convolution kernels and pool them.

The library under the ``imgconv`` command.  It never imports click or rich,
and loads numpy, scipy and Pillow only when a function needs them: the
public names are imported on first use.  ``__init__.pyi`` lists them once,
for a type checker (the package ships ``py.typed``) and for the lazy import
here, as scikit-image's lazy_loader stubs do; the stub is only read when a
name is first asked for, so the command line never pays for it.

>>> import numpy as np
>>> import imgconv
>>> imgconv.filter_image(np.full((3, 3), 100, np.uint8), 'sharpen').tolist()
[[255, 200, 255], [200, 100, 200], [255, 200, 255]]
>>> imgconv.convolve(np.eye(3), 'box:3').round(3).tolist()[1]
[0.222, 0.333, 0.222]
>>> imgconv.pool(np.arange(16).reshape(4, 4), size=2).tolist()
[[5, 7], [13, 15]]
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {}


def _exports() -> dict[str, str]:
    """public name -> defining module, from the ``from M import N as N`` lines of the stub.

    Imports happen here, not at the top: ``import imgconv`` is the first thing
    the ``imgconv`` program runs, before its signal handlers are in place.
    """
    if not _EXPORTS:
        import ast
        import os

        with open(os.path.join(os.path.dirname(__file__), "__init__.pyi"), encoding="utf-8") as stream:
            tree = ast.parse(stream.read())
        _EXPORTS.update(
            {
                alias.asname or alias.name: node.module
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module
                for alias in node.names
            }
        )
    return _EXPORTS


def __getattr__(name: str) -> object:
    if name == "__all__":
        return ["__version__", *_exports()]
    import importlib

    try:
        module = _exports()[name]
    except KeyError:
        raise AttributeError(f"module 'imgconv' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(["__version__", *_exports()])
