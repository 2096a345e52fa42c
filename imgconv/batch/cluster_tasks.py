"""What runs on a Dask worker: a chunk of files, and the preflight probe.

The client sends these functions by reference (pickle stores the module and
the name), so a worker runs the code of the imgconv it has installed; the
preflight checks that this is the client's version before any task is sent.
Nothing here imports distributed at module level or needs a client.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence

from imgconv.batch.local import Failure, Work, run_one
from imgconv.batch.paths import Task
from imgconv.errors import EXIT_USAGE

#: The outcome of a file that a stopped chunk did not start (Ctrl-C, --fail-fast).
NOT_RUN = "not run"

#: How often a running chunk asks the scheduler whether the run was stopped.
STOP_POLL_SECONDS = 0.25

Item = tuple[int, str, str]  # (index in the plan, absolute source, absolute target)

#: Read once, when a worker first imports this module (before any chunk set
#: it): an IMGCONV_THREADS in the worker's own environment is the user's word.
_USER_THREADS = "IMGCONV_THREADS" in os.environ


def run_chunk(
    work: Work,
    items: Sequence[Item],
    *,
    version: str,
    stop_event: str,
    threads: dict[str, int],
) -> list[tuple[int, Failure | str | None]]:
    """Run ``work`` on each file of a chunk; one outcome per file, never raises
    for a file (a bad file is a Failure, as in a local batch).

    ``version`` is the client's imgconv: a worker that joined after the
    preflight with another version refuses rather than write other bytes.
    ``stop_event`` names a Dask Event the client sets on Ctrl-C or
    --fail-fast; the chunk then leaves its remaining files NOT_RUN, so the
    client learns exactly which files were written.  ``threads`` maps a
    worker host to the strip threads one file may use there.
    """
    import imgconv

    if imgconv.__version__ != version:
        where = _worker_address() or "a worker"
        message = (
            f"{where} runs imgconv {imgconv.__version__}, this client {version}; "
            "every worker needs the client's version"
        )
        return [(index, Failure(source, message, EXIT_USAGE)) for index, source, _ in items]
    stopped = _stop_poller(stop_event)
    outcomes: list[tuple[int, Failure | str | None]] = []
    _claim_threads(threads)
    for index, source, target in items:
        if stopped():
            outcomes.append((index, NOT_RUN))
        else:
            outcomes.append((index, run_one(work, Task(source, target))))
    return outcomes


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def _stop_poller(name: str) -> Callable[[], bool]:
    """A check of the client's stop Event that costs a scheduler round trip
    at most every STOP_POLL_SECONDS (the first check is always made, so a
    chunk that starts after Ctrl-C writes nothing)."""
    try:
        from distributed import Event

        event = Event(name)
    except (ImportError, ValueError):  # not on a worker: nothing can stop us
        return lambda: False
    checked, seen = -STOP_POLL_SECONDS, False

    def stopped() -> bool:
        nonlocal checked, seen
        now = time.monotonic()
        if not seen and now - checked >= STOP_POLL_SECONDS:
            seen, checked = event.is_set(), now
        return seen

    return stopped


def _claim_threads(threads: dict[str, int]) -> None:
    """Give one file this host's share of the cores, unless the worker was
    started with IMGCONV_THREADS (then that is the user's word).

    A worker's tasks run side by side in its threads and other workers may
    share the machine; without a share each file would start a strip thread
    per core and the machine would run cores x tasks threads.  The value is
    left in place: every chunk of a run sets the same one.
    """
    address = _worker_address()
    if not _USER_THREADS and address:
        os.environ["IMGCONV_THREADS"] = str(threads.get(_host_of(address), 1))


def _host_of(address: str) -> str:
    """``tcp://10.0.0.5:40123`` -> ``10.0.0.5``.

    >>> _host_of('tcp://10.0.0.5:40123'), _host_of('tls://[::1]:8786')
    ('10.0.0.5', '::1')
    """
    rest = address.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0]
    return host.strip("[]")


# --------------------------------------------------------------------------
# preflight: run on every worker with Client.run before any task is sent


def probe_worker(samples: Sequence[tuple[str, int, int]], sentinels: Sequence[str], token: str) -> dict:
    """Check this worker sees the client's files and can write the output folders.

    ``samples`` are (absolute path, size, mtime in whole seconds) of inputs
    as the client sees them; ``sentinels`` are files the client has just
    written into the output folders, each holding ``token``.  Returns
    ``{"problem": None or one line, "cpus": usable cores}``.
    """
    return {"problem": _filesystem_problem(samples, sentinels, token), "cpus": _usable_cpus()}


def _filesystem_problem(samples: Sequence[tuple[str, int, int]], sentinels: Sequence[str], token: str) -> str | None:
    for path, size, mtime in samples:
        try:
            status = os.stat(path)
        except OSError as exc:
            return f"cannot see the input {path} ({exc.strerror or exc})"
        if (status.st_size, int(status.st_mtime)) != (size, mtime):
            return f"sees another file at {path} (its size or time differs from the client's)"
    for sentinel in sentinels:
        problem = _output_problem(sentinel, token)
        if problem:
            return problem
    return None


def _output_problem(sentinel: str, token: str) -> str | None:
    folder = os.path.dirname(sentinel)
    try:
        with open(sentinel, encoding="ascii") as handle:
            seen = handle.read()
    except OSError as exc:
        return (
            f"does not see the output folder {folder} as the client does "
            f"(the client's preflight file is not there: {exc.strerror or exc})"
        )
    if seen != token:
        return f"does not see the output folder {folder} as the client does (its preflight file differs)"
    mine = f"{sentinel}.{uuid.uuid4().hex}"
    try:
        with open(mine, "x", encoding="ascii") as handle:
            handle.write(token)
        os.unlink(mine)
    except OSError as exc:
        return f"cannot write in the output folder {folder} ({exc.strerror or exc})"
    return None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
