"""What a client and the server share: the socket's place, framing, identity.

This module is imported by the thin client before anything else of
imgconv's, so it uses only modules built into the interpreter (``_socket``
rather than ``socket``, ``marshal`` rather than ``json``): the client must
cost a few milliseconds, not the hundred that numpy and click take.

Messages are frames: a 4-byte big-endian length, then a ``marshal``-encoded
dict.  Both ends run the same interpreter (checked in the first frame), so
``marshal`` is exact for the str/int/list/dict/tuple values exchanged, and
nothing but the same user ever reaches a frame (the directory is private
and the server checks the peer's uid before reading).

>>> frame = encode({"type": "status"})
>>> int.from_bytes(frame[:4], "big") == len(frame) - 4
True
>>> decode(frame[4:])
{'type': 'status'}
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

#: Bumped whenever a frame changes meaning; a mismatch is declined.
PROTOCOL = 1

#: Frames above this are refused (an environment is a few KB).
MAX_FRAME = 16 * 1024 * 1024

#: Seconds a client waits for the server to accept a call before running it
#: in-process (a stopped or wedged server must not hang a Makefile).
HANDSHAKE_TIMEOUT = 10.0

#: Seconds without a call after which an auto-started server exits.
DEFAULT_IDLE = 300.0

ENV_MODE = "IMGCONV_SERVER"
ENV_IDLE = "IMGCONV_SERVER_IDLE"
ENV_DEBUG = "IMGCONV_SERVER_DEBUG"  # says on stderr why a call ran in-process

#: Environment variables read when the interpreter starts or when numpy,
#: its BLAS, Pillow or imgconv are imported.  The warm server imported
#: everything under its own values, so a call whose values differ runs
#: in-process.  IMGCONV_THREADS is read per call today, but it is a thread
#: setting of the same kind and is kept here so that reading it once at
#: import can never make a served call differ.
IMPORT_TIME_PREFIXES = (
    "PYTHON",
    "OMP_",
    "OPENBLAS_",
    "GOTO_",
    "MKL_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "NPY_",
    "NUMPY_",
    "LD_",
    "MALLOC_",
    "LC_",
)
IMPORT_TIME_NAMES = ("IMGCONV_THREADS", "LANG", "TZ")

#: Resource limits a call runs under; the child takes the client's.
RLIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CPU", "RLIMIT_CORE", "RLIMIT_STACK")


class Unavailable(Exception):
    """The server cannot take this call; the reason says why (for ``status``)."""


def supported() -> str | None:
    """Why this platform cannot pass file descriptors, or None when it can."""
    if not hasattr(_socket, "AF_UNIX"):
        return "no Unix domain sockets"
    if not hasattr(_socket.socket, "sendmsg") or not hasattr(_socket, "SCM_RIGHTS"):
        return "no file descriptor passing (SCM_RIGHTS)"
    if not hasattr(os, "fork"):
        return "no fork()"
    if peer_uid_method() is None:
        return "no way to check a peer's uid"
    return None


# --------------------------------------------------------------------------
# Where the socket lives


def runtime_dir(env: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """The per-user folder of sockets: ``$XDG_RUNTIME_DIR/imgconv``, else
    ``imgconv-UID`` in the temporary folder.

    >>> runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"})
    '/run/user/1000/imgconv'
    >>> runtime_dir({"TMPDIR": "/scratch"}) == f"/scratch/imgconv-{os.geteuid()}"
    True
    """
    base = env.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base):
        return os.path.join(base, "imgconv")
    temp = env.get("TMPDIR") or "/tmp"  # tempfile's first choices, without importing tempfile
    return os.path.join(temp, f"imgconv-{os.geteuid()}")


def private_dir(path: str, *, create: bool = True) -> str:
    """``path``, made if missing, after checking that only this user can use it.

    A folder owned by someone else, open to others (group or world bits),
    or a symbolic link could let another user plant or read a socket, so
    each is refused with the reason; it is never repaired silently.
    """
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise Unavailable(f"{path}: cannot create the socket folder: {exc.strerror}") from None
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise Unavailable(f"{path}: {exc.strerror}") from None
    if (info.st_mode & 0o170000) != 0o040000:  # S_ISDIR, and lstat: a symlink is not a folder
        raise Unavailable(f"{path}: not a folder (a symbolic link or a file); refusing to use it")
    if info.st_uid != os.geteuid():
        raise Unavailable(f"{path}: owned by uid {info.st_uid}, not {os.geteuid()}; refusing to use it")
    if info.st_mode & 0o077:
        raise Unavailable(
            f"{path}: mode {info.st_mode & 0o777:04o} lets other users in (need 0700); refusing to use it"
        )
    return path


def install_key() -> str:
    """A short name for this interpreter and this copy of imgconv.

    Two virtual environments (or two checkouts) get two servers; each call
    is still checked in full against the server's identity.
    """
    import zlib

    text = f"{sys.executable}\0{package_dir()}".encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}"


def package_dir() -> str:
    import imgconv

    return os.path.dirname(os.path.abspath(imgconv.__file__))


#: Seconds after a server failed to start during which clients do not start another.
RETRY_AFTER_FAILURE = 60.0


def failed_marker(socket_path: str) -> str:
    return socket_path[: -len(".sock")] + ".failed"


class Place:
    """The files of one server: socket, lock (held while it lives), log, failure mark."""

    def __init__(self, folder: str, key: str) -> None:
        self.folder = folder
        self.socket = os.path.join(folder, f"server-{key}.sock")
        self.lock = os.path.join(folder, f"server-{key}.lock")
        self.log = os.path.join(folder, f"server-{key}.log")
        self.failed = failed_marker(self.socket)

    @classmethod
    def here(cls, env: os._Environ[str] | dict[str, str] = os.environ, *, create: bool = True) -> Place:
        return cls(private_dir(runtime_dir(env), create=create), install_key())


# --------------------------------------------------------------------------
# Identity: what must be equal for a served call to equal an in-process one


def identity() -> dict:
    """This process's interpreter, flags, import path and imgconv copy."""
    import imgconv

    return {
        "protocol": PROTOCOL,
        "executable": sys.executable,
        "python": sys.version,
        "flags": tuple(sys.flags),
        # sys.path[0] is the script's folder (the console script's bin/);
        # the child takes the client's, the rest must match.
        "path": tuple(sys.path[1:]),
        "package": package_dir(),
        "version": imgconv.__version__,
    }


