"""The command line's Dask options: --scheduler and friends, for every file command.

``cluster_options`` adds the options and hands the command one ``cluster``
argument: None (run here, as always) or the ClusterOptions of the run.
Nothing here imports distributed unless a scheduler is given.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from imgconv.errors import EXIT_USAGE

if TYPE_CHECKING:
    from imgconv.batch.cluster import ClusterOptions

F = TypeVar("F", bound=Callable[..., Any])

SCHEDULER_ENV = "IMGCONV_SCHEDULER"


def cluster_options(function: F) -> F:
    """Add --scheduler, --scheduler-file, --files-per-task, --scheduler-timeout;
    the command receives them as one ``cluster`` keyword argument."""

    @functools.wraps(function)
    def command(
        *args: Any,
        scheduler: str | None,
        scheduler_file: str | None,
        files_per_task: int,
        scheduler_timeout: float,
        **kwargs: Any,
    ) -> Any:
        cluster = _cluster(scheduler, scheduler_file, files_per_task, scheduler_timeout, jobs=kwargs.get("jobs"))
        return function(*args, cluster=cluster, **kwargs)

    options = [
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            envvar=SCHEDULER_ENV,
            show_envvar=True,
            default=None,
            help="Run the files on a Dask cluster: its scheduler's address, e.g. tcp://10.0.0.5:8786 "
            "(needs imgconv[dask]; workers must share the filesystem).",
        ),
        click.option(
            "--scheduler-file",
            metavar="PATH",
            default=None,
            help="Run on the Dask cluster whose scheduler wrote this file (dask scheduler --scheduler-file).",
        ),
        click.option(
            "--files-per-task",
            type=click.IntRange(1),
            default=8,
            show_default=True,
            metavar="N",
            help="Files per Dask task (with a scheduler).",
        ),
        click.option(
            "--scheduler-timeout",
            type=click.FloatRange(0, min_open=True),
            default=10.0,
            show_default=True,
            metavar="SECONDS",
            help="How long to wait for the scheduler and its first worker.",
        ),
    ]
    decorated: Callable[..., Any] = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[return-value]  # click keeps the callable's signature


@contextmanager
def reported_in_one_line() -> Iterator[None]:
    """Library errors as one ``Error:`` line with their exit code (2 included):
    a cluster that cannot run the batch is not a mistake in the command
    line, so click's usage line would only hide the cause."""
    from imgconv.errors import ImgconvError

    try:
        yield
    except ImgconvError as exc:
        raise (_UsageLine if exc.exit_code == EXIT_USAGE else click.ClickException)(str(exc)) from None


class _UsageLine(click.ClickException):
    """Exit 2 in the one-line form of a runtime failure."""

    exit_code = EXIT_USAGE


def _cluster(
    scheduler: str | None, scheduler_file: str | None, files_per_task: int, timeout: float, *, jobs: int | None
) -> ClusterOptions | None:
    """The ClusterOptions of this run, or None to run here; usage errors first."""
    context = click.get_current_context()
    from_env = context.get_parameter_source("scheduler") == ParameterSource.ENVIRONMENT
    if scheduler_file and scheduler:
        if not from_env:
            raise click.UsageError("give --scheduler or --scheduler-file, not both")
        scheduler = None  # an explicit file beats the environment's default
    if not (scheduler or scheduler_file):
        return None
    if scheduler_file:
        given = "--scheduler-file"
    else:
        given = f"{SCHEDULER_ENV} (set in the environment)" if from_env else "--scheduler"
    if jobs is not None:
        hint = f"; unset {SCHEDULER_ENV} to run here" if from_env and not scheduler_file else ""
        raise click.UsageError(
            f"--jobs runs files in local processes and {given} runs them on a Dask cluster; give one of them{hint}"
        )
    try:
        importlib.import_module("distributed")
    except ImportError:
        raise click.UsageError(f"{given} needs Dask's distributed package: pip install 'imgconv[dask]'") from None
    from imgconv.batch.cluster import ClusterOptions

    return ClusterOptions(
        address=scheduler, scheduler_file=scheduler_file, files_per_task=files_per_task, timeout=timeout
    )
