"""Kernels as data: the ``Kernel`` type, the spec parser and the YAML registry.

A kernel keeps its values exactly as written (``Fraction`` where the text was
an integer, a decimal or a fraction; ``float`` for computed weights such as a
Gaussian), plus a divisor ``scale`` and an ``offset``:
``out = conv(image, values) / scale + offset``.

This module is imported by ``imgconv kernels list``, so it stays free of
numpy at import time; ``Kernel.weights`` imports it when asked.

>>> k = parse_spec('0,-1,0;-1,5,-1;0,-1,0')
>>> k.shape, k.total
((3, 3), Fraction(1, 1))
>>> parse_spec('3x1:1,2,1').shape
(3, 1)
>>> parse_spec('box:3').scale
Fraction(9, 1)
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from imgconv.errors import KernelError, RegistryError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

Number = Fraction | float

#: Kernels larger than this on either side are refused: a 1001x1001 kernel is
#: almost certainly a mistake, and direct convolution with it would run for
#: hours.  Raise it with ``IMGCONV_MAX_KERNEL``.
MAX_KERNEL_SIDE = 256

#: Integer weights are accumulated exactly in float64 as long as every partial
#: sum stays below 2**53; this bounds ``sum(|w|) * 65535`` for 16-bit input.
_EXACT_LIMIT = 2**53 // 65536

#: Decimal exponents beyond this are outside float64 (1e308 .. 5e-324).
_MAX_EXPONENT = 400

ENV_REGISTRY = "IMGCONV_KERNELS"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Kernel:
    """A 2-D kernel: values as written, a divisor and an offset.

    >>> k = Kernel("gauss", ((1, 2, 1), (2, 4, 2), (1, 2, 1)), scale=16)
    >>> k.shape, k.total, k.separable
    ((3, 3), Fraction(16, 1), True)
    >>> k.factors()
    ((Fraction(1, 1), Fraction(2, 1), Fraction(1, 1)), (Fraction(1, 1), Fraction(2, 1), Fraction(1, 1)))
    """

    name: str
    values: tuple[tuple[Number, ...], ...]
    scale: Number = Fraction(1)
    offset: Number = Fraction(0)
    description: str = ""
    source: str = ""
    origin: str = "inline"

    def __post_init__(self) -> None:
        rows = tuple(tuple(_exact(v) for v in row) for row in self.values)
        object.__setattr__(self, "values", rows)
        object.__setattr__(self, "scale", _exact(self.scale))
        object.__setattr__(self, "offset", _exact(self.offset))
        _validate(rows, self.scale, self.offset, subject=f"kernel '{self.name}'")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), len(self.values[0])

    @property
    def total(self) -> Number:
        """The sum of the values (before the scale is applied)."""
        return sum((v for row in self.values for v in row), Fraction(0))

    @property
    def exact(self) -> bool:
        """True when every value, the scale and the offset are rationals."""
        return all(isinstance(v, Fraction) for row in self.values for v in row)

    @cached_property
    def weights(self) -> "np.ndarray":
        """The values as a read-only float64 array (scale not applied)."""
        import numpy as np

        array = np.array([[float(v) for v in row] for row in self.values], dtype=np.float64)
        array.setflags(write=False)
        return array

    def integer_form(self) -> tuple["np.ndarray", Number]:
        """Integer weights and a divisor giving the same convolution.

        Rational kernels (``1/9``, ``0.25``) are scaled by the least common
        denominator so that every backend accumulates exact integers and the
        only rounding is the final division, done once, the same way
        everywhere.  Kernels with real values come back unchanged.

        >>> w, d = parse_spec('1/4,1/2,1/4').integer_form()
        >>> w.tolist(), d
        ([[1.0, 2.0, 1.0]], Fraction(4, 1))
        """
        import numpy as np

        if not self.exact:
            return self.weights, self.scale
        denominator = math.lcm(*(v.denominator for row in self.values for v in row))
        integers = [[int(v * denominator) for v in row] for row in self.values]
        if sum(abs(v) for row in integers for v in row) > _EXACT_LIMIT or denominator > _EXACT_LIMIT:
            return self.weights, self.scale
        array = np.array(integers, dtype=np.float64)
        array.setflags(write=False)
        return array, self.scale * denominator

    @property
    def separable(self) -> bool:
        """True when the kernel is an outer product of a column and a row."""
        return self.factors() is not None

    def factors(self) -> tuple[tuple[Number, ...], tuple[Number, ...]] | None:
        """The column and row whose outer product is the kernel, or None.

        Exact for rational kernels; real kernels are tested to 1e-12.
        """
        rows, cols = self.shape
        pivot_r, pivot_c = max(
            ((r, c) for r in range(rows) for c in range(cols)),
            key=lambda rc: abs(self.values[rc[0]][rc[1]]),
        )
        pivot = self.values[pivot_r][pivot_c]
        if pivot == 0:
            return None
        # ``exact`` walks every value: asked inside the loop below it made a
        # 256x256 kernel take hours to show.
        exact = self.exact
        row: tuple[Number, ...] = tuple(v / pivot for v in self.values[pivot_r])
        if exact:
            # Show the smallest integer row ([1, 4, 6, 4, 1], not [1/6, ...]).
            row = tuple(v / _content(row) for v in row)
        column = tuple(self.values[r][pivot_c] / row[pivot_c] for r in range(rows))
        biggest = abs(pivot)
        for r in range(rows):
            for c in range(cols):
                product = column[r] * row[c]
                value = self.values[r][c]
                if exact:
                    if product != value:
                        return None
                elif abs(product - value) > 1e-12 * biggest:
                    return None
        return column, row

    def flipped(self) -> "Kernel":
        """The kernel rotated by 180 degrees (what convolution applies)."""
        return replace(self, values=tuple(tuple(reversed(row)) for row in reversed(self.values)))


# --------------------------------------------------------------------------
# Numbers and validation


def _content(values: Sequence[Fraction]) -> Fraction:
    """The largest rational dividing every value into integers, signed so the
    first non-zero value comes out positive."""
    numerators = math.gcd(*(v.numerator for v in values))
    denominators = math.lcm(*(v.denominator for v in values))
    first = next(v for v in values if v != 0)
    return Fraction(numerators, denominators) * (1 if first > 0 else -1)


def _exact(value: Any) -> Number:
    """Keep rationals exact; bools, strings and other types are refused."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a kernel value")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return value
    raise TypeError(f"{value!r} is not a number")


