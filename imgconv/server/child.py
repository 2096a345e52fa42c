"""One call, in a child forked from the warm server.

The child becomes, as far as the call can tell, the client's own process:
its folder, environment, umask, argv, import path, resource limits, signal
dispositions and standard streams (the client's descriptors, rebuilt with
the client's encodings and buffering).  It then runs ``imgconv.cli.main``,
the function the ``imgconv`` command runs, finishes like an interpreter
does at exit, and reports the exit code.

If anything of that cannot be done exactly, the child declines before the
client says "go", and the client runs the call itself.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from imgconv.server import protocol

if TYPE_CHECKING:
    import socket

#: Python's own dispositions at start-up (SIGINT raises KeyboardInterrupt,
#: SIGPIPE and SIGXFSZ are ignored, the rest are the system's defaults).
_STARTUP_SIGNALS: dict[str, Any] = {
    "SIGINT": signal.default_int_handler,
    "SIGTERM": signal.SIG_DFL,
    "SIGHUP": signal.SIG_DFL,
    "SIGQUIT": signal.SIG_DFL,
    "SIGUSR1": signal.SIG_DFL,
    "SIGUSR2": signal.SIG_DFL,
    "SIGTSTP": signal.SIG_DFL,
    "SIGCHLD": signal.SIG_DFL,
    "SIGPIPE": signal.SIG_IGN,
    "SIGXFSZ": signal.SIG_IGN,
}


class Declined(Exception):
    """This call cannot run here exactly as in the client's process."""


def serve_spare(channel: socket.socket, *, close: list[int]) -> None:
    """Wait, forked ahead, for the parent to hand over a call; serve it and exit. Never returns."""
    try:
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass
        signal.set_wakeup_fd(-1)
        _default_signals()
        message, fds = protocol.receive(channel, max_fds=4)  # the call's socket, then its stdin, stdout, stderr
    except BaseException:  # the parent went away (EOF) or this spare was stopped
        os._exit(0)
    if message is None or len(fds) != 4:
        protocol.close_all(fds)
        os._exit(0)
    import socket

    conn = socket.socket(fileno=fds[0])
    run_call(conn, fds[1:], message, channel)


def run_call(conn: socket.socket, fds: list[int], request: dict, channel: socket.socket) -> None:
    """Serve one call and exit; never returns."""
    code = 1
    try:
        try:
            become_client(request, fds)
        except Declined as exc:
            note = {"type": "declined", "reason": str(exc)}
            protocol.send(channel, note)  # for the server's status
            protocol.send(conn, note)
            code = 0
            return
        protocol.send(conn, {"type": "accepted", "pid": os.getpid()})
        conn.settimeout(protocol.HANDSHAKE_TIMEOUT)
        pending = []
        while True:
            go, _ = protocol.receive(conn)
            if not go or go.get("type") != "signal":
                break
            # The client forwards signals from the moment it accepts, before
            # its "go" is out: they stop the call once it runs, not the handshake.
            pending.append(int(go["signum"]))
        if not go or go.get("type") != "go":
            code = 0  # the client gave up and runs the call itself
            return
        conn.settimeout(None)
        finished = threading.Event()
        code = call_main(conn, finished, pending)
        code = finish_like_exit(code)
        finished.set()
        protocol.send(conn, {"type": "exit", "code": code})
    except BaseException:  # never unwind into the server's own frames
        pass
    finally:
        os._exit(code & 0xFF)  # what the shell would see of sys.exit(code)


def _default_signals() -> None:
    for name, handler in _STARTUP_SIGNALS.items():
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def become_client(request: dict, fds: list[int]) -> None:
    """Take on the client's process state, or raise Declined."""
    try:
        os.chdir(request["cwd"])
        here = os.stat(".")
    except OSError as exc:
        raise Declined(f"cannot enter the client's folder: {exc.strerror}") from None
    if (here.st_dev, here.st_ino) != tuple(request["cwd_id"]):
        raise Declined("the client's folder is another folder here (a chroot or another mount namespace)")
    _limits(request.get("rlimits") or {})
    _scheduling(request)
    for signum in request.get("ignored", ()):
        signal.signal(signum, signal.SIG_IGN)
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    import tempfile

    tempfile.tempdir = None  # computed again from this call's TMPDIR
    sys.argv = list(request["argv"])
    sys.path[0:1] = [request["path0"]]
    _streams(fds, request["stdio"])


