"""Reach a Dask scheduler and check the cluster before any file is sent.

Each refusal is one line naming the scheduler, worker or option at fault.
Exit codes: a scheduler that does not answer within the timeout (or a
scheduler file that does not appear) is a runtime failure, exit 1, like a
missing input file: nothing in the command is wrong and the same command
works once the scheduler is up.  A cluster that answers but cannot run the
batch as set up (no workers, imgconv missing or of another version on the
scheduler or a worker, a worker that does not share the client's files) is
exit 2: the user must change the cluster or the command before retrying.
"""

from __future__ import annotations

import json
import os
import pkgutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgconv.batch.paths import Task
from imgconv.errors import ImgconvError, OutputError, UsageFailure

if TYPE_CHECKING:
    from distributed import Client

#: Inputs whose presence every worker checks: the first of this many folders.
SAMPLED_FOLDERS = 16


@dataclass(frozen=True)
class ClusterOptions:
    """Where the scheduler is and how to use it (the CLI's scheduler options)."""

    address: str | None = None  # --scheduler / IMGCONV_SCHEDULER
    scheduler_file: str | None = None  # --scheduler-file
    files_per_task: int = 8
    timeout: float = 10.0  # seconds to reach the scheduler and its first worker

    @property
    def subject(self) -> str:
        if self.scheduler_file:
            return f"--scheduler-file {self.scheduler_file}"
        return f"--scheduler {self.address}"


def connect(options: ClusterOptions) -> Client:
    """A Client of the scheduler, or a one-line ImgconvError."""
    from distributed import Client
    from distributed.comm import get_address_host_port

    address = scheduler_address(options)
    try:
        # distributed's own parser, before a Client exists: a Client that
        # fails on a malformed address lingers 20 s in its finaliser.
        get_address_host_port(address)
    except ValueError as exc:  # "missing port number in address 'x'"
        raise UsageFailure(f"not a scheduler address: {exc}", subject=options.subject) from None
    try:
        return Client(address, timeout=options.timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ImgconvError(
            f"no scheduler answered within {options.timeout:g} s ({exc})", subject=options.subject
        ) from None


def scheduler_address(options: ClusterOptions) -> str:
    """The address given, or the one in the scheduler file, which may still
    be on its way (an HPC job often starts the client with the scheduler):
    it is waited for up to the timeout."""
    if not options.scheduler_file:
        assert options.address
        return options.address
    path, deadline = options.scheduler_file, time.monotonic() + options.timeout
    while True:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            info = json.loads(text)
            break
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise ImgconvError(
                    f"no scheduler wrote this file within {options.timeout:g} s", subject=options.subject
                ) from None
        except ValueError:
            if time.monotonic() >= deadline:  # being written, or not JSON at all
                raise UsageFailure("is not a scheduler file (not JSON)", subject=options.subject) from None
        except OSError as exc:
            raise ImgconvError(f"cannot read it: {exc.strerror or exc}", subject=options.subject) from None
        time.sleep(0.05)
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, str) or not address:
        raise UsageFailure("is not a scheduler file (no 'address')", subject=options.subject)
    return address


def preflight(client: Client, tasks: Sequence[Task], options: ClusterOptions) -> dict[str, int]:
    """Refuse, before any work, a cluster that cannot run ``tasks`` (absolute
    paths) as a local run would.  Returns the strip threads one file may use
    on each worker host."""
    import imgconv

    version = imgconv.__version__
    address = scheduler_of(client)
    scheduler = f"scheduler {address}"
    try:
        theirs = client.run_on_scheduler(pkgutil.resolve_name, "imgconv:__version__")
    except Exception as exc:
        raise UsageFailure(
            f"cannot import imgconv there ({_one_line(exc)}); the scheduler unpickles "
            f"imgconv's tasks, so it needs imgconv {version} installed too",
            subject=scheduler,
        ) from None
    if theirs != version:
        raise UsageFailure(
            f"runs imgconv {theirs}, this client {version}; install the same version there", subject=scheduler
        )
    try:
        client.wait_for_workers(1, timeout=options.timeout)
    except TimeoutError:
        raise UsageFailure(
            f"no workers joined within {options.timeout:g} s; start them with 'dask worker {address} --nthreads 1'",
            subject=scheduler,
        ) from None

    versions = client.run(pkgutil.resolve_name, "imgconv:__version__", on_error="return")
    problems = {
        worker: (
            f"cannot import imgconv ({_one_line(found)}); install imgconv {version} there"
            if isinstance(found, BaseException)
            else f"runs imgconv {found}, this client {version}; install the same version there"
        )
        for worker, found in versions.items()
        if found != version
    }
    _refuse(problems)

    from imgconv.batch.cluster_tasks import probe_worker

    token = uuid.uuid4().hex
    sentinels: list[str] = []
    try:
        for folder in output_roots(tasks):
            sentinel = os.path.join(folder, f".imgconv-preflight-{token}")
            try:
                with open(sentinel, "x", encoding="ascii") as handle:
                    sentinels.append(sentinel)
                    handle.write(token)
            except OSError as exc:
                raise OutputError(f"cannot write in this folder: {exc.strerror or exc}", subject=folder) from None
        reports = client.run(probe_worker, input_samples(tasks), sentinels, token, on_error="return")
    finally:
        for sentinel in sentinels:
            try:
                os.unlink(sentinel)
            except OSError:
                pass
    _refuse(
        {
            worker: (report["problem"] if isinstance(report, dict) else f"preflight failed: {_one_line(report)}")
            for worker, report in reports.items()
            if not isinstance(report, dict) or report["problem"]
        }
    )
    cpus = {worker: report["cpus"] for worker, report in reports.items()}
    return thread_shares(client.nthreads(), cpus)


def scheduler_of(client: Client) -> str:
    """The address of the client's scheduler."""
    scheduler = client.scheduler
    return str(scheduler.address) if scheduler is not None else "(not connected)"


def _refuse(problems: dict[str, str]) -> None:
    if not problems:
        return
    worker, problem = sorted(problems.items())[0]
    others = len(problems) - 1
    more = f" (and {others} more worker{'s' if others > 1 else ''})" if others else ""
    raise UsageFailure(problem + more, subject=f"worker {worker}")


def _one_line(exc: BaseException) -> str:
    """distributed wraps a remote error in Exception('ModuleNotFoundError(...)')."""
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def output_roots(tasks: Sequence[Task]) -> list[str]:
    """The folders the outputs go into, each as the deepest folder that
    exists now (missing ones are made when a file is written), up to
    SAMPLED_FOLDERS of them, spread over the plan.

    >>> output_roots([Task('/a/x.png', '/'), Task('/a/y.png', '/nonexistent/out/b/y.png')])
    ['/']
    """
    existing: dict[str, None] = {}
    for folder in dict.fromkeys(os.path.dirname(task.target) or "." for task in tasks):
        while not os.path.isdir(folder):
            folder = os.path.dirname(folder) or "."
        existing[folder] = None
    return _spread(list(existing))


def _spread(items: list[str]) -> list[str]:
    """At most SAMPLED_FOLDERS of ``items``, evenly spaced, first included."""
    if len(items) <= SAMPLED_FOLDERS:
        return items
    step = len(items) / SAMPLED_FOLDERS
    return [items[int(i * step)] for i in range(SAMPLED_FOLDERS)]


def input_samples(tasks: Sequence[Task]) -> list[tuple[str, int, int]]:
    """(path, size, mtime in whole seconds) of the first input in each of up
    to SAMPLED_FOLDERS folders, spread over the plan.  Inputs the client
    cannot see are left out: they fail for themselves, as in a local run."""
    firsts: dict[str, str] = {}
    for task in tasks:
        firsts.setdefault(os.path.dirname(task.source), task.source)
    samples = []
    for path in _spread(list(firsts.values())):
        try:
            status = os.stat(path)
        except OSError:
            continue
        samples.append((path, status.st_size, int(status.st_mtime)))
    return samples


def thread_shares(nthreads: dict[str, int], cpus: dict[str, int]) -> dict[str, int]:
    """Strip threads per file on each host: its cores over the task threads
    of all the workers it runs, at least 1.

    >>> nthreads = {'tcp://h1:1': 1, 'tcp://h1:2': 1, 'tcp://h2:1': 2}
    >>> thread_shares(nthreads, {'tcp://h1:1': 8, 'tcp://h1:2': 8, 'tcp://h2:1': 2})
    {'h1': 4, 'h2': 1}
    """
    from imgconv.batch.cluster_tasks import _host_of

    threads: dict[str, int] = {}
    cores: dict[str, int] = {}
    for worker, count in nthreads.items():
        host = _host_of(worker)
        threads[host] = threads.get(host, 0) + count
        if worker in cpus:
            cores[host] = min(cores.get(host, cpus[worker]), cpus[worker])
    return {host: max(1, cores.get(host, 1) // max(1, count)) for host, count in threads.items()}
