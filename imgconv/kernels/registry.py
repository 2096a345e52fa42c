"""The kernel registry: the built-in YAML file, user registries, and a cache.

A registry document is ``kernels:`` holding a list of entries (name,
description, values, scale, offset, source).  YAML is read with the safe
loader; the parsed built-in registry is kept as JSON in the user's cache
folder so that listing kernels does not import PyYAML.

>>> reg = load_registry()
>>> reg.get('sharpen').values[1]
(Fraction(-1, 1), Fraction(5, 1), Fraction(-1, 1))
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from imgconv.errors import KernelError, ParameterError, RegistryError
from imgconv.kernels.grammar import NAME_RE, parse_number, parse_values
from imgconv.kernels.model import Kernel, Number, max_kernel_side
from imgconv.limits import REGISTRY_KERNELS, excerpt, quote

if TYPE_CHECKING:
    from pathlib import Path

ENV_REGISTRY = "IMGCONV_KERNELS"


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
                f"unknown kernel {quote(name)}{hint} ('imgconv kernels list' shows them all)",
            ) from None

    def __iter__(self) -> Iterator[Kernel]:
        return iter(self.kernels.values())

    def __len__(self) -> int:
        return len(self.kernels)


_ENTRY_FIELDS = {"name", "description", "values", "scale", "offset", "source"}


#: Registries are shallow (document, entry list, entry, rows, row): deeper nesting is a mistake.
MAX_DEPTH = 16


class QuotedText(str):
    """A YAML scalar written in quotes: text, never a number (``values: [["1"]]`` is refused)."""


def _line_loader() -> type:
    """A SafeLoader that remembers the line of every mapping (for messages),
    refuses duplicate keys, and marks quoted scalars as text."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {quote(str(key))} is given twice in one mapping", key_node.start_mark
                    )
                seen.add(key)
            mapping = super().construct_mapping(node, deep=deep)
            mapping["__line__"] = node.start_mark.line + 1
            return mapping  # type: ignore[no-any-return]

        def construct_yaml_str(self, node: Any) -> str:
            text = super().construct_yaml_str(node)
            return QuotedText(text) if node.style in ("'", '"') else text

    Loader.add_constructor("tag:yaml.org,2002:str", Loader.construct_yaml_str)
    return Loader


def _check_structure(text: str, loader: type) -> None:
    """Refuse aliases and deep nesting before anything is built.

    An alias repeats a node without repeating its text: nine lines of
    aliases make a billion values (the "billion laughs"), so a registry, which
    never needs them, may not use them at all.
    """
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader):
        mark: Any = event.start_mark  # the C parser's marks are its own type
        if isinstance(event, yaml.AliasEvent):
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed in a registry; write the values out", mark
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.constructor.ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def safe_load(text: str, where: str) -> Any:
    """Parse YAML with the safe loader; errors name ``where`` and the line."""
    import yaml

    loader = _line_loader()
    try:
        _check_structure(text, loader)
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in str(exc):
            problem = f"{problem} (tags are not allowed: values must be plain data)"
        raise RegistryError(excerpt(problem, 200), subject=f"{where}{line}") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"invalid YAML: {excerpt(str(exc), 200)}", subject=where) from None
    except ValueError as exc:  # a number too long to convert (more than 4,300 digits)
        raise RegistryError(f"cannot read a value: {excerpt(str(exc), 200)}", subject=where) from None


def _number_field(entry: Mapping[str, Any], key: str, default: Number, subject: str) -> Number:
    value = entry.get(key, default)
    if isinstance(value, QuotedText):
        raise KernelError(f"'{key}' is quoted text, {quote(value)}; write the number without quotes", subject=subject)
    if isinstance(value, str):
        return parse_number(value, where=f"{subject}: {key}")
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise KernelError(f"'{key}' must be a number, got {type(value).__name__}", subject=subject)
    if isinstance(value, float) and not math.isfinite(value):
        raise KernelError(f"'{key}' is not finite", subject=subject)
    return _float_as_written(value)


def _float_as_written(value: float | Fraction) -> Number:
    """YAML gives 0.25 as a float; keep decimals exact as they were written."""
    if isinstance(value, float):
        return Fraction(repr(value)) if math.isfinite(value) else value
    return Fraction(value)