def _validate(rows: Sequence[Sequence[Number]], scale: Number, offset: Number, *, subject: str) -> None:
    if not rows or not rows[0]:
        raise KernelError("the kernel is empty", subject=subject)
    width = len(rows[0])
    for index, row in enumerate(rows, start=1):
        if len(row) != width:
            raise KernelError(
                f"row {index} has {len(row)} values, row 1 has {width} (rows must be equally long)",
                subject=subject,
            )
    check_size(len(rows), width, subject=subject)
    for value in (*(v for row in rows for v in row), scale, offset):
        if isinstance(value, float) and not math.isfinite(value):
            raise KernelError(f"non-finite value {value}", subject=subject)
    if scale == 0:
        raise KernelError("the scale (divisor) is 0", subject=subject)


def check_size(height: int, width: int, *, subject: str) -> None:
    """Refuse kernels above the documented side limit."""
    limit = max_kernel_side()
    if height > limit or width > limit:
        raise KernelError(
            f"{height}x{width} is larger than the limit of {limit}x{limit} (set IMGCONV_MAX_KERNEL to raise it)",
            subject=subject,
        )


def max_kernel_side() -> int:
    """The largest accepted kernel side (``IMGCONV_MAX_KERNEL`` overrides)."""
    text = os.environ.get("IMGCONV_MAX_KERNEL")
    if text and text.isdigit() and int(text) > 0:
        return int(text)
    return MAX_KERNEL_SIDE


