"""Huge images in bounded memory: a file job run strip by strip, read to write.

When the input can be read in row strips (``imgconv.sources``) and the
output written in row strips (a ``Format`` with a ``sink``), a file job
(``imgconv.jobs``) may run here instead of decoding the whole image: its
output rows are produced a band at a time, each band pulling the input rows
it needs (a kernel's halo, a border's rows from the far edge, a pooling
window's rows) through the same row machinery the whole-image route runs
(``imgconv.rows``, ``imgconv.pipeline``, ``imgconv.pooling``), finished by
the same ``Finish`` and written by the sink the whole-image encoder uses.
So both routes give the same bytes; only the memory differs.

``normalize`` takes two passes over the input: the first finds the
result's minimum and maximum, the second finishes with them.

A caller may watch the rows go by with ``observe_rows`` (the command line
draws a progress bar with it); nothing is reported for whole images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from imgconv.picture import finish_alpha, finite
from imgconv.rows import CachedRows, Rows

if TYPE_CHECKING:
    from imgconv.encoders import EncodeOptions
    from imgconv.finishing import Finish
    from imgconv.formats import Format
    from imgconv.metadata import Metadata
    from imgconv.sources import Source

#: ``(rows done, rows in all, what)``: called after each band of a streamed image.
RowObserver = Callable[[int, int, str], None]

_OBSERVER: ContextVar[RowObserver | None] = ContextVar("imgconv_row_observer", default=None)


@contextmanager
def observe_rows(observer: RowObserver | None) -> Iterator[None]:
    """Call ``observer(done, total, what)`` after each band of every image
    streamed in this context (``what`` names the pass of a two-pass run).

    >>> seen = []
    >>> with observe_rows(lambda done, total, what: seen.append(done)):
    ...     _report(3, 10, 'rows')
    >>> seen
    [3]
    """
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def _report(done: int, total: int, what: str) -> None:
    observer = _OBSERVER.get()
    if observer is not None:
        observer(done, total, what)


@dataclass(frozen=True)
class Operation:
    """What a job does to a picture's rows, as the streaming route needs it.

    ``planes(rows, finish)`` gives the output rows, finished when
    ``finish.elementwise`` and else the values ``finish`` maps (normalize's
    first pass); ``alpha(rows)`` carries the alpha plane to the output's
    geometry.
    """

    planes: Callable[[Rows, Finish], Rows]
    alpha: Callable[[Rows], Rows]


def run(
    source: Source,
    target: Path,
    fmt: Format,
    operation: Operation,
    finish: Finish,
    *,
    band: int,
    options: EncodeOptions,
    metadata: Metadata | None = None,
) -> None:
    """Stream ``source`` through ``operation`` into ``target`` (written
    atomically), ``band`` output rows at a time."""
    from imgconv.sinks import combined, sink_for
    from imgconv.writing import write_atomic

    planes = CachedRows(source.planes)  # a band's halo is read (and converted) once
    passes = 1 if finish.elementwise else 2
    first = operation.planes(planes, finish)
    height, width, channels = first.shape
    total = passes * height
    if not finish.elementwise:
        low, high = np.inf, -np.inf
        for top in range(0, height, band):
            values = first.read(top, min(top + band, height))
            lo, hi = finish.extent(values)
            low, high = min(low, lo), max(high, hi)
            _report(min(top + band, height), total, "pass 1 of 2 (range)")
        finish = finish.with_bounds(low, high)
        planes = CachedRows(source.planes)
        first = operation.planes(planes, finish)
    alpha_source = source.alpha
    alpha = operation.alpha(CachedRows(alpha_source)) if alpha_source is not None else None
    out_channels = channels + (alpha is not None)
    done = total - height
    what = "rows" if passes == 1 else "pass 2 of 2"

    def bands() -> Iterator[np.ndarray]:
        for top in range(0, height, band):
            stop = min(top + band, height)
            data = first.read(top, stop)
            finite(data)
            carried = None
            if alpha is not None:
                carried = finish_alpha(alpha.read(top, stop)[:, :, 0], source.maxval, finish)
            yield combined(data, carried)
            _report(done + stop, total, what)

    sink = sink_for(fmt)

    def write(stream: BinaryIO) -> None:
        if metadata:  # only PNG and TIFF take it here (FileJob.route)
            sink(stream, (height, width, out_channels), finish.dtype, bands(), options=options, metadata=metadata)
        else:
            sink(stream, (height, width, out_channels), finish.dtype, bands(), options=options)

    write_atomic(target, write)
