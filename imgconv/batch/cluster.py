"""Run a batch plan on a Dask cluster: ``ClusterExecutor`` beside ``LocalExecutor``.

The plan (globs, templates, collision checks, --update) is made by
``run_files`` on the client as for a local run; only the execution moves.
``run`` has the contract of ``batch.local.run``: the same ``work(source,
target)`` callable, the same progress callback (called as each task
completes), the same Summary, so a run's files, messages and exit code do
not depend on where it ran.

- Paths travel as absolute paths (the workers must share the filesystem);
  failures come back with the paths the user typed.
- Files go in chunks of ``files_per_task`` (one Dask task each, a window of
  a few per worker thread in flight, so millions of files do not become
  millions of futures at once).
- A worker that dies mid-task has its chunk retried elsewhere by Dask;
  outputs are written atomically, so the retry replaces or completes them,
  and the temporary files of the dead worker are removed at the end.
- A chunk that kills every worker it touches (KilledWorker) is split into
  single files and retried, so only the file that kills is reported.
- Ctrl-C or --fail-fast sets a Dask Event: chunks not started write
  nothing, running chunks stop after their current file, and the client
  waits for them so the summary counts exactly the files written.

``distributed`` is imported only when a scheduler is given.
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgconv.batch.cluster_preflight import ClusterOptions, connect, preflight, scheduler_of
from imgconv.batch.local import Failure, Progress, Summary, Work
from imgconv.batch.paths import Task
from imgconv.errors import EXIT_FAILURE, ImgconvError, UsageFailure

if TYPE_CHECKING:
    from types import FrameType

    from distributed import Client, Future

__all__ = ["ClusterExecutor", "ClusterOptions", "run"]

#: Chunks in flight per worker thread: enough that no worker waits for the
#: client, few enough that a stop is quick and the scheduler stays small.
CHUNKS_PER_THREAD = 2


@dataclass(frozen=True)
class ClusterExecutor:
    """The Dask cluster of ``cluster`` (``--scheduler``), as ``LocalExecutor`` is this machine."""

    cluster: ClusterOptions

    def __call__(self, tasks: Sequence[Task], work: Work, *, fail_fast: bool, progress: Progress) -> Summary:
        return run(tasks, work, cluster=self.cluster, fail_fast=fail_fast, progress=progress)


def run(
    tasks: Sequence[Task],
    work: Work,
    *,
    cluster: ClusterOptions,
    fail_fast: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Run ``work`` over ``tasks`` on the cluster; failures are collected.

    Raises ImgconvError before any work when the cluster cannot run the
    batch (see ``cluster_preflight``).  KeyboardInterrupt stops the run as
    described above and returns an interrupted Summary.
    """
    if any("-" in (task.source, task.target) for task in tasks):
        raise UsageFailure(
            "standard input and output stay on this machine; give files to run on a cluster", subject="-"
        )
    started = time.perf_counter()
    shipped = [Task(os.path.abspath(t.source), os.path.abspath(t.target)) for t in tasks]
    with _quiet_distributed():
        client = connect(cluster)
        try:
            threads = preflight(client, shipped, cluster)
            summary = _Run(client, tasks, shipped, work, cluster, threads, fail_fast, progress).execute()
        finally:
            _close(client)
    summary.seconds = time.perf_counter() - started
    return summary


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """distributed logs to stderr (a lost scheduler, a reconnect); imgconv
    reports those conditions itself, in one line.  IMGCONV_DEBUG=1 keeps
    distributed's own log."""
    import logging

    logger = logging.getLogger("distributed")
    level = logger.level
    if not os.environ.get("IMGCONV_DEBUG"):
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _close(client: Client) -> None:
    """Close the client; one that lost its scheduler is still trying to
    reconnect, and cancelling that logs a traceback from asyncio's frames,
    outside distributed's loggers: logging is off for that moment."""
    import logging

    if client.status == "running" or os.environ.get("IMGCONV_DEBUG"):
        client.close()
        return
    logging.disable(logging.CRITICAL)
    try:
        client.close()
    finally:
        logging.disable(logging.NOTSET)


class _SchedulerLost(Exception):
    """The client lost its scheduler mid-run (it closes after
    --scheduler-timeout of failed reconnects and cancels every future)."""


