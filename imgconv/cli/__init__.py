"""The command line: click commands that parse, call the library, report.

Each command converts its options, calls one library function, and lets
``imgconv.cli.report`` turn library errors into click's (exit 2 with the
usage line, or one ``Error:`` line and exit 1).  Heavy imports (numpy,
scipy, Pillow, rich) happen inside the commands that need them, so
``imgconv --help`` starts fast.  Each command is loaded only when it is
named (``LazyGroup``): ``apply``, ``pool`` (with ``maxpool``, ``avgpool``,
``minpool``) and ``features`` have a module each, ``info`` holds
``kernels`` and ``backends``, and ``imgconv.server.commands`` the
resident server's; so a call imports its own command and nothing else.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import click

from imgconv import __version__
from imgconv.errors import EXIT_FAILURE, EXIT_INTERRUPTED, exit_status

#: Every command: its name -> "module:attribute", imported on first use.
COMMANDS = {
    "apply": "imgconv.cli.apply:apply",
    "avgpool": "imgconv.cli.pool:avgpool",
    "backends": "imgconv.cli.info:backends_command",
    "features": "imgconv.cli.features:features",
    "kernels": "imgconv.cli.info:kernels",
    "maxpool": "imgconv.cli.pool:maxpool",
    "minpool": "imgconv.cli.pool:minpool",
    "pool": "imgconv.cli.pool:pool",
    "server": "imgconv.server.commands:server",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when named (click's documented
    lazy-loading pattern): ``imgconv apply`` never imports the modules of
    ``features``, ``kernels`` or the server; ``--help`` loads them all."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{self.lazy[cmd_name]} is not the command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click suggests close names from the commands it has loaded: give it them all.
            unknown = getattr(click.exceptions, "NoSuchCommand", None)
            if unknown is None or not isinstance(exc, unknown):
                raise
            raise unknown(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgconv")
def cli() -> None:
    """Filter images with convolution kernels and pool them.

    One meaning of "convolve" on every backend: true convolution as
    scipy.signal.convolve, zero border, round half up, clip.
    """
    from imgconv.cli.report import reported
    from imgconv.limits import check_environment

    with reported():
        check_environment()  # a bad IMGCONV_* number is refused before any work


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line and exit with the documented code (``imgconv.errors``).

    Library errors are one ``Error:`` line; Ctrl-C and SIGTERM at any moment
    are one ``imgconv: interrupted`` line (see ``imgconv.entry``); a failed
    write to stdout is a runtime error; anything else is an internal error.
    """
    from imgconv.entry import finished, prepare, stop_requested, stopped

    prepare()
    try:
        code = _invoke(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # a command's own exit code (a batch's, say)
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except KeyboardInterrupt as exc:  # also one arriving while an error is reported
        stopped(exc)
    finished()
    interruption = stop_requested()
    if interruption is not None:  # its KeyboardInterrupt was swallowed on the way (see imgconv.entry)
        stopped(interruption)
    sys.exit(code)


def _invoke(args: list[str]) -> int:
    from imgconv.output import abandon_stdout, stdout_failure

    if not os.environ.get("IMGCONV_DEBUG"):
        # stderr carries imgconv's own lines only: numpy's overflow warnings
        # (an inf that the finishing step clips) are not the user's business.
        warnings.simplefilter("ignore")
    try:
        if os.environ.get("_IMGCONV_COMPLETE"):  # shell completion is click's own business
            cli.main(args=args, prog_name="imgconv")
        # Not cli.main(): it turns KeyboardInterrupt into Abort after printing a
        # blank line, and loses which signal it was.
        with cli.make_context("imgconv", args) as context:
            cli.invoke(context)
        if sys.stdout is not None:
            sys.stdout.flush()
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:  # click's prompts; imgconv has none
        click.echo("imgconv: aborted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`imgconv ... - | head`): not worth a message.
        abandon_stdout()
        return EXIT_FAILURE
    except Exception as exc:
        from imgconv.entry import stop_requested

        interruption = stop_requested()
        if interruption is not None:  # the signal's KeyboardInterrupt became this error (numpy's import)
            raise interruption from None
        if os.environ.get("IMGCONV_DEBUG"):
            raise
        failure = stdout_failure(exc)
        code, message = exit_status(failure or exc)
        hint = " (IMGCONV_DEBUG=1 shows the traceback)" if message.startswith("internal error") else ""
        click.echo(f"Error: {message}{hint}", err=True)
        return code
