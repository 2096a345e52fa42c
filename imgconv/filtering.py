"""The library's one-call functions: ``filter_image`` and ``convolve``.

They take what a Python user has (an array, kernel names, specs or
``Kernel`` objects, keyword options), check it once (``image_array``,
``FilterOptions``), make the plan and run it through ``imgconv.pipeline``,
the same pipeline the command line's files go through.

>>> import numpy as np
>>> filter_image(np.full((3, 3), 100, np.uint8), 'sharpen').tolist()
[[255, 200, 255], [200, 100, 200], [255, 200, 255]]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from imgconv.choices import AUTO, RANGES, Border, Geometry, ValueRange, check
from imgconv.errors import ParameterError
from imgconv.finishing import Finish
from imgconv.kernels import Kernel
from imgconv.limits import quote
from imgconv.pipeline import run
from imgconv.plan import FilterOptions, FilterPlan

if TYPE_CHECKING:
    from imgconv.kernels import Registry


KernelLike = str | Kernel


def _kernels(
    kernels: KernelLike | Sequence[KernelLike], registry: Registry | str | os.PathLike[str] | None
) -> list[Kernel]:
    """Names, specs and Kernels as Kernels (one registry load for all names)."""
    from imgconv.kernels import load_registry, parse_spec
    from imgconv.kernels.registry import as_registry

    if isinstance(kernels, (str, Kernel)):
        items: list[object] = [kernels]
    elif isinstance(kernels, Iterable):
        items = list(kernels)
    else:
        raise ParameterError(
            f"expected a kernel name, spec or Kernel, or a list of them, got {type(kernels).__name__}",
            parameter="kernels",
        )
    if not items:
        raise ParameterError("give at least one kernel", parameter="kernels")
    loaded = as_registry(registry)
    if any(isinstance(k, str) for k in items) and loaded is None:
        loaded = load_registry()
    result = []
    for item in items:
        if isinstance(item, Kernel):
            result.append(item)
        elif isinstance(item, str):
            result.append(parse_spec(item, loaded))
        else:
            raise ParameterError(
                f"expected a kernel name, spec or Kernel, got {type(item).__name__}", parameter="kernels"
            )
    return result


def image_array(image: object) -> np.ndarray:
    """``image`` checked once for every one-call function (filter, convolve,
    pool): a non-empty H x W or H x W x C array of real numbers (bool,
    integers or floats), in the machine's byte order.

    A big-endian ``>u2`` array holds uint16 values, so it is read as uint16:
    the dtype rules then treat it as the plain type it holds.

    >>> image_array(np.zeros((2, 2), '>u2')).dtype
    dtype('uint16')
    >>> image_array(np.zeros((0, 3)))
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: image: expected a non-empty H x W or H x W x C array, got shape (0, 3)
    """
    try:
        array = np.asarray(image)
    except (TypeError, ValueError) as exc:  # ragged lists, objects numpy cannot hold
        raise ParameterError(f"expected an array, {exc}", parameter="image") from None
    if array.dtype.kind not in "biuf":
        raise ParameterError(
            f"expected real numbers (bool, integers or floats), got dtype {array.dtype}", parameter="image"
        )
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ParameterError(
            f"expected a non-empty H x W or H x W x C array, got shape {array.shape}", parameter="image"
        )
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _planes(image: object) -> tuple[np.ndarray, bool]:
    """``image`` (checked by ``image_array``) as H x W x C planes, and whether it was 2-D."""
    planes = image_array(image)
    if planes.ndim == 2:
        return planes[:, :, np.newaxis], True
    return planes, False


def convolve(
    image: np.ndarray,
    kernels: KernelLike | Sequence[KernelLike],
    *,
    geometry: Geometry = "same",
    border: Border = "zero",
    correlate: bool = False,
    backend: str = AUTO,
    registry: Registry | str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Apply ``kernels`` in order; float64 result, nothing rounded or clipped.

    Parameters
    ----------
    image : ndarray
        H x W or H x W x C; each channel is filtered on its own with the
        same kernels.
    kernels : str, Kernel, or a sequence of them
        Registry names, specs (``'1,-1;-1,1'``, ``'gaussian:sigma=2'``) or
        Kernels, applied in order; each kernel's own scale and offset
        apply at its step.
    geometry, border, correlate, backend
        As ``FilterOptions``.
    registry : Registry or path, optional
        Where names are looked up: the built-in registry by default; a path
        (str or PathLike) to a registry file adds that file's kernels.

    Returns
    -------
    ndarray
        float64, the shape ``scipy.signal.convolve`` gives for ``geometry``;
        a NaN or an infinity reaches the outputs whose window holds it, as
        float arithmetic carries it (``inf - inf`` is NaN).

    Raises
    ------
    ValueError
        ``imgconv.errors.ParameterError`` naming the bad parameter: an
        ``image`` that is not a non-empty H x W (x C) array of bools,
        integers or floats, or a ``geometry='valid'`` that leaves nothing;
        ``KernelError`` for a kernel that cannot be parsed.

    Examples
    --------
    >>> import numpy as np
    >>> impulse = np.zeros((3, 3)); impulse[1, 1] = 1
    >>> convolve(impulse, '1,2,3;4,5,6;7,8,9').astype(int).tolist()
    [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    >>> convolve(impulse, '1,2,3;4,5,6;7,8,9', correlate=True).astype(int).tolist()
    [[9, 8, 7], [6, 5, 4], [3, 2, 1]]
    """
    planes, flat = _planes(image)
    options = FilterOptions(geometry=geometry, border=border, correlate=correlate, backend=backend)
    plan = FilterPlan.make(_kernels(kernels, registry), options, integer_input=None)
    result = run(planes, plan, Finish(maxval=None, value_range="float"))
    return result[:, :, 0] if flat else result


