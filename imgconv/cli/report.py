"""How the command line reports: library errors as click errors, batches as
lines and a progress bar.

The exit code of every failure is the library's (``imgconv.errors``); here
it only chooses click's form: usage errors (exit 2) with the usage line,
runtime failures (exit 1) as one ``Error: <file>: <cause>`` line.  A
library error about a Python parameter (``value_range``) is worded with the
option the user typed (``--range``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from imgconv.errors import EXIT_USAGE, ImgconvError, ParameterError, exit_status

if TYPE_CHECKING:
    from rich.progress import TaskID

    from imgconv.batch import Failure, Progress, Summary, Task


def option_name(parameter: str) -> str:
    """The flag of the running command whose value is ``parameter`` (``--range``)."""
    context = click.get_current_context(silent=True)
    if context is not None:
        for param in context.command.params:
            if param.name == parameter and param.opts:
                return max(param.opts, key=len) if param.param_type_name == "option" else param.opts[0]
    return "--" + parameter.replace("_", "-")


def as_click_error(exc: ImgconvError) -> click.ClickException:
    """The click exception that shows ``exc`` with its exit code."""
    message = exc.worded(option_name(exc.parameter)) if isinstance(exc, ParameterError) else str(exc)
    if exc.exit_code == EXIT_USAGE:
        return click.UsageError(message)
    return click.ClickException(message)


@contextmanager
def reported() -> Iterator[None]:
    """Turn library errors into click errors with the documented exit code."""
    try:
        yield
    except ImgconvError as exc:
        raise as_click_error(exc) from None


@dataclass
class CommandReporter:
    """A batch's lines on stderr, with a rich progress bar when stderr is a terminal."""

    quiet: bool = False

    def pair(self, task: Task) -> None:
        click.echo(f"{task.source} -> {task.target}")

    @contextmanager
    def progress(self, total: int) -> Iterator[Progress]:
        if self.quiet or not sys.stderr.isatty():

            def report(task: Task, failure: Failure | None) -> None:
                if failure is not None:
                    click.echo(f"Error: {failure.describe()}", err=True)

            yield report
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        console = Console(stderr=True)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Bar(*columns, console=console, transient=True) as bar:
            bar_id = bar.add_task("imgconv", total=total, rate="")
            started = time.perf_counter()

            def show(task: Task, failure: Failure | None) -> None:
                if failure is not None:
                    console.print(f"Error: {failure.describe()}", markup=False, highlight=False)
                done = bar.tasks[0].completed + 1
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.update(bar_id, advance=1, rate=f"{done / elapsed:.1f} files/s")

            yield show

    @contextmanager
    def rows(self) -> Iterator[None]:
        """A rich bar counting the rows of a streamed image, on a terminal only;
        it appears with the first band, so whole images show nothing."""
        if self.quiet or not sys.stderr.isatty():
            yield
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        from imgconv.streaming import observe_rows

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        bar = Bar(*columns, console=Console(stderr=True), transient=True)
        task: list[TaskID] = []

        def show(done: int, total: int, what: str) -> None:
            if not task:
                bar.start()
                task.append(bar.add_task("imgconv", total=total))
            bar.update(task[0], completed=done, total=total, description=f"imgconv: {what}")

        try:
            with observe_rows(show):
                yield
        finally:
            if task:
                bar.stop()

    def summary(self, summary: Summary) -> None:
        if self.quiet:
            return
        click.echo(
            f"imgconv: {summary.done} written, {len(summary.failures)} failed, {summary.skipped} up to date, "
            f"{summary.seconds:.2f} s" + (f" ({exit_status(summary.interrupted)[1]})" if summary.interrupted else ""),
            err=True,
        )


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None, rich: bool = True
) -> None:
    """A rich table on a terminal (if ``rich``); else aligned plain text, the last column free."""
    if rich and sys.stdout is not None and sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
