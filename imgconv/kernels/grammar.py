"""The ``--kernel`` spec grammar: every textual form of a kernel, as a table.

``SPEC_FORMS`` lists the forms in the order they are tried, each a pattern
and a parser; ``PARAMETRIC`` lists the ``kind:arguments`` kernels.  A new
form is one entry in either table.

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
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from imgconv.errors import KernelError, ParameterError
from imgconv.kernels.model import Kernel, Number, check_size, max_kernel_side
from imgconv.limits import Limit, kernel_file_byte_limit, quote, read_text, whole_number

if TYPE_CHECKING:
    from pathlib import Path

    from imgconv.kernels.registry import Registry

#: Decimal exponents beyond this are outside float64 (1e308 .. 5e-324).
_MAX_EXPONENT = 400

#: Longer tokens are refused before conversion: Python converts at most 4,300
#: digits, and no value written that long has a meaning float64 could keep.
_MAX_TOKEN = 1000

#: The written forms of a value: an integer, a decimal (with an exponent), or ``a/b``.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+/[0-9]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def parse_number(text: str, *, where: str) -> Number:
    """Parse an integer, decimal or ``a/b`` fraction exactly.

    >>> parse_number('-1/9', where='x'), parse_number('0.25', where='x')
    (Fraction(-1, 9), Fraction(1, 4))
    """
    token = text.strip()
    lowered = token.lower().lstrip("+-")
    if lowered in {"nan", "inf", "infinity"}:
        raise KernelError(f"{where}: non-finite value {quote(token)}")
    if not _NUMBER.fullmatch(token):
        raise KernelError(f"{where}: {quote(token)} is not a number")
    if len(token) > _MAX_TOKEN:
        raise KernelError(f"{where}: {quote(token)} has too many digits")
    # Fraction('1e-9999999') builds a 10-million-digit integer (seconds; more
    # digits, hours), and values past float's range fail when applied.
    exponent = re.search(r"e([+-]?[0-9]+)$", lowered)
    if exponent and (len(exponent.group(1)) > 6 or abs(int(exponent.group(1))) > _MAX_EXPONENT):
        raise KernelError(f"{where}: {quote(token)} is out of range")
    try:
        value = Fraction(token)
    except ZeroDivisionError:
        raise KernelError(f"{where}: division by zero in {quote(token)}") from None
    if abs(value) > sys.float_info.max or (value != 0 and abs(value) < sys.float_info.min):
        raise KernelError(f"{where}: {quote(token)} is out of float64's range")
    return value


def parse_values(text: str, *, subject: str, shape: tuple[int, int] | None = None) -> tuple[tuple[Number, ...], ...]:
    """Parse ``'a,b;c,d'`` rows (or a flat square list, or newline rows).

    Values are separated by commas or white space; rows by ``;`` or newlines.
    Nothing is silently dropped: an empty value (``1,,1``) or an empty row
    (``1;;1``) is an error; only blank lines and one ``;`` ending a line
    (``'1,2,3,4;'`` keeps one row) are allowed.

    >>> parse_values('1 2\\n3 4', subject='k')
    ((Fraction(1, 1), Fraction(2, 1)), (Fraction(3, 1), Fraction(4, 1)))
    >>> parse_values('1,,1', subject='k')
    Traceback (most recent call last):
    ...
    imgconv.errors.KernelError: k: value 2 is empty (two commas in a row, or a comma at the start or end of a row)
    """
    token_rows = _token_rows(text, subject)
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
            where = f"value {position} (row {r}, column {c})" if len(token_rows) > 1 else f"value {position}"
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


def _token_rows(text: str, subject: str) -> list[list[str]]:
    """The value tokens of each row, refusing empty rows and empty values."""
    rows: list[list[str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue  # blank lines (a file's last newline, spacing) separate nothing
        parts = line.split(";")
        if len(parts) > 1 and not parts[-1].strip():
            parts.pop()  # one ';' may end a line
        for part in parts:
            rows.append(re.split(r"\s*,\s*|\s+", part.strip()) if part.strip() else [])
    if not any(any(row) for row in rows):
        raise KernelError("no values", subject=subject)
    position = 0
    for r, row in enumerate(rows, start=1):
        if not row:
            raise KernelError(f"row {r} is empty (two ';' in a row, or a ';' at the start)", subject=subject)
        for token in row:
            position += 1
            if not token:
                raise KernelError(
                    f"value {position} is empty (two commas in a row, or a comma at the start or end of a row)",
                    subject=subject,
                )
    return rows


# --------------------------------------------------------------------------
# Parametric kernels: ``kind:arguments``


def gaussian(sigma: float, size: int | None = None) -> Kernel:
    """A normalised sampled Gaussian; ``size`` defaults to ``2*ceil(3*sigma)+1``.

    >>> k = gaussian(1.0)
    >>> k.shape, round(k.total, 12)
    ((7, 7), 1.0)
    """
    import numbers
    import operator

    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise ParameterError(f"expected a number, got {type(sigma).__name__}", parameter="sigma")
    sigma = float(sigma)
    if size is not None:
        try:
            size = operator.index(size)  # ints and numpy's integers; not 2.5, not '3'
        except TypeError:
            raise ParameterError(f"expected a whole number, got {type(size).__name__}", parameter="size") from None
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


def _parse_box(args: str, subject: str) -> Kernel:
    match = re.fullmatch(r"\s*([0-9]+)(?:\s*x\s*([0-9]+))?\s*", args)
    height = whole_number(match.group(1)) if match else None
    width = whole_number(match.group(2) or match.group(1)) if match else None
    if height is None or width is None:
        raise KernelError("box takes a size N or RxC, as in 'box:5'", subject=subject)
    if height < 1 or width < 1:
        raise KernelError("box size must be at least 1", subject=subject)
    check_size(height, width, subject=subject)
    return box(height, width)


def _arguments(args: str, allowed: tuple[str, ...], *, example: str, subject: str) -> dict[str, str]:
    """``key=value`` items separated by commas, each key allowed and given once.

    >>> _arguments('sigma=2, size=9', ('sigma', 'size'), example='', subject='k')
    {'sigma': '2', 'size': '9'}
    """
    found: dict[str, str] = {}
    for item in args.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise KernelError(f"an argument is empty (two commas in a row?); write {example}", subject=subject)
        if not sep or key not in allowed:
            wanted = " or ".join(f"{name}=..." for name in allowed)
            raise KernelError(f"{quote(item.strip())} is not {wanted} (as in {example})", subject=subject)
        if key in found:
            raise KernelError(f"{key} is given twice", subject=subject)
        if not value:
            raise KernelError(f"{key}= has no value", subject=subject)
        found[key] = value
    return found


def _parse_gaussian(args: str, subject: str) -> Kernel:
    params = _arguments(args, ("sigma", "size"), example="'gaussian:sigma=2,size=9'", subject=subject)
    if "sigma" not in params:
        raise KernelError("gaussian needs sigma, as in 'gaussian:sigma=1.5'", subject=subject)
    try:
        sigma = float(params["sigma"])
    except ValueError:
        raise KernelError(f"sigma {quote(params['sigma'])} is not a number", subject=subject) from None
    size = None
    if "size" in params:
        size = whole_number(params["size"])
        if size is None:
            raise KernelError(f"size {quote(params['size'])} is not a whole number", subject=subject)
    if size is None and math.isfinite(sigma) and sigma > 0:
        limit = max_kernel_side()
        if 3 * sigma > max(limit, 1 << 20):  # in sigma's terms: the side itself may be a 300-digit number
            raise KernelError(
                f"sigma {sigma:g} needs a side of 2*ceil(3*sigma)+1, larger than the limit of {limit}x{limit} "
                "(give a smaller sigma, or set IMGCONV_MAX_KERNEL to raise the limit)",
                subject=subject,
            )
        size = 2 * math.ceil(3 * sigma) + 1
    if size is not None:
        check_size(size, size, subject=subject)
    return gaussian(sigma, size)


#: ``kind`` -> parser of the text after ``kind:`` (and the subject for messages).
PARAMETRIC: dict[str, Callable[[str, str], Kernel]] = {
    "box": _parse_box,
    "gaussian": _parse_gaussian,
}


# --------------------------------------------------------------------------
# The forms of a spec


@dataclass(frozen=True)
class SpecForm:
    """One textual form of a kernel: a pattern and what turns a match into a Kernel."""

    name: str
    pattern: re.Pattern[str]
    parse: Callable[[re.Match[str], str, Registry | None], Kernel]


def _from_file(match: re.Match[str], spec: str, registry: Registry | None) -> Kernel:
    from pathlib import Path

    if not match.group(1):  # Path("") would be the current folder
        raise KernelError("'@' takes a file name (@FILE)", subject=spec_subject(spec))
    return load_kernel_file(Path(match.group(1)))


def spec_subject(spec: str) -> str:
    """How messages name an inline kernel: its spec, quoted (and shortened if long)."""
    return f"kernel {quote(spec)}"


def _from_shape(match: re.Match[str], spec: str, registry: Registry | None) -> Kernel:
    height, width = whole_number(match.group(1)), whole_number(match.group(2))
    if height is None or width is None:
        side = max(match.group(1), match.group(2), key=len)
        raise KernelError(f"a side of {quote(side)} is far over the size limit", subject=spec_subject(spec))
    if 0 in (height, width):
        raise KernelError("a kernel side cannot be 0", subject=spec_subject(spec))
    return Kernel(spec.strip(), parse_values(match.group(3), subject=spec_subject(spec), shape=(height, width)))


def _from_parametric(match: re.Match[str], spec: str, registry: Registry | None) -> Kernel:
    kind, args = match.group(1), match.group(2)
    subject = spec_subject(spec)
    try:
        parser = PARAMETRIC[kind]
    except KeyError:
        known = ", ".join(sorted(PARAMETRIC))
        raise KernelError(f"unknown parametric kernel {quote(kind)} (known: {known})", subject=subject) from None
    return parser(args, subject)


def _from_registry(match: re.Match[str], spec: str, registry: Registry | None) -> Kernel:
    from imgconv.kernels.registry import load_registry

    return (registry if registry is not None else load_registry()).get(match.group(0))


def _from_rows(match: re.Match[str], spec: str, registry: Registry | None) -> Kernel:
    text = match.group(0)
    return Kernel(text, parse_values(text, subject=spec_subject(spec)))


#: Tried in order on the stripped spec; the first pattern that matches decides.
SPEC_FORMS: tuple[SpecForm, ...] = (
    SpecForm("file", re.compile(r"@(.*)", re.DOTALL), _from_file),
    SpecForm("shaped", re.compile(r"\s*([0-9]+)\s*x\s*([0-9]+)\s*:(.*)", re.DOTALL), _from_shape),
    SpecForm("parametric", re.compile(r"([a-z]+):(.*)", re.DOTALL), _from_parametric),
    SpecForm("name", re.compile(r"(?![+-]?(?i:inf|infinity|nan)$)[A-Za-z][A-Za-z0-9_.-]*"), _from_registry),
    SpecForm("rows", re.compile(r".+", re.DOTALL), _from_rows),
)


def parse_spec(spec: str, registry: Registry | None = None) -> Kernel:
    """Turn a ``--kernel`` spec into a Kernel.

    Parameters
    ----------
    spec : str
        A registry name; rows ``'0,-1,0;-1,5,-1;0,-1,0'``; a flat square
        list; ``'RxC:values'``; ``'gaussian:sigma=S[,size=N]'``;
        ``'box:N'``; ``'@FILE'`` (YAML or a whitespace matrix).
    registry : Registry, optional
        Where names are looked up; the built-in registry (plus
        ``IMGCONV_KERNELS``) when not given.

    Returns
    -------
    Kernel

    Raises
    ------
    KernelError
        A ``ValueError`` whose message names the spec and the fault.

    Examples
    --------
    >>> parse_spec('sharpen').values[1]
    (Fraction(-1, 1), Fraction(5, 1), Fraction(-1, 1))
    >>> parse_spec('1,2;3').shape
    Traceback (most recent call last):
    ...
    imgconv.errors.KernelError: kernel '1,2;3': row 2 has 1 values, row 1 has 2 (rows must be equally long)
    """
    from imgconv.kernels.registry import as_registry

    if not isinstance(spec, str):
        raise ParameterError(f"a kernel spec is a str, got {type(spec).__name__}", parameter="spec")
    registry = as_registry(registry)
    text = spec.strip()
    if not text:
        raise KernelError("the spec is empty", subject=spec_subject(spec))
    for form in SPEC_FORMS:
        match = form.pattern.fullmatch(text)
        if match:
            return form.parse(match, spec, registry)
    raise KernelError("not a kernel spec", subject=spec_subject(spec))  # pragma: no cover - 'rows' takes the rest


def load_kernel_file(path: Path) -> Kernel:
    """Read ``@FILE``: YAML (a matrix or a registry-style entry) or plain text."""
    from imgconv.kernels.registry import entry_to_kernel, safe_load

    subject = f"kernel file {path}"
    side = max_kernel_side()
    hint = f"a {side}x{side} kernel needs no more (set IMGCONV_MAX_KERNEL to raise it)"
    text = read_text(str(path), Limit(kernel_file_byte_limit(side), subject=subject, error=KernelError, hint=hint))
    if path.suffix.lower() in {".yaml", ".yml"}:
        data = safe_load(text, str(path))
        if isinstance(data, list):
            data = {"values": data}
        if not isinstance(data, dict):
            raise KernelError("expected a matrix (a list of rows) or a mapping with 'values'", subject=subject)
        data.setdefault("name", path.stem)
        return entry_to_kernel(data, origin=str(path), subject=subject)
    return Kernel(path.stem, parse_values(text, subject=subject), origin=str(path))
