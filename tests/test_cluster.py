"""Batches on a real Dask cluster: a ``dask scheduler`` and two ``dask worker``
processes on localhost, started once for the session (see dask_processes.py).

The session's workers have a 600 MiB memory limit, so an image that needs
more is a real poison file: Dask's nanny kills every worker that decodes it.
The scheduler gives up on a task after 2 worker deaths (allowed-failures 1,
not 3, to keep the poison test short) and hands a 1-thread worker one task
at a time (worker-saturation 1.0), so a worker's death touches only the task
it was running and an innocent file can never be killed twice by accident.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip(
    "distributed",
    reason="the cluster tests need Dask's distributed: pip install 'imgconv[dask]' (make test installs it)",
)

from dask_processes import DaskProcesses
from terminal import stderr_on_terminal

from imgconv.batch import Task

IMGCONV = [sys.executable, "-m", "imgconv"]
WORKERS = ["w1", "w2"]
SESSION_SCHEDULER_ENV = {
    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
}


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask"), scheduler_env=SESSION_SCHEDULER_ENV)
    try:
        for name in WORKERS:
            cluster.start_worker(name, options=["--memory-limit", "600MiB"], wait=False)
        cluster.wait_for_workers(WORKERS)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(dask_cluster):
    """The session cluster, with both workers up (a test may have killed one)."""
    dask_cluster.wait_for_workers(WORKERS)
    return dask_cluster


@pytest.fixture
def tree(samples, tmp_path, monkeypatch) -> Path:
    """photos/ with 9 small crops of real photos in two folders, one of them RGBA."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "2020").mkdir(parents=True)
    camera, coffee = Image.open(samples / "camera.png"), Image.open(samples / "coffee.png")
    for i in range(6):
        coffee.crop((40 * i, 30 * i, 40 * i + 64, 30 * i + 48)).save(tmp_path / "photos" / f"c{i}.png")
    for i in range(2):
        camera.crop((50 * i, 50 * i, 50 * i + 48, 50 * i + 40)).save(tmp_path / "photos" / "2020" / f"g{i}.png")
    Image.open(samples / "chelsea-alpha.png").crop((0, 0, 40, 40)).save(tmp_path / "photos" / "2020" / "alpha.png")
    return tmp_path


def files_below(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".")]


# --------------------------------------------------------------------------
# results and messages


def test_output_is_byte_identical_to_jobs_1(run, cluster, tree):
    command = ["apply", "-k", "gaussian5", "-k", "edge3", "--range", "abs", "photos/**/*.png"]
    local = run(*command, "-o", "local/{relpath}.png", "--jobs", "1")
    remote = run(*command, "-o", "remote/{relpath}.png", "--scheduler", cluster.address, "--files-per-task", "2")
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert re.fullmatch(r"imgconv: 9 written, 0 failed, 0 up to date, [0-9.]+ s\n", remote.stderr)
    expected = files_below(tree / "local")
    assert len(expected) == 9 and files_below(tree / "remote") == expected
    assert leftovers(tree / "remote") == []


def test_pooling_and_the_scheduler_file(run, cluster, tree):
    local = run("maxpool", "--size", "2", "photos/**/*.png", "-o", "local/{relpath}-{kernel}.png", "--jobs", "1")
    remote = run(
        "maxpool",
        "--size",
        "2",
        "photos/**/*.png",
        "-o",
        "remote/{relpath}-{kernel}.png",
        "--scheduler-file",
        cluster.scheduler_file,
    )
    assert local.exit_code == 0 and remote.exit_code == 0, remote.stderr
    assert files_below(tree / "remote") == files_below(tree / "local")
    assert "2020/g0-maxpool2x2.png" in files_below(tree / "remote")


def test_scheduler_from_the_environment_and_a_single_file(run, cluster, tree):
    """With a scheduler even one file runs on the cluster, as a batch of one."""
    result = run("apply", "-k", "sharpen", "photos/c0.png", "out/c0.png", env={"IMGCONV_SCHEDULER": cluster.address})
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("imgconv: 1 written, 0 failed")
    run("apply", "-k", "sharpen", "photos/c0.png", "ref.png")
    assert (tree / "out" / "c0.png").read_bytes() == (tree / "ref.png").read_bytes()


