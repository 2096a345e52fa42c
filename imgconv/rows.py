"""Images as rows that can be read in ranges, wherever the rows come from.

A picture in memory, a file read strip by strip and a kernel step
computed on demand all offer the same two things: their H x W x C shape
and ``read(start, stop)``.  That is what lets one pipeline run over a whole
image in memory or over a huge file a band of rows at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np


class Rows(Protocol):
    """An H x W x C image whose rows can be read in ranges: a picture in
    memory, a file read strip by strip, or a kernel step computed on demand."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (R x W x C); read them in increasing order where you can."""
        ...


class ArrayRows:
    """Rows of an array in memory: every read is a view, nothing is copied."""

    def __init__(self, planes: np.ndarray) -> None:
        self.planes = planes

    @property
    def shape(self) -> tuple[int, int, int]:
        h, w, c = self.planes.shape
        return h, w, c

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.planes[start:stop]


class CachedRows:
    """Rows of another source, keeping the last block read: strips one after
    the other share their kernel's halo, which is then computed (or decoded) once."""

    def __init__(self, source: Rows) -> None:
        self.source = source
        self._start, self._block = 0, np.empty((0, *source.shape[1:]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.source.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        cached_stop = self._start + len(self._block)
        if self._start <= start < cached_stop:
            kept = self._block[start - self._start : stop - self._start]
            block = kept if stop <= cached_stop else np.concatenate([kept, self.source.read(cached_stop, stop)])
        else:
            block = self.source.read(start, stop)
        self._start, self._block = start, block
        return block


def read_rows(source: Rows, row_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``row_map`` names (-1: a zero row), as a block and a map into it.

    Each run of consecutive rows is one read: the strip itself, and the few
    rows a border rule takes from elsewhere (the far edge for ``wrap``).  A
    map covering one run (a whole image in memory) reads a view, not a copy.

    >>> block, local = read_rows(ArrayRows(np.arange(5)[:, None, None]), np.array([3, 4, 0, 1]))
    >>> block[:, 0, 0].tolist(), local.tolist()
    ([0, 1, 3, 4], [2, 3, 0, 1])
    """
    valid = row_map[row_map >= 0]
    if not valid.size:  # only pad rows: any row stands in for the block's type, all are read as zeros
        return source.read(0, 1), row_map
    wanted = _distinct(valid)
    if wanted[-1] - wanted[0] == len(wanted) - 1:
        block = source.read(int(wanted[0]), int(wanted[-1]) + 1)
        return block, np.where(row_map >= 0, row_map - wanted[0], -1)
    runs = np.split(wanted, np.flatnonzero(np.diff(wanted) != 1) + 1)
    block = np.concatenate([source.read(int(run[0]), int(run[-1]) + 1) for run in runs])
    return block, np.where(row_map >= 0, np.searchsorted(wanted, row_map), -1)


def _distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for a small index array, without the import of numpy.ma
    that ``np.unique`` costs a fresh process (about 20 ms, more than a small image's whole run).

    >>> _distinct(np.array([3, 1, 3, 0])).tolist()
    [0, 1, 3]
    """
    ordered = np.sort(values)
    keep = np.empty(ordered.shape, dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class MappedRows:
    """Rows of another source, each band passed through ``function``
    (a finishing step, a change of type)."""

    def __init__(self, source: Rows, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.source, self.function = source, function

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.source.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.function(self.source.read(start, stop))


class IndexRows:
    """Rows of another source picked by index maps (-1: a zero), as an alpha
    plane is carried through a kernel's geometry without being filtered."""

    def __init__(self, source: Rows, row_map: np.ndarray, column_map: np.ndarray) -> None:
        self.source, self.row_map, self.column_map = source, row_map, column_map

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.row_map), len(self.column_map), self.source.shape[2]

    def read(self, start: int, stop: int) -> np.ndarray:
        from imgconv.padding import gather

        block, local = read_rows(self.source, self.row_map[start:stop])
        return gather(block, local, self.column_map)
