"""The convolution pipeline: a plan executed over planes, strip by strip.

One meaning, stated once (the README has the long form):

* orientation: true convolution, exactly ``scipy.signal.convolve`` (the
  kernel rotated 180 degrees); ``correlate=True`` applies it as written;
* geometry: ``same`` / ``full`` / ``valid`` as ``scipy.signal.convolve``;
* border: padding by the border rule (``imgconv.padding``), so every
  backend only computes a valid correlation;
* arithmetic: float64 or exact integers; each kernel's own ``/ scale +
  offset`` at its step; nothing rounded or clipped between kernels;
* finish: ``imgconv.finishing``, once, at the end.

Every step runs the same way: the output is cut into row strips, each strip
is padded from index maps, correlated on the backend and finished (the last
step's ``Finisher``, or ``/ divisor + offset`` to float64 between steps)
while it is in the CPU cache, on all cores.  ``normalize`` needs the whole
result's range, so it finishes after the last step instead.

>>> import numpy as np
>>> from imgconv.kernels import parse_spec
>>> a = np.array([[255, 7, 3], [212, 240, 4], [218, 216, 230]])
>>> convolve(a, [parse_spec('1,-1;-1,1')], geometry='full').astype(int).tolist()
[[255, -248, -4, -3], [-43, 276, -232, -1], [6, -30, 250, -226], [-218, 2, -14, 230]]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from imgconv.choices import AUTO, RANGES, Border, Geometry, ValueRange, check
from imgconv.errors import ParameterError
from imgconv.finishing import AnyFinish, Finish, Finisher, scale_offset
from imgconv.kernels import Kernel, Number
from imgconv.limits import quote
from imgconv.padding import gather, longest_run, pad_index
from imgconv.plan import FilterOptions, FilterPlan
from imgconv.rows import ArrayRows, CachedRows, Rows, read_rows

if TYPE_CHECKING:
    from imgconv.backends import Backend
    from imgconv.kernels import Registry

#: Output elements per strip: small enough that a strip's sums and
#: temporaries stay in the CPU cache.
STRIP_ELEMENTS = 1 << 17


def integer_valued(planes: np.ndarray) -> bool:
    """True for integer arrays and float arrays holding only whole numbers."""
    return bool(np.issubdtype(planes.dtype, np.integer) or np.array_equal(planes, np.floor(planes)))


def run(planes: np.ndarray, plan: FilterPlan, finish: AnyFinish, *, subject: str | None = None) -> np.ndarray:
    """Every kernel step of ``plan`` over H x W x C ``planes``, then ``finish``.

    The result has ``finish.dtype``; its shape is ``plan.output_shape``.
    """
    plan.check_fits(planes.shape[:2], subject=subject)
    engine = plan.engine(integer_input=integer_valued(planes))
    rows = chain(ArrayRows(planes), plan, engine, finish)
    values = rows.read(0, rows.shape[0])
    del rows  # the steps' cached blocks, before normalize makes its copies
    return values if finish.elementwise else finish(values)


def chain(source: Rows, plan: FilterPlan, engine: Backend, finish: AnyFinish) -> Rows:
    """The rows of ``plan``'s last step over ``source``, each step reading
    the one before on demand.

    The last step finishes its sums with ``finish`` when that is elementwise;
    for ``normalize`` it gives the float64 values ``finish`` then maps
    (with the bounds of a first pass when the rows come in strips).
    """
    rows: Rows = source
    for index, kernel in enumerate(plan.applied):
        divisor, offset = kernel.integer_form()[1], kernel.offset
        last = index == len(plan.applied) - 1
        finisher = finish.after(divisor, offset) if last and finish.elementwise else _ScaleOffset(divisor, offset)
        if index:
            rows = CachedRows(rows)
        rows = StepRows(rows, kernel, plan, engine, finisher)
    return rows


class _ScaleOffset:
    """Between steps: ``sums / divisor + offset`` as float64, nothing rounded."""

    dtype = np.dtype(np.float64)

    def __init__(self, divisor: Number, offset: Number) -> None:
        self.divisor, self.offset = divisor, offset

    def __call__(self, sums: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[...] = scale_offset(sums, self.divisor, self.offset)
        return out


def run_step(
    planes: np.ndarray,
    kernel: Kernel,
    plan: FilterPlan,
    engine: Backend,
    finisher: Finisher | _ScaleOffset,
) -> np.ndarray:
    """One kernel step over a whole array: pad, correlate and finish strip by strip."""
    step = StepRows(ArrayRows(planes), kernel, plan, engine, finisher)
    return step.read(0, step.shape[0])


class StepRows:
    """One kernel step's output rows, computed from the rows of its input.

    A read of output rows takes the input rows their padded window needs
    (the row index map: the kernel's halo, and for ``wrap``, ``reflect``
    or ``mirror`` near an edge the rows the border rule names, from the
    far edge too), pads columns from the column map, correlates on the
    backend and finishes, in cache-sized strips on all cores.  Reading
    every row at once is the whole-image route; reading bands of rows is
    the streaming route, with the same bytes.
    """

    def __init__(
        self, source: Rows, kernel: Kernel, plan: FilterPlan, engine: Backend, finisher: Finisher | _ScaleOffset
    ) -> None:
        geometry, border = plan.options.geometry, plan.options.border
        height, width, channels = source.shape
        self.source, self.kernel, self.engine, self.finisher = source, kernel, engine, finisher
        self.row_map = pad_index(height, kernel.shape[0], geometry=geometry, border=border)
        self.column_map = pad_index(width, kernel.shape[1], geometry=geometry, border=border)
        self.column_run = longest_run(self.column_map)
        kh, kw = kernel.shape
        self._shape = (len(self.row_map) - kh + 1, len(self.column_map) - kw + 1, channels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    def read(self, start: int, stop: int) -> np.ndarray:
        kh = self.kernel.shape[0]
        height, width, channels = self._shape
        stop = min(stop, height)
        block, row_map = read_rows(self.source, self.row_map[start : stop + kh - 1])
        workers = thread_count()
        # Several threads want fewer, larger strips (less handing over per strip).
        elements = STRIP_ELEMENTS * (4 if workers > 1 else 1)
        rows = max(1, elements // max(1, width * channels), 2 * kh)
        out = np.empty((stop - start, width, channels), dtype=self.finisher.dtype)

        def fill(top: int) -> None:
            strip = gather(block, row_map[top : top + rows + kh - 1], self.column_map, self.column_run)
            self.finisher(self.engine.correlate_valid(strip, self.kernel), out=out[top : top + rows])

        _each(fill, range(0, stop - start, rows), workers)
        return out


def _each(work: Callable[[int], None], items: range, workers: int) -> None:
    workers = min(workers, len(items))
    if workers > 1:
        # numpy releases the GIL inside its loops, so strips run on every core.
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(workers)
        try:
            list(pool.map(work, items))
        finally:
            # On Ctrl-C, drop the strips not yet started instead of finishing the image.
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for item in items:
            work(item)


def thread_count() -> int:
    """Threads for the strips: ``IMGCONV_THREADS``, else the number of CPUs."""
    from imgconv.limits import env_int

    return env_int("IMGCONV_THREADS", os.cpu_count() or 1)


# --------------------------------------------------------------------------
# The library's one-call functions


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