def test_file_errors_name_the_paths_the_user_typed(run, cluster, tree):
    (tree / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = run(
        "apply",
        "-k",
        "blur",
        "photos/*.png",
        "photos/missing.png",
        "-o",
        "out/",
        "--scheduler",
        cluster.address,
        "--files-per-task",
        "3",
    )
    assert result.exit_code == 1
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("Error:"))
    assert errors[0].startswith("Error: photos/broken.png: ")
    assert errors[1].startswith("Error: photos/missing.png: ")
    assert str(tree) not in result.stderr and "imgconv-" not in result.stderr  # no absolute paths, no Dask keys
    assert "imgconv: 6 written, 2 failed, 0 up to date" in result.stderr
    assert sorted(files_below(tree / "out")) == [f"c{i}.png" for i in range(6)]


def test_a_usage_failure_of_one_file_is_exit_2(run, cluster, tree):
    """alpha.png cannot go to JPEG (no alpha channel there): that file's usage error, as locally."""
    result = run("apply", "-k", "blur", "photos/2020/*.png", "-o", "out/{stem}.jpg", "--scheduler", cluster.address)
    local = run("apply", "-k", "blur", "photos/2020/*.png", "-o", "local/{stem}.jpg", "--jobs", "1")
    assert result.exit_code == local.exit_code == 2
    line = result.stderr.splitlines()[0]
    assert line == local.stderr.splitlines()[0].replace("local/", "out/")
    assert line.startswith("Error: photos/2020/alpha.png: out/alpha.jpg: JPEG cannot hold the alpha channel")
    assert sorted(files_below(tree / "out")) == ["g0.jpg", "g1.jpg"]


def test_update_skips_fresh_outputs(run, cluster, tree):
    first = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", cluster.address, "--update")
    again = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", cluster.address, "--update")
    assert first.exit_code == 0 and again.exit_code == 0
    assert "imgconv: 6 written" in first.stderr
    assert "imgconv: 0 written, 0 failed, 6 up to date" in again.stderr


def test_fail_fast_stops_and_counts_what_was_written(run, cluster, tree):
    """The broken file is first in the plan, so it is in the first window of
    tasks sent; once it fails no more are sent and the running ones stop."""
    _slow_tree(tree, 30, (64, 48))
    (tree / "many" / "00-broken.png").write_bytes(b"not an image")
    result = run(
        "apply",
        "-k",
        "blur",
        "many/*.png",
        "-o",
        "out/",
        "--scheduler",
        cluster.address,
        "--files-per-task",
        "1",
        "--fail-fast",
    )
    assert result.exit_code == 1
    assert "Error: many/00-broken.png: " in result.stderr
    written = int(re.search(r"imgconv: (\d+) written, 1 failed", result.stderr).group(1))
    assert written < 30 and len(files_below(tree / "out")) == written


def test_progress_bar_on_a_terminal(cluster, tree):
    code, shown, stdout = stderr_on_terminal(
        [*IMGCONV, "apply", "-k", "blur", "photos/**/*.png", "-o", "out/", "--scheduler", cluster.address],
        cwd=tree,
        timeout=120,
    )
    assert code == 0 and stdout == b""
    assert b"/9" in shown  # the bar's "done/total" column
    assert b"imgconv: 9 written, 0 failed" in shown


# --------------------------------------------------------------------------
# failures of the cluster itself


def _slow_tree(tree: Path, count: int, size: tuple[int, int]) -> None:
    photo = Image.open(tree / "photos" / "c0.png").resize(size)
    (tree / "many").mkdir()
    for i in range(count):
        photo.rotate(i).save(tree / "many" / f"{i:02d}.png")


def _open_in(pids, folder: Path) -> list[str]:
    """The files in ``folder`` that the processes ``pids`` hold open (an unnamed one reads '#N (deleted)')."""
    found = []
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith(f"{folder}/"):
                found.append(target)
    return found