class _Run:
    """One batch on the cluster: submission window, outcomes, stopping."""

    def __init__(
        self,
        client: Client,
        tasks: Sequence[Task],
        shipped: Sequence[Task],
        work: Work,
        cluster: ClusterOptions,
        threads: dict[str, int],
        fail_fast: bool,
        progress: Progress | None,
    ) -> None:
        from distributed import Event

        import imgconv

        self.client, self.tasks, self.shipped, self.work = client, tasks, shipped, work
        self.threads, self.fail_fast, self.progress = threads, fail_fast, progress
        self.version = imgconv.__version__
        self.token = uuid.uuid4().hex[:12]
        self.stop = Event(f"imgconv-stop-{self.token}", client=client)
        self.stopping = False
        self.summary = Summary()
        size = cluster.files_per_task
        self.waiting = [list(range(i, min(i + size, len(tasks)))) for i in range(0, len(tasks), size)]
        self.waiting.reverse()  # popped from the end: the plan's order
        self.chunks: dict[str, tuple[Future, list[int]]] = {}  # key -> (future, plan indices)
        self.finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self.count = 0
        self.window = 1
        self.window_checked = -1.0
        self.interrupt_requested = False
        self.interrupt_signal = 0

    def execute(self) -> Summary:
        """Keep a window of chunks in flight and settle each as it completes.

        Completion drives everything (results, the progress callback, the
        next submission): each future's done callback puts it on a queue
        that this loop reads.  Ctrl-C and SIGTERM only raise a flag here, so
        no result can be lost half-read; the loop then stops handing out
        work and waits for the chunks in flight.  A second signal gives up
        waiting (the summary then misses what those chunks still write).
        """
        lost = False
        try:
            with self._signals_as_requests():
                self._refill()
                while self.chunks:
                    try:
                        future = self.finished.get(timeout=0.2)
                    except queue.Empty:
                        future = None
                    if self.interrupt_requested and not self.stopping:
                        self.summary.interrupted = self._interruption()
                        self._halt()
                    if future is not None:
                        self._settle(future)
                        self._refill()
        except KeyboardInterrupt as exc:
            self.summary.interrupted = exc
            if self._connected():
                self.client.cancel([future for future, _ in self.chunks.values()])
        except Exception as exc:
            if not isinstance(exc, _SchedulerLost) and self._connected():
                raise  # a bug, not the cluster
            lost = True
        finally:
            if self.stopping and self._connected():
                self.stop.clear()  # frees the Event on the scheduler
            # A worker killed mid-write leaves its temporary file; every chunk
            # is settled now, so whatever is left is an orphan.
            remove_orphans(self.shipped)
        if lost:
            raise ImgconvError(
                f"lost the connection to it with {self.summary.done} of {len(self.tasks)} files "
                "known to be written; run the same command with --update to finish",
                subject=f"scheduler {scheduler_of(self.client)}",
            )
        return self.summary

    def _connected(self) -> bool:
        return self.client.status == "running"

    @contextmanager
    def _signals_as_requests(self) -> Iterator[None]:
        """While the loop runs, the first SIGINT or SIGTERM asks it to stop;
        the next one raises KeyboardInterrupt.  (Only the main thread can
        handle signals; elsewhere they keep their usual handlers.)"""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum: int, frame: FrameType | None) -> None:
            if self.interrupt_requested:
                raise self._interruption()
            self.interrupt_requested = True
            self.interrupt_signal = signum

        previous = {signum: signal.signal(signum, request) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _interruption(self) -> KeyboardInterrupt:
        """What stopped the run: Ctrl-C (exit 130) or SIGTERM (``Terminated``, exit 143)."""
        import signal

        from imgconv.errors import Terminated

        return Terminated() if self.interrupt_signal == signal.SIGTERM else KeyboardInterrupt()

    # -- submitting

    def _refill(self) -> None:
        if self.stopping:
            return
        now = time.monotonic()
        if now - self.window_checked > 2.0:  # workers may join or leave during a run
            threads = sum(self.client.nthreads().values())
            self.window, self.window_checked = max(2, CHUNKS_PER_THREAD * threads), now
        while self.waiting and len(self.chunks) < self.window:
            self._submit(self.waiting.pop())

    def _submit(self, indices: list[int]) -> None:
        from imgconv.batch.cluster_tasks import run_chunk

        items = [(i, self.shipped[i].source, self.shipped[i].target) for i in indices]
        self.count += 1
        key = f"imgconv-{self.token}-{self.count}"
        future = self.client.submit(
            run_chunk,
            self.work,
            items,
            version=self.version,
            stop_event=self.stop.name,
            threads=self.threads,
            key=key,
            pure=False,
        )
        self.chunks[key] = (future, indices)
        future.add_done_callback(self.finished.put)

    # -- results

    def _settle(self, future: Future) -> None:
        from distributed import KilledWorker

        _, indices = self.chunks.pop(str(future.key))
        if future.status == "cancelled" and not self._connected():
            raise _SchedulerLost
        if future.status == "finished":
            for index, outcome in future.result():
                if not isinstance(outcome, str):  # NOT_RUN: a stopped chunk left it
                    self._record(index, outcome)
            return
        error = future.exception() if future.status == "error" else None
        if isinstance(error, KilledWorker) and len(indices) > 1:
            # One of these files may kill every worker that reads it: run
            # each alone, so only that one fails.
            if not self.stopping:
                self.waiting.extend([i] for i in reversed(indices))
            return
        if isinstance(error, KilledWorker):
            cause = (
                "every worker that processed this file died (Dask KilledWorker), often because "
                "it needs more memory than a worker has"
            )
        elif error is not None:
            cause = f"the cluster could not run it: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
        else:
            cause = f"the cluster dropped its task ({future.status})"
        for index in indices:
            self._record(index, Failure(self.tasks[index].source, cause, EXIT_FAILURE))

    def _record(self, index: int, failure: Failure | None) -> None:
        task = self.tasks[index]
        if failure is None:
            self.summary.done += 1
        else:
            failure = Failure(task.source, as_typed(failure.message, task, self.shipped[index]), failure.exit_code)
            self.summary.failures.append(failure)
        if self.progress:
            self.progress(task, failure)
        if failure is not None and self.fail_fast and not self.stopping:
            self._halt()

    # -- stopping

    def _halt(self) -> None:
        """Stop handing out work: chunks still queued skip their files, and
        running ones stop after their current file."""
        self.stopping = True
        self.waiting.clear()
        if self._connected():
            self.stop.set()


def remove_orphans(tasks: Sequence[Task]) -> int:
    """Remove the stale temporary files left in the plan's output folders;
    returns how many were removed.

    A worker killed mid-write leaves nothing on Linux (its temporary file
    has no name) and elsewhere a locked ``.NAME.RANDOM.imgconv.part`` whose
    lock died with it; ``imgconv.output.sweep_temporaries`` removes those,
    and never the file of another run still writing into the same folder.
    Each output folder is listed once, so a plan of a million files costs a
    listing per folder, not a listing per file.
    """
    from imgconv.output import sweep_temporaries

    return sum(sweep_temporaries(folder) for folder in sorted({os.path.dirname(t.target) or "." for t in tasks}))


def as_typed(message: str, typed: Task, shipped: Task) -> str:
    """A worker's message about absolute paths, with the paths the user typed.

    A path is replaced only where it ends (at a separator, quote, bracket,
    colon, space or the end), so ``/w`` never eats the start of ``/work``.

    >>> typed, shipped = Task('in/a.png', 'out/a.png'), Task('/w/in/a.png', '/w/out/a.png')
    >>> as_typed('/w/out/a.png: cannot create folder /w/out: denied', typed, shipped)
    'out/a.png: cannot create folder out: denied'
    >>> as_typed('/srv/x: /w/in/a.png: bad', Task('in/a.png', 'a.png'), Task('/w/in/a.png', '/w/a.png'))
    '/srv/x: in/a.png: bad'
    """
    import re

    pairs = [
        (shipped.target, typed.target),
        (shipped.source, typed.source),
        (os.path.dirname(shipped.target), os.path.dirname(typed.target) or "."),
    ]
    for absolute, given in pairs:
        if absolute and absolute != given:
            # Backslashes escaped: the replacement is a template for re.sub.
            message = re.sub(re.escape(absolute) + r"(?=$|[/\s:;,)\]'\"])", given.replace("\\", r"\\"), message)
    return message
