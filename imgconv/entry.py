"""The program's entry point: what must hold before anything else runs.

``main`` installs the signal handlers before importing the command line
(click, and numpy later), so Ctrl-C or SIGTERM at any moment of a run, even
during those imports, unwinds it the same way: one ``imgconv: interrupted``
(or ``terminated``) line, exit 130 (or 143), no traceback.  The first
signal starts the unwinding; further ones are ignored while it runs, so the
clean-up (workers stopped, temporary files removed) is never cut short.

A signal is also remembered (``stop_requested``): code that swallows the
KeyboardInterrupt it raises (numpy turns one that hits its import into an
ImportError) cannot make the run go on as if nothing had happened.

It also gives closed standard streams (``>&-``) a harmless descriptor, so
that no file imgconv opens can take descriptor 0, 1 or 2 and receive stray
output; writing to a closed stdout is then a clean error.

Only the interpreter's own start-up, before this module runs (a few tens
of milliseconds), is out of its reach: a SIGTERM there ends the process
the default way (the shell reports 143 all the same) and a Ctrl-C there
gets Python's own report; nothing has been read or written by then.

While the program starts, the cyclic garbage collector is paused
(``resume_collector`` turns it back on when the work begins): start-up
builds some hundred thousand long-lived objects (modules, classes,
functions; click's, numpy's, imgconv's) and next to no cyclic garbage, and
the collector's passes over them were about a tenth of a cold call.

This module imports nothing but built-in modules and ``imgconv.errors``.
"""

from __future__ import annotations

import gc
import os
import sys

# Imported whole before a handler can run, so a handler never meets it half-imported.
from imgconv.errors import Terminated, exit_status

try:  # the C module under ``signal``: no enum import, so the handlers go in sooner
    import _signal as signals  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - other interpreters
    import signal as signals  # type: ignore[no-redef, unused-ignore]

TYPE_CHECKING = False  # typing itself takes milliseconds to import; mypy reads the name
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import NoReturn

_received: int | None = None
_collector_paused = False


def main() -> None:
    """``python -m imgconv`` (the console script is ``imgconv.launcher``)."""

    def program() -> None:
        from imgconv.cli import main as run

        run()

    top_level(program)


def top_level(program: Callable[[], object]) -> None:
    """Run a whole program: handlers first; an interruption reported, then the process left at once.

    After an interruption the run has already unwound (workers stopped,
    temporary files gone); what is left is the interpreter's own shutdown,
    which a late signal could still turn into a traceback or a death by
    signal, so it is skipped: nothing remains to be written.  (A server's
    child, which must report its exit code first, runs ``imgconv.cli.main``
    directly, where ``stopped`` only raises SystemExit.)

    A run that ends without an interruption leaves through ``leave``.
    """
    pause_collector()
    try:
        try:
            prepare()
            program()
        except KeyboardInterrupt as exc:  # a signal while the command line imports, say
            stopped(exc)
    except SystemExit as exc:
        if _received is None:
            leave(exc.code)
            raise
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    leave(None)


def leave(code: object) -> None:
    """End the process as the interpreter's exit would, without taking its modules apart.

    What the interpreter does after the program that others can see is
    done here, in its order: wait for the threads that are not daemons,
    run the ``atexit`` functions, flush standard output and error; then the
    process exits with ``code``.  What is skipped is the teardown of every
    module and object (numpy's, click's, Pillow's), some milliseconds of a
    cold call that nobody sees.  Anything unusual returns instead, for the
    interpreter's own exit: a code that is not a number (printed, status
    1) and a stream that cannot be flushed (reported, status 120).
    """
    if code is not None and not isinstance(code, int):
        return
    finished()  # the outcome is decided: a signal now changes nothing
    # As the interpreter does: threads only if threading was ever imported.
    shutdown = getattr(sys.modules.get("threading"), "_shutdown", None)
    if shutdown is not None:
        shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None or getattr(stream, "closed", False):
            continue
        try:
            stream.flush()
        except Exception:
            return
    os._exit((code or 0) & 0xFF)


