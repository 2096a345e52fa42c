"""The thin client: hand one call to the warm server, or say it cannot.

``run(argv)`` returns the call's exit code once the server has run it, or
None when the call must run in-process: no server yet (one is started for
the next calls), an unsafe socket folder, another interpreter or install,
an environment the server cannot honour, or any failure before the server
has taken the call.  Once the server has taken it (the "go" below), the
answer is the server's, whatever happens: a call never runs twice.

The conversation, one Unix socket per call:

    client                                     server child (forked per call)
    call: argv, cwd, env, umask, ...  + fds 0,1,2 -->
                                          <--  accepted: pid   (or declined: reason)
    go                                     -->
    signal: N (Ctrl-C, SIGTERM, ...)       -->   raised in the child
                                          <--  exit: code      (or, from the parent, killed: N)

Only modules built into the interpreter are imported here: this is the
whole cost of a served call on the client's side.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module under signal: no stub, and no import cost
import os
import sys

from imgconv.server import protocol

# Types for checkers only: importing typing, socket or types would cost a served call milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from types import FrameType

#: Signals the client passes on to the child while a call runs (as chg does).
FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2")

#: Signals whose "ignored" state the child copies from the client (``nohup``,
#: background jobs of a non-interactive shell).
INHERITED_IGNORES = (*FORWARDED, "SIGTSTP")


def run(argv: list[str]) -> int | None:
    """Run ``argv`` on the server: its exit code, or None to run in-process."""
    reason = protocol.supported()
    if reason:
        return in_process(reason)
    try:
        place = protocol.Place.here()
    except protocol.Unavailable as exc:
        return in_process(str(exc))
    request = call_request(argv)
    if request is None:
        return in_process(
            "a standard stream is closed or is a terminal this job does not own, or the working folder is gone"
        )
    taken = hand_over(place, request)
    if isinstance(taken, str):
        return in_process(taken)
    sock, child = taken
    return wait(sock, child)


def in_process(reason: str) -> int | None:
    """Say why, when ``IMGCONV_SERVER_DEBUG`` asks (never otherwise: the output must not change)."""
    if os.environ.get(protocol.ENV_DEBUG):
        os.write(2, f"imgconv: server: running in-process: {reason}\n".encode(errors="replace"))
    return None


def call_request(argv: list[str]) -> dict | None:
    """Everything the child needs to act as this process would; None if it cannot."""
    from imgconv.entry import closed_streams

    if closed_streams:  # reopened by imgconv.entry; in-process, a closed stdout is a clean error
        return None
    try:
        cwd = os.getcwd()
        here = os.stat(cwd)
        for fd in (0, 1, 2):
            os.fstat(fd)
            # A background job's terminal I/O stops it (SIGTTIN, SIGTTOU); the
            # server's child is in no terminal's process group, so it would not be.
            if os.isatty(fd) and _foreground_group(fd) not in (None, os.getpgrp()):
                return None
    except OSError:
        return None  # a deleted working folder or a closed standard stream: in-process says what it says
    streams = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            return None
        streams.append(
            (
                stream.encoding,
                stream.errors,
                stream.line_buffering,
                getattr(stream, "write_through", False),
                type(buffer).__name__ != "FileIO",
            )
        )
    umask = os.umask(0o022)
    os.umask(umask)
    ignored = [
        getattr(_signal, name)
        for name in INHERITED_IGNORES
        if hasattr(_signal, name) and _signal.getsignal(getattr(_signal, name)) == _signal.SIG_IGN
    ]
    request = {
        "type": "call",
        "identity": protocol.identity(),
        "argv": list(argv),
        "path0": sys.path[0] if sys.path else "",
        "cwd": cwd,
        "cwd_id": (here.st_dev, here.st_ino),
        "env": dict(os.environ),
        "umask": umask,
        "stdio": streams,
        "ignored": ignored,
        "rlimits": protocol.rlimits(),
        "nice": os.nice(0),
    }
    if hasattr(os, "sched_getaffinity"):
        request["affinity"] = sorted(os.sched_getaffinity(0))
    return request


def _foreground_group(fd: int) -> int | None:
    """The terminal's foreground process group; None if it is not this process's controlling terminal."""
    try:
        return os.tcgetpgrp(fd)
    except OSError:
        return None


def hand_over(place: protocol.Place, request: dict) -> tuple[socket, int] | str:
    """(socket, child pid) once the server has taken the call, else why not.

    Until "go" is sent nothing has run, so every failure up to here means
    "run it in-process".  A missing or dead server is started for the next
    calls; this one does not wait for it.
    """
    sock = protocol.unix_socket()
    try:
        sock.settimeout(protocol.HANDSHAKE_TIMEOUT)
        try:
            sock.connect(place.socket)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return start_in_background(place)
        if protocol.peer_uid(sock) != os.geteuid():
            sock.close()
            return "the socket's server runs as another user"
        protocol.send(sock, request, fds=(0, 1, 2))
        reply, _ = protocol.receive(sock)
        if not reply or reply.get("type") != "accepted":
            sock.close()
            return f"the server declined: {reply.get('reason')}" if reply else "the server closed the connection"
        child = int(reply["pid"])
        install_forwarding(sock, child)
        protocol.send(sock, {"type": "go"})  # from here on, the call is the server's
        sock.settimeout(None)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        restore_signals()
        sock.close()
        return f"{type(exc).__name__}: {exc}"
    return sock, child


# --------------------------------------------------------------------------
# While the child runs

_saved: dict[int, object] = {}


def install_forwarding(sock: socket, child: int) -> None:
    """Pass signals on to the child while the call runs.

    Signals the client ignores stay ignored (the child ignores them too).
    Ctrl-Z stops the child, then the client; ``fg`` continues both.
    """

    def forward(signum: int, frame: FrameType | None) -> None:
        try:
            protocol.send(sock, {"type": "signal", "signum": signum})
        except OSError:
            pass

    for name in FORWARDED:
        signum = getattr(_signal, name, None)
        if signum is not None and _signal.getsignal(signum) != _signal.SIG_IGN:
            _saved[signum] = _signal.signal(signum, forward)

    if hasattr(_signal, "SIGTSTP") and _signal.getsignal(_signal.SIGTSTP) == _signal.SIG_DFL:

        def suspend(signum: int, frame: FrameType | None) -> None:
            # The child is not in this terminal's process group: stop it by
            # hand (SIGSTOP: the server's group is orphaned, and the kernel
            # drops SIGTSTP there), then stop this process the default way.
            _kill(child, _signal.SIGSTOP)
            _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
            os.kill(os.getpid(), _signal.SIGTSTP)
            _signal.signal(_signal.SIGTSTP, suspend)  # continued: back on duty

        def resume(signum: int, frame: FrameType | None) -> None:
            _kill(child, _signal.SIGCONT)

        _saved[_signal.SIGTSTP] = _signal.signal(_signal.SIGTSTP, suspend)
        _saved[_signal.SIGCONT] = _signal.signal(_signal.SIGCONT, resume)


def restore_signals() -> None:
    while _saved:
        signum, handler = _saved.popitem()
        _signal.signal(signum, handler)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def wait(sock: socket, child: int) -> int:
    """The call's exit code, as the child reports it.

    If the child was killed by a signal, this process dies of the same
    signal, so the shell sees what it would have seen in-process.
    """
    try:
        while True:
            try:
                message, _ = protocol.receive(sock)
            except (OSError, EOFError, ValueError):
                message = None
            if message is None:
                os.write(2, b"imgconv: the server's process for this call ended without an exit status\n")
                return 1
            kind = message.get("type")
            if kind == "exit":
                return int(message["code"])
            if kind == "killed":
                signum = int(message["signum"])
                restore_signals()
                try:
                    _signal.signal(signum, _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass  # SIGKILL and SIGSTOP have no handler to reset
                os.kill(os.getpid(), signum)
                return 128 + signum  # a signal this process cannot die of
    finally:
        restore_signals()
        sock.close()


# --------------------------------------------------------------------------
# Starting a server


def start_in_background(place: protocol.Place) -> str:
    """Start a server for the next calls, unless one is starting or running.

    The lock file decides: whoever holds it may start the one server, and
    hands the held lock to it; the server keeps it for its whole life.  So
    eight concurrent first calls (``make -j8``) start exactly one server,
    and a stale socket is replaced only by the lock's holder.
    """
    import fcntl
    import time

    try:
        if time.time() - os.stat(place.failed).st_mtime < protocol.RETRY_AFTER_FAILURE:
            return f"a server failed to start less than {protocol.RETRY_AFTER_FAILURE:g} s ago (see {place.log})"
    except OSError:
        pass
    try:
        lock = os.open(place.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return f"cannot open the lock file: {exc.strerror}"
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return "no server answers yet; one is starting"
    try:
        pid = spawn(place, idle=idle_from_env(), lock=lock)
    except OSError as exc:
        return f"cannot start a server: {exc.strerror}"
    finally:
        os.close(lock)  # the server holds the lock now (the same open file)
    return f"no server was running; started one (pid {pid}) for the next calls"


def idle_from_env() -> float:
    """``IMGCONV_SERVER_IDLE`` seconds, else the default (a bad value never fails a call)."""
    text = os.environ.get(protocol.ENV_IDLE, "")
    try:
        value = float(text)
    except ValueError:
        return protocol.DEFAULT_IDLE
    return value if value >= 0 and value == value and value != float("inf") else protocol.DEFAULT_IDLE


#: Bytes of server log kept before a new server starts it afresh.
LOG_LIMIT = 1 << 20

#: The daemon's first lines: take the client's script folder as sys.path[0]
#: (the "-c" default, the current folder, must not shadow modules), then run.
_BOOT = "import sys; sys.path[0] = sys.argv.pop(1); from imgconv.server.daemon import main; main()"


def spawn(place: protocol.Place, *, idle: float, lock: int, ready: int = -1) -> int:
    """Start the daemon in its own session; it inherits ``lock`` (held) and ``ready``."""
    interpreter_flags: list[str] = []
    try:  # -E, -s, -I, -O, -X ...: the server must see what this interpreter sees
        import subprocess

        interpreter_flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        pass
    path0 = os.path.abspath(sys.path[0]) if sys.path and sys.path[0] else os.getcwd()
    argv = [sys.executable, *interpreter_flags, "-c", _BOOT, path0, place.socket, str(lock), repr(idle), str(ready)]
    inherited = [lock] + ([ready] if ready >= 0 else [])
    for fd in inherited:
        os.set_inheritable(fd, True)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        keep = os.stat(place.log).st_size < LOG_LIMIT  # the log keeps the history of a few starts, not forever
    except OSError:
        keep = True
    log = os.open(place.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (0 if keep else os.O_TRUNC), 0o600)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
        return os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    finally:
        os.close(devnull)
        os.close(log)
        for fd in inherited:
            os.set_inheritable(fd, False)