def filter_image(
    image: np.ndarray,
    kernels: KernelLike | Sequence[KernelLike],
    *,
    geometry: Geometry = "same",
    border: Border = "zero",
    correlate: bool = False,
    backend: str = AUTO,
    scale: float = 1.0,
    offset: float = 0.0,
    relu: bool = False,
    value_range: ValueRange | None = None,
    dtype: np.dtype | type | str | None = None,
    linear: bool = False,
    registry: Registry | str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Filter an image as ``imgconv apply`` does: convolve, then finish.

    Parameters
    ----------
    image : ndarray
        H x W (gray) or H x W x C (one plane per channel), not empty, of
        bools, integers or finite floats (NaN and infinities are refused:
        no rounding has an answer for them); any byte order.
    kernels : str, Kernel, or a sequence of them
        Registry names, specs or Kernels, applied in order.
    geometry, border, correlate, backend, scale, offset, relu
        As ``FilterOptions`` and the command line's options of those names.
    value_range : {'clip', 'abs', 'normalize', 'float'}, optional
        Default: ``'clip'`` for integer output, ``'float'`` for float output.
    dtype : {uint8, uint16, float64}, optional
        The output type; by default the input's (uint8 in, uint8 out; uint16
        in, uint16 out, big-endian ``>u2`` included; float in, float64 out;
        bool and other integers give float64).  Always in native byte order.
    linear : bool
        Filter in linear light (uint8 and uint16 images): decode with the
        sRGB transfer function, filter, encode back before rounding.
    registry : Registry or path, optional
        Where names are looked up: the built-in registry by default; a path
        (str or PathLike) to a registry file adds that file's kernels.

    Returns
    -------
    ndarray
        Rounded half up and clipped to 0..255 or 0..65535, or float64.

    Raises
    ------
    ValueError
        ``imgconv.errors.ParameterError`` naming the bad parameter (an empty,
        4-D, complex or non-finite ``image`` names ``image``; a
        ``geometry='valid'`` that leaves nothing names ``geometry``), or
        ``KernelError`` for a kernel that cannot be parsed.

    Examples
    --------
    >>> import numpy as np
    >>> filter_image(np.full((3, 3), 100, np.uint8), 'sharpen').tolist()
    [[255, 200, 255], [200, 100, 200], [255, 200, 255]]
    >>> filter_image(np.full((4, 4), 1000, np.uint16), 'box:3').tolist()[1]
    [667, 1000, 1000, 667]
    >>> filter_image(np.eye(3), ['gaussian3', 'edge3'], border='reflect').round(4).tolist()[0]
    [1.5, -0.1875, -1.3125]
    >>> filter_image(np.array([[0, 255]], np.uint8), '1,1', scale=2).tolist(), filter_image(
    ...     np.array([[0, 255]], np.uint8), '1,1', scale=2, linear=True).tolist()
    ([[0, 128]], [[0, 188]])
    """
    planes, flat = _planes(image)
    out_type = _output_dtype(planes.dtype, dtype)
    if value_range is None:
        value_range = "float" if out_type.kind == "f" else "clip"
    check("value_range", value_range, RANGES)
    if planes.dtype.kind == "f" and not np.isfinite(planes).all():
        # As the command refuses them in matrices: no rounding or range has an answer for them.
        raise ParameterError("holds NaN or infinite values; filter_image takes finite numbers", parameter="image")
    if out_type.kind == "f" and value_range != "float":
        raise ParameterError(
            f"a float output takes value_range='float', got {quote(str(value_range))}", parameter="value_range"
        )
    if out_type.kind != "f" and value_range == "float":
        raise ParameterError(f"value_range='float' needs a float dtype, got {out_type}", parameter="dtype")
    options = FilterOptions(
        geometry=geometry,
        border=border,
        correlate=correlate,
        backend=backend,
        scale=scale,
        offset=offset,
        relu=relu,
        value_range=value_range,
        linear=linear,
    )
    plan = FilterPlan.make(_kernels(kernels, registry), options, integer_input=None)
    maxval = None if out_type.kind == "f" else int(np.iinfo(out_type).max)
    source_max, values = None, planes
    if linear:
        from imgconv import srgb

        if planes.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ParameterError(
                f"filters the light of uint8 and uint16 images, got {planes.dtype}", parameter="linear"
            )
        source_max = int(np.iinfo(planes.dtype).max)
        values = srgb.decode_levels(planes, source_max)
    finish = Finish.make(
        maxval=maxval,
        value_range=value_range,
        scale=scale,
        offset=offset,
        relu=relu,
        source_max=source_max,
        linear=linear,
    )
    result = run(values, plan, finish)
    return result[:, :, 0] if flat else result


def _output_dtype(source: np.dtype, wanted: np.dtype | type | str | None) -> np.dtype:
    if wanted is None:
        return source if source in (np.dtype(np.uint8), np.dtype(np.uint16)) else np.dtype(np.float64)
    try:
        out = np.dtype(wanted)
    except TypeError:
        raise ParameterError(f"{quote(str(wanted))} is not a numpy dtype", parameter="dtype") from None
    out = out.newbyteorder("=")  # '>u2' asks for uint16 values, given in this machine's order
    if out not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float64)):
        raise ParameterError(f"the output is uint8, uint16 or float64, not {out}", parameter="dtype")
    return out
