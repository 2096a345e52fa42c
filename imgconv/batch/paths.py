"""Many files: glob expansion, output templates, and the checks of the whole plan.

Inputs are mapped to outputs and the mapping is checked (collisions,
outputs that are inputs) before any work starts.  Nothing here knows about
convolution.

>>> tasks = plan([Input('photos/a.jpg', 'photos'), Input('photos/2020/b.jpg', 'photos')], 'out/{relpath}.png')
>>> [t.target for t in tasks]
['out/a.png', 'out/2020/b.png']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imgconv.errors import UsageFailure
from imgconv.limits import quote

GLOB_CHARS = "*?["
TEMPLATE_FIELDS = ("stem", "name", "ext", "parent", "relpath", "reldir", "kernel")


@dataclass(frozen=True)
class Input:
    """One input file and the fixed root of the pattern that found it."""

    path: str
    root: str


@dataclass(frozen=True)
class Task:
    source: str
    target: str


def has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in GLOB_CHARS)


def fixed_root(pattern: str) -> str:
    """The folder part of a pattern before its first glob character.

    >>> fixed_root('photos/**/*.jpg'), fixed_root('*.png'), fixed_root('a/b.png')
    ('photos', '.', 'a')
    """
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if has_glob(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def expand(patterns: Sequence[str]) -> list[Input]:
    """Expand quoted globs (recursive ``**``, sorted); keep plain paths as given.

    A pattern that matches nothing is a usage error; a plain path that does
    not exist is kept, so that reading it fails for that file alone (exit 1).
    An existing file is taken as it is named, glob characters or not.
    Duplicates (the same file reached twice) are dropped, first one wins.
    """
    found: list[Input] = []
    seen: set[str] = set()
    for pattern in patterns:
        check_named(pattern)
        # A file that exists is that file, even with glob characters in its name ('br[ack]et.png').
        if pattern == "-" or not has_glob(pattern) or os.path.lexists(pattern):
            candidates = [pattern]
            root = "." if pattern == "-" else str(Path(pattern).parent)
        else:
            import glob  # only for a pattern: a plain path, the usual call, never needs it

            candidates = sorted(p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p))
            if not candidates:
                raise UsageFailure("no file matches this pattern", subject=pattern)
            root = fixed_root(pattern)
        for candidate in candidates:
            key = os.path.realpath(candidate) if candidate != "-" else "-"
            if key in seen:
                continue
            seen.add(key)
            found.append(Input(candidate, root))
    return found


def check_named(path: str) -> None:
    """Refuse an empty path (the shell's ``""``, an unset variable): it names no file,
    although ``Path("")`` would be the current folder.

    >>> check_named('')
    Traceback (most recent call last):
    ...
    imgconv.errors.UsageFailure: '': an empty path names no file
    """
    if not path:
        raise UsageFailure("an empty path names no file", subject="")


def _safe_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "kernel"


def expand_template(template: str, item: Input, *, kernel: str = "") -> str:
    """Fill ``{stem} {name} {ext} {parent} {relpath} {reldir} {kernel}``.

    ``{ext}`` has no dot; ``{relpath}`` is the path below the pattern's fixed
    root without the extension, so ``out/{relpath}.png`` mirrors a tree.

    >>> expand_template('out/{reldir}/{stem}-{kernel}.{ext}', Input('in/x/a.jpg', 'in'), kernel='blur')
    'out/x/a-blur.jpg'
    """
    check_template(template)
    path = Path(item.path)
    relative = Path(os.path.relpath(path, item.root))
    if relative.parts and relative.parts[0] == "..":
        relative = Path(path.name)
    values = {
        "stem": path.stem,
        "name": path.name,
        "ext": path.suffix.lstrip("."),
        "parent": str(path.parent),
        "relpath": str(relative.with_suffix("")),
        "reldir": str(relative.parent) if str(relative.parent) != "." else "",
        "kernel": _safe_label(kernel),
    }
    # Only plain {field}s (check_template), so a field is a lookup, never a format spec to run.
    filled = "".join(literal + (values[name] if name is not None else "") for literal, name, _, _ in _fields(template))
    return os.path.normpath(filled) if filled != "-" else filled


def _fields(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    if "{" not in template and "}" not in template:
        return [(template, None, None, None)] if template else []  # a plain path, as the parser gives it
    import string

    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone '{' or '}'
        raise UsageFailure(f"{exc} in the template (write '{{{{' or '}}}}' for a brace)", subject="--output") from None


def check_template(template: str) -> None:
    """Refuse anything but plain ``{field}``s of TEMPLATE_FIELDS, before any work.

    A format spec (``{stem:>9}``), a conversion (``{stem!r}``), an attribute
    or an index (``{stem.upper}``, ``{stem[0]}``) would run code on the
    names: ``{stem:>99999999999}`` asks for a 100-gigabyte string.
    """
    known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
    for _, name, spec, conversion in _fields(template):
        if name is None:
            continue
        if spec or conversion:
            shown = quote("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
            raise UsageFailure(f"{shown}: templates take plain fields only ({known})", subject="--output")
        if name not in TEMPLATE_FIELDS:
            raise UsageFailure(f"unknown template field {quote('{' + name + '}')} (known: {known})", subject="--output")


def plan(inputs: Sequence[Input], output: str, *, kernel: str = "") -> list[Task]:
    """Map every input to its output path.

    ``output`` is a folder (ends with ``/`` or exists as one: the input's
    name is kept), a template with ``{fields}``, or one file for one input.
    """
    check_named(output)
    check_template(output)
    is_folder = output.endswith(("/", os.sep)) or os.path.isdir(output)
    if any(item.path == "-" for item in inputs) and (is_folder or "{" in output):
        raise UsageFailure(
            "standard input has no name to put in a folder or template; give an output file or '-'", subject="--output"
        )
    if is_folder:
        template = os.path.join(output, "{name}")
    elif "{" in output or len(inputs) == 1:
        template = output
    else:
        raise UsageFailure(
            f"{len(inputs)} inputs need a folder (ending in '/') or a template such as 'out/{{stem}}.png'",
            subject="--output",
        )
    return [Task(item.path, expand_template(template, item, kernel=kernel)) for item in inputs]


def check_plan(tasks: Sequence[Task], *, in_place: bool) -> None:
    """Refuse, before any work, two inputs mapping to one output and
    outputs that would overwrite an input (unless ``in_place``)."""
    from imgconv.output import check_target

    targets: dict[str, str] = {}
    for task in tasks:
        check_target(task.target)
        if task.target == "-":
            if len(tasks) > 1:
                raise UsageFailure("'-' (stdout) takes a single input", subject="--output")
            continue
        key = os.path.realpath(task.target)
        if key in targets:
            raise UsageFailure(
                f"both {targets[key]} and {task.source} would be written to {task.target}; "
                "add {relpath} or {parent} to the template",
                subject="--output",
            )
        targets[key] = task.source
    if in_place:
        return
    # An output is an input if it is the same path, or the same file under
    # another name (a hard link): writing it would replace the input too.
    sources = {os.path.realpath(t.source) for t in tasks if t.source != "-"}
    inodes = {found for t in tasks if t.source != "-" and (found := _inode(t.source)) is not None}
    if any(t.source == "-" for t in tasks):
        from imgconv.jobs import stdin_identity

        if (found := stdin_identity()) is not None:
            inodes.add(found)  # '-' reads a file: that file is an input too
    for task in tasks:
        if task.target == "-":
            continue
        if os.path.realpath(task.target) in sources or _inode(task.target) in inodes:
            raise UsageFailure(
                "is an input file; refusing to overwrite it (give --in-place to allow)", subject=task.target
            )


def _inode(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def up_to_date(task: Task) -> bool:
    """Like make: the output exists and is newer than the input."""
    if "-" in (task.source, task.target):
        return False
    try:
        return os.stat(task.target).st_mtime_ns > os.stat(task.source).st_mtime_ns
    except OSError:
        return False


def remove_temporaries(tasks: Iterable[Task]) -> None:
    """Remove the stale temporaries an interrupted batch may have left in its
    output folders; temporaries that other, live runs are writing stay."""
    from imgconv.output import sweep_temporaries

    for folder in sorted({os.path.dirname(os.path.abspath(t.target)) for t in tasks if t.target != "-"}):
        sweep_temporaries(folder)
