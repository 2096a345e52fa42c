"""The resident server (IMGCONV_SERVER=auto): the same answers, faster, safely.

Every test here runs the installed ``imgconv`` command in real processes
against a real server started by ``imgconv server start`` in a private
runtime folder, and stops it by PID.  A call is checked twice: once
in-process (no IMGCONV_SERVER) and once through the server, and the two
must agree to the byte (stdout, stderr, exit code, every file written and
its mode), while the server's own count shows that it served the call.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bad_inputs.make_corpus import build
from conftest import SAMPLES
from PIL import Image

from imgconv.server import protocol

SCRIPT = Path(sys.executable).parent / "imgconv"
#: The interpreter the command runs on (its shebang): the server a client finds is keyed by it.
INTERPRETER = SCRIPT.read_text().splitlines()[0][2:] if SCRIPT.exists() else sys.executable

pytestmark = [
    pytest.mark.skipif(not SCRIPT.exists(), reason="needs the installed imgconv command (make test installs it)"),
    pytest.mark.skipif(bool(protocol.supported()), reason=f"no server on this platform: {protocol.supported()}"),
]


# --------------------------------------------------------------------------
# helpers


def wait_until(predicate, what: str, timeout: float = 60.0):
    """Poll an observable state (never a fixed sleep); fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def imgconv(*args, env: dict, cwd=None, stdin: bytes | None = None, served: bool = False, **kwargs):
    """Run the installed command; ``served`` adds IMGCONV_SERVER=auto."""
    environment = dict(env)
    if served:
        environment["IMGCONV_SERVER"] = "auto"
    kwargs.setdefault("capture_output", True)
    return subprocess.run([str(SCRIPT), *map(str, args)], env=environment, cwd=cwd, input=stdin, timeout=300, **kwargs)


class Server:
    """A running server (started by ``imgconv server start``) and what its status says."""

    def __init__(self, env: dict) -> None:
        self.env = env
        done = imgconv("server", "start", "--idle", "600", env=env, text=True)
        assert done.returncode == 0, done.stderr
        self.pid = int(re.search(r"pid (\d+)", done.stdout).group(1))

    @staticmethod
    def status_of(env: dict) -> dict | None:
        done = imgconv("server", "status", env=env, text=True)
        if done.returncode != 0:
            return None
        fields = dict(line.split(":", 1) for line in done.stdout.splitlines())
        served, declined = map(int, re.search(r"(\d+) served, (\d+) run in-process", fields["calls"]).groups())
        return {
            "pid": int(fields["pid"]),
            "socket": fields["socket"].strip(),
            "served": served,
            "declined": declined,
            "calls": fields["calls"].strip(),
            "running": [int(p) for p in re.findall(r"pid (\d+)", fields["running"])],
        }

    def status(self) -> dict:
        status = self.status_of(self.env)
        assert status is not None and status["pid"] == self.pid, "the server is not running"
        return status

    def stop(self) -> None:
        """Stop by PID, as a user would with kill, and wait until it is gone."""
        if alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
        wait_until(lambda: not alive(self.pid), f"server pid {self.pid} to exit")


