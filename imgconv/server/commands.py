"""``imgconv server start|stop|status``: the resident server's commands.

Thin click commands over ``imgconv.server.client`` and ``protocol``; they
always run in-process (the launcher never sends ``server`` to a server).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import click

from imgconv.errors import EXIT_FAILURE

if TYPE_CHECKING:
    from imgconv.server import protocol

#: How long ``start`` waits for a new server to import everything and listen,
#: and ``stop`` for a server to finish its running calls and exit.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 120.0


@click.group("server")
def server() -> None:
    """A resident server that runs each imgconv call warm.

    With IMGCONV_SERVER=auto in the environment, every imgconv command is
    handed to a per-user server (started on the first call), which runs it
    in a process forked from one that has numpy, Pillow and the kernels
    loaded: same output, same exit codes, a fraction of the start-up time.

    \b
    Examples:
      export IMGCONV_SERVER=auto      # in a shell, or a Makefile
      imgconv server status
      imgconv server stop
    """


def _place() -> protocol.Place:
    from imgconv.server import protocol

    reason = protocol.supported()
    if reason:
        raise click.ClickException(f"server: not available on this platform ({reason})")
    try:
        return protocol.Place.here()
    except protocol.Unavailable as exc:
        raise click.ClickException(f"server: {exc}") from None


def query(place: protocol.Place, kind: str = "status") -> dict | None:
    """Ask the server at ``place``; None when none answers there."""
    from imgconv.server import protocol

    sock = protocol.unix_socket()
    try:
        sock.settimeout(protocol.HANDSHAKE_TIMEOUT)
        sock.connect(place.socket)
        if protocol.peer_uid(sock) != os.geteuid():
            return None
        protocol.send(sock, {"type": kind})
        reply, _ = protocol.receive(sock)
        return reply
    except (OSError, EOFError, ValueError):
        return None
    finally:
        sock.close()


def _lock_free(place: protocol.Place) -> bool:
    """True when no server holds the lock (none runs, none is starting)."""
    import fcntl

    try:
        fd = os.open(place.lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@server.command()
@click.option(
    "--idle",
    type=click.FloatRange(min=0),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="Exit after this many seconds without a call (0: never).",
)
def start(idle: float) -> None:
    """Start the server (if none runs) and wait until it takes calls."""
    import fcntl

    from imgconv.server.client import spawn

    place = _place()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = query(place)
        if status:
            click.echo(f"imgconv server: already running, pid {status['pid']}, socket {status['socket']}")
            return
        lock = os.open(place.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process is starting one: wait for it to answer
            os.close(lock)
            time.sleep(0.05)
            continue
        read, write = os.pipe()
        try:
            spawn(place, idle=idle, lock=lock, ready=write)
        finally:
            os.close(lock)
            os.close(write)
        with os.fdopen(read, "rb") as ready:
            answer = ready.read().decode(errors="replace").strip()  # the server closes it once it listens
        if answer.startswith("ready "):
            click.echo(f"imgconv server: started, pid {answer.split()[1]}, socket {place.socket}")
            return
        reason = answer.removeprefix("error: ") or "it exited"
        raise click.ClickException(f"server: could not start: {reason} (log: {place.log})")
    raise click.ClickException(f"server: no server answered within {START_TIMEOUT:g} s (log: {place.log})")


@server.command()
def stop() -> None:
    """Stop the server; calls it is running finish first."""
    place = _place()
    reply = query(place, "stop")
    if not reply:
        click.echo("imgconv server: not running")
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    # The server holds the lock until its last call has finished, then exits.
    while not _lock_free(place) or _running(reply["pid"]):
        if time.monotonic() > deadline:
            raise click.ClickException(f"server: pid {reply['pid']} is still finishing its calls")
        time.sleep(0.02)
    click.echo(f"imgconv server: stopped pid {reply['pid']}")


def _running(pid: int) -> bool:
    """True until ``pid`` has exited (a zombie that nobody reaps has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@server.command()
def status() -> None:
    """Print the server's pid, socket, version and uptime; exit 1 if none runs."""
    place = _place()
    reply = query(place)
    if not reply:
        click.echo(f"imgconv server: not running (socket {place.socket})")
        sys.exit(EXIT_FAILURE)  # as the batch commands do: main() passes SystemExit through
    calls = f"{reply['calls']} served, {reply['declined']} run in-process"
    if reply["last_decline"]:
        calls += f" (last because {reply['last_decline']})"
    idle = f"exits after {reply['idle']:g} s without a call" if reply["idle"] else "never exits by itself"
    for label, value in (
        ("pid", reply["pid"]),
        ("socket", reply["socket"]),
        ("version", f"imgconv {reply['version']}, Python {reply['python']} ({reply['executable']})"),
        ("uptime", f"{_duration(reply['uptime'])}; {idle}"),
        ("calls", calls),
        ("running", ", ".join(f"pid {pid}" for pid in reply["running"]) or "no call"),
    ):
        click.echo(f"{label + ':':9}{value}")


def _duration(seconds: float) -> str:
    """
    >>> _duration(5.2), _duration(125), _duration(7300)
    ('5 s', '2 min 5 s', '2 h 1 min')
    """
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