def parse_number(text: str, *, where: str) -> Number:
    """Parse an integer, decimal or ``a/b`` fraction exactly.

    >>> parse_number('-1/9', where='x'), parse_number('0.25', where='x')
    (Fraction(-1, 9), Fraction(1, 4))
    """
    token = text.strip()
    lowered = token.lower().lstrip("+-")
    if lowered in {"nan", "inf", "infinity"}:
        raise KernelError(f"{where}: non-finite value '{token}'")
    # Fraction('1e-9999999') builds a 10-million-digit integer (seconds; more
    # digits, hours), and values past float's range fail when applied.
    exponent = re.search(r"e([+-]?\d+)$", lowered)
    if exponent and abs(int(exponent.group(1))) > _MAX_EXPONENT:
        raise KernelError(f"{where}: '{token}' is out of range")
    try:
        value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        if re.fullmatch(r"[+-]?\d+/0+", token):
            raise KernelError(f"{where}: division by zero in '{token}'") from None
        raise KernelError(f"{where}: '{token}' is not a number") from None
    if abs(value) > sys.float_info.max or (value != 0 and abs(value) < sys.float_info.min):
        raise KernelError(f"{where}: '{token}' is out of float64's range")
    return value


# --------------------------------------------------------------------------
# Inline specs

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*:(.*)$", re.DOTALL)
_PARAM_RE = re.compile(r"^([a-z]+):(.*)$", re.DOTALL)


def parse_values(text: str, *, subject: str, shape: tuple[int, int] | None = None) -> tuple[tuple[Number, ...], ...]:
    """Parse ``'a,b;c,d'`` rows (or a flat square list, or newline rows).

    Values are separated by commas or white space; rows by ``;`` or newlines.

    >>> parse_values('1 2\\n3 4', subject='k')
    ((Fraction(1, 1), Fraction(2, 1)), (Fraction(3, 1), Fraction(4, 1)))
    """
    row_texts = [r for r in re.split(r"[;\n]", text) if r.strip()]
    if not row_texts:
        raise KernelError("no values", subject=subject)
    token_rows = [[t for t in re.split(r"[,\s]+", row_text.strip()) if t] for row_text in row_texts]
    # Refuse an enormous kernel before parsing a million numbers.
    if shape is not None:
        check_size(*shape, subject=subject)
    elif len(token_rows) == 1:
        side = math.isqrt(len(token_rows[0]))
        check_size(*((side, side) if side * side == len(token_rows[0]) else (1, len(token_rows[0]))), subject=subject)
    else:
        check_size(len(token_rows), max(len(t) for t in token_rows), subject=subject)
    rows: list[list[Number]] = []
    position = 0
    for r, tokens in enumerate(token_rows, start=1):
        row = []
        for c, token in enumerate(tokens, start=1):
            position += 1
            where = f"value {position} (row {r}, column {c})" if len(row_texts) > 1 else f"value {position}"
            row.append(parse_number(token, where=f"{subject}: {where}"))
        rows.append(row)
    if shape is not None:
        flat = [v for row in rows for v in row]
        height, width = shape
        if height * width != len(flat):
            raise KernelError(
                f"a {height}x{width} kernel needs {height * width} values, got {len(flat)}",
                subject=subject,
            )
        rows = [flat[i * width : (i + 1) * width] for i in range(height)]
    elif len(rows) == 1 and len(rows[0]) > 1 and not re.search(r"[;\n]", text):
        # A flat list of n*n values is square; 'a,b,c,d;' keeps one row.
        flat = rows[0]
        side = math.isqrt(len(flat))
        if side * side == len(flat):
            rows = [flat[i * side : (i + 1) * side] for i in range(side)]
    for r, row in enumerate(rows, start=1):
        if len(row) != len(rows[0]):
            raise KernelError(
                f"row {r} has {len(row)} values, row 1 has {len(rows[0])} (rows must be equally long)",
                subject=subject,
            )
    return tuple(tuple(row) for row in rows)


