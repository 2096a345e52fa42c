"""The scheduler options before any cluster is involved: usage errors,
unreachable schedulers, and distributed staying unimported without them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

IMGCONV = [sys.executable, "-m", "imgconv"]


@pytest.fixture
def photos(samples, tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    Image.open(samples / "camera.png").crop((0, 0, 40, 30)).save(tmp_path / "photos" / "a.png")
    Image.open(samples / "coffee.png").crop((0, 0, 40, 30)).save(tmp_path / "photos" / "b.png")
    return tmp_path


def needs_distributed():
    return pytest.importorskip("distributed", reason="needs Dask's distributed (pip install 'imgconv[dask]')")


def closed_port() -> str:
    """An address where nothing listens: a port the kernel just gave and took back."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_jobs_with_a_scheduler_is_a_usage_error(run, photos):
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2")
    assert result.exit_code == 2
    assert "--jobs runs files in local processes and --scheduler runs them on a Dask cluster" in result.stderr
    assert not (photos / "out").exists()


def test_jobs_with_the_environment_scheduler_says_where_it_came_from(run, photos):
    result = run(
        "maxpool",
        "--size",
        "2",
        "photos/*.png",
        "-o",
        "out/",
        "--jobs",
        "2",
        env={"IMGCONV_SCHEDULER": "tcp://127.0.0.1:1"},
    )
    assert result.exit_code == 2
    assert "IMGCONV_SCHEDULER (set in the environment)" in result.stderr
    assert "unset IMGCONV_SCHEDULER to run here" in result.stderr


def test_an_empty_environment_scheduler_runs_here(run, photos):
    """IMGCONV_SCHEDULER= (empty) is how a user with the variable set runs one batch locally."""
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--jobs", "2", env={"IMGCONV_SCHEDULER": ""})
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["a.png", "b.png"]


def test_scheduler_and_scheduler_file_together_are_refused(run, photos):
    result = run(
        "apply",
        "-k",
        "blur",
        "photos/*.png",
        "-o",
        "out/",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "--scheduler-file",
        "s.json",
    )
    assert result.exit_code == 2
    assert "give --scheduler or --scheduler-file, not both" in result.stderr


def test_without_distributed_a_scheduler_names_the_install_command(run, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    result = run("avgpool", "--size", "2", "photos/*.png", "-o", "out/", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2
    assert "--scheduler needs Dask's distributed package: pip install 'imgconv[dask]'" in result.stderr


@pytest.mark.parametrize("option, value", [("--files-per-task", "0"), ("--scheduler-timeout", "0")])
def test_bad_numbers_are_usage_errors(run, photos, option, value):
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", "tcp://127.0.0.1:1", option, value)
    assert result.exit_code == 2 and option in result.stderr


def test_dry_run_plans_on_the_client_without_connecting(run, photos):
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", closed_port(), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["photos/a.png -> out/a.png", "photos/b.png -> out/b.png"]


def test_help_lists_the_scheduler_options(run):
    text = run("pool", "--help").stdout
    for option in (
        "--scheduler ADDRESS",
        "--scheduler-file PATH",
        "--files-per-task",
        "--scheduler-timeout",
        "IMGCONV_SCHEDULER",
    ):
        assert option in text


def test_unreachable_scheduler_is_a_runtime_failure(run, photos):
    needs_distributed()
    address = closed_port()
    result = run(
        "apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", address, "--scheduler-timeout", "0.5"
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: --scheduler {address}: no scheduler answered within 0.5 s "
        f"(Timed out trying to connect to {address} after 0.5 s)"
    ]
    assert not (photos / "out").exists()


def test_missing_scheduler_file_is_waited_for_then_a_runtime_failure(run, photos):
    needs_distributed()
    result = run(
        "apply",
        "-k",
        "blur",
        "photos/*.png",
        "-o",
        "out/",
        "--scheduler-file",
        "none.json",
        "--scheduler-timeout",
        "0.2",
    )
    assert result.exit_code == 1
    assert result.stderr == "Error: --scheduler-file none.json: no scheduler wrote this file within 0.2 s\n"


def test_explicit_scheduler_file_beats_the_environment(run, photos):
    needs_distributed()
    result = run(
        "apply",
        "-k",
        "blur",
        "photos/*.png",
        "-o",
        "out/",
        "--scheduler-file",
        "none.json",
        "--scheduler-timeout",
        "0.2",
        env={"IMGCONV_SCHEDULER": "tcp://127.0.0.1:1"},
    )
    assert result.exit_code == 1 and "--scheduler-file none.json" in result.stderr


@pytest.mark.parametrize(
    "content, cause",
    [("{", "is not a scheduler file (not JSON)"), ('{"type": "Scheduler"}', "is not a scheduler file (no 'address')")],
)
def test_a_file_that_is_not_a_scheduler_file(run, photos, content, cause):
    needs_distributed()
    (photos / "s.json").write_text(content)
    result = run(
        "apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler-file", "s.json", "--scheduler-timeout", "0.2"
    )
    assert result.exit_code == 2
    assert result.stderr == f"Error: --scheduler-file s.json: {cause}\n"


@pytest.mark.parametrize(
    "address, cause",
    [
        ("foo", "missing port number in address 'foo'"),
        ("tcp://127.0.0.1:http", "invalid literal for int() with base 10: 'http'"),
    ],
)
def test_malformed_address_is_a_usage_error(run, photos, address, cause):
    needs_distributed()
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--scheduler", address)
    assert result.exit_code == 2
    assert result.stderr == f"Error: --scheduler {address}: not a scheduler address: {cause}\n"


def test_stdin_and_stdout_stay_local(run, photos):
    needs_distributed()
    result = run("apply", "-k", "blur", "photos/a.png", "-", "--scheduler", closed_port())
    assert result.exit_code == 2
    assert result.stderr == "Error: -: standard input and output stay on this machine; give files to run on a cluster\n"
    assert result.stdout == ""


def test_distributed_is_not_imported_without_a_scheduler(photos):
    """A local batch (and --help) must not pay for importing distributed."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('distributed' in sys.modules, file=sys.stderr))\n"
        "from imgconv.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    for arguments in (["apply", "-k", "blur", "photos/*.png", "-o", "out/", "--jobs", "2"], ["apply", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *arguments],
            cwd=photos,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "IMGCONV_SCHEDULER"},
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr.rstrip().endswith("False"), done.stderr
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["a.png", "b.png"]