def pause_collector() -> None:
    """Pause the cyclic garbage collector for the start-up (a whole program only)."""
    global _collector_paused
    if gc.isenabled():
        gc.disable()
        _collector_paused = True


def resume_collector() -> None:
    """The work begins: collect cyclic garbage again, as any run does.

    What start-up built is frozen first (``gc.freeze``): it stays for the
    whole run, and the collector's passes leave it out instead of scanning
    it all at the first one.  A no-op unless ``pause_collector`` paused it,
    so a program that embeds imgconv keeps its own collector settings.
    """
    global _collector_paused
    if _collector_paused:
        _collector_paused = False
        gc.freeze()
        gc.enable()


def prepare() -> None:
    """Install the signal handlers and guard closed standard streams.

    Safe to call again (``imgconv.cli.main`` does, and a server's forked
    child must install them for itself); after a stop it changes nothing.
    """
    if _received is not None:
        return
    # A signal the process was started ignoring stays ignored, as Python itself
    # does for SIGINT: that is how nohup, 'trap "" INT' and a non-interactive
    # shell's background jobs keep a command running.
    ignored = [s for s in (signals.SIGINT, signals.SIGTERM) if signals.getsignal(s) == signals.SIG_IGN]
    stop_on(*(s for s in (signals.SIGINT, signals.SIGTERM) if s not in ignored))
    _guard_standard_streams()


def stop_on(*signums: int) -> None:
    """Let these signals stop the process as ``prepare`` describes (a batch
    worker, which leaves Ctrl-C to its parent, takes SIGTERM only, whatever
    it inherited: its parent stops it that way)."""
    sys.unraisablehook = _unraisable
    for signum in signums:
        signals.signal(signum, _stop)


def _unraisable(report: sys.UnraisableHookArgs) -> None:
    """A signal's KeyboardInterrupt raised where Python cannot raise it (a
    weakref callback of the import machinery) is reported as "Exception
    ignored" with a traceback; the signal is remembered, so say nothing."""
    if isinstance(report.exc_value, KeyboardInterrupt) and _received is not None:
        return
    sys.__unraisablehook__(report)


def _stop(signum: int, frame: FrameType | None) -> None:
    global _received
    # Ignore what follows first, so a second signal cannot interrupt the
    # unwinding this one starts.
    finished()
    if _received is not None:
        return
    _received = signum
    raise stop_requested() or KeyboardInterrupt()


def stop_requested() -> KeyboardInterrupt | None:
    """The interruption a signal asked for (``Terminated`` for SIGTERM), or None."""
    if _received is None:
        return None
    return Terminated() if _received == signals.SIGTERM else KeyboardInterrupt()


def finished() -> None:
    """The run's outcome is decided: a signal from now on changes nothing.

    (A batch worker, which ignores SIGINT from its start, keeps it ignored.)

    Without this, a signal in the last instant (after the summary, while
    the interpreter shuts down and has put the default handlers back) would
    kill the process and hide an exit code that was already true.
    """
    signals.signal(signals.SIGINT, signals.SIG_IGN)
    signals.signal(signals.SIGTERM, signals.SIG_IGN)


def stopped(exc: KeyboardInterrupt) -> NoReturn:
    """Report an interruption in one line, then raise SystemExit with its code."""
    finished()
    code, word = exit_status(exc)
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"imgconv: {word}\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    raise SystemExit(code)


#: The standard descriptors that were closed when the program started (a
#: server call is then run in-process, where that is what it meets).
closed_streams: list[int] = []


def _guard_standard_streams() -> None:
    """Reopen closed descriptors 0, 1 and 2 on harmless targets."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            closed_streams.append(descriptor)
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
            if descriptor == 1:
                from imgconv.output import closed_stdout

                sys.stdout = closed_stdout()  # writing to it is a clean error, not a silent no-op
            elif descriptor == 2 and sys.stderr is None:
                # Python left sys.stderr None, and click then writes errors to
                # stdout, into the image a pipe carries: let them go nowhere.
                sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
