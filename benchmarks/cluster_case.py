"""8. cluster: the batch of photos through a local Dask cluster against --jobs.

A scheduler and one ``dask worker --nthreads 1`` per core run on this
machine, started before the timed runs (as a real cluster is up before a
user's command) and stopped by PID after.  The timed command is the user's:
``imgconv apply ... --scheduler ADDRESS``, so connecting, the preflight and
every task's round trip are in the figure.  The same cores run
``imgconv apply ... --jobs N`` as the reference.

The subjects run in rounds (one run of each in turn, a first round to warm
up), not one after the other: on a shared machine the load drifts within a
minute, and a ratio is only fair when both sides saw the same load.  Each
row is measured as wall time (the target), and as the CPU seconds of all
the run's processes (the load-independent view of the same overhead: for
a cluster the client, scheduler, nannies and workers, for --jobs imgconv
and its workers); the workers' own CPU seconds and page faults show what
the memory setting costs, and why.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from inputs import PHOTO_LIKE
from harness import REPO, Group, Row, run

JOBS = "imgconv --jobs N"
#: The worker environment the README recommends (see "Running on a cluster").
README_ENV = {"MALLOC_MMAP_THRESHOLD_": str(16 << 20), "MALLOC_TRIM_THRESHOLD_": str(32 << 20)}
README_ROW = "imgconv --scheduler, workers as the README says"
SETUPS = [
    # (subject, worker environment, files per task)
    (README_ROW, README_ENV, 8),
    ("imgconv --scheduler, Dask's default MALLOC_TRIM_THRESHOLD_=65536", {}, 8),
    ("imgconv --scheduler, MALLOC_TRIM_THRESHOLD_=33554432 alone", {"MALLOC_TRIM_THRESHOLD_": str(32 << 20)}, 8),
    ("imgconv --scheduler, workers as the README says, 1 file per task", README_ENV, 1),
]


def cluster(ctx) -> list[Group]:
    photos = sorted(ctx.inputs.photos(PHOTO_LIKE).glob("*.png"))
    cores = os.cpu_count() or 1
    title = f"{len(photos)} photos, 512x512 RGB PNG, sharpen, {cores} workers x 1 thread on these {cores} cores"
    wall = Group("cluster", title, reference=JOBS)
    total = Group("cluster", f"CPU seconds of all the run's processes on the {cores} cores", reference=JOBS)
    cpu = Group("cluster", "CPU seconds the workers spent on that batch", reference=README_ROW)
    faults = Group("cluster", "page faults the workers took on that batch (thousands)", reference=README_ROW)
    try:
        importlib.import_module("distributed")
    except ImportError:
        reason = "distributed not installed (make bench installs imgconv[dask])"
        wall.rows = [Row(JOBS, skipped=reason), *(Row(subject, skipped=reason) for subject, _, _ in SETUPS)]
        return [wall]
    out = ctx.settings.work / "out-cluster"
    command = [*ctx.imgconv, "apply", "-k", "sharpen", ctx.inputs.photos(PHOTO_LIKE) / "*.png", "-o", out / "{stem}.png", "--quiet"]
    with ExitStack() as stack:
        clusters: dict[tuple, _LocalCluster] = {}  # one per worker environment
        subjects: list[tuple[str, _LocalCluster | None, list]] = [(JOBS, None, [*command, "--jobs", str(cores)])]
        for subject, env, per_task in SETUPS:
            key = tuple(sorted(env.items()))
            if key not in clusters:
                folder = ctx.settings.work / f"dask-{len(clusters)}"
                clusters[key] = stack.enter_context(_LocalCluster(folder, cores, env))
            local = clusters[key]
            remote = [*command, "--scheduler", local.address, "--files-per-task", str(per_task)]
            subjects.append((subject, local, remote))
        times, spent, usage = _rounds(subjects, ctx.settings.repeats)
    wall.rows.append(Row(JOBS, times[JOBS], note=f"--jobs {cores}"))
    total.rows.append(Row(JOBS, spent[JOBS], note="imgconv and its worker processes"))
    for subject, _, per_task in SETUPS:
        wall.rows.append(Row(subject, times[subject], note=f"--files-per-task {per_task}"))
        total.rows.append(Row(subject, spent[subject], note="client, scheduler, nannies and workers"))
        cpu.rows.append(Row(subject, [seconds for seconds, _ in usage[subject]]))
        faults.rows.append(Row(subject, [count / 1000 for _, count in usage[subject]], unit="thousand"))
    return [wall, total, cpu, faults]


def _rounds(subjects: list[tuple[str, "_LocalCluster | None", list]], repeats: int):
    """Run every subject once per round, in turn, for ``repeats`` rounds after
    a warm-up round: a cluster's runs and the local runs then share the
    machine's load, which on a shared machine drifts within a minute.

    Returns, per subject and run: wall times; the CPU seconds of every
    process of the run (the imgconv command and what it waited for, plus,
    on a cluster, the scheduler, the nannies and the workers); and the
    workers' own (CPU seconds, page faults).
    """
    times: dict[str, list[float]] = {subject: [] for subject, _, _ in subjects}
    spent: dict[str, list[float]] = {subject: [] for subject, _, _ in subjects}
    usage: dict[str, list[tuple[float, int]]] = {subject: [] for subject, _, _ in subjects}
    for round_number in range(repeats + 1):
        for subject, local, command in subjects:
            before = local.usage() if local else (0.0, 0.0, 0)
            children = _children_cpu()
            started = time.perf_counter()
            run(command)
            elapsed = time.perf_counter() - started
            children = _children_cpu() - children  # imgconv, and the local workers it reaped
            after = local.usage() if local else (0.0, 0.0, 0)
            if round_number:  # round 0 warms up (imports, page cache, worker caches)
                times[subject].append(elapsed)
                spent[subject].append(children + after[0] - before[0])
                usage[subject].append((after[1] - before[1], after[2] - before[2]))
    return times, spent, usage


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


class _LocalCluster:
    """The test suite's launcher of real scheduler and worker processes."""

    def __init__(self, folder: Path, workers: int, env: dict[str, str]) -> None:
        self.folder, self.workers, self.env = folder, workers, env

    def __enter__(self) -> "_LocalCluster":
        sys.path.insert(0, str(REPO / "tests"))
        try:
            from dask_processes import DaskProcesses
        finally:
            sys.path.pop(0)
        self.processes = DaskProcesses(self.folder)
        names = [f"w{i}" for i in range(self.workers)]
        try:
            for name in names:
                self.processes.start_worker(name, env=self.env, wait=False)
            self.processes.wait_for_workers(names)
        except BaseException:
            self.processes.close()
            raise
        self.address = self.processes.address
        return self

    def usage(self) -> tuple[float, float, int]:
        """(CPU seconds of the scheduler, nannies and workers; CPU seconds of
        the workers; their minor page faults) so far.  getrusage travels by
        name: a function of this file could not be imported there."""
        import resource

        client = self.processes.client
        workers = client.run(resource.getrusage, resource.RUSAGE_SELF).values()
        nannies = client.run(resource.getrusage, resource.RUSAGE_SELF, nanny=True).values()
        scheduler = client.run_on_scheduler(resource.getrusage, resource.RUSAGE_SELF)
        worker_cpu = sum(u.ru_utime + u.ru_stime for u in workers)
        others = sum(u.ru_utime + u.ru_stime for u in (*nannies, scheduler))
        return worker_cpu + others, worker_cpu, sum(u.ru_minflt for u in workers)

    def __exit__(self, *exc) -> None:
        self.processes.close()
