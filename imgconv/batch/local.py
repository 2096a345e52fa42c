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
from imgconv.errors import exit_status

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
    """What a batch did; ``exit_code`` is the worst of its files' codes.

    ``interrupted`` is the Ctrl-C (KeyboardInterrupt) or SIGTERM
    (``Terminated``) that stopped the batch, if one did.
    """

    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: KeyboardInterrupt | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return exit_status(self.interrupted)[0]
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
        from imgconv.entry import stop_requested

        interruption = stop_requested()
        if interruption is not None:  # Ctrl-C's KeyboardInterrupt, turned into this error on its way
            raise interruption from None
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

    With ``jobs > 1`` and several tasks, files run in worker processes, as
    many at once as ``jobs`` allows and the memory holds (see
    ``imgconv.batch.memory``).  Ctrl-C or SIGTERM (KeyboardInterrupt) stops
    the workers; temporary files are removed and finished outputs stay.

    The summary counts exactly the outputs left complete: each finished task
    is recorded in one step, and a task that completed its output in the
    instant an interruption arrived, before it could report, is found by
    its output having changed since the task was handed out.
    """
    started = time.perf_counter()
    outcomes: dict[int, Failure | None] = {}
    handed: dict[int, tuple[int, int, int] | None] = {}

    def hand(index: int) -> None:
        handed[index] = _identity(tasks[index].target)

    def record(index: int, failure: Failure | None) -> bool:
        outcomes[index] = failure
        if progress:
            progress(tasks[index], failure)
        return failure is not None and fail_fast

    interrupted: KeyboardInterrupt | None = None
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for index, task in enumerate(tasks):
                hand(index)
                if record(index, run_one(work, task)):
                    break
        else:
            _run_pool(tasks, work, min(jobs, len(tasks)), hand, record)
    except KeyboardInterrupt as exc:
        interrupted = exc
        remove_temporaries(tasks)
    summary = Summary(interrupted=interrupted)
    summary.failures = [f for f in outcomes.values() if f is not None]
    summary.done = len(outcomes) - len(summary.failures)
    if interrupted is not None:
        unreported = (i for i in handed if i not in outcomes)
        summary.done += sum(1 for i in unreported if _identity(tasks[i].target) not in (None, handed[i]))
    summary.seconds = time.perf_counter() - started
    return summary


def _identity(path: str) -> tuple[int, int, int] | None:
    """What tells a file from its replacement: a complete output is always a new inode."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mtime_ns


def _run_pool(
    tasks: Sequence[Task],
    work: Work,
    processes: int,
    hand: Callable[[int], None],
    record: Callable[[int, Any], bool],
) -> None:
    """Hand tasks to worker processes, one at a time each, as the memory budget
    allows, until all are done or ``record`` says stop."""
    from imgconv.batch.memory import Budget
    from imgconv.batch.workers import Workers

    budget = Budget.of_this_machine()
    costs: dict[int, int] = {}
    pending = list(range(len(tasks)))
    pending.reverse()  # pop() from the end takes them in order
    with Workers(work, processes) as workers:
        while True:
            while pending and workers.can_take():
                index = pending[-1]
                cost = costs.get(index)
                if cost is None:
                    cost = costs[index] = budget.cost(tasks[index].source)
                if not budget.fits(cost):
                    break
                pending.pop()
                budget.take(index, cost)
                hand(index)
                workers.give(index, tasks[index])
            if not workers.busy():
                return
            index, failure = workers.next_result()
            budget.release(index)
            if record(index, failure):
                return
