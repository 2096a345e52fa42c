"""Worker processes for a local batch, and the loop each of them runs.

Each worker is ``python -m imgconv.batch.workers``: it receives the
pickled ``work`` once, then one task at a time over its stdin, and answers
each with the task's failure (or None) over its stdout.  Nothing is shared
but two pipes per worker (no queues, locks or semaphores that an
interruption could leave held), and workers run in a session of their own,
so a Ctrl-C at the terminal reaches only the parent, which alone decides:
it stops the workers with SIGTERM, which unwinds each through the clean-up
of any half-written temporary file.  A worker whose parent goes away sees
its stdin close and exits quietly; a worker that dies takes only its own
file with it, and a fresh one starts when a task needs it.  Workers start
as tasks need them, up to ``--jobs``, and only as many files run at once
as the memory holds (``imgconv.batch.memory``).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from imgconv.batch.local import Failure, Work, run_one
from imgconv.batch.paths import Task
from imgconv.errors import EXIT_FAILURE, EXIT_TERMINATED

#: How long stopped workers get to remove their temporary files before they are killed.
STOP_SECONDS = 10.0


class Worker:
    """One worker process and the task it holds."""

    def __init__(self, work_bytes: bytes, register: Callable[[Worker], object]) -> None:
        environment = dict(os.environ, IMGCONV_THREADS="1")  # the processes already use every core
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imgconv.batch.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        self.task: tuple[int, Task] | None = None
        register(self)
        self.send(work_bytes)

    @property
    def output(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def send(self, payload: bytes) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(payload)
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died; its stdout shows EOF and the task is reported then

    def stop(self) -> None:
        """Close its stdin: an idle worker exits, a busy one after its file."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass


class Workers:
    """Up to ``count`` worker processes, started as tasks need them and
    stopped on exit from the ``with`` block."""

    def __init__(self, work: Work, count: int) -> None:
        self.work_bytes = pickle.dumps(work)
        self.count = count
        self.workers: list[Worker] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for worker in self.workers:
            if worker.task is not None or kind is not None:
                worker.process.terminate()  # interrupted or stopped early: unwind the file in hand
            worker.stop()
        for worker in self.workers:
            try:
                worker.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.output.close()

    def can_take(self) -> bool:
        """Whether a task handed out now would start at once."""
        return len(self.workers) < self.count or any(w.task is None for w in self.workers)

    def busy(self) -> bool:
        return any(w.task is not None for w in self.workers)

    def give(self, index: int, task: Task) -> None:
        """Hand task ``index`` to an idle worker, starting one if none is idle."""
        worker = next((w for w in self.workers if w.task is None), None)
        if worker is None:
            worker = self._start()
        worker.task = (index, task)
        worker.send(pickle.dumps(worker.task))

    def _start(self) -> Worker:
        # Listed before its first message: an interruption from here on stops it too.
        return Worker(self.work_bytes, self.workers.append)

    def next_result(self) -> tuple[int, Failure | None]:
        """Wait for the next finished task; a worker that died fails its task and is dropped."""
        from multiprocessing.connection import wait

        busy = {w.output.fileno(): w for w in self.workers if w.task is not None}
        ready = wait(list(busy))
        worker = busy[ready[0]]  # type: ignore[index]
        assert worker.task is not None
        index, task = worker.task
        try:
            answer = pickle.load(worker.output)
        except (EOFError, pickle.UnpicklingError):
            code = worker.process.wait()
            cause = f"signal {-code}" if code < 0 else f"exit code {code}"
            self.workers.remove(worker)  # a fresh one starts when a task needs it
            worker.output.close()
            return index, Failure(task.source, f"the worker process died ({cause})", EXIT_FAILURE)
        found_index, failure = answer
        worker.task = None
        return found_index, failure


def main() -> None:
    """The worker's loop: one task in, its failure (or None) out, until stdin closes.

    SIGTERM (the parent stopping the batch) unwinds the file in hand,
    through the clean-up of its temporary file, and ends the worker without
    a word: the parent reports the interruption.  It does so wherever it
    arrives, even inside an import that turns it into another error (numpy
    makes an ImportError of it), as ``imgconv.entry`` remembers the stop.
    A parent that goes away (its pipes close) ends the loop quietly too.
    """
    from imgconv.entry import stop_on, stop_requested

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent alone decides
    stop_on(signal.SIGTERM)
    if not os.environ.get("IMGCONV_DEBUG"):
        warnings.simplefilter("ignore")  # as in the parent: stderr is for imgconv's own lines
    inbox = sys.stdin.buffer
    outbox = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the channel
    try:
        work: Any = pickle.load(inbox)
        while True:
            index, task = pickle.load(inbox)
            pickle.dump((index, run_one(work, task)), outbox)
            outbox.flush()
    except (EOFError, pickle.UnpicklingError, BrokenPipeError):
        return
    except BaseException:
        if stop_requested() is None:
            raise  # a bug: its traceback is worth seeing
        os._exit(EXIT_TERMINATED)  # stopped by the parent, which says so; the interpreter's shutdown is skipped


if __name__ == "__main__":
    main()
