"""Running a batch on this machine: in this process, or in worker processes.

``run`` calls a picklable ``work(source, target)`` for every task and
collects failures instead of raising them; the exit code of each failure
comes from ``imgconv.errors.exit_status``, as for a single file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imgconv.batch.paths import Task, remove_temporaries
from imgconv.errors import EXIT_INTERRUPTED, exit_status

Work = Callable[[str, str], None]


@dataclass
class Failure:
    source: str
    message: str
    exit_code: int

    def describe(self) -> str:
        """The failure as one line that names the input file."""
        if self.source in self.message:
            return self.message
        return f"{self.source}: {self.message}"


@dataclass
class Summary:
    """What a batch did; ``exit_code`` is the worst of its files' codes."""

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


Progress = Callable[[Task, "Failure | None"], None]


class Executor(Protocol):
    """Runs a batch's tasks somewhere and reports each finished one."""

    def __call__(self, tasks: Sequence[Task], work: Work, *, fail_fast: bool, progress: Progress) -> Summary: ...


@dataclass(frozen=True)
class LocalExecutor:
    """Worker processes on this machine (``--jobs``; default: every CPU)."""

    jobs: int | None = None

    def __call__(self, tasks: Sequence[Task], work: Work, *, fail_fast: bool, progress: Progress) -> Summary:
        return run(tasks, work, jobs=self.jobs or os.cpu_count() or 1, fail_fast=fail_fast, progress=progress)


def run_one(work: Work, task: Task) -> Failure | None:
    """Run one task; its failure (any exception but an interruption) is returned."""
    try:
        work(task.source, task.target)
    except Exception as exc:  # a bug in one file must not take the others down with it
        code, message = exit_status(exc)
        return Failure(task.source, message, code)
    return None


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
                if record(task, run_one(work, task)):
                    break
        else:
            _run_pool(tasks, work, min(jobs, len(tasks)), record)
    except KeyboardInterrupt:
        summary.interrupted = True
        remove_temporaries(tasks)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_pool(tasks: Sequence[Task], work: Work, processes: int, record: Callable[[Task, Any], bool]) -> None:
    """Hand tasks to worker processes one at a time until all are done or ``record`` says stop."""
    from imgconv.batch.workers import Workers

    pending = iter(enumerate(tasks))
    with Workers(work, processes) as workers:
        for worker in workers.idle():
            workers.give(worker, next(pending, None))
        while workers.busy():
            worker, index, failure = workers.next_result()
            if record(tasks[index], failure):
                return
            workers.give(worker, next(pending, None))
