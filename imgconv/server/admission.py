"""Whether the warm parent can serve a call exactly as an in-process run would.

The parent captures, once its imports are done, what a call's answer could
depend on beyond its argv and files: the protocol, interpreter, flags,
import path and imgconv copy (``protocol.identity``), the variables read at
import time, the umask, and the installation's state (``warm.install_stamp``).
``Admission.refusal`` compares a call's request with them before any fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from imgconv.server import protocol
from imgconv.server.warm import install_stamp, stamp_paths

#: Why a call runs in-process, for each field of ``protocol.identity()`` that differs.
_IDENTITY_DIFFERS = {
    "protocol": "the client speaks another protocol version than the server",
    "executable": "the client runs another interpreter than the server",
    "python": "the client runs another Python version than the server",
    "flags": "the client's interpreter flags (sys.flags) differ from the server's",
    "path": "the client's import path differs from the server's",
    "package": "the client's imgconv folder differs from the server's",
    "version": "the client's imgconv version differs from the server's",
}


@dataclass
class Admission:
    """What a call must match to be served (captured by ``capture``, after the preload)."""

    identity: dict
    import_env: dict[str, str]
    umask: int
    stamp_paths: tuple[list[str], list[str]]
    stamp: tuple

    @classmethod
    def capture(cls) -> Admission:
        umask = os.umask(0o077)
        os.umask(umask)
        paths = stamp_paths()
        return cls(
            identity=protocol.identity(),
            import_env=protocol.import_time_env(os.environ),
            umask=umask,
            stamp_paths=paths,
            stamp=install_stamp(paths),
        )

    def refusal(self, request: dict, fds: list[int]) -> tuple[str, bool]:
        """Why this call cannot be served exactly (and whether the server is stale), or ("", False)."""
        if len(fds) != 3:
            return "the standard streams did not arrive", False
        theirs = request.get("identity") or {}
        for key, mine in self.identity.items():
            if theirs.get(key) != mine:
                return _IDENTITY_DIFFERS.get(key, f"the client's {key} differs from the server's"), False
        env = protocol.import_time_env(request.get("env") or {})
        if env != self.import_env:
            names = sorted(k for k in set(env) | set(self.import_env) if env.get(k) != self.import_env.get(k))
            return (
                f"{', '.join(names)} differ{'s' if len(names) == 1 else ''} from the server's (read at start-up)",
                False,
            )
        if request.get("umask") != self.umask:  # output files' modes come from the umask read at import
            return f"the umask {request.get('umask'):04o} differs from the server's {self.umask:04o}", False
        if install_stamp(self.stamp_paths) != self.stamp:
            return "the installation changed since the server started", True
        return "", False
