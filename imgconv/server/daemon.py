"""The warm parent: imports everything once, then forks one child per call.

Started by ``imgconv server start`` or by a client (``IMGCONV_SERVER=auto``)
as ``python -c BOOT SCRIPT_DIR SOCKET LOCK_FD IDLE READY_FD`` (see ``client.spawn``), in a session
of its own, holding the lock file for its whole life.  The parent stays
single-threaded and runs no call itself: a child forked from it starts with
numpy, Pillow, click, the backends and the parsed built-in registry already
in memory, takes over the client's argv, folder, environment, umask and
standard streams, and runs the same click entry point as ``imgconv`` does.

Before forking, the parent checks that the call can be honoured exactly
(``imgconv.server.admission``): the same protocol, interpreter, flags,
import path and imgconv copy; the same values of the variables read at
import time; an installation unchanged since the server started
(otherwise the server declines and exits, so the next call starts a
fresh one).
"""

from __future__ import annotations

import importlib
import os
import selectors
import signal
import socket
import sys
import time
from types import FrameType

from imgconv.server import protocol
from imgconv.server.admission import Admission
from imgconv.server.children import Child
from imgconv.server.warm import PRELOAD, warm_up


def log(message: str) -> None:
    """One line on the server's log (its stderr, a file in the socket folder)."""
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {message}\n")
    sys.stderr.flush()


def main() -> None:
    socket_path, lock_fd, idle, ready_fd = sys.argv[1:5]  # the boot line took the script folder
    os.chdir("/")  # hold no user folder open (a call's child takes the client's)
    # The umask stays the one inherited: imgconv.images reads it once, at import.
    ready = int(ready_fd)
    try:
        import fcntl

        fcntl.flock(int(lock_fd), fcntl.LOCK_EX | fcntl.LOCK_NB)  # handed over held: a no-op unless misused
    except OSError:
        _notify(ready, "error: another server holds the lock")
        log("another server holds the lock; exiting")
        sys.exit(0)
    server = Server(socket_path, int(lock_fd), float(idle))
    try:
        server.preload()
        server.listen()
    except BaseException as exc:  # the log and the start command say why
        log(f"could not start: {type(exc).__name__}: {exc}")
        _notify(ready, f"error: {type(exc).__name__}: {exc}")
        _mark_failed(socket_path)
        sys.exit(1)
    try:
        os.unlink(protocol.failed_marker(socket_path))
    except OSError:
        pass
    log(f"listening on {socket_path} (idle exit after {server.idle:g} s)")
    _notify(ready, f"ready {os.getpid()}")
    server.serve()
    log("stopped")
    sys.exit(0)


def _mark_failed(socket_path: str) -> None:
    """Leave the time of this failure, so that clients do not start a doomed server on every call."""
    try:
        with open(protocol.failed_marker(socket_path), "w") as marker:
            marker.write(f"{time.time()}\n")
    except OSError:
        pass