def gaussian(sigma: float, size: int | None = None) -> Kernel:
    """A normalised sampled Gaussian; ``size`` defaults to ``2*ceil(3*sigma)+1``.

    >>> k = gaussian(1.0)
    >>> k.shape, round(k.total, 12)
    ((7, 7), 1.0)
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise KernelError(f"sigma must be a positive number, got {sigma}", subject="gaussian")
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
    if size < 1:
        raise KernelError(f"size must be at least 1, got {size}", subject="gaussian")
    centre = (size - 1) / 2
    # Divide before squaring: sigma * sigma underflows to 0 for a tiny sigma
    # (and ** raises on overflow), where z * z goes to inf and exp to 0.
    line = []
    for i in range(size):
        z = (i - centre) / sigma
        line.append(math.exp(-z * z / 2))
    norm = sum(line) ** 2
    values = tuple(tuple(a * b / norm for b in line) for a in line)
    return Kernel(
        f"gaussian:sigma={sigma:g},size={size}",
        values,
        description=f"sampled Gaussian, sigma {sigma:g}, normalised to sum 1",
        source="computed",
        origin="parametric",
    )


def box(height: int, width: int) -> Kernel:
    """A ``height x width`` mean filter: ones divided by their count."""
    return Kernel(
        f"box:{height}x{width}" if height != width else f"box:{height}",
        tuple(tuple(Fraction(1) for _ in range(width)) for _ in range(height)),
        scale=Fraction(height * width),
        description=f"{height}x{width} mean (box) filter",
        source="computed",
        origin="parametric",
    )


def _parse_parametric(kind: str, args: str, spec: str) -> Kernel:
    subject = f"kernel '{spec}'"
    if kind == "box":
        match = re.fullmatch(r"\s*(\d+)(?:\s*x\s*(\d+))?\s*", args)
        if not match:
            raise KernelError("box takes a size N or RxC, as in 'box:5'", subject=subject)
        height = int(match.group(1))
        width = int(match.group(2) or height)
        if height < 1 or width < 1:
            raise KernelError("box size must be at least 1", subject=subject)
        check_size(height, width, subject=subject)
        return box(height, width)
    if kind == "gaussian":
        params: dict[str, str] = {}
        for item in filter(None, (a.strip() for a in args.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key.strip() not in {"sigma", "size"}:
                raise KernelError(
                    f"'{item}' is not sigma=S or size=N (as in 'gaussian:sigma=2,size=9')", subject=subject
                )
            params[key.strip()] = value.strip()
        if "sigma" not in params:
            raise KernelError("gaussian needs sigma, as in 'gaussian:sigma=1.5'", subject=subject)
        try:
            sigma = float(params["sigma"])
        except ValueError:
            raise KernelError(f"sigma '{params['sigma']}' is not a number", subject=subject) from None
        size = None
        if "size" in params:
            if not params["size"].isdigit():
                raise KernelError(f"size '{params['size']}' is not a whole number", subject=subject)
            size = int(params["size"])
        if size is None and math.isfinite(sigma) and sigma > 0:
            # 3 * sigma overflows to inf near the float maximum; such a
            # kernel is far over the size limit either way.
            size = 2 * math.ceil(min(3 * sigma, 2.0**62)) + 1
        if size is not None:
            check_size(size, size, subject=subject)
        return gaussian(sigma, size)
    raise KernelError(f"unknown parametric kernel '{kind}' (known: box, gaussian)", subject=subject)


def parse_spec(spec: str, registry: "Registry | None" = None) -> Kernel:
    """Turn a ``--kernel`` spec into a Kernel.

    Forms: a registry name; rows ``'0,-1,0;-1,5,-1;0,-1,0'``; a flat square
    list; ``'RxC:values'``; ``'gaussian:sigma=S[,size=N]'``; ``'box:N'``;
    ``'@FILE'`` (YAML or a whitespace matrix).
    """
    text = spec.strip()
    subject = f"kernel '{spec}'"
    if not text:
        raise KernelError("the spec is empty", subject="kernel ''")
    if text.startswith("@"):
        from pathlib import Path

        return load_kernel_file(Path(text[1:]))
    match = _SHAPE_RE.match(text)
    if match:
        shape = (int(match.group(1)), int(match.group(2)))
        if 0 in shape:
            raise KernelError("a kernel side cannot be 0", subject=subject)
        values = parse_values(match.group(3), subject=subject, shape=shape)
        return Kernel(text, values)
    match = _PARAM_RE.match(text)
    if match:
        return _parse_parametric(match.group(1), match.group(2), spec)
    if _NAME_RE.match(text) and not re.fullmatch(r"[+-]?(inf|infinity|nan)", text, re.IGNORECASE):
        return (registry if registry is not None else load_registry()).get(text)
    return Kernel(text, parse_values(text, subject=subject))


def load_kernel_file(path: Path) -> Kernel:
    """Read ``@FILE``: YAML (a matrix or a registry-style entry) or plain text."""
    subject = f"kernel file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KernelError("no such file", subject=subject) from None
    except IsADirectoryError:
        raise KernelError("is a directory", subject=subject) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise KernelError(getattr(exc, "strerror", None) or str(exc), subject=subject) from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        data = _safe_load(text, str(path))
        if isinstance(data, list):
            data = {"values": data}
        if not isinstance(data, dict):
            raise KernelError("expected a matrix (a list of rows) or a mapping with 'values'", subject=subject)
        data.setdefault("name", path.stem)
        return _entry_to_kernel(data, origin=str(path), subject=subject)
    return Kernel(path.stem, parse_values(text, subject=subject), origin=str(path))


# --------------------------------------------------------------------------
# The registry


@dataclass
class Registry:
    """Named kernels; later sources override earlier ones."""

    kernels: dict[str, Kernel] = field(default_factory=dict)

    def get(self, name: str) -> Kernel:
        try:
            return self.kernels[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self.kernels), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KernelError(
                f"unknown kernel '{name}'{hint} ('imgconv kernels list' shows them all)",
            ) from None

    def __iter__(self):
        return iter(self.kernels.values())

    def __len__(self) -> int:
        return len(self.kernels)


_ENTRY_FIELDS = {"name", "description", "values", "scale", "offset", "source"}


class _LineLoader:
    """A SafeLoader that remembers the line of every mapping (for messages)."""

    @staticmethod
    def make():
        import yaml

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class Loader(base):  # type: ignore[misc, valid-type]
            def construct_mapping(self, node, deep=False):
                mapping = super().construct_mapping(node, deep=deep)
                mapping["__line__"] = node.start_mark.line + 1
                return mapping

        return Loader


def _safe_load(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_LineLoader.make())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in str(exc):
            problem = f"{problem} (tags are not allowed: values must be plain data)"
        raise RegistryError(problem, subject=f"{where}{line}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"invalid YAML: {exc}", subject=where) from None


def _number_field(entry: Mapping[str, Any], key: str, default: Number, subject: str) -> Number:
    value = entry.get(key, default)
    if isinstance(value, str):
        return parse_number(value, where=f"{subject}: {key}")
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise KernelError(f"'{key}' must be a number, got {type(value).__name__}", subject=subject)
    if isinstance(value, float) and not math.isfinite(value):
        raise KernelError(f"'{key}' is not finite", subject=subject)
    return _float_as_written(value)


def _float_as_written(value: int | float | Fraction) -> Number:
    """YAML gives 0.25 as a float; keep decimals exact as they were written."""
    if isinstance(value, float):
        return Fraction(repr(value)) if math.isfinite(value) else value
    return Fraction(value)


def _entry_to_kernel(entry: Mapping[str, Any], *, origin: str, subject: str) -> Kernel:
    line = entry.get("__line__")
    where = f"{subject}, line {line}" if line else subject
    unknown = set(entry) - _ENTRY_FIELDS - {"__line__"}
    if unknown:
        raise RegistryError(
            f"unknown field(s) {', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(sorted(_ENTRY_FIELDS))})",
            subject=where,
        )
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RegistryError(
            "'name' is missing or not a plain name (letters, digits, '-', '_', '.')", subject=where
        )
    where = f"{where}: kernel '{name}'"
    values = entry.get("values")
    if values is None:
        raise RegistryError("'values' is missing", subject=where)
    if isinstance(values, str):
        rows = parse_values(values, subject=where)
    elif isinstance(values, list) and values and all(isinstance(r, list) for r in values):
        rows = tuple(tuple(_value(v, where) for v in r) for r in values)
    elif isinstance(values, list) and values and not any(isinstance(r, (list, dict)) for r in values):
        flat = [_value(v, where) for v in values]
        side = math.isqrt(len(flat))
        if side * side != len(flat):
            raise RegistryError(f"a flat list of {len(flat)} values is not square; write rows", subject=where)
        rows = tuple(tuple(flat[i * side : (i + 1) * side]) for i in range(side))
    else:
        raise RegistryError("'values' must be a list of rows of numbers", subject=where)
    for key in ("description", "source"):
        if key in entry and not isinstance(entry[key], str):
            raise RegistryError(f"'{key}' must be text", subject=where)
    try:
        return Kernel(
            name,
            rows,
            scale=_number_field(entry, "scale", Fraction(1), where),
            offset=_number_field(entry, "offset", Fraction(0), where),
            description=entry.get("description", ""),
            source=entry.get("source", ""),
            origin=origin,
        )
    except KernelError as exc:
        raise RegistryError(exc.cause, subject=where) from None


def _value(value: Any, where: str) -> Number:
    if isinstance(value, str):
        return parse_number(value, where=where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RegistryError(f"{value!r} is not a number", subject=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise RegistryError(f"non-finite value {value}", subject=where)
    return _float_as_written(value)


def parse_registry(text: str, *, origin: str) -> dict[str, Kernel]:
    """Parse one registry document: ``kernels:`` holding a list of entries."""
    data = _safe_load(text, origin)
    if isinstance(data, dict) and "kernels" in data:
        entries = data["kernels"]
    else:
        entries = data
    if not isinstance(entries, list):
        raise RegistryError("expected a list of kernels under 'kernels:'", subject=origin)
    found: dict[str, Kernel] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise RegistryError("each kernel must be a mapping with name and values", subject=origin)
        try:
            kernel = _entry_to_kernel(entry, origin=origin, subject=origin)
        except RegistryError:
            raise
        except KernelError as exc:
            raise RegistryError(str(exc)) from None
        if kernel.name in found:
            raise RegistryError(
                f"kernel '{kernel.name}' is defined twice", subject=f"{origin}, line {entry.get('__line__')}"
            )
        found[kernel.name] = kernel
    return found


def builtin_registry_text() -> str:
    # The YAML file sits beside this module (package data).
    with open(os.path.join(os.path.dirname(__file__), "kernels.yaml"), encoding="utf-8") as stream:
        return stream.read()


def builtin_kernels() -> dict[str, Kernel]:
    """The built-in registry, parsed once per version of ``kernels.yaml``.

    Importing PyYAML and parsing the file is a third of ``imgconv kernels
    list``'s run, so the parsed kernels are kept as JSON in the user's cache
    folder, keyed by a checksum of the YAML text: an edited registry is
    parsed again, and a missing, stale or unwritable cache only costs time.
    """
    import zlib

    text = builtin_registry_text()
    cache = os.path.join(_cache_folder(), f"kernels-{zlib.crc32(text.encode('utf-8')):08x}.json")
    try:
        state = os.stat(cache)
        # A process that runs many calls (the resident server) reads the same
        # cache file once; a missing or rewritten one, or another size limit
        # (reading validates every kernel against it), is read as below.
        key = (cache, max_kernel_side())
        known = _read_caches.get(key)
        if known is not None and known[0] == (state.st_mtime_ns, state.st_size, state.st_ino):
            return dict(known[1])
        with open(cache, encoding="utf-8") as stream:
            kernels = _kernels_from_json(stream.read())
        _read_caches[key] = ((state.st_mtime_ns, state.st_size, state.st_ino), kernels)
        return dict(kernels)
    except (OSError, ValueError, KeyError, TypeError, KernelError):
        pass
    kernels = parse_registry(text, origin="built-in")
    _store(cache, _kernels_to_json(kernels))
    return kernels


#: (cache file, size limit) -> (the file's state when read, its kernels); Kernel is immutable, callers get a new dict.
_read_caches: dict[tuple[str, int], tuple[tuple[int, int, int], dict[str, Kernel]]] = {}


def _cache_folder() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "imgconv")


def _kernels_to_json(kernels: dict[str, Kernel]) -> str:
    import json

    def number(value: Number):  # exact values as "a/b" text, floats as JSON numbers
        return str(value) if isinstance(value, Fraction) else value

    return json.dumps([
        {"name": k.name, "values": [[number(v) for v in row] for row in k.values], "scale": number(k.scale),
         "offset": number(k.offset), "description": k.description, "source": k.source}
        for k in kernels.values()
    ])


def _kernels_from_json(text: str) -> dict[str, Kernel]:
    import json

    def number(value):
        return Fraction(value) if isinstance(value, str) else float(value)

    kernels = {}
    for entry in json.loads(text):
        kernels[entry["name"]] = Kernel(
            entry["name"],
            tuple(tuple(number(v) for v in row) for row in entry["values"]),
            scale=number(entry["scale"]),
            offset=number(entry["offset"]),
            description=entry["description"],
            source=entry["source"],
            origin="built-in",
        )
    return kernels


def _store(path: str, text: str) -> None:
    """Write the cache atomically; any failure just leaves it unwritten."""
    folder = os.path.dirname(path)
    temp = f"{path}.{os.getpid()}.part"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass


def registry_paths(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The user's registry files: ``IMGCONV_KERNELS`` first, then ``extra``."""
    from pathlib import Path

    from_env = [Path(p) for p in os.environ.get(ENV_REGISTRY, "").split(os.pathsep) if p]
    return [*from_env, *(Path(p) for p in extra)]


def load_registry(extra: Iterable[str | os.PathLike[str]] = ()) -> Registry:
    """The built-in kernels, then ``IMGCONV_KERNELS``, then ``extra`` files.

    >>> reg = load_registry()
    >>> reg.get('sharpen').values[1]
    (Fraction(-1, 1), Fraction(5, 1), Fraction(-1, 1))
    """
    kernels = builtin_kernels()
    for path in registry_paths(extra):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistryError("no such file", subject=f"registry {path}") from None
        except IsADirectoryError:
            raise RegistryError("is a directory", subject=f"registry {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(getattr(exc, "strerror", None) or str(exc), subject=f"registry {path}") from None
        kernels.update(parse_registry(text, origin=str(path)))
    return Registry(kernels)


def format_number(value: Number) -> str:
    """Show a value as written: ``-1/256``, ``4``, ``0.0751``.

    >>> format_number(Fraction(-1, 256)), format_number(Fraction(4)), format_number(0.5)
    ('-1/256', '4', '0.5')
    """
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return f"{value:.6g}"
