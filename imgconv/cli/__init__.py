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
from collections.abc import Sequence
from types import FrameType

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


def _register() -> None:
    from imgconv.cli import files, info
    from imgconv.server.commands import server  # the resident server's commands import only click

    for command in (*files.COMMANDS, *info.COMMANDS, server):
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the group, map Ctrl-C and SIGTERM to exit 130."""
    import signal

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # SIGTERM stops a run the way Ctrl-C does

    signal.signal(signal.SIGTERM, interrupted)
    try:
        cli.main(args=argv, prog_name="imgconv", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("imgconv: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`imgconv ... - | head`): not worth a message.
        sys.stderr.close()
        sys.exit(EXIT_FAILURE)
    except Exception as exc:
        if os.environ.get("IMGCONV_DEBUG"):
            raise
        code, message = exit_status(exc)
        hint = " (IMGCONV_DEBUG=1 shows the traceback)" if message.startswith("internal error") else ""
        click.echo(f"Error: {message}{hint}", err=True)
        sys.exit(code)
    sys.exit(0)