def _notify(fd: int, text: str) -> None:
    if fd < 0:
        return
    try:
        os.write(fd, text.encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


class Server:
    def __init__(self, socket_path: str, lock_fd: int, idle: float) -> None:
        self.socket_path = socket_path
        self.lock_fd = lock_fd
        self.idle = idle
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.calls = 0
        self.declined = 0
        self.last_decline = ""
        self.children: dict[int, Child] = {}  # pid -> the child serving a call
        self.spare: Child | None = None  # forked ahead, waiting for the next call
        self.stopping = False
        self.listener: socket.socket | None = None
        self.bound: tuple[int, int] | None = None
        self.admission: Admission | None = None  # what a call must match, captured after the preload

    # ----------------------------------------------------------------------
    # start-up

    def preload(self) -> None:
        for name in PRELOAD:
            importlib.import_module(name)
        from PIL import Image

        Image.preinit()
        from imgconv.kernels import load_registry

        try:
            load_registry()  # reads the built-in registry into memory (kept for the children)
        except Exception as exc:
            log(f"the built-in registry is not preloaded: {exc}")
        for failure in warm_up():
            log(failure)
        import threading

        if threading.active_count() > 1:  # forking now could hand a child a lock held by another thread
            raise RuntimeError("threads are still running after the preload")
        self.admission = Admission.capture()
        import gc

        # Keep the warm objects out of the collector's sight, so that a
        # child's collections do not write to (and so copy) the shared pages.
        gc.collect()
        gc.freeze()

    def listen(self) -> None:
        """Bind the socket, replacing a stale one (this process holds the lock)."""
        try:
            info = os.lstat(self.socket_path)
        except FileNotFoundError:
            pass
        else:
            if (info.st_mode & 0o170000) != 0o140000:  # S_ISSOCK
                raise OSError(f"{self.socket_path} exists and is not a socket")
            os.unlink(self.socket_path)  # a stale socket of a dead server
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        info = os.lstat(self.socket_path)
        self.bound = (info.st_dev, info.st_ino)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener

    # ----------------------------------------------------------------------
    # the loop

    def serve(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop_signal)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop; reaping is below
        selector = selectors.DefaultSelector()
        assert self.listener is not None
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ)
        self._close_in_child = [wake_read, wake_write, self.lock_fd]
        try:
            self._fork_spare()
            while not self.stopping:
                for key, _ in selector.select(self._timeout()):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        _drain(wake_read)
                self._reap(block=False)
                if self.spare is None and not self.stopping:
                    self._fork_spare()
                if not self.children and self.idle and time.monotonic() - self.last_activity >= self.idle:
                    log(f"no call for {self.idle:g} s; exiting")
                    self.stopping = True
        finally:
            self._shut(selector)

    def _timeout(self) -> float | None:
        if self.children:
            return 1.0  # SIGCHLD wakes the loop; this is a backstop
        if not self.idle:
            return None  # --idle 0: never exit by itself
        return max(0.0, self.idle - (time.monotonic() - self.last_activity)) + 0.01

    def _stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _shut(self, selector: selectors.BaseSelector) -> None:
        """Stop taking calls at once; let the running ones finish."""
        self._unlink()
        selector.close()
        if self.listener is not None:
            self.listener.close()  # connections still queued get EOF: their clients run in-process
        if self.spare is not None:
            self.spare.channel.close()  # the spare child sees EOF and exits
        signal.set_wakeup_fd(-1)
        while self.children or self.spare is not None:
            self._reap(block=True)

    def _unlink(self) -> None:
        """Remove the socket file, unless it is no longer ours."""
        try:
            info = os.lstat(self.socket_path)
            if (info.st_dev, info.st_ino) == self.bound:
                os.unlink(self.socket_path)
        except OSError:
            pass

    # ----------------------------------------------------------------------
    # children

    def _fork_spare(self) -> None:
        """Fork the child that will serve the next call, before that call arrives.

        Forking a process of this size takes milliseconds; done ahead, a
        call only waits for its hand-over through the spare's channel.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the spare: never returns
            from imgconv.server.child import serve_spare

            assert self.listener is not None
            close = [self.listener.fileno(), *self._close_in_child, ours.fileno()]
            close += [fd for child in self.children.values() for fd in child.fds()]
            serve_spare(theirs, close=close)
        theirs.close()
        self.spare = Child(pid, ours)

    def _reap(self, *, block: bool) -> None:
        while self.children or self.spare is not None:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                self.spare = None
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare.pid:
                self.spare.close()
                self.spare = None
            elif pid in self.children:
                self._ended(self.children.pop(pid), status)
            if block:
                return

    def _ended(self, child: Child, status: int) -> None:
        self.last_activity = time.monotonic()
        note = child.note()
        if note.get("type") == "declined":  # the child could not take on the client's state
            self.calls -= 1
            self.declined += 1
            self.last_decline = str(note.get("reason"))
        if os.WIFSIGNALED(status) and child.conn is not None:
            # The child could not say so itself: tell the client, which
            # then dies of the same signal, as an in-process run would.
            try:
                child.conn.setblocking(False)
                protocol.send(child.conn, {"type": "killed", "signum": os.WTERMSIG(status)})
            except OSError:
                pass
        child.close()

    # ----------------------------------------------------------------------
    # one connection

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log(f"accept failed: {exc}")
            return
        self.last_activity = time.monotonic()
        fds: list[int] = []
        handed = False
        try:
            if protocol.peer_uid(conn) != os.geteuid():
                log("refused a connection from another user")
                return
            conn.settimeout(2.0)  # a frame arrives with the connection; do not wait on a stuck peer
            message, fds = protocol.receive(conn, max_fds=3)
            if message is None:
                return
            kind = message.get("type")
            if kind == "status":
                protocol.send(conn, self.status())
            elif kind == "stop":
                protocol.send(conn, {"type": "stopping", "pid": os.getpid()})
                log("stop asked")
                self.stopping = True
            elif kind == "call":
                handed = self._call(conn, message, fds)
        except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
            log(f"dropped a connection: {type(exc).__name__}: {exc}")
        finally:
            protocol.close_all(fds)
            if not handed:
                conn.close()

    def _call(self, conn: socket.socket, request: dict, fds: list[int]) -> bool:
        assert self.admission is not None  # captured before listening
        reason, stale = self.admission.refusal(request, fds)
        if reason:
            self.declined += 1
            self.last_decline = reason
            protocol.send(conn, {"type": "declined", "reason": reason})
            if stale:
                log(f"{reason}; exiting so that the next call starts a fresh server")
                self.stopping = True
            return False
        for _ in range(2):  # a spare that died meanwhile is replaced once
            if self.spare is None:
                self._fork_spare()
            child, self.spare = self.spare, None
            assert child is not None
            try:
                protocol.send(child.channel, request, fds=(conn.fileno(), *fds))
            except OSError:
                child.close()
                self._reap(block=False)
                continue
            child.conn = conn
            self.children[child.pid] = child
            self.calls += 1
            return True
        raise OSError("no child could take the call")

    def status(self) -> dict:
        return {
            "type": "status",
            "pid": os.getpid(),
            "socket": self.socket_path,
            "version": self.admission.identity.get("version", "") if self.admission else "",
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "started": self.started,
            "uptime": time.time() - self.started,
            "idle": self.idle,
            "calls": self.calls,
            "declined": self.declined,
            "last_decline": self.last_decline,
            "running": sorted(self.children),  # pids of the children serving calls
            "spare": self.spare.pid if self.spare else None,
        }


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass
