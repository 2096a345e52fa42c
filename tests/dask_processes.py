"""Real ``dask scheduler`` and ``dask worker`` processes on localhost, for tests.

Every address is 127.0.0.1 and every port is chosen by the kernel (port 0):
the scheduler writes its address into a scheduler file, which is how a test
learns it is up; workers are ready once the scheduler lists them as running.
Processes are stopped by PID (SIGTERM, then SIGKILL of the process group the
helper created for each), never by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: What a test may wait for a process to come up or go away (a loaded 2-core machine).
READY_SECONDS = 90


class DaskProcesses:
    """A scheduler and its workers, started and stopped by this test session."""

    def __init__(
        self, folder: Path, *, scheduler_env: dict[str, str] | None = None, python_flags: Sequence[str] = ()
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = folder / "scheduler.json"
        self.scheduler_file.unlink(missing_ok=True)  # a stale one would name a scheduler long gone
        self.workers: dict[str, subprocess.Popen] = {}
        self._client = None
        self.scheduler = self._spawn(
            "scheduler",
            [
                *python_flags,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
            env=scheduler_env,
        )
        deadline = time.monotonic() + READY_SECONDS
        while not self._address_written():
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scheduler did not start: {self.log('scheduler')}")
            time.sleep(0.02)
        self.address = json.loads(self.scheduler_file.read_text())["address"]

    def _address_written(self) -> bool:
        try:
            return bool(json.loads(self.scheduler_file.read_text()).get("address"))
        except (OSError, ValueError):
            return False

    def _spawn(
        self,
        name: str,
        arguments: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        environment = {**os.environ, **(env or {})}
        # Workers must not inherit the test run's thread setting.
        environment.pop("IMGCONV_THREADS", None)
        with open(self.folder / f"{name}.log", "wb") as log:  # the child keeps its own copy
            return subprocess.Popen(
                [*prefix, sys.executable, *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                cwd=cwd or self.folder,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        try:
            return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # -- workers

    def start_worker(
        self,
        name: str,
        *,
        env: dict[str, str] | None = None,
        python_flags: Sequence[str] = (),
        options: Sequence[str] = (),
        prefix: Sequence[str] = (),
        wait: bool = True,
    ) -> subprocess.Popen:
        """``dask worker ADDRESS --nthreads 1``, named ``name``, ready when it returns."""
        process = self._spawn(
            name,
            [
                *python_flags,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--dashboard-address",
                "127.0.0.1:0",
                "--name",
                name,
                "--local-directory",
                str(self.folder / "scratch"),
                *options,
            ],
            env=env,
            prefix=prefix,
        )
        self.workers[name] = process
        if wait:
            self.wait_for(lambda names: name in names, f"worker {name} to join")
        return process

    def stop_worker(self, name: str) -> None:
        _stop(self.workers.pop(name))
        self.wait_for(lambda names: name not in names, f"worker {name} to leave")

    def running_workers(self) -> dict[str, str]:
        """name -> address of the workers the scheduler lists as running."""
        info = self.client.scheduler_info()["workers"]
        return {w["name"]: address for address, w in info.items() if w.get("status") == "running"}

    def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while not condition(set(self.running_workers())):
            for name, process in self.workers.items():
                if process.poll() is not None:
                    raise RuntimeError(f"worker {name} exited ({process.returncode}): {self.log(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def wait_for_workers(self, names: Sequence[str]) -> None:
        """Until exactly these workers run (after one was killed and its nanny restarted it)."""
        self.wait_for(lambda running: running == set(names), f"workers {sorted(names)}")

    def worker_pids(self) -> dict[str, int]:
        """address -> PID of each worker process (the nanny's child, which runs the tasks)."""
        return self.client.run(os.getpid)

    # -- the test's own client

    @property
    def client(self):
        if self._client is None:
            from distributed import Client

            self._client = Client(self.address, timeout=READY_SECONDS, set_as_default=False)
        return self._client

    def idle(self) -> bool:
        """No task is processing or waiting anywhere on the cluster."""
        # A lambda travels by value: the scheduler cannot import this test module.
        waiting = self.client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.queued) + len(dask_scheduler.unrunnable)
        )
        return not any(self.client.processing().values()) and not waiting

    def close(self) -> None:
        if self._client is not None and self.scheduler.poll() is None:
            self._client.close()
        self._client = None
        for name in list(self.workers):
            _stop(self.workers.pop(name))
        _stop(self.scheduler)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM by PID (a nanny then closes its worker); if it does not end in
    time, SIGKILL the process group this helper created for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