def import_time_env(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` that act at start-up or import time.

    >>> import_time_env({"OMP_NUM_THREADS": "1", "HOME": "/root", "LANG": "C"})
    {'LANG': 'C', 'OMP_NUM_THREADS': '1'}
    """
    return {k: v for k, v in sorted(env.items()) if k.startswith(IMPORT_TIME_PREFIXES) or k in IMPORT_TIME_NAMES}


def rlimits() -> dict[str, tuple[int, int]]:
    import resource

    return {name: resource.getrlimit(getattr(resource, name)) for name in RLIMITS if hasattr(resource, name)}


# --------------------------------------------------------------------------
# Frames


def encode(message: dict) -> bytes:
    payload = marshal.dumps(message)
    return len(payload).to_bytes(4, "big") + payload


def decode(payload: bytes) -> dict:
    message = marshal.loads(payload)
    if not isinstance(message, dict):
        raise ValueError("a frame is not a dict")
    return message


def send(sock: _socket.socket, message: dict, fds: tuple[int, ...] = ()) -> None:
    """Send one frame; ``fds`` travel with its first byte (SCM_RIGHTS)."""
    data = encode(message)
    if fds:
        rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        data = data[sent:]
    if data:
        sock.sendall(data)


def receive(sock: _socket.socket, *, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One frame and the descriptors that came with it; (None, []) at a clean EOF."""
    fds: list[int] = []
    if max_fds:
        cloexec = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)  # no window in which a fork could inherit them
        head, ancillary, flags, _ = sock.recvmsg(4, _socket.CMSG_SPACE(4 * max_fds), cloexec)
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                usable = len(data) - len(data) % 4
                fds += [int.from_bytes(data[i : i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4)]
        for fd in fds:
            os.set_inheritable(fd, False)
        if flags & getattr(_socket, "MSG_CTRUNC", 0):
            close_all(fds)
            raise ValueError("file descriptors were cut off")
    else:
        head = sock.recv(4)
    try:
        if not head:
            return None, fds
        head += _exactly(sock, 4 - len(head))
        size = int.from_bytes(head, "big")
        if size > MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes")
        return decode(_exactly(sock, size)), fds
    except BaseException:
        close_all(fds)
        raise


def _exactly(sock: _socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the connection closed inside a frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def unix_socket() -> _socket.socket:
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)


# --------------------------------------------------------------------------
# Peer credentials


def peer_uid_method() -> str | None:
    if hasattr(_socket, "SO_PEERCRED"):
        return "SO_PEERCRED"
    if sys.platform == "darwin" or sys.platform.startswith("freebsd"):
        return "LOCAL_PEERCRED"  # what getpeereid() reads on these systems
    return None


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    method = peer_uid_method()
    if method == "SO_PEERCRED":
        data = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
        return int.from_bytes(data[4:8], sys.byteorder)
    if method == "LOCAL_PEERCRED":
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        # at level SOL_LOCAL (0), option LOCAL_PEERCRED (1).
        data = sock.getsockopt(0, 1, 76)
        return int.from_bytes(data[4:8], sys.byteorder)
    raise OSError("no way to read a peer's uid on this platform")
