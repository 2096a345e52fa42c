"""The memory a run plans for: ``--memory``, whole image or strips, strip height.

A run's budget (``--memory``, ``IMGCONV_MEMORY``, 1 GiB by default) covers
the image data imgconv holds: decoded pixels, the planes of each kernel
step, the strips and their halos, the encoder's buffers.  The Python
interpreter and its libraries (about 60-90 MiB) come on top of it.

What a run holds is estimated from the shapes alone, as a sum of blocks of
rows: a band of R output rows needs ``a * R + b`` rows of each stage
(a kernel's halo adds ``kh - 1`` rows, pooling reads ``stride`` rows per
output row), each of a known width and type.  The whole-image estimate is
the same sum with R the image's height, plus what decoding a whole file
costs; the strip height is the largest R whose estimate fits the budget,
up to ``BAND_CAP``: past a few tens of MiB, larger strips are not faster.

>>> parse_size('512M'), parse_size('1.5G'), parse_size('64k'), parse_size('1000')
(536870912, 1610612736, 65536, 1000)
>>> costs = Costs()
>>> costs.rows(1, 0, 300)      # the output band: R rows of 300 bytes
>>> costs.rows(1, 2, 300)      # its input: R + 2 rows (a 3x3 kernel's halo)
>>> costs.fixed(1000)
>>> costs.total(10), costs.band_rows(budget=10_000, height=100)
(7600, 14)
"""

from __future__ import annotations

import math
import operator
import os
import re
from dataclasses import dataclass, field

from imgconv.errors import ParameterError, UsageFailure

#: The budget when neither ``--memory`` nor ``IMGCONV_MEMORY`` is given.
DEFAULT_MEMORY = 1 << 30

#: The environment variable that sets the budget.
ENVIRONMENT = "IMGCONV_MEMORY"

#: No band of strips is planned larger than this: beyond it the per-strip
#: overheads are already negligible, and a smaller peak leaves the machine
#: to the rest of its work.
BAND_CAP = 64 << 20

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, *, parameter: str = "memory") -> int:
    """``'512M'``, ``'4G'``, ``'1.5g'``, ``'64KiB'`` or bytes: a number of bytes (units of 1024).

    >>> parse_size('4G') == 4 * 1024**3
    True
    >>> parse_size('lots')
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: memory: 'lots' is not a size; give bytes or a number with K, M, G or T, e.g. 512M or 4G
    """
    match = _SIZE.fullmatch(text)
    value = math.floor(float(match.group(1)) * _UNITS[match.group(2).lower()]) if match else 0
    if value < 1:
        raise ParameterError(
            f"'{text}' is not a size; give bytes or a number with K, M, G or T, e.g. 512M or 4G", parameter=parameter
        )
    return value


def budget(memory: int | None = None) -> int:
    """The budget in bytes: ``memory`` if given, else ``IMGCONV_MEMORY``, else 1 GiB.

    ``memory`` must be a positive integer (not a bool, not a float).

    >>> budget(4096)
    4096
    >>> budget(1.5)
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: memory: must be a whole number of bytes, got 1.5
    """
    if memory is not None:
        # A bool is an int to Python and a float may hold a fraction of a byte: neither is a size.
        if isinstance(memory, bool) or not hasattr(type(memory), "__index__"):
            raise ParameterError(f"must be a whole number of bytes, got {memory!r}", parameter="memory")
        memory = operator.index(memory)
        if memory < 1:
            raise ParameterError(f"must be positive, got {memory}", parameter="memory")
        return memory
    text = os.environ.get(ENVIRONMENT, "").strip()
    if not text:
        return DEFAULT_MEMORY
    try:
        return parse_size(text)
    except ParameterError as exc:
        raise UsageFailure(exc.cause, subject=ENVIRONMENT) from None


def describe(size: int) -> str:
    """A size for messages: ``'64 MiB'``, ``'1.5 GiB'``, ``'900 bytes'``.

    Rounded up to three digits, so that a need is never shown as less than
    it is ("needs at least 4.01 MiB, more than --memory 4 MiB").

    >>> describe(64 << 20), describe(3 << 29), describe(900), describe((4 << 20) + 1)
    ('64 MiB', '1.5 GiB', '900 bytes', '4.01 MiB')
    """
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit:
            value = size / unit
            decimals = max(0, 2 - int(math.log10(value)))
            step = 10.0**-decimals
            shown = math.ceil(value / step - 1e-9) * step
            text = f"{shown:.{decimals}f}"
            return (text.rstrip("0").rstrip(".") if decimals else text) + f" {name}"
    return f"{size} bytes"


@dataclass
class Costs:
    """What a run holds for a band of R output rows: ``fixed`` bytes plus
    blocks of ``min(a * R + b, cap)`` rows of ``row_bytes`` each."""

    _fixed: float = 0.0
    parts: list[tuple[float, float, float, int]] = field(default_factory=list)

    def rows(self, a: float, b: float, row_bytes: int, *, cap: float = math.inf) -> None:
        """A block of ``a * R + b`` rows of ``row_bytes`` each, at most ``cap`` rows
        (the strips in flight on every core, say, however large the band)."""
        self.parts.append((a, b, cap, row_bytes))

    def fixed(self, nbytes: float) -> None:
        """Bytes held whatever the band (a decoded TIFF segment, a deflate piece)."""
        self._fixed += nbytes

    def total(self, rows: int) -> int:
        """Bytes for a band of ``rows`` output rows."""
        return math.ceil(self._fixed + sum(min(a * rows + b, cap) * size for a, b, cap, size in self.parts))

    def band_rows(self, *, budget: int, height: int) -> int:
        """The most output rows per band (up to ``height``) that fit ``budget``
        and ``BAND_CAP``; 0 when not even one row fits."""
        if self.total(1) > budget:
            return 0
        room = min(budget, max(BAND_CAP, self.total(1)))
        low, high = 1, height  # total() grows with the rows: find the last that fits
        while low < high:
            middle = (low + high + 1) // 2
            if self.total(middle) <= room:
                low = middle
            else:
                high = middle - 1
        return low
