"""The strip route of one file: whether it streams, how, and what a band costs.

A file job (``imgconv.jobs``) first asks ``streamed``: when both formats
read and write in strips and the whole image does not fit the memory
budget (or passes ``--max-pixels``), the file runs band by band through
``imgconv.streaming`` and the whole-image route never starts.  What a band
of output rows holds is counted here per request (``apply_costs``,
``pool_costs``), from the source's stored rows to the finished band.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgconv.errors import UsageFailure
from imgconv.formats import STDIO, check_capacity, format_for

if TYPE_CHECKING:
    from imgconv.finishing import Finish
    from imgconv.formats import Format
    from imgconv.jobs import ApplyJob, FileJob, PoolJob
    from imgconv.memory import Costs
    from imgconv.metadata import Metadata
    from imgconv.sources import Source


def streamed(job: FileJob, source: str, target: str) -> bool:
    """Run strip by strip if both formats allow it and the whole image
    does not fit the budget (or passes ``max_pixels``); True if it ran."""
    if STDIO in (source, target):
        return False  # pipes are read and written whole
    fmt = format_for(target, job.output.fmt)
    if fmt.sink is None:
        return False
    from imgconv.sources import open_source

    opened = open_source(source, color=job.color)
    if opened is None:
        return False
    with opened:
        if not job.streams(opened) or (opened.pages > 1 and job.frames == "all"):
            return False  # a request the strips do not take, or a TIFF's later pages
        return route(job, opened, target, fmt)


def route(job: FileJob, source: Source, target: str, fmt: Format) -> bool:
    """Plan ``source`` -> ``target``: stream it (True) or leave it to the whole-image route."""
    from pathlib import Path

    from imgconv import memory
    from imgconv.reading import DEFAULT_MAX_PIXELS

    finish, costs, whole = memory_plan(job, source, target, fmt)
    budget = memory.budget(job.memory)
    limit = job.max_pixels or DEFAULT_MAX_PIXELS
    if whole <= budget and source.height * source.width <= limit:
        return False
    carried = carried_metadata(job, source, fmt)
    if carried and fmt.name == "TIFF":
        from imgconv.sinks import tiff_tags

        if tiff_tags(carried) is None:
            return False  # EXIF folders: Pillow writes them, whole
    elif carried and fmt.name != "PNG":
        return False  # no other streaming format keeps metadata (the format table)
    out_height = job.output_shape((source.height, source.width))[0]
    rows = costs.band_rows(budget=budget, height=out_height)
    if rows == 0:
        raise UsageFailure(
            f"streaming this image needs at least {memory.describe(costs.total(1))}, "
            f"more than --memory {memory.describe(budget)}; raise --memory",
            subject=source.path,
        )
    integer_input = source.scan()
    operation = job.operation(integer_input=integer_input, subject=source.path)
    from imgconv import streaming

    options = job.output.encode_options()
    streaming.run(source, Path(target), fmt, operation, finish, band=rows, options=options, metadata=carried)
    return True


def carried_metadata(job: FileJob, source: Source, fmt: Format) -> Metadata:
    """The profile and EXIF the whole-image route would write into ``fmt``."""
    from imgconv.metadata import Metadata

    if job.output.strip:
        return Metadata()
    stored = 3 if source.channels == 1 and not fmt.stores_gray else source.channels
    return source.metadata().only(icc=fmt.icc, exif=fmt.exif).fitting(channels=stored)


def memory_plan(job: FileJob, source: Source, target: str, fmt: Format) -> tuple[Finish, Costs, int]:
    """The finish of ``source`` into ``fmt``, what a band of output rows
    holds, and what the whole-image route would hold (bytes); refuses
    what the whole-image route would refuse (a kernel larger than the
    image, a format that cannot hold the result)."""
    import numpy as np

    value_range = job.value_range or ("float" if fmt.matrix else "clip")
    depth = job.output.depth or source.depth or 8
    finish = job.finish(maxval=(1 << depth) - 1, value_range=value_range, source_max=source.maxval)
    shape = (source.height, source.width)
    job.check_shape(shape, subject=source.path)
    out_height, out_width = job.output_shape(shape)
    out_channels = source.channels + source.has_alpha
    check_capacity(
        fmt,
        is_float=finish.dtype.kind == "f",
        depth=16 if finish.dtype == np.dtype(np.uint16) else None,
        channels=source.channels,
        has_alpha=source.has_alpha,
        target=target,
    )
    costs = job.costs(source, finish)
    out_bytes = out_width * out_channels * finish.dtype.itemsize
    costs.rows(4, 0, out_bytes)  # the band combined with alpha, and the encoder's copies of it
    costs.fixed(min(3 << 20, out_height * out_bytes))  # deflate pieces, TIFF strips
    # The whole-image route also holds the file (mapped: PGM/PPM, .npy) and, for a TIFF,
    # Pillow's decode beside the planes; both are counted for every source (the mapped
    # ones are overestimated, so they stream a little sooner than they must).
    whole = costs.total(out_height) + source.file_size + 2 * source.height * source.width * out_channels * 2
    return finish, costs, whole


def apply_costs(job: ApplyJob, source: Source, finish: Finish) -> Costs:
    """What a band of a filter's output rows holds: each step's band, its halo and strips, the source's rows."""
    from imgconv.memory import Costs
    from imgconv.padding import output_shape

    costs = Costs()
    shapes = [(source.height, source.width)]
    for kernel in job.plan.kernels:
        shapes.append(output_shape(shapes[-1], kernel.shape, job.plan.options.geometry))
    channels = source.channels
    a, b = 1.0, 0.0  # rows of the current step's output, for a band of R output rows
    last = len(job.plan.kernels) - 1
    for index in range(last, -1, -1):
        kh = job.plan.kernels[index].shape[0]
        width = shapes[index + 1][1]
        itemsize = finish.dtype.itemsize if index == last and finish.elementwise else 8
        costs.rows(a, b, width * channels * itemsize)  # the step's output band
        _strip_costs(costs, width * channels)
        b += 2 * (kh - 1)  # its halo, and as many rows from the far edge for wrap or reflect
        if index:
            costs.rows(a, b, shapes[index][1] * channels * 8)  # the cached rows of the step before
    _source_costs(costs, source, a, b)
    if source.has_alpha:
        costs.rows(1, 0, shapes[-1][1] * 24)  # alpha rows gathered, then finished in float64
    return costs


