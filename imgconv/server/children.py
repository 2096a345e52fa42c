"""The warm parent's record of one forked child (the spare, then the child serving a call)."""

from __future__ import annotations

import socket

from imgconv.server import protocol


class Child:
    """A forked child: its channel to this parent and, once it serves a call, the call's socket.

    The parent keeps its copy of the call's socket only to tell the client
    if the child is killed; the channel brings back a declined call's reason.
    """

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel
        self.conn: socket.socket | None = None

    def fds(self) -> list[int]:
        return [s.fileno() for s in (self.channel, self.conn) if s is not None and s.fileno() >= 0]

    def note(self) -> dict:
        """What the child left on its channel before it exited ({} if nothing)."""
        try:
            self.channel.setblocking(False)
            message, _ = protocol.receive(self.channel)
            return message or {}
        except (OSError, EOFError, ValueError):
            return {}

    def close(self) -> None:
        for s in (self.channel, self.conn):
            if s is not None:
                s.close()
