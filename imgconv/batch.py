"""Many files: glob expansion, output templates, parallel jobs, progress events.

The batch layer knows nothing about convolution: it maps inputs to outputs,
checks the plan before any work starts, and runs a picklable ``work(source,
target)`` callable over it, in this process or in a pool of worker
processes.  ``apply`` and the pooling commands share it.

>>> tasks = plan([Input('photos/a.jpg', 'photos'), Input('photos/2020/b.jpg', 'photos')], 'out/{relpath}.png')
>>> [t.target for t in tasks]
['out/a.png', 'out/2020/b.png']
"""

from __future__ import annotations

import glob
import os
import re
import signal
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from imgconv.errors import EXIT_FAILURE, EXIT_INTERRUPTED, ImgconvError, UsageFailure

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


@dataclass
class Failure:
    source: str
    message: str
    exit_code: int


@dataclass
class Summary:
    """What a batch did; ``exit_code`` follows the policy in ``errors``."""

    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return max((f.exit_code for f in self.failures), default=0)


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
    Duplicates (the same file reached twice) are dropped, first one wins.
    """
    found: list[Input] = []
    seen: set[str] = set()
    for pattern in patterns:
        if pattern == "-" or not has_glob(pattern):
            candidates = [pattern]
            root = "." if pattern == "-" else str(Path(pattern).parent)
        else:
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


def _safe_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "kernel"


def expand_template(template: str, item: Input, *, kernel: str = "") -> str:
    """Fill ``{stem} {name} {ext} {parent} {relpath} {reldir} {kernel}``.

    ``{ext}`` has no dot; ``{relpath}`` is the path below the pattern's fixed
    root without the extension, so ``out/{relpath}.png`` mirrors a tree.

    >>> expand_template('out/{reldir}/{stem}-{kernel}.{ext}', Input('in/x/a.jpg', 'in'), kernel='blur')
    'out/x/a-blur.jpg'
    """
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
    try:
        filled = template.format_map(values)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageFailure(
            f"bad template field {exc} (known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})",
            subject="--output",
        ) from None
    return os.path.normpath(filled) if filled != "-" else filled


def check_template(template: str) -> None:
    """Refuse unknown ``{fields}`` before any work."""
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None and name not in TEMPLATE_FIELDS:
            raise UsageFailure(
                f"unknown template field '{{{name}}}' (known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})",
                subject="--output",
            )


def plan(inputs: Sequence[Input], output: str, *, kernel: str = "") -> list[Task]:
    """Map every input to its output path.

    ``output`` is a folder (ends with ``/`` or exists as one: the input's
    name is kept), a template with ``{fields}``, or one file for one input.
    """
    check_template(output)
    is_folder = output.endswith(("/", os.sep)) or os.path.isdir(output)
    if any(item.path == "-" for item in inputs) and (is_folder or "{" in output):
        raise UsageFailure("standard input has no name to put in a folder or template; give an output file or '-'",
                           subject="--output")
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
    targets: dict[str, str] = {}
    for task in tasks:
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
    sources = {os.path.realpath(t.source) for t in tasks if t.source != "-"}
    for task in tasks:
        if task.target != "-" and os.path.realpath(task.target) in sources:
            raise UsageFailure(
                "is an input file; refusing to overwrite it (give --in-place to allow)", subject=task.target
            )


def up_to_date(task: Task) -> bool:
    """Like make: the output exists and is newer than the input."""
    if "-" in (task.source, task.target):
        return False
    try:
        return os.stat(task.target).st_mtime_ns > os.stat(task.source).st_mtime_ns
    except OSError:
        return False


# --------------------------------------------------------------------------
# Running

Work = Callable[[str, str], None]
Progress = Callable[[Task, "Failure | None"], None]

_worker_work: Work | None = None


def _init_worker(work: Work) -> None:
    global _worker_work
    _worker_work = work
    # The processes already use every core: one thread each for the strips.
    os.environ["IMGCONV_THREADS"] = "1"
    # Ctrl-C reaches the whole process group: the parent alone decides, and
    # stops workers with SIGTERM, which unwinds them through the cleanup of
    # any half-written temporary file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(EXIT_INTERRUPTED)


def _run_one(work: Work, task: Task) -> Failure | None:
    try:
        work(task.source, task.target)
    except ImgconvError as exc:
        return Failure(task.source, str(exc), exc.exit_code)
    except MemoryError:
        return Failure(task.source, "out of memory", EXIT_FAILURE)
    except Exception as exc:  # a bug must not take the other files down with it
        return Failure(task.source, f"internal error: {type(exc).__name__}: {exc}", EXIT_FAILURE)
    return None


def _pool_task(indexed: tuple[int, Task]) -> tuple[int, Failure | None]:
    index, task = indexed
    assert _worker_work is not None
    return index, _run_one(_worker_work, task)


def run(
    tasks: Sequence[Task],
    work: Work,
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Run ``work`` over ``tasks``; failures are collected, not raised.

    With ``jobs > 1`` and several tasks, files run in worker processes.
    Ctrl-C (KeyboardInterrupt) stops the workers; temporary files are
    removed and finished outputs stay.
    """
    summary = Summary()
    started = time.perf_counter()

    def record(task: Task, failure: Failure | None) -> bool:
        if failure is None:
            summary.done += 1
        else:
            summary.failures.append(failure)
        if progress:
            progress(task, failure)
        return failure is not None and fail_fast

    try:
        if jobs <= 1 or len(tasks) <= 1:
            for task in tasks:
                if record(task, _run_one(work, task)):
                    break
        else:
            _run_pool(tasks, work, min(jobs, len(tasks)), record)
    except KeyboardInterrupt:
        summary.interrupted = True
        remove_temporaries(tasks)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_pool(tasks: Sequence[Task], work: Work, processes: int, record) -> None:
    import multiprocessing

    # Not plain fork: a process that already ran threads (strips, the PNG
    # writer, a host program) can hand a held lock to a forked child, which
    # then hangs. A fork server is a clean single-threaded parent that has
    # imported the heavy modules once, so workers still start in milliseconds.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["imgconv.jobs", "imgconv.convolve", "imgconv.images", "imgconv.pooling"])
    pool = context.Pool(processes, initializer=_init_worker, initargs=(work,))
    stopped = False
    try:
        for index, failure in pool.imap_unordered(_pool_task, enumerate(tasks), chunksize=1):
            if record(tasks[index], failure):
                stopped = True
                break
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    if stopped:
        pool.terminate()  # ends the pending work after a --fail-fast stop
    else:
        # All done: let idle workers take the end-of-work sentinel and exit.
        # terminate() would SIGTERM them, and a signal landing just before a
        # worker blocks on the task queue's lock is never handled, so the
        # join below waited forever (seen with quick, one-file batches).
        pool.close()
    pool.join()


def remove_temporaries(tasks: Iterable[Task]) -> None:
    """Remove ``.NAME.*.part`` files that interrupted writes may have left."""
    for task in tasks:
        if task.target == "-":
            continue
        target = Path(task.target)
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
            try:
                leftover.unlink()
            except OSError:
                pass


def describe(failure: Failure) -> str:
    """The failure as one line that names the input file."""
    if failure.source in failure.message:
        return failure.message
    return f"{failure.source}: {failure.message}"
