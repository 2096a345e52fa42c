"""Many files: from the command's INPUT... [OUTPUT] to a finished batch.

``run_files`` is the whole orchestration that ``apply`` and the pooling
commands share: expand the inputs, map them to outputs, check the plan,
skip what is up to date, print the pairs of a dry run, run one file as a
single command or many as a batch, and return the exit code.  What the user
sees goes through a ``Reporter`` (the command line's prints and progress
bar), so this package never imports click or rich.

``imgconv.batch.paths`` maps inputs to outputs; ``imgconv.batch.local``
runs the tasks on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from imgconv.batch.local import Executor, Failure, LocalExecutor, Progress, Summary, Work, run, run_one
from imgconv.batch.paths import (
    GLOB_CHARS,
    TEMPLATE_FIELDS,
    Input,
    Task,
    check_plan,
    check_template,
    expand,
    expand_template,
    fixed_root,
    has_glob,
    plan,
    remove_temporaries,
    up_to_date,
)
from imgconv.errors import UsageFailure

__all__ = [
    "GLOB_CHARS",
    "TEMPLATE_FIELDS",
    "Executor",
    "Failure",
    "Input",
    "LocalExecutor",
    "Progress",
    "Reporter",
    "Summary",
    "Task",
    "Work",
    "check_plan",
    "check_template",
    "expand",
    "expand_template",
    "fixed_root",
    "has_glob",
    "plan",
    "remove_temporaries",
    "run",
    "run_files",
    "run_one",
    "up_to_date",
]


class Reporter(Protocol):
    """What a batch tells its user (the command line implements it)."""

    def pair(self, task: Task) -> None:
        """A dry run's ``INPUT -> OUTPUT`` line."""

    def progress(self, total: int) -> AbstractContextManager[Progress]:
        """While a batch of ``total`` files runs: what is told of each finished file."""
        ...

    def summary(self, summary: Summary) -> None:
        """The line that ends a batch."""

    def rows(self) -> AbstractContextManager[None]:
        """While one file runs in this process: where a streamed image reports its rows
        (``imgconv.streaming.observe_rows``)."""
        ...


def run_files(
    paths: Sequence[str],
    output: str | None,
    work: Work,
    *,
    label: str,
    reporter: Reporter,
    executor: Executor | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    update: bool = False,
    fail_fast: bool = False,
) -> int:
    """Plan the inputs -> outputs, check the plan, run ``work`` on each file.

    One input and one output run in this process and raise like any single
    command (unless ``executor`` runs files elsewhere: then it runs them
    all); several run as a batch on ``executor`` (by default worker
    processes on every CPU) whose failures are reported one by one and whose
    exit code (returned) is the worst of them.  An interrupted batch reports
    its summary, then raises the KeyboardInterrupt (or ``Terminated``) that stopped it.
    """
    if output is None:
        if len(paths) != 2:
            raise UsageFailure("give INPUT OUTPUT, or inputs with -o/--output (a folder ending in '/' or a template)")
        paths, output = paths[:1], paths[1]
    if not paths:
        raise UsageFailure("no INPUT given")
    inputs = expand(paths)
    tasks = plan(inputs, output, kernel=label)
    check_plan(tasks, in_place=in_place)
    skipped = 0
    if update:
        fresh = [t for t in tasks if not up_to_date(t)]
        skipped, tasks = len(tasks) - len(fresh), fresh
    if dry_run:
        for task in tasks:
            reporter.pair(task)
        return 0
    executor = executor or LocalExecutor()
    if len(tasks) == 1 and len(inputs) == 1 and isinstance(executor, LocalExecutor):
        with reporter.rows():
            work(tasks[0].source, tasks[0].target)
        return 0
    with reporter.progress(len(tasks)) as progress:
        summary = executor(tasks, work, fail_fast=fail_fast, progress=progress)
    summary.skipped = skipped
    reporter.summary(summary)
    if summary.interrupted is not None:
        raise summary.interrupted
    return summary.exit_code