def _limits(wanted: dict) -> None:
    import resource

    for name, (soft, hard) in wanted.items():
        which = getattr(resource, name, None)
        if which is None or resource.getrlimit(which) == (soft, hard):
            continue
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            raise Declined(f"cannot apply the client's {name}") from None


def _scheduling(request: dict) -> None:
    """The client's niceness and CPUs: speed only, so a failure is not a refusal."""
    try:
        change = request["nice"] - os.nice(0)
        if change > 0:
            os.nice(change)
        if "affinity" in request and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, request["affinity"])
    except (OSError, KeyError, ValueError):
        pass


def _streams(fds: list[int], specs: list) -> None:
    """The client's descriptors become 0, 1 and 2, wrapped as Python wraps its own."""
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    fds[:] = []
    names = ("<stdin>", "<stdout>", "<stderr>")
    streams = []
    for fd, (encoding, errors, line_buffering, write_through, buffered), name in zip(
        (0, 1, 2), specs, names, strict=False
    ):
        mode = "rb" if fd == 0 else "wb"
        buffer: Any = open(fd, mode, buffering=-1 if buffered else 0, closefd=False)  # noqa: SIM115 - the call's own stdio
        (buffer.raw if buffered else buffer).name = name
        stream = io.TextIOWrapper(
            buffer,
            encoding=encoding,
            errors=errors,
            newline="\n",
            line_buffering=line_buffering,
            write_through=write_through,
        )
        stream.mode = mode[0]  # type: ignore[misc]  # as the interpreter's own stdio reports it
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]  # this process is the call


def call_main(conn: socket.socket, finished: threading.Event, pending: list[int]) -> int:
    """Run the command line's entry point; its exit code as ``sys.exit`` would give it.

    The call's signal handling goes in first, as the ``imgconv`` command's
    does, so a signal forwarded at any moment from here on (or before the
    call began: ``pending``) ends it as it would end in-process: one line,
    130 or 143.
    """
    from imgconv.entry import prepare, stopped

    try:
        try:
            prepare()
            for signum in pending:
                os.kill(os.getpid(), signum)
            from imgconv import png_vips

            png_vips.ENABLED = True  # a call runs in this forked child, which never forks again
            threading.Thread(target=_watch, args=(conn, finished), name="imgconv-client-watch", daemon=True).start()
            from imgconv.cli import main

            main()
        except KeyboardInterrupt as exc:  # before main() took charge of it
            stopped(exc)
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:  # sys.exit("message"): printed to stderr, status 1
        print(value, file=sys.stderr)
    except Exception:
        pass
    return 1


def finish_like_exit(code: int) -> int:
    """What the interpreter does after the main module returns.

    Join the remaining non-daemon threads, run the atexit functions, flush
    the standard streams; a stdout that cannot be flushed makes the status
    120, as in CPython.
    """
    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    except Exception:
        pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception as exc:
            if stream is sys.stdout:
                try:
                    sys.stderr.write(f"Exception ignored on flushing sys.stdout:\n{type(exc).__name__}: {exc}\n")
                    sys.stderr.flush()
                except Exception:
                    pass
                code = 120 if code == 0 else code
    return code


def _watch(conn: socket.socket, finished: threading.Event) -> None:
    """Raise the client's forwarded signals here; stop if the client dies."""
    while True:
        try:
            message, _ = protocol.receive(conn)
        except Exception:
            message = None
        if message is None:
            if not finished.is_set():
                # The client is gone (killed, or its terminal closed): stop the
                # call the way SIGTERM stops it in-process, cleaning up, and
                # silently: a killed process has nothing more to say on the
                # terminal it shared, and nobody waits for its words.
                sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the call
                os.kill(os.getpid(), signal.SIGTERM)
            return
        if message.get("type") == "signal":
            try:
                os.kill(os.getpid(), int(message["signum"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
