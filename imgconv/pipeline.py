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
>>> from imgconv.filtering import convolve
>>> from imgconv.kernels import parse_spec
>>> a = np.array([[255, 7, 3], [212, 240, 4], [218, 216, 230]])
>>> convolve(a, [parse_spec('1,-1;-1,1')], geometry='full').astype(int).tolist()
[[255, -248, -4, -3], [-43, 276, -232, -1], [6, -30, 250, -226], [-218, 2, -14, 230]]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from imgconv.finishing import AnyFinish, Finisher, scale_offset
from imgconv.kernels import Kernel, Number
from imgconv.padding import gather, longest_run, pad_index
from imgconv.plan import FilterPlan
from imgconv.rows import ArrayRows, CachedRows, Rows, read_rows

if TYPE_CHECKING:
    from imgconv.backends import Backend

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