def pool_costs(job: PoolJob, source: Source, finish: Finish) -> Costs:
    """What a band of pooled output rows holds: the pooled band, the rows it reduces, the source's rows."""
    from imgconv.memory import Costs

    costs = Costs()
    (size, _), (stride, _) = job.options.window, job.options.steps
    width = job.output_shape((source.height, source.width))[1]
    channels = source.channels
    costs.rows(1, 0, width * channels * 32)  # the pooled band in float64, and its finishing
    costs.rows(stride, size, width * channels * 8)  # the rows reduced across columns
    _source_costs(costs, source, stride, size)
    if source.has_alpha:
        costs.rows(stride, size, width * 8)
    return costs


def _source_costs(costs: Costs, source: Source, a: float, b: float) -> None:
    """``a * R + b`` rows read from ``source``: the stored samples, their
    conversion, and the cached block with its halo."""
    stored = source.samples.samples * source.samples.dtype.itemsize
    planes = source.channels * source.dtype.itemsize + source.has_alpha
    costs.rows(a, b, source.width * (stored + 3 * planes))
    costs.fixed(source.samples.overhead)


#: Bytes of temporaries per value in flight in a strip (sums, float copies, finishing).
_STRIP_TEMPORARIES = 48


def _strip_costs(costs: Costs, values_per_row: int) -> None:
    """The strips in flight on every core: at most the band, at most each thread's strip."""
    from imgconv.pipeline import STRIP_ELEMENTS, thread_count

    in_flight = thread_count() * STRIP_ELEMENTS * 4
    costs.rows(1, 0, values_per_row * _STRIP_TEMPORARIES, cap=max(1.0, in_flight / max(1, values_per_row)))