def test_workers_killed_mid_write_leave_a_complete_tree(run, cluster, tree):
    """SIGKILL both workers while an output is half written: Dask retries
    their tasks on the restarted workers, and the run ends with every file
    complete, the bytes of a local run, and no temporary file."""
    _slow_tree(tree, 8, (1200, 900))
    command = ["apply", "-k", "sharpen", "--png-level", "9", "many/*.png"]
    reference = run(*command, "-o", "local/", "--jobs", "2")  # the same bytes as --jobs 1 (tested above)
    assert reference.exit_code == 0
    pids = cluster.worker_pids()
    process = subprocess.Popen(
        [*IMGCONV, *command, "-o", "out/", "--scheduler", cluster.address, "--files-per-task", "2"],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    killed_during = None
    deadline = time.monotonic() + 120
    while killed_during is None and process.poll() is None and time.monotonic() < deadline:
        # A temporary output, named (.NAME.RANDOM.imgconv.part) or unnamed (O_TMPFILE: an open descriptor).
        partial = [p.name for p in (tree / "out").glob(".*.part")] if (tree / "out").exists() else []
        partial += _open_in(pids.values(), tree / "out")
        if partial:
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
            killed_during = partial
        else:
            time.sleep(0.002)
    _, stderr = process.communicate(timeout=180)
    assert killed_during, "the batch ended before a temporary output file was seen"
    assert process.returncode == 0, stderr
    assert b"imgconv: 8 written, 0 failed" in stderr
    assert files_below(tree / "out") == files_below(tree / "local")
    assert leftovers(tree / "out") == []


def test_a_poison_file_fails_alone(run, cluster, tree):
    """An image that needs more memory than a worker has kills every worker
    that decodes it (Dask's KilledWorker): that file fails, the others in
    its task are retried one by one and written.  11000x9000 (just under the
    default --max-pixels): its planes and its result alone are 2 x 283 MiB,
    over the 600 MiB limit wherever the copies are saved."""
    Image.new("RGB", (11000, 9000), (90, 30, 200)).save(tree / "photos" / "c3-huge.png", compress_level=9)
    result = run("apply", "-k", "sharpen", "photos/*.png", "-o", "out/", "--scheduler", cluster.address)
    assert result.exit_code == 1
    assert (
        "Error: photos/c3-huge.png: every worker that processed this file died (Dask KilledWorker), "
        "often because it needs more memory than a worker has"
    ) in result.stderr
    assert "imgconv: 6 written, 1 failed" in result.stderr
    assert sorted(files_below(tree / "out")) == [f"c{i}.png" for i in range(6)]
    assert leftovers(tree / "out") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_cancels_pending_tasks_and_counts_exactly(cluster, tree, signum):
    _slow_tree(tree, 40, (400, 300))
    process = subprocess.Popen(
        [
            *IMGCONV,
            "apply",
            "-k",
            "gaussian:sigma=4",
            "--backend",
            "scipy",
            "many/*.png",
            "-o",
            "out/",
            "--scheduler",
            cluster.address,
            "--files-per-task",
            "2",
        ],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (tree / "out").exists() and len(list((tree / "out").glob("*.png"))) >= 2:
            break
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    code, word = (130, "interrupted") if signum == signal.SIGINT else (143, "terminated")
    assert process.returncode == code, text
    assert "Traceback" not in text and text.endswith(f"imgconv: {word}\n")
    summary = re.search(rf"imgconv: (\d+) written, 0 failed, 0 up to date, [0-9.]+ s \({word}\)", text)
    written = int(summary.group(1))
    assert 2 <= written < 40
    deadline = time.monotonic() + 60
    while not cluster.idle() and time.monotonic() < deadline:  # nothing of the run goes on after it
        time.sleep(0.05)
    assert cluster.idle()
    outputs = files_below(tree / "out")
    assert len(outputs) == written and leftovers(tree / "out") == []
    for name in outputs:
        Image.open(tree / "out" / name).load()


def test_losing_the_scheduler_mid_run(tree, tmp_path_factory):
    """The client cancels every task when its scheduler goes: one line, exit 1."""
    doomed = DaskProcesses(tmp_path_factory.mktemp("dask-doomed"))
    try:
        doomed.start_worker("w1")
        _slow_tree(tree, 60, (400, 300))
        process = subprocess.Popen(
            [
                *IMGCONV,
                "apply",
                "-k",
                "gaussian:sigma=4",
                "--backend",
                "scipy",
                "many/*.png",
                "-o",
                "out/",
                "--scheduler",
                doomed.address,
                "--files-per-task",
                "2",
            ],
            cwd=tree,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and not list(tree.glob("out/*.png")):
            time.sleep(0.01)
        doomed.scheduler.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        doomed.close()
    assert process.returncode == 1, stderr
    assert re.fullmatch(
        rf"Error: scheduler {re.escape(doomed.address)}: lost the connection to it with \d+ of 60 files known to be "
        r"written; run the same command with --update to finish\n",
        stderr.decode(),
    )


# --------------------------------------------------------------------------
# preflight: a second scheduler whose workers are wrong in one way each


@pytest.fixture(scope="module")
def spare(tmp_path_factory):
    """A scheduler with no workers; each test adds the worker it needs."""
    cluster = DaskProcesses(tmp_path_factory.mktemp("dask-spare"))
    yield cluster
    cluster.close()


@pytest.fixture
def odd_worker(spare):
    """Start one worker on the spare scheduler; stopped (by PID) after the test."""
    started = []

    def start(name, **how):
        started.append(name)
        return spare.start_worker(name, **how)

    yield start
    for name in started:
        spare.stop_worker(name)


def _preflight_error(run, tree, address, *extra) -> str:
    result = run(
        "apply",
        "-k",
        "blur",
        "photos/**/*.png",
        "-o",
        "out/{relpath}.png",
        "--scheduler",
        address,
        "--scheduler-timeout",
        "5",
        *extra,
    )
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr  # one line, no usage text, no traceback
    assert not (tree / "out").exists()  # nothing was written
    assert [p.name for p in tree.iterdir() if p.name.startswith(".imgconv-preflight")] == []
    return result.stderr


def test_no_workers(run, spare, tree):
    error = _preflight_error(run, tree, spare.address, "--scheduler-timeout", "0.3")
    assert error == (
        f"Error: scheduler {spare.address}: no workers joined within 0.3 s; "
        f"start them with 'dask worker {spare.address} --nthreads 1'\n"
    )


def _site_packages() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def test_worker_without_imgconv(run, spare, odd_worker, tree):
    """``python -S`` skips the .pth file that puts imgconv on the path, while
    PYTHONPATH still offers distributed, numpy, ...: imgconv is missing there."""
    env = {"PYTHONPATH": _site_packages()}
    premise = subprocess.run(
        [sys.executable, "-S", "-c", "import distributed; import imgconv"],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
    )
    assert "No module named 'imgconv'" in premise.stderr, "imgconv is importable without site: cannot simulate"
    odd_worker("no-imgconv", python_flags=["-S"], env=env)
    address = spare.running_workers()["no-imgconv"]
    error = _preflight_error(run, tree, spare.address)
    assert error == (
        f"Error: worker {address}: cannot import imgconv (No module named 'imgconv'); install imgconv 0.1.0 there\n"
    )


def test_worker_with_another_version(run, spare, odd_worker, tree, tmp_path_factory):
    """An older imgconv first on the worker's path."""
    old = tmp_path_factory.mktemp("old-imgconv")
    (old / "imgconv").mkdir()
    (old / "imgconv" / "__init__.py").write_text('__version__ = "0.0.9"\n')
    odd_worker("old-imgconv", env={"PYTHONPATH": str(old)})
    address = spare.running_workers()["old-imgconv"]
    error = _preflight_error(run, tree, spare.address)
    assert error == f"Error: worker {address}: runs imgconv 0.0.9, this client 0.1.0; install the same version there\n"


def test_scheduler_without_imgconv(run, tree, tmp_path_factory):
    bare = DaskProcesses(
        tmp_path_factory.mktemp("dask-bare"), python_flags=["-S"], scheduler_env={"PYTHONPATH": _site_packages()}
    )
    try:
        error = _preflight_error(run, tree, bare.address)
    finally:
        bare.close()
    assert error.startswith(f"Error: scheduler {bare.address}: cannot import imgconv there (")
    assert error.endswith("the scheduler unpickles imgconv's tasks, so it needs imgconv 0.1.0 installed too\n")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not _unshare_works(),
    reason="giving one worker another view of a folder needs a mount namespace (unshare --mount, as root)",
)


def _in_namespace(mount: str) -> list[str]:
    """Run the worker in its own mount namespace after ``mount`` (a shell command)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mount} && exec "$@"', "sh"]


@needs_mount_namespace
def test_worker_seeing_another_input_folder(run, spare, odd_worker, tree):
    """The worker's photos/ is an empty tmpfs: the same path, another filesystem."""
    odd_worker("other-inputs", prefix=_in_namespace(f"mount -t tmpfs imgconv-test {tree / 'photos'}"))
    address = spare.running_workers()["other-inputs"]
    error = _preflight_error(run, tree, spare.address)
    assert error == (
        f"Error: worker {address}: cannot see the input {tree / 'photos' / '2020' / 'alpha.png'} "
        "(No such file or directory)\n"
    )


@needs_mount_namespace
def test_worker_seeing_another_output_folder(run, spare, odd_worker, tree):
    """Inputs are shared, but the folder the outputs go to is not."""
    (tree / "results").mkdir()
    odd_worker("other-outputs", prefix=_in_namespace(f"mount -t tmpfs imgconv-test {tree / 'results'}"))
    address = spare.running_workers()["other-outputs"]
    result = run("apply", "-k", "blur", "photos/**/*.png", "-o", "results/{relpath}.png", "--scheduler", spare.address)
    assert result.exit_code == 2
    assert re.fullmatch(
        f"Error: worker {re.escape(address)}: does not see the output folder {re.escape(str(tree / 'results'))} "
        r"as the client does \(the client's preflight file is not there: No such file or directory\)\n",
        result.stderr,
    )
    assert list((tree / "results").iterdir()) == []


@needs_mount_namespace
def test_worker_that_cannot_write_the_output_folder(run, spare, odd_worker, tree):
    """The worker sees the client's folder read-only (a read-only bind mount)."""
    odd_worker("read-only", prefix=_in_namespace(f"mount --bind -o ro {tree} {tree}"))
    address = spare.running_workers()["read-only"]
    error = _preflight_error(run, tree, spare.address)
    assert error == (f"Error: worker {address}: cannot write in the output folder {tree} (Read-only file system)\n")


# --------------------------------------------------------------------------
# the worker side, in process


def test_a_worker_of_another_version_refuses_its_chunk(monkeypatch):
    """A worker that joins after the preflight with another imgconv writes nothing."""
    from imgconv.batch.cluster_tasks import run_chunk

    calls = []
    outcomes = run_chunk(
        lambda s, t: calls.append(s), [(0, "/in/a.png", "/out/a.png")], version="9.9", stop_event="unused", threads={}
    )
    assert calls == []
    [(index, failure)] = outcomes
    assert index == 0 and failure.exit_code == 2
    assert "runs imgconv 0.1.0, this client 9.9; every worker needs the client's version" in failure.message


def test_failures_come_back_with_typed_paths():
    from imgconv.batch.cluster import as_typed

    typed, shipped = Task("photos/a.png", "out/a.png"), Task("/data/photos/a.png", "/data/out/a.png")
    assert as_typed("/data/photos/a.png: not an image", typed, shipped) == "photos/a.png: not an image"
    assert (
        as_typed("/data/out/a.png: cannot create folder /data/out: denied", typed, shipped)
        == "out/a.png: cannot create folder out: denied"
    )
