"""Issue 11, through real processes: bounded memory, signals at any moment,
temporary files nobody else can lose or find, and the promises about stdout
and batches.  The long versions of these checks are in tests/stress/."""

from __future__ import annotations

import errno
import os
import random
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES, pixels
from PIL import Image

from imgconv import output
from imgconv.batch.memory import WORKER_BYTES, Budget, declared_values, estimate
from imgconv.limits import MESSAGE_CHARS

IMGCONV = [sys.executable, "-m", "imgconv"]
GB2 = 2 << 30


def imgconv(*args, limit: int | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run imgconv in a child process, its address space capped at ``limit`` bytes if given."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    if "stdout" not in kwargs and "stderr" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run([*IMGCONV, *map(str, args)], preexec_fn=cap if limit else None, timeout=120, **kwargs)


def assert_clean(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: ") and max(map(len, lines)) <= MESSAGE_CHARS + 7
    for needle in needles:
        assert needle in stderr


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.open(SAMPLES / "coffee.png").crop((0, 0, 96, 64)).save(path)
    return path


# --------------------------------------------------------------------------
# Family 1 and 2: every read bounded, under a 2 GB address-space limit


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
class TestEndlessInputsUnderTwoGigabytes:
    def test_stdin_from_dev_zero(self, tmp_path):
        with open("/dev/zero", "rb") as zero:
            result = imgconv("apply", "-k", "sharpen", "-", tmp_path / "o.png", stdin=zero, limit=GB2)
        assert_clean(result, 1, "<stdin>: not an image file")

    def test_stdin_from_a_pipe_that_never_ends(self, tmp_path):
        # A valid PNG header, then zeros for ever: refused once it is no PNG, not read to the end.
        feeder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; o = sys.stdout.buffer; o.write(open(sys.argv[1], 'rb').read(33))\n"
                "while True: o.write(bytes(1 << 20))",
                SAMPLES / "camera.png",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            result = imgconv("apply", "-k", "sharpen", "-", tmp_path / "o.png", stdin=feeder.stdout, limit=GB2)
        finally:
            feeder.kill()
            feeder.wait()
        assert_clean(result, 1, "<stdin>")

    def test_endless_file_as_a_kernel(self, tmp_path, photo):
        assert_clean(imgconv("apply", "-k", "@/dev/zero", photo, tmp_path / "o.png", limit=GB2), 2, "binary data")


def test_sigterm_stops_a_read_from_a_fifo(tmp_path):
    """A read that cannot end (a FIFO nobody writes) still ends on SIGTERM."""
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)
    process = subprocess.Popen([*IMGCONV, "apply", "-k", "sharpen", fifo, tmp_path / "o.png"], stderr=subprocess.PIPE)
    writer = os.open(fifo, os.O_WRONLY)  # returns once imgconv has opened the FIFO to read it
    try:
        os.write(writer, (SAMPLES / "camera.png").read_bytes()[:100])  # a start, then nothing more
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        os.close(writer)
    assert process.returncode == 143 and stderr == b"imgconv: terminated\n"
    assert os.listdir(tmp_path) == ["in.png"]


def test_a_signal_ignored_at_start_stays_ignored(tmp_path):
    """Started with SIGINT ignored (nohup, a script's background job), imgconv keeps it so, as Python does."""
    fifo = tmp_path / "in.png"
    os.mkfifo(fifo)

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [*IMGCONV, "apply", "-k", "sharpen", fifo, tmp_path / "o.png"], stderr=subprocess.PIPE, preexec_fn=ignore_sigint
    )
    writer = os.open(fifo, os.O_WRONLY)  # returns once imgconv has opened the FIFO to read it
    try:
        process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)  # still reading: the SIGINT changed nothing
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        os.close(writer)
    assert process.returncode == 143 and stderr == b"imgconv: terminated\n"


# --------------------------------------------------------------------------
# Family 3: a backend gives the same bytes or refuses up front


