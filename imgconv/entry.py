"""The program's entry point: what must hold before anything else runs.

``main`` installs the signal handlers before importing the command line
(click, and numpy later), so Ctrl-C or SIGTERM at any moment of a run, even
during those imports, unwinds it the same way: one ``imgconv: interrupted``
(or ``terminated``) line, exit 130 (or 143), no traceback.  The first
signal starts the unwinding; further ones are ignored while it runs, so the
clean-up (workers stopped, temporary files removed) is never cut short.

It also gives closed standard streams (``>&-``) a harmless descriptor, so
that no file imgconv opens can take descriptor 1 or 2 and receive stray
output; ``sys.stdout`` stays None, and writing to it is a clean error.

This module imports nothing heavy.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

_installed = False
_stopping = False


def main() -> None:
    """The ``imgconv`` console script and ``python -m imgconv``."""
    prepare()
    try:
        from imgconv.cli import main as run
    except KeyboardInterrupt as exc:  # a signal while the command line imports
        stopped(exc)
    run()


def prepare() -> None:
    """Install the signal handlers and guard closed standard streams (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    _guard_standard_streams()


def _stop(signum: int, frame: FrameType | None) -> None:
    global _stopping
    # Ignore what follows first, so a second signal cannot interrupt the
    # unwinding this one starts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _stopping:
        return
    _stopping = True
    from imgconv.errors import Terminated

    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def stopped(exc: KeyboardInterrupt) -> None:
    """Report an interruption in one line and exit with its code."""
    from imgconv.errors import exit_status

    code, word = exit_status(exc)
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"imgconv: {word}\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    raise SystemExit(code)


def _guard_standard_streams() -> None:
    """Reopen closed descriptors 0, 1 and 2 on harmless targets."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            if descriptor == 1:
                # A pipe nobody reads: a write there fails (EPIPE), it never lands in a file.
                reader, writer = os.pipe()
                os.close(reader)
                target = writer
            else:
                target = os.open(os.devnull, os.O_RDONLY if descriptor == 0 else os.O_WRONLY)
            if target != descriptor:
                os.dup2(target, descriptor)
                os.close(target)
