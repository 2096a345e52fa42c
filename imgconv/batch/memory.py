"""How many files a batch may hold in memory at once.

``--jobs`` says how many worker processes may run; memory says how many
files they may hold together.  Each task is estimated from its input's
header (pixels, read without decoding) before it is handed out, and a task
waits while the files in progress and it would not fit in the memory
available, so that ``--jobs 64`` on 8K images runs as many at once as fit,
not 64.  One file always runs, whatever its size: the pixel limit bounds it.

The estimate is deliberately generous: the measured peak of one ``apply``
on an 8K RGB photo is about 4 bytes a value (385 MB for 100 million values,
see benchmarks/results.md), and chains or float results keep float64 planes,
so 24 bytes a value (a value is one channel of one pixel) plus the
interpreter's own use cover every route.

>>> estimate(0) == WORKER_BYTES
True
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

#: A worker process before it reads an image: Python, numpy, scipy, Pillow.
WORKER_BYTES = 150 * 10**6

#: Peak bytes per value of one file in progress (see the module doc).
BYTES_PER_VALUE = 24

#: The share of the available memory a batch plans to use.
SHARE = 0.8


def estimate(values: int) -> int:
    """Peak bytes of one worker holding a file of ``values`` values."""
    return WORKER_BYTES + BYTES_PER_VALUE * values


def declared_values(path: str) -> int:
    """The values (pixels times channels) ``path`` declares, read from its header; 0 if unknown.

    Only regular files are looked at: opening a FIFO would wait for a writer.
    """
    try:
        info = os.stat(path)
    except OSError:
        return 0
    if not stat.S_ISREG(info.st_mode):
        return 0
    lowered = path.lower()
    if lowered.endswith((".csv", ".txt")):
        return info.st_size // 2  # a value and its separator take 2 bytes at least
    try:
        if lowered.endswith(".npy"):
            return _npy_values(path)
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            return width * height * len(image.getbands())
    except Exception:  # an unreadable file fails in its worker, with its own message
        return 0


def _npy_values(path: str) -> int:
    import math

    from numpy.lib import format as npy

    with open(path, "rb") as stream:
        version = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        return math.prod(read_header(stream)[0])


def available_memory() -> int | None:
    """Bytes this machine (or this container's memory limit) can still give, or None if unknown."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:  # cgroup v2: a container's limit, which /proc/meminfo does not show
        with (
            open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit,
            open("/sys/fs/cgroup/memory.current", encoding="ascii") as current,
        ):
            text = limit.read().strip()
            if text != "max":
                found.append(int(text) - int(current.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


class Budget:
    """The memory a batch's files in progress may take together."""

    def __init__(self, total: int | None, measure: Callable[[str], int] = declared_values) -> None:
        self.total = total
        self.measure = measure
        self.held: dict[int, int] = {}

    @classmethod
    def of_this_machine(cls) -> Budget:
        available = available_memory()
        return cls(None if available is None else int(available * SHARE))

    def cost(self, source: str) -> int:
        return estimate(self.measure(source)) if self.total is not None else 0

    def fits(self, cost: int) -> bool:
        """Whether a task of ``cost`` may start now (one always may, alone)."""
        return self.total is None or not self.held or sum(self.held.values()) + cost <= self.total

    def take(self, index: int, cost: int) -> None:
        self.held[index] = cost

    def release(self, index: int) -> None:
        self.held.pop(index, None)