@pytest.mark.parametrize("spec", ["1e25,-1e25", "1e19", "1e308,1e308", "-1e300,1e-300"])
def test_huge_weights_give_the_same_bytes_on_every_backend_that_accepts_them(run, photo, tmp_path, spec):
    outputs = {}
    for backend in ("auto", "numpy", "scipy", "pil"):
        result = run("apply", "-k", spec, "--backend", backend, photo, tmp_path / f"{backend}.png")
        assert result.exit_code in (0, 2), result.stderr
        if result.exit_code == 0:
            outputs[backend] = pixels(tmp_path / f"{backend}.png")
        else:
            assert "cannot do this" in result.stderr
    assert {"auto", "numpy", "scipy"} <= set(outputs)
    assert all(np.array_equal(outputs["numpy"], other) for other in outputs.values())


def test_tiny_weights_are_not_dropped(run, photo, tmp_path):
    for backend in ("auto", "numpy", "scipy"):
        target = tmp_path / f"{backend}.png"
        result = run("apply", "-k", "1e-17", "--scale", "1e-17", "--backend", backend, photo, target)
        assert result.exit_code == 0, result.stderr
        assert np.array_equal(pixels(target), pixels(photo)), backend


def test_a_large_non_separable_kernel_runs_on_scipy_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(3)
    kernel = tmp_path / "k.txt"
    kernel.write_text("\n".join(" ".join(map(str, row)) for row in rng.integers(-9, 10, (96, 96))) + "\n")
    tiny = tmp_path / "tiny.png"
    Image.fromarray(rng.integers(0, 256, (5, 7), dtype=np.uint8)).save(tiny)
    # ndimage's own 2-D route would want 96**4 * 8 bytes = 680 MB of offsets here.
    for backend in ("scipy", "numpy"):
        result = imgconv(
            "apply",
            "-k",
            f"@{kernel}",
            "--geometry",
            "full",
            "--backend",
            backend,
            tiny,
            tmp_path / f"{backend}.png",
            limit=600 << 20,
        )
        assert result.returncode == 0, result.stderr
    assert np.array_equal(pixels(tmp_path / "scipy.png"), pixels(tmp_path / "numpy.png"))


# --------------------------------------------------------------------------
# Family 4: sizes that cannot be bypassed


def test_a_pooling_window_far_larger_than_the_image_is_quick(run, photo, tmp_path):
    # Computed from the cells that touch the image: this returns at once, not after 10**8 steps.
    result = run("pool", "--op", "mean", "--size", "100000000", "--padding", "same", photo, tmp_path / "o.npy")
    assert result.exit_code == 0, result.stderr
    image = pixels(photo).astype(float)
    assert np.allclose(np.load(tmp_path / "o.npy"), image.mean(axis=(0, 1)))


# --------------------------------------------------------------------------
# Family 6: temporary files


def _writer(folder: Path, named: bool) -> subprocess.Popen:
    """A process in the middle of writing an output: half of it written, waiting."""
    script = (
        "import sys, os\n"
        "from pathlib import Path\n"
        "import imgconv.output as o\n"
        f"o.USE_TMPFILE = {not named}\n"
        "def payload(stream):\n"
        "    stream.write(b'half of an image'); stream.flush()\n"
        "    print('writing', flush=True); sys.stdin.read()\n"
        f"o.write_atomic(Path({str(folder / 'x.png')!r}), payload)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"writing\n"
    return process


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_kill_9_mid_write_leaves_nothing_after_the_next_run(tmp_path, photo, named):
    if not named and not output.USE_TMPFILE:
        pytest.skip("no unnamed temporary files here")
    process = _writer(tmp_path, named)
    process.kill()
    process.wait()
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(hidden) == (1 if named else 0)  # an unnamed file dies with its process
    assert not (tmp_path / "x.png").exists()
    result = imgconv("apply", "-k", "sharpen", photo, tmp_path / "y.png")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "y.png"]


