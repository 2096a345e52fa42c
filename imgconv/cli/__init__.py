"""The command line: click commands that parse, call the library, report.

Each command converts its options, calls one library function, and lets
``imgconv.cli.report`` turn library errors into click's (exit 2 with the
usage line, or one ``Error:`` line and exit 1).  Heavy imports (numpy,
scipy, Pillow, rich) happen inside the commands that need them, so
``imgconv --help`` starts fast.  The commands live in ``files`` (apply,
pool, features) and ``info`` (kernels, backends).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

import click

from imgconv import __version__
from imgconv.errors import EXIT_FAILURE, EXIT_INTERRUPTED, exit_status


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from imgconv.cli import files, info
    from imgconv.server.commands import server  # the resident server's commands import only click

    for command in (*files.COMMANDS, *info.COMMANDS, server):
        cli.add_command(command)


_register()


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