def private_runtime(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("runtime")
    os.chmod(folder, 0o700)
    return str(folder)


def clean_env(runtime: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCONV_SERVER")}
    env["XDG_RUNTIME_DIR"] = runtime
    return env


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    """The environment every call of the shared server uses (a private runtime folder)."""
    return clean_env(private_runtime(tmp_path_factory))


@pytest.fixture(scope="session")
def server(env):
    started = Server(env)
    yield started
    started.stop()


@pytest.fixture
def own_env(tmp_path_factory) -> dict:
    """A runtime folder of this test's own, for a server it starts, kills or refuses."""
    return clean_env(private_runtime(tmp_path_factory))


@pytest.fixture
def stop_later():
    """Servers a test started in its own runtime folder, stopped by PID at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        wait_until(lambda pid=pid: not alive(pid), f"server pid {pid} to exit")


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path below ``folder`` with its mode and content."""
    return {
        str(p.relative_to(folder)): (stat.S_IMODE(p.lstat().st_mode), None if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


def normalised(text: bytes) -> bytes:
    """The batch summary's duration is the only part of a message that varies between runs."""
    return re.sub(rb"\d+\.\d\d s\b", b"<seconds> s", text)


# --------------------------------------------------------------------------
# the same answer: a matrix of calls, in-process and served


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """Small real inputs; each case works on its own copy."""
    folder = tmp_path_factory.mktemp("workspace")
    camera, coffee = Image.open(SAMPLES / "camera.png"), Image.open(SAMPLES / "coffee.png")
    camera.crop((200, 100, 264, 148)).save(folder / "gray.png")
    coffee.crop((250, 150, 314, 198)).save(folder / "rgb.png")
    coffee.crop((250, 150, 314, 198)).save(folder / "rgb.ppm")
    Image.open(SAMPLES / "chelsea-alpha.png").crop((0, 0, 40, 30)).save(folder / "alpha.png")
    Image.open(SAMPLES / "astronaut-gray16.png").crop((0, 0, 40, 30)).save(folder / "gray16.png")
    (folder / "photos" / "2020").mkdir(parents=True)
    camera.crop((0, 0, 48, 40)).save(folder / "photos" / "a.png")
    coffee.crop((100, 100, 164, 140)).save(folder / "photos" / "b.png")
    camera.crop((100, 100, 140, 132)).save(folder / "photos" / "2020" / "c.png")
    (folder / "A.csv").write_text("255,7,3\n212,240,4\n218,216,230\n")
    (folder / "P.csv").write_text("1,3,2,1\n4,6,5,0\n3,1,1,2\n0,2,7,4\n")
    (folder / "mine.yaml").write_text(
        "kernels:\n  - name: my-blur\n    description: 1-2-1\n"
        "    values: [[1, 2, 1]]\n    scale: 4\n    source: a test\n"
    )
    (folder / "blocker").write_text("a file where a folder would go\n")
    return folder


#: (id, arguments, standard input, extra environment): the CLI's behaviours, good and bad.
MATRIX = [
    ("apply gray png", "apply -k sharpen gray.png out.png", None, {}),
    ("apply chain abs", "apply -k gaussian5 -k edge3 --range abs rgb.png out.png", None, {}),
    ("apply ppm", "apply -k sharpen rgb.ppm out.ppm", None, {}),
    ("apply csv to stdout", "apply -k '1,-1;-1,1' --geometry full A.csv -", None, {}),
    ("apply to npy", "apply -k box:2 A.csv out.npy", None, {}),
    (
        "apply correlate reflect tif",
        "apply -k sobel-x --correlate --border reflect --range normalize gray.png out.tif",
        None,
        {},
    ),
    ("apply 16 bit", "apply -k gaussian3 gray16.png out16.png", None, {}),
    ("apply 16 to 8 bit", "apply -k gaussian3 --depth 8 gray16.png out8.png", None, {}),
    ("apply alpha", "apply -k unsharp5 alpha.png out.png", None, {}),
    ("apply gray colour jpeg", "apply -k emboss --color gray --quality 80 rgb.png out.jpg", None, {}),
    ("apply webp bmp", "apply -k blur rgb.png out.webp", None, {}),
    ("apply scipy float kernel", "apply -k gaussian:sigma=1.5 --backend scipy rgb.png out.png", None, {}),
    ("apply pil backend", "apply -k sharpen --backend pil gray.png out.png", None, {}),
    ("stdin to stdout", "apply -k blur - -", "rgb.png", {}),
    ("stdin to stdout as ppm", "apply -k blur --format ppm - -", "gray.png", {}),
    ("batch jobs", "apply -k blur 'photos/**/*.png' -o 'out/{relpath}-{kernel}.png' --jobs 2", None, {}),
    ("batch one job quiet", "apply -k sharpen 'photos/*.png' -o out/ --jobs 1 -q", None, {}),
    ("batch dry run", "apply -k sharpen 'photos/**/*.png' -o out/ --dry-run", None, {}),
    ("batch with a bad file", "apply -k sharpen photos/a.png blocker rgb.png -o out/", None, {}),
    ("maxpool", "maxpool --size 2 rgb.png pooled.png", None, {}),
    ("avgpool csv", "avgpool --size 2 P.csv -", None, {}),
    ("minpool same", "pool --op min --size 3 --stride 2 --padding same gray.png pooled.png", None, {}),
    ("features", "features rgb.png -o sheet.png --kernels edge1,sobel-x,sobel-y --relu --pool 2", None, {}),
    ("kernels list", "kernels list", None, {}),
    ("kernels list json", "kernels list --json", None, {}),
    ("kernels show", "kernels show unsharp5", None, {}),
    ("registry option", "kernels show my-blur --registry mine.yaml", None, {}),
    ("registry from the environment", "apply -k my-blur gray.png out.png", None, {"IMGCONV_KERNELS": "mine.yaml"}),
    ("limit from the environment", "apply -k sharpen gray.png out.png", None, {"IMGCONV_MAX_KERNEL": "2"}),
    ("backends", "backends", None, {}),
    ("help", "--help", None, {}),
    ("apply help narrow", "apply --help", None, {"COLUMNS": "60"}),
    ("version", "--version", None, {}),
    ("no arguments", "", None, {}),
    ("shell completion", "", None, {"_IMGCONV_COMPLETE": "bash_source"}),
    ("unknown command", "aply -k sharpen gray.png out.png", None, {}),
    ("unknown kernel", "apply -k sharpn gray.png out.png", None, {}),
    ("missing input", "apply -k sharpen nothing.png out.png", None, {}),
    ("empty glob", "apply -k sharpen 'nothing/*.png' -o out/", None, {}),
    ("output is the input", "apply -k sharpen gray.png gray.png", None, {}),
    ("in place", "apply -k sharpen --in-place gray.png gray.png", None, {}),
    ("folder blocked by a file", "apply -k sharpen gray.png blocker/out.png", None, {}),
    ("binary stdin that is not an image", "apply -k blur - out.png", "A.csv", {}),
    ("temporary folder from the environment", "apply -k sharpen gray.png out.png", None, {"TMPDIR": "."}),
]


def run_case(args: str, stdin: str | None, extra: dict, folder: Path, env: dict, *, served: bool):
    data = (folder / stdin).read_bytes() if stdin else None
    return imgconv(*shlex.split(args), env={**env, **extra}, cwd=folder, stdin=data, served=served)


def compare(case, workspace: Path, tmp_path: Path, env: dict):
    """Run one case both ways in twin folders; assert that everything a user sees is equal."""
    _, args, stdin, extra = case
    results = {}
    for served in (False, True):
        folder = tmp_path / ("served" if served else "in-process")
        shutil.copytree(workspace, folder)
        done = run_case(args, stdin, extra, folder, env, served=served)
        results[served] = (done.returncode, done.stdout, normalised(done.stderr), snapshot(folder))
    assert results[True][0] == results[False][0], (results[False][2], results[True][2])
    assert results[True][1] == results[False][1]
    assert results[True][2] == results[False][2]
    assert results[True][3] == results[False][3]
    return results[True]


@pytest.mark.parametrize("case", MATRIX, ids=[case[0] for case in MATRIX])
def test_served_call_equals_in_process(case, server, env, workspace, tmp_path):
    before = server.status()["served"]
    compare(case, workspace, tmp_path, env)
    assert server.status()["served"] == before + 1, "the call was not served"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("bad_inputs"))


def test_bad_inputs_give_the_same_errors(server, env, corpus, tmp_path):
    """Every case of the bad-input corpus (tests/test_bad_inputs.py), both ways, in parallel pairs."""
    from test_bad_inputs import CASES, fill

    cases = [c for c in CASES if "\0" not in c.command]  # a NUL byte cannot be an argument of a real process
    # The server reads IMGCONV_THREADS once, at its start: a call that sets it otherwise runs in-process.
    declined = [c for c in cases if "IMGCONV_THREADS" in c.env]
    before = server.status()["served"]

    def both(index_case):
        index, case = index_case
        out = tmp_path / f"out{index}"
        out.mkdir()
        args = [fill(token, corpus, out) for token in shlex.split(case.command)]
        extra = {key: fill(value, corpus, out) for key, value in case.env.items()}
        runs = [imgconv(*args, env={**env, **extra}, served=served) for served in (False, True)]
        return case.id, [(r.returncode, r.stdout, r.stderr) for r in runs], snapshot(out)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(both, enumerate(cases)))
    for case_id, (in_process, served), written in outcomes:
        assert served == in_process, case_id
        assert in_process[0] in (1, 2) and written == {}, case_id
    assert server.status()["served"] == before + len(cases) - len(declined)


@pytest.mark.parametrize(
    "name",
    [
        "animated.gif",
        "palette-alpha.png",
        "cmyk.jpg",
        "one-bit.png",
        "la.png",
        "gray16.png",
        "exif-rotated.jpg",
        "idat-crc.png",
    ],
)
def test_odd_inputs_read_the_same(server, env, corpus, tmp_path, name):
    outputs = []
    for served in (False, True):
        target = tmp_path / f"{served}.png"
        done = imgconv("apply", "-k", "identity", corpus / name, target, env=env, served=served)
        outputs.append((done.returncode, done.stdout, done.stderr, target.read_bytes() if target.exists() else None))
    assert outputs[0] == outputs[1]


def test_eight_concurrent_clients(server, env, workspace, tmp_path):
    sources = [workspace / "rgb.png", workspace / "gray.png", workspace / "alpha.png", workspace / "gray16.png"] * 2
    expected = tmp_path / "expected"
    expected.mkdir()
    for index, source in enumerate(sources):
        assert imgconv("apply", "-k", "unsharp5", source, expected / f"{index}.png", env=env).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    before = server.status()["served"]
    served_env = {**env, "IMGCONV_SERVER": "auto"}
    processes = [
        subprocess.Popen(
            [str(SCRIPT), "apply", "-k", "unsharp5", str(source), str(out / f"{index}.png")],
            env=served_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index, source in enumerate(sources)
    ]
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert (process.returncode, stdout, stderr) == (0, b"", b"")
    assert server.status()["served"] == before + len(sources)
    for index in range(len(sources)):
        assert (out / f"{index}.png").read_bytes() == (expected / f"{index}.png").read_bytes()


# --------------------------------------------------------------------------
# terminals: the descriptors themselves are passed, so terminal detection holds


def run_on_terminal(args, env: dict, cwd: Path, *, served: bool, stream: str) -> tuple[int, bytes, bytes]:
    """Run with stdout or stderr on a pseudo-terminal of 30x100; (code, terminal bytes, the other stream)."""
    import fcntl
    import struct
    import termios

    main_fd, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    environment = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    environment["TERM"] = "xterm"
    if served:
        environment["IMGCONV_SERVER"] = "auto"
    chunks: list[bytes] = []

    def read():
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        outputs = (
            {"stdout": secondary, "stderr": subprocess.PIPE}
            if stream == "stdout"
            else {"stdout": subprocess.PIPE, "stderr": secondary}
        )
        process = subprocess.Popen([str(SCRIPT), *args], env=environment, cwd=cwd, stdin=subprocess.DEVNULL, **outputs)
        os.close(secondary)
        other = process.communicate(timeout=120)[0 if stream == "stderr" else 1]
        reader.join(timeout=30)
    finally:
        os.close(main_fd)
    return process.returncode, b"".join(chunks), other


def test_binary_to_a_terminal_is_refused_the_same(server, env, workspace):
    before = server.status()["served"]
    runs = [
        run_on_terminal(["apply", "-k", "blur", "rgb.png", "-"], env, workspace, served=s, stream="stdout")
        for s in (False, True)
    ]
    assert runs[0] == runs[1]
    assert runs[0][0] == 2 and b"refusing to write binary image data to a terminal" in runs[0][2]
    assert server.status()["served"] == before + 1


def test_kernel_table_on_a_terminal_is_the_same(server, env, workspace):
    runs = [run_on_terminal(["kernels", "list"], env, workspace, served=s, stream="stdout") for s in (False, True)]
    assert runs[0] == runs[1]
    assert runs[0][0] == 0 and "━".encode() in runs[0][1]  # rich's table, not the plain listing


def test_progress_bar_on_a_terminal(server, env, workspace, tmp_path):
    for served in (False, True):
        folder = tmp_path / str(served)
        shutil.copytree(workspace, folder)
        code, terminal, _ = run_on_terminal(
            ["apply", "-k", "blur", "photos/**/*.png", "-o", "out/", "--jobs", "1"],
            env,
            folder,
            served=served,
            stream="stderr",
        )
        assert code == 0
        assert b"imgconv: 3 written, 0 failed, 0 up to date" in terminal
        assert b"\x1b[" in terminal  # rich drew (and cleared) its progress bar on the terminal


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) to give the call a controlling terminal")
def test_a_background_job_on_a_terminal_runs_in_process(server, env):
    """Job control stops a background job that uses its terminal; a served call would escape that."""
    command = f"{shlex.quote(str(SCRIPT))} --version"
    line = f"set -m; {command} & wait; {command}"  # -m: the first is a background job in its own group
    before = server.status()["served"]
    done = subprocess.run(
        ["script", "-qec", f"sh -c {shlex.quote(line)}", "/dev/null"],
        capture_output=True,
        env={**env, "IMGCONV_SERVER": "auto", "IMGCONV_SERVER_DEBUG": "1"},
        timeout=120,
    )
    output = done.stdout.replace(b"\r\n", b"\n")
    assert done.returncode == 0, output
    assert output.count(b"imgconv, version") == 2
    assert output.count(b"a terminal this job does not own") == 1  # the background one, and only it
    assert server.status()["served"] == before + 1  # the foreground one


# --------------------------------------------------------------------------
# signals


def new_call(server: Server, before: set[int]) -> int:
    """The pid of the call that started after ``before`` was taken (an earlier
    test's call may still be on its way out)."""
    return wait_until(lambda: sorted(set(server.status()["running"]) - before), "the server to run the call")[0]


def slow_call(folder: Path) -> list[str]:
    """A call that runs for seconds: a 31x31 Gaussian summed tap by tap (numpy, float64)."""
    Image.open(SAMPLES / "coffee.png").convert("RGB").resize((1600, 1200)).save(folder / "big.png")
    return ["apply", "-k", "gaussian:sigma=5,size=31", "--backend", "numpy", "big.png", "out/big.png"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_on_the_client_reaches_the_call(server, env, tmp_path, signum):
    (tmp_path / "out").mkdir()
    args = slow_call(tmp_path)
    before = set(server.status()["running"])
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**env, "IMGCONV_SERVER": "auto"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child = new_call(server, before)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    # What an in-process run prints when interrupted: one line, 130 for Ctrl-C, 143 for SIGTERM.
    code, word = (130, b"interrupted") if signum == signal.SIGINT else (143, b"terminated")
    assert (process.returncode, stdout, stderr) == (code, b"", b"imgconv: " + word + b"\n")
    wait_until(lambda: not alive(child), "the call's process to end")
    assert list((tmp_path / "out").iterdir()) == []  # no output, no .part file


def test_a_signal_forwarded_before_go_stops_the_call(server, env, tmp_path):
    """A signal that reaches the client between the server's "accepted" and the client's
    "go" is forwarded at once: the call must still end as an interrupted run does."""
    (tmp_path / "out").mkdir()
    args = slow_call(tmp_path)
    client = (
        "import signal, sys\n"
        "from imgconv.server import client, protocol\n"
        "sock = protocol.unix_socket()\n"
        "sock.connect(protocol.Place.here().socket)\n"
        "protocol.send(sock, client.call_request(['imgconv', *sys.argv[1:]]), fds=(0, 1, 2))\n"
        "reply, _ = protocol.receive(sock)\n"
        "assert reply['type'] == 'accepted', reply\n"
        "protocol.send(sock, {'type': 'signal', 'signum': int(signal.SIGINT)})\n"
        "protocol.send(sock, {'type': 'go'})\n"
        "sys.exit(client.wait(sock, int(reply['pid'])))\n"
    )
    before = server.status()["served"]
    done = subprocess.run([INTERPRETER, "-c", client, *args], cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (130, b"", b"imgconv: interrupted\n"), done.stderr.decode()
    wait_until(lambda: server.status()["running"] == [], "the call's process to end")
    assert server.status()["served"] == before + 1
    assert list((tmp_path / "out").iterdir()) == []


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stream:
        return stream.read().rsplit(")", 1)[1].split()[0]


def test_ctrl_z_stops_the_call_and_fg_continues_it(server, env, tmp_path):
    (tmp_path / "out").mkdir()
    args = slow_call(tmp_path)
    before = set(server.status()["running"])
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**env, "IMGCONV_SERVER": "auto"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A job of its own in this session, as a shell starts one: the kernel
        # discards a stop signal sent to an orphaned process group, which the
        # client's would be if the suite itself runs in one (a background job).
        process_group=0,
    )
    child = new_call(server, before)
    try:
        process.send_signal(signal.SIGTSTP)
        wait_until(lambda: _state(process.pid) == "T" and _state(child) == "T", "the client and its call to stop")
        process.send_signal(signal.SIGCONT)
        wait_until(lambda: _state(process.pid) != "T" and _state(child) != "T", "both to continue")
        process.send_signal(signal.SIGINT)
        assert process.communicate(timeout=60)[1] == b"imgconv: interrupted\n" and process.returncode == 130
    finally:  # never leave a stopped call behind for the tests that follow
        for pid in (child, process.pid):
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


def test_a_killed_client_stops_its_call(server, env, tmp_path):
    (tmp_path / "out").mkdir()
    args = slow_call(tmp_path)
    before = set(server.status()["running"])
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**env, "IMGCONV_SERVER": "auto"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child = new_call(server, before)
    process.kill()
    # The call holds the client's stdout and stderr: they close when it ends.
    # Like a killed in-process run, it ends without a word.
    assert process.communicate(timeout=60) == (b"", b"")
    wait_until(lambda: not alive(child), "the orphaned call to stop", timeout=60)
    assert server.status()["running"] == []
    assert list((tmp_path / "out").iterdir()) == []


def test_a_killed_call_kills_its_client_the_same_way(server, env, tmp_path):
    (tmp_path / "out").mkdir()
    args = slow_call(tmp_path)
    before = set(server.status()["running"])
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env={**env, "IMGCONV_SERVER": "auto"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child = new_call(server, before)
    os.kill(child, signal.SIGKILL)  # as the kernel's OOM killer would
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL  # what the shell would see of a killed in-process run


# --------------------------------------------------------------------------
# what the server cannot honour runs in-process, with the same result


def interpreter() -> str:
    """The interpreter of the console script (its shebang): the one a served call must match."""
    return SCRIPT.read_text().splitlines()[0][2:].strip()


@pytest.mark.parametrize("why", ["IMGCONV_THREADS", "OMP_NUM_THREADS", "umask", "python flags"])
def test_what_the_server_cannot_honour_runs_in_process(server, env, workspace, tmp_path, why):
    folder = tmp_path / "work"
    shutil.copytree(workspace, folder)
    command = [str(SCRIPT), "apply", "-k", "sharpen", "rgb.png", "out.png"]
    environment, umask = {**env, "IMGCONV_SERVER": "auto", "IMGCONV_SERVER_DEBUG": "1"}, None
    if why == "umask":
        current = os.umask(0o022)
        os.umask(current)
        umask = 0o077 if current != 0o077 else 0o002  # the server took the test's own umask
    elif why == "python flags":
        command = [interpreter(), "-X", "dev", *command]  # dev mode is a flag the server was not started with
    else:
        environment[why] = "1"
    before = server.status()
    done = subprocess.run(
        command,
        cwd=folder,
        env=environment,
        capture_output=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )
    assert done.returncode == 0, done.stderr
    assert b"imgconv: server: running in-process: the server declined" in done.stderr
    if why == "python flags":
        assert b"the client's interpreter flags (sys.flags) differ from the server's" in done.stderr
    after = server.status()
    assert (after["served"], after["declined"]) == (before["served"], before["declined"] + 1)
    in_process = tmp_path / "in-process.png"
    subprocess.run(
        [*command[:-1], str(in_process)],
        cwd=folder,
        env=env,
        check=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )
    assert (folder / "out.png").read_bytes() == in_process.read_bytes()
    assert stat.S_IMODE((folder / "out.png").stat().st_mode) == stat.S_IMODE(in_process.stat().st_mode)


def test_changed_install_runs_in_process_and_retires_the_server(own_env, workspace, tmp_path, stop_later):
    """A stale install, simulated: a module file of imgconv gets a new modification time."""
    started = Server(own_env)
    stop_later.append(started.pid)
    touched = Path(protocol.package_dir()) / "server" / "__init__.py"
    times = touched.stat()
    try:
        os.utime(touched, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000_000))
        done = imgconv(
            "apply",
            "-k",
            "sharpen",
            workspace / "rgb.png",
            tmp_path / "out.png",
            env={**own_env, "IMGCONV_SERVER_DEBUG": "1"},
            served=True,
        )
    finally:
        os.utime(touched, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert done.returncode == 0
    assert b"the installation changed since the server started" in done.stderr
    wait_until(lambda: not alive(started.pid), "the stale server to exit")
    expected = tmp_path / "expected.png"
    imgconv("apply", "-k", "sharpen", workspace / "rgb.png", expected, env=own_env, check=True)
    assert (tmp_path / "out.png").read_bytes() == expected.read_bytes()


def test_a_killed_server_is_replaced(own_env, workspace, tmp_path, stop_later):
    first = Server(own_env)
    stop_later.append(first.pid)
    socket_path = first.status()["socket"]
    os.kill(first.pid, signal.SIGKILL)
    wait_until(lambda: not alive(first.pid), "the killed server to die")
    assert os.path.exists(socket_path)  # a stale socket stays behind
    done = imgconv(
        "apply",
        "-k",
        "sharpen",
        workspace / "rgb.png",
        tmp_path / "a.png",
        env={**own_env, "IMGCONV_SERVER_DEBUG": "1"},
        served=True,
    )
    assert done.returncode == 0  # ran in-process, and started a new server
    assert b"started one" in done.stderr
    second = wait_until(lambda: Server.status_of(own_env), "the new server to answer")
    stop_later.append(second["pid"])
    assert second["pid"] != first.pid and second["socket"] == socket_path
    assert (
        imgconv(
            "apply", "-k", "sharpen", workspace / "rgb.png", tmp_path / "b.png", env=own_env, served=True
        ).returncode
        == 0
    )
    assert Server.status_of(own_env)["served"] == 1
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_concurrent_first_calls_start_exactly_one_server(own_env, workspace, tmp_path, stop_later):
    sources = [workspace / "rgb.png", workspace / "gray.png"] * 4
    processes = [
        subprocess.Popen(
            [str(SCRIPT), "apply", "-k", "sharpen", str(s), str(tmp_path / f"{i}.png")],
            env={**own_env, "IMGCONV_SERVER": "auto", "IMGCONV_SERVER_IDLE": "600"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, s in enumerate(sources)
    ]
    for process in processes:
        assert process.communicate(timeout=120) == (b"", b"") and process.returncode == 0
    status = wait_until(lambda: Server.status_of(own_env), "the server to answer")
    stop_later.append(status["pid"])
    log = Path(status["socket"]).with_suffix(".log").read_text()
    assert log.count("listening on") == 1, log
    assert "another server holds the lock" not in log
    for i, source in enumerate(sources):
        expected = tmp_path / f"expected{i}.png"
        imgconv("apply", "-k", "sharpen", source, expected, env=own_env, check=True)
        assert (tmp_path / f"{i}.png").read_bytes() == expected.read_bytes()


def test_a_server_that_cannot_start_is_not_retried_on_every_call(own_env, workspace, tmp_path):
    """A broken module the server preloads (rich) but this call never imports: the call works in-process."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rich.py").write_text("raise ImportError('broken on purpose')\n")
    environment = {**own_env, "PYTHONPATH": str(broken), "IMGCONV_SERVER_DEBUG": "1"}
    first = imgconv("apply", "-k", "sharpen", workspace / "rgb.png", tmp_path / "a.png", env=environment, served=True)
    assert first.returncode == 0 and b"started one" in first.stderr
    folder = Path(own_env["XDG_RUNTIME_DIR"]) / "imgconv"
    wait_until(lambda: list(folder.glob("*.failed")), "the server's failure mark")
    assert "could not start: ImportError: broken on purpose" in next(folder.glob("*.log")).read_text()
    second = imgconv("apply", "-k", "sharpen", workspace / "rgb.png", tmp_path / "b.png", env=environment, served=True)
    assert second.returncode == 0 and b"a server failed to start less than 60 s ago" in second.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    start = imgconv("server", "start", env=environment, text=True)
    assert start.returncode == 1 and "Error: server: could not start: ImportError: broken on purpose" in start.stderr


# --------------------------------------------------------------------------
# the commands


def test_start_status_stop(own_env):
    none = imgconv("server", "status", env=own_env, text=True)
    assert none.returncode == 1 and none.stdout.startswith("imgconv server: not running")
    started = Server(own_env)
    again = imgconv("server", "start", env=own_env, text=True)
    assert again.returncode == 0 and f"already running, pid {started.pid}" in again.stdout
    status = imgconv("server", "status", env=own_env, text=True)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["pid", "socket", "version", "uptime", "calls", "running"]
    assert f"pid:     {started.pid}" in lines
    assert "imgconv 0.1.0, Python " in status.stdout and "exits after 600 s without a call" in status.stdout
    socket_path = started.status()["socket"]
    stopped = imgconv("server", "stop", env=own_env, text=True)
    assert stopped.returncode == 0 and f"stopped pid {started.pid}" in stopped.stdout
    assert not alive(started.pid) and not os.path.exists(socket_path)  # nothing left when stop returns
    assert not [p for p in Path("/proc").glob("[0-9]*") if _is_server_of(p, socket_path)]
    assert imgconv("server", "stop", env=own_env, text=True).stdout == "imgconv server: not running\n"


def _is_server_of(proc: Path, socket_path: str) -> bool:
    try:
        return socket_path.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_idle_server_exits_by_itself(own_env):
    done = imgconv("server", "start", "--idle", "0.5", env=own_env, text=True)
    pid = int(re.search(r"pid (\d+)", done.stdout).group(1))
    wait_until(lambda: not alive(pid), "the idle server to exit")
    assert Server.status_of(own_env) is None


def test_auto_started_server_takes_its_idle_time_from_the_environment(own_env, workspace, tmp_path):
    environment = {**own_env, "IMGCONV_SERVER_IDLE": "1.5"}
    imgconv(
        "apply", "-k", "sharpen", workspace / "rgb.png", tmp_path / "a.png", env=environment, served=True, check=True
    )
    log = Path(own_env["XDG_RUNTIME_DIR"]) / "imgconv"
    # The log, not status: a status query could come after the 1.5 s on a loaded machine.
    text = wait_until(lambda: "no call for 1.5 s; exiting" in _logs(log) and _logs(log), "the server to idle out")
    assert "(idle exit after 1.5 s)" in text
    pid = int(re.search(r"pid (\d+): listening on", text).group(1))
    wait_until(lambda: not alive(pid), "the idle server to exit")


def _logs(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.glob("*.log")) if folder.exists() else ""


def test_the_server_listens_on_no_network_socket(server):
    def inodes(table: str) -> set[str]:
        try:
            rows = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return set()
        return {row.split()[9] for row in rows} if table != "unix" else {row.split()[6] for row in rows}

    network = inodes("tcp") | inodes("tcp6") | inodes("udp") | inodes("udp6")
    sockets = {
        os.readlink(fd)[8:-1]
        for fd in Path(f"/proc/{server.pid}/fd").iterdir()
        if os.readlink(fd).startswith("socket:")
    }
    assert sockets and not sockets & network
    assert sockets <= inodes("unix")


# --------------------------------------------------------------------------
# safety of the socket folder


@pytest.mark.parametrize("flaw", ["group-open", "world-open", "symlink", "other owner"])
def test_an_unsafe_socket_folder_is_refused(tmp_path, workspace, flaw):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    folder = runtime / "imgconv"
    if flaw == "symlink":
        real = tmp_path / "elsewhere"
        real.mkdir(mode=0o700)
        folder.symlink_to(real)
    else:
        folder.mkdir(mode=0o700)
        if flaw == "other owner":
            if os.geteuid() != 0:
                pytest.skip("only root can give a folder to another user")
            os.chown(folder, 65534, 65534)
        else:
            os.chmod(folder, 0o750 if flaw == "group-open" else 0o777)
    env = clean_env(str(runtime))
    start = imgconv("server", "start", env=env, text=True)
    assert start.returncode == 1
    assert start.stderr.startswith(f"Error: server: {folder}: ") and "refusing to use it" in start.stderr
    status = imgconv("server", "status", env=env, text=True)
    assert status.returncode == 1 and "refusing to use it" in status.stderr
    done = imgconv(
        "apply",
        "-k",
        "sharpen",
        workspace / "rgb.png",
        tmp_path / "out.png",
        env={**env, "IMGCONV_SERVER_DEBUG": "1"},
        served=True,
    )
    assert done.returncode == 0 and b"refusing to use it" in done.stderr  # in-process, and said why
    assert not any(p.name.endswith((".sock", ".lock")) for p in folder.iterdir())


def test_the_socket_folder_is_made_private(own_env, stop_later):
    started = Server(own_env)
    stop_later.append(started.pid)
    socket_path = Path(started.status()["socket"])
    folder = socket_path.parent
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700 and folder.lstat().st_uid == os.geteuid()
    assert stat.S_IMODE(socket_path.lstat().st_mode) == 0o600 and stat.S_ISSOCK(socket_path.lstat().st_mode)


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"),
    reason="needs root to run a client as another user (nobody)",
)
def test_another_users_connection_is_refused(stop_later):
    """The folder and socket are opened up on purpose; the uid check must still refuse."""
    runtime = tempfile.mkdtemp(prefix="imgconv-peer-", dir="/tmp")  # a path nobody can reach once opened
    try:
        os.chmod(runtime, 0o700)
        env = clean_env(runtime)
        started = Server(env)
        stop_later.append(started.pid)
        socket_path = started.status()["socket"]
        os.chmod(runtime, 0o711)
        os.chmod(os.path.dirname(socket_path), 0o711)
        os.chmod(socket_path, 0o666)
        probe = (
            "import marshal, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "s.connect(sys.argv[1])\n"
            "body = marshal.dumps({'type': 'status'})\n"
            "try:\n"
            "    s.sendall(len(body).to_bytes(4, 'big') + body)\n"
            "    print(repr(s.recv(100)))\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "    print('closed')\n"
        )
        done = subprocess.run(
            ["/usr/bin/python3", "-c", probe, socket_path],
            capture_output=True,
            text=True,
            timeout=60,
            user=65534,
            group=65534,
            cwd="/",
        )
        assert done.returncode == 0, done.stderr  # it did connect: only the uid check stands in the way
        assert done.stdout.strip() in ("b''", "closed")  # no answer, whatever the timing
        os.chmod(os.path.dirname(socket_path), 0o700)  # private again, or status would refuse the folder
        log = Path(socket_path).with_suffix(".log").read_text()
        assert "refused a connection from another user" in log
        assert started.status()["served"] == 0
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# --------------------------------------------------------------------------
# the client stays thin


def test_the_client_imports_neither_click_nor_numpy_nor_pillow(server, env, workspace):
    probe = (  # the program ends the process itself after the atexit functions (imgconv.entry.leave)
        "import atexit, sys\n"
        "sys.argv = ['imgconv', 'apply', '-k', 'sharpen', 'rgb.png', 'thin.png']\n"
        "heavy = ('click', 'numpy', 'PIL', 'scipy', 'rich', 'yaml', 'imgconv.cli')\n"
        "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules)))\n"
        "from imgconv.launcher import main\n"
        "main()\n"
    )
    before = server.status()["served"]
    done = subprocess.run(
        [interpreter(), "-c", probe],
        cwd=workspace,
        env={**env, "IMGCONV_SERVER": "auto"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
    assert server.status()["served"] == before + 1
    (workspace / "thin.png").unlink()


def test_frames_carry_descriptors():
    import socket

    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read, write = os.pipe()
    try:
        protocol.send(left, {"type": "call", "argv": ["imgconv", "x" * 100_000]}, fds=(write,))
        message, fds = protocol.receive(right, max_fds=3)
        assert message == {"type": "call", "argv": ["imgconv", "x" * 100_000]} and len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        assert os.read(read, 100) == b"through the passed descriptor"
        assert not os.get_inheritable(fds[0])
        os.close(fds[0])
        left.close()
        assert protocol.receive(right) == (None, [])
    finally:
        for fd in (read, write):
            os.close(fd)
        right.close()


def test_private_dir_checks(tmp_path):
    made = protocol.private_dir(str(tmp_path / "new"))
    assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
    os.chmod(made, 0o755)
    with pytest.raises(protocol.Unavailable, match="mode 0755 lets other users in"):
        protocol.private_dir(made)
    (tmp_path / "file").write_text("")
    with pytest.raises(protocol.Unavailable, match="not a folder"):
        protocol.private_dir(str(tmp_path / "file"))


def test_import_time_variables():
    env = {
        "OMP_NUM_THREADS": "2",
        "PYTHONHASHSEED": "0",
        "IMGCONV_THREADS": "1",
        "IMGCONV_KERNELS": "a.yaml",
        "HOME": "/root",
        "LC_ALL": "C",
        "TMPDIR": "/scratch",
    }
    assert sorted(protocol.import_time_env(env)) == ["IMGCONV_THREADS", "LC_ALL", "OMP_NUM_THREADS", "PYTHONHASHSEED"]


@pytest.mark.parametrize("command", ["kernels list", "apply -k sharpen rgb.png -"])
def test_a_closed_stdout_gives_the_in_process_error(server, env, workspace, command):
    """A closed stdout (``>&-``) is reopened on a pipe nobody reads before the
    client looks at it: the call must still meet what in-process meets."""
    results = []
    for served in (False, True):
        environment = {**env, "IMGCONV_SERVER": "auto"} if served else env
        done = subprocess.run(
            ["sh", "-c", f"exec {shlex.quote(str(SCRIPT))} {command} >&-"],
            cwd=workspace,
            env=environment,
            capture_output=True,
            timeout=300,
        )
        results.append((done.returncode, done.stderr))
    assert results[0] == results[1] == (1, b"Error: -: cannot write to standard output: it is closed\n")