def test_a_live_temporary_file_is_never_swept(tmp_path):
    process = _writer(tmp_path, named=True)
    try:
        (live,) = [p for p in tmp_path.iterdir() if p.name.endswith(output.TEMP_SUFFIX)]
        stale = tmp_path / output.temporary_name("old.png")
        stale.write_bytes(b"left by a run that was killed")
        other = tmp_path / ".download.part"  # somebody else's: not imgconv's to remove
        other.write_bytes(b"x")
        assert output.sweep_temporaries(tmp_path) == 1
        assert live.exists() and other.exists() and not stale.exists()
        process.stdin.close()  # let the writer finish
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert (tmp_path / "x.png").read_bytes() == b"half of an image"
    assert not live.exists()


def test_an_interrupted_batch_does_not_remove_another_runs_temporary_file(tmp_path, photo):
    out = tmp_path / "out"
    out.mkdir()
    process = _writer(out, named=True)
    try:
        inputs = tmp_path / "in"
        inputs.mkdir()
        for index in range(3):
            (inputs / f"{index}.png").write_bytes(photo.read_bytes())
        os.mkfifo(inputs / "9.png")  # keeps the batch open until interrupted
        batch = subprocess.Popen(
            [*IMGCONV, "apply", "-k", "sharpen", f"{inputs}/*.png", "-o", f"{out}/", "--jobs", "1"],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while len(list(out.glob("[0-9].png"))) < 3 and time.monotonic() < deadline:
            assert batch.poll() is None
            time.sleep(0.02)
        batch.send_signal(signal.SIGINT)
        _, stderr = batch.communicate(timeout=60)
        assert batch.returncode == 130, stderr
        assert [p for p in out.iterdir() if p.name.endswith(output.TEMP_SUFFIX)]  # the other run's, kept
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert (out / "x.png").read_bytes() == b"half of an image"


@pytest.mark.parametrize("named", [False, True], ids=["unnamed", "named"])
def test_a_247_character_output_name(tmp_path, photo, monkeypatch, run, named):
    monkeypatch.setattr(output, "USE_TMPFILE", output.USE_TMPFILE and not named)
    target = tmp_path / ("n" * 243 + ".png")
    for _ in range(2):  # new, then replaced
        result = run("apply", "-k", "sharpen", photo, target)
        assert result.exit_code == 0, result.stderr
    assert len(target.name) == 247 and pixels(target).shape == (64, 96, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["photo.png", target.name])


# --------------------------------------------------------------------------
# Family 8: other promises


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["apply", "-k", "sharpen", "{photo}", "-"], ["kernels", "list"], ["--help"]])
def test_stdout_to_a_full_device(photo, args):
    with open("/dev/full", "wb") as full:
        result = imgconv(*(a.replace("{photo}", str(photo)) for a in args), stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 1
    assert result.stderr.decode() == f"Error: -: cannot write to standard output: {os.strerror(errno.ENOSPC)}\n"


@pytest.mark.parametrize("args", [["apply", "-k", "sharpen", "{photo}", "-"], ["kernels", "show", "sharpen"]])
def test_closed_stdout(photo, args):
    argv = [*IMGCONV, *(a.replace("{photo}", str(photo)) for a in args)]
    result = subprocess.run(
        argv, stdout=None, stderr=subprocess.PIPE, close_fds=True, timeout=120, preexec_fn=lambda: os.close(1)
    )
    assert result.returncode == 1
    assert result.stderr.decode() == "Error: -: cannot write to standard output: it is closed\n"


def test_closed_stdout_does_not_matter_when_nothing_goes_there(photo, tmp_path):
    result = subprocess.run(
        [*IMGCONV, "apply", "-k", "sharpen", photo, tmp_path / "o.png"],
        stderr=subprocess.PIPE,
        timeout=120,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 0 and result.stderr == b""
    assert pixels(tmp_path / "o.png").shape == (64, 96, 3)


def test_a_hard_linked_output_is_refused_before_any_work(run, photo, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "b.png"):
        (inputs / name).write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    os.link(inputs / "b.png", out / "b.png")
    result = run("apply", "-k", "blur", f"{inputs}/*.png", "-o", f"{out}/", "--jobs", "1")
    assert result.exit_code == 2 and "is an input file; refusing to overwrite it" in result.stderr
    assert sorted(os.listdir(out)) == ["b.png"]  # a.png, first in line, was not written either
    assert (inputs / "b.png").read_bytes() == photo.read_bytes()


def test_a_file_with_glob_characters_is_that_file(run, photo, tmp_path):
    odd = tmp_path / "br[ack]et.png"
    odd.write_bytes(photo.read_bytes())
    (tmp_path / "braet.png").write_bytes(b"what the pattern would match")
    result = run("apply", "-k", "identity", odd, tmp_path / "o.png")
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(pixels(tmp_path / "o.png"), pixels(photo))
    result = run("apply", "-k", "identity", odd, photo, "-o", f"{tmp_path}/out/")
    assert result.exit_code == 0 and sorted(os.listdir(tmp_path / "out")) == ["br[ack]et.png", "photo.png"]


class TestMemoryBudget:
    def test_estimates_come_from_headers(self, tmp_path):
        Image.new("RGB", (300, 200)).save(tmp_path / "a.png")
        np.save(tmp_path / "m.npy", np.zeros((4, 5, 6)))
        assert declared_values(str(tmp_path / "a.png")) == 300 * 200 * 3
        assert declared_values(str(tmp_path / "m.npy")) == 120
        assert declared_values(str(tmp_path / "missing.png")) == 0

    def test_files_wait_while_they_would_not_fit(self):
        budget = Budget(total=2 * estimate(10**8), measure=lambda source: int(source))
        big = budget.cost(str(10**8))
        assert budget.fits(big)
        budget.take(0, big)
        assert budget.fits(big)
        budget.take(1, big)
        assert not budget.fits(budget.cost("1"))  # a third waits, however small
        budget.release(0)
        assert budget.fits(big)

    def test_one_file_always_runs(self):
        budget = Budget(total=WORKER_BYTES, measure=lambda source: 10**12)
        assert budget.fits(budget.cost("huge"))

    def test_help_says_so(self, run):
        assert "would not fit together in the memory" in " ".join(run("apply", "--help").output.split())


# --------------------------------------------------------------------------
# Family 5: signals at random moments (three tries; tests/stress/signals.py makes fifty)


def test_signals_at_random_moments_of_a_batch(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(6):
        Image.open(SAMPLES / "coffee.png").save(photos / f"{index}.png")
    rng = random.Random(5)
    for attempt, signum in enumerate([signal.SIGINT, signal.SIGTERM, signal.SIGINT]):
        out = tmp_path / f"out{attempt}"
        process = subprocess.Popen(
            [*IMGCONV, "apply", "-k", "gaussian5", f"{photos}/*.png", "-o", f"{out}/", "--jobs", "2"],
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.1, 1.5))
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        word = b"interrupted" if signum == signal.SIGINT else b"terminated"
        # Whatever the moment (unless the batch was already done): one line, its code, nothing partial.
        assert b"Traceback" not in stderr
        if process.returncode != 0:
            assert process.returncode == (130 if signum == signal.SIGINT else 143), stderr
            assert stderr.splitlines()[-1] == b"imgconv: " + word
        written = sorted(out.iterdir()) if out.exists() else []
        assert all(not p.name.startswith(".") for p in written)
        for path in written:
            Image.open(path).load()


def test_a_closed_stderr_keeps_errors_out_of_stdout(tmp_path):
    """With stderr closed (``2>&-``) a usage error goes nowhere: stdout carries only what was asked of it."""
    np.save(tmp_path / "m.npy", np.zeros((3, 3)))
    done = subprocess.run(
        ["sh", "-c", f"exec {shlex.quote(sys.executable)} -m imgconv apply -k nosuch m.npy - 2>&-"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, b"")