def entry_to_kernel(entry: Mapping[str, Any], *, origin: str, subject: str) -> Kernel:
    """One registry entry (a mapping) as a Kernel; errors name the line."""
    line = entry.get("__line__")
    where = f"{subject}, line {line}" if line else subject
    unknown = set(entry) - _ENTRY_FIELDS - {"__line__"}
    if unknown:
        raise RegistryError(
            f"unknown field(s) {', '.join(sorted(map(str, unknown)))} (allowed: {', '.join(sorted(_ENTRY_FIELDS))})",
            subject=where,
        )
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError("'name' is missing or not a plain name (letters, digits, '-', '_', '.')", subject=where)
    where = f"{where}: kernel {quote(name)}"
    values = entry.get("values")
    if values is None:
        raise RegistryError("'values' is missing", subject=where)
    rows: tuple[tuple[Number, ...], ...]
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
    if isinstance(value, QuotedText):
        raise RegistryError(f"{quote(value)} is quoted text; write the number without quotes", subject=where)
    if isinstance(value, str):
        return parse_number(value, where=where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RegistryError(f"{quote(repr(value))} is not a number", subject=where)
    if isinstance(value, float) and not math.isfinite(value):
        raise RegistryError(f"non-finite value {value}", subject=where)
    return _float_as_written(value)


def parse_registry(text: str, *, origin: str) -> dict[str, Kernel]:
    """Parse one registry document: ``kernels:`` holding a list of entries."""
    data = safe_load(text, origin)
    if not isinstance(data, dict) or "kernels" not in data:
        raise RegistryError("expected a mapping with 'kernels:' holding a list of kernels", subject=origin)
    other = sorted(str(key) for key in data if key not in ("kernels", "__line__"))
    if other:
        raise RegistryError(f"unknown top-level key(s) {quote(', '.join(other))} (only 'kernels:')", subject=origin)
    entries = data["kernels"]
    if not isinstance(entries, list):
        raise RegistryError("expected a list of kernels under 'kernels:'", subject=origin)
    found: dict[str, Kernel] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise RegistryError("each kernel must be a mapping with name and values", subject=origin)
        try:
            kernel = entry_to_kernel(entry, origin=origin, subject=origin)
        except RegistryError:
            raise
        except KernelError as exc:
            raise RegistryError(str(exc)) from None
        if kernel.name in found:
            raise RegistryError(
                f"kernel {quote(kernel.name)} is defined twice", subject=f"{origin}, line {entry.get('__line__')}"
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
            kernels = _kernels_from_json(stream.read(_CACHE_CHARS))  # a longer (foreign) file fails to parse
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

    def number(value: Number) -> str | float:  # exact values as "a/b" text, floats as JSON numbers
        return str(value) if isinstance(value, Fraction) else value

    return json.dumps(
        [
            {
                "name": k.name,
                "values": [[number(v) for v in row] for row in k.values],
                "scale": number(k.scale),
                "offset": number(k.offset),
                "description": k.description,
                "source": k.source,
            }
            for k in kernels.values()
        ]
    )


def _kernels_from_json(text: str) -> dict[str, Kernel]:
    import json

    def number(value: str | float) -> Number:
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


#: The cache of the built-in registry is about 10 kB; nothing longer is read.
_CACHE_CHARS = 1 << 22


def _store(path: str, text: str) -> None:
    """Write the cache atomically (as outputs are); any failure just leaves it unwritten."""
    from pathlib import Path

    from imgconv.errors import OutputError
    from imgconv.output import write_atomic

    try:
        write_atomic(Path(path), text.encode("utf-8"))
    except OutputError:
        pass


def registry_paths(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The user's registry files: ``IMGCONV_KERNELS`` first, then ``extra``."""
    from pathlib import Path

    from_env = [Path(p) for p in os.environ.get(ENV_REGISTRY, "").split(os.pathsep) if p]
    given = [os.fspath(p) for p in extra]
    if "" in given:  # Path("") would be the current folder
        raise RegistryError("an empty path names no file", subject="registry ''")
    return [*from_env, *(Path(p) for p in given)]


def as_registry(registry: Registry | str | os.PathLike[str] | None, *, parameter: str = "registry") -> Registry | None:
    """The library's ``registry`` argument as a Registry: a Registry as it
    is, a path loaded as ``load_registry(path)`` does (the built-in kernels,
    then the file's), None left for the caller's default.

    >>> as_registry(3)
    Traceback (most recent call last):
    ...
    imgconv.errors.ParameterError: registry: expected a Registry or the path of a registry file, got int
    """
    if registry is None or isinstance(registry, Registry):
        return registry
    if isinstance(registry, (str, os.PathLike)):
        return load_registry(registry)
    raise ParameterError(
        f"expected a Registry or the path of a registry file, got {type(registry).__name__}", parameter=parameter
    )


def load_registry(extra: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = ()) -> Registry:
    """The built-in kernels, then ``IMGCONV_KERNELS``, then ``extra`` files.

    Parameters
    ----------
    extra : path or iterable of paths
        Registry files read after the others; their names override.  One
        path is one file (not its characters).

    Returns
    -------
    Registry

    Examples
    --------
    >>> load_registry().get('sharpn')
    Traceback (most recent call last):
    ...
    imgconv.errors.KernelError: unknown kernel 'sharpn'; did you mean 'sharpen', 'unsharp5'? ('imgconv kernels list' shows them all)
    """
    from imgconv.limits import Limit, read_text, registry_byte_limit

    kernels = builtin_kernels()
    side = max_kernel_side()
    hint = f"that is room for {REGISTRY_KERNELS} kernels of {side}x{side} (set IMGCONV_MAX_KERNEL to raise it)"
    files = [extra] if isinstance(extra, (str, os.PathLike)) else extra
    for path in registry_paths(files):
        limit = Limit(registry_byte_limit(side), subject=f"registry {path}", error=RegistryError, hint=hint)
        kernels.update(parse_registry(read_text(str(path), limit), origin=str(path)))
    return Registry(kernels)
