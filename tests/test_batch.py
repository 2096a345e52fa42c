"""Batch work: globs, templates, parallel jobs, failures, signals, pipes, make."""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from terminal import stderr_on_terminal

from imgconv.batch import Input, Task, check_plan, expand, expand_template, plan
from imgconv.errors import UsageFailure

IMGCONV = [sys.executable, "-m", "imgconv"]


@pytest.fixture
def tree(samples, tmp_path, monkeypatch) -> Path:
    """photos/{a,b}.png and photos/2020/{c,d}.png: small crops of real photos."""
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    (photos / "2020").mkdir(parents=True)
    camera = Image.open(samples / "camera.png")
    coffee = Image.open(samples / "coffee.png")
    camera.crop((0, 0, 48, 40)).save(photos / "a.png")
    coffee.crop((100, 100, 164, 140)).save(photos / "b.png")
    camera.crop((100, 100, 140, 132)).save(photos / "2020" / "c.png")
    coffee.crop((300, 200, 332, 232)).save(photos / "2020" / "d.png")
    return tmp_path


def files_below(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


class TestPlanning:
    def test_recursive_glob_sorted(self, tree):
        assert [i.path for i in expand(["photos/**/*.png"])] == [
            "photos/2020/c.png",
            "photos/2020/d.png",
            "photos/a.png",
            "photos/b.png",
        ]

    def test_duplicates_removed(self, tree):
        found = expand(["photos/a.png", "photos/*.png", "./photos/a.png"])
        assert [i.path for i in found] == ["photos/a.png", "photos/b.png"]

    def test_no_match_is_a_usage_error(self, tree):
        with pytest.raises(UsageFailure, match=r"photos/\*.jpg: no file matches"):
            expand(["photos/*.jpg"])

    def test_missing_plain_path_is_kept_for_a_runtime_error(self, tree):
        assert [i.path for i in expand(["photos/none.png"])] == ["photos/none.png"]

    def test_template_fields(self):
        item = Input("photos/2020/c.png", "photos")
        fields = "{stem}|{name}|{ext}|{parent}|{relpath}|{reldir}|{kernel}"
        assert expand_template(fields, item, kernel="1,2;3,4") == "c|c.png|png|photos/2020|2020/c|2020|1_2_3_4"

    def test_folder_output_keeps_names(self, tree):
        tasks = plan(expand(["photos/*.png"]), "out/")
        assert [t.target for t in tasks] == ["out/a.png", "out/b.png"]

    def test_two_inputs_one_output(self, tree):
        tasks = plan(expand(["photos/**/*.png"]), "out/{stem}{ext}.png")
        check_plan(tasks, in_place=False)
        with pytest.raises(UsageFailure, match="would be written to"):
            check_plan([Task("a.png", "o.png"), Task("b.png", "o.png")], in_place=False)

    def test_many_inputs_need_a_folder_or_template(self, tree):
        with pytest.raises(UsageFailure, match="need a folder"):
            plan(expand(["photos/*.png"]), "out.png")

    def test_unknown_template_field(self, tree):
        with pytest.raises(UsageFailure, match=r"unknown template field '\{size\}'"):
            plan(expand(["photos/*.png"]), "out/{size}.png")

    def test_never_overwrite_an_input(self, tree):
        with pytest.raises(UsageFailure, match="refusing to overwrite"):
            check_plan(plan(expand(["photos/*.png"]), "photos/"), in_place=False)
        check_plan(plan(expand(["photos/*.png"]), "photos/"), in_place=True)


class TestBatchCli:
    def test_mirrors_a_tree(self, run, tree):
        result = run("apply", "-k", "blur", "photos/**/*.png", "-o", "out/{relpath}.png")
        assert result.exit_code == 0, result.output
        assert files_below(tree / "out") == ["2020/c.png", "2020/d.png", "a.png", "b.png"]
        assert "4 written, 0 failed" in result.stderr

    def test_shell_expanded_list(self, run, tree):
        result = run("apply", "-k", "blur", "photos/a.png", "photos/b.png", "-o", "out/")
        assert result.exit_code == 0 and files_below(tree / "out") == ["a.png", "b.png"]

    def test_two_positional_form_still_works(self, run, tree):
        assert run("apply", "-k", "blur", "photos/a.png", "single.png").exit_code == 0
        assert (tree / "single.png").exists()

    def test_kernel_field(self, run, tree):
        run("apply", "-k", "sharpen", "photos/a.png", "-o", "out/{stem}-{kernel}.png")
        assert files_below(tree / "out") == ["a-sharpen.png"]

    def test_quiet(self, run, tree):
        result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--quiet")
        assert result.exit_code == 0 and result.stderr == "" and result.stdout == ""

    def test_dry_run_does_nothing(self, run, tree):
        result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/{stem}.jpg", "--dry-run")
        assert result.output == "photos/a.png -> out/a.jpg\nphotos/b.png -> out/b.jpg\n"
        assert not (tree / "out").exists()

    def test_update_skips_fresh_outputs(self, run, tree):
        run("apply", "-k", "blur", "photos/*.png", "-o", "out/")
        os.utime(tree / "photos" / "a.png", (time.time() + 10, time.time() + 10))  # a.png edited later
        before = (tree / "out" / "b.png").stat().st_mtime_ns
        result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--update")
        assert "1 written, 0 failed, 1 up to date" in result.stderr
        assert (tree / "out" / "b.png").stat().st_mtime_ns == before

    def test_jobs_give_identical_bytes(self, run, tree):
        run("apply", "-k", "unsharp5", "photos/**/*.png", "-o", "one/{relpath}.png", "--jobs", "1")
        run("apply", "-k", "unsharp5", "photos/**/*.png", "-o", "two/{relpath}.png", "--jobs", "2")
        for name in files_below(tree / "one"):
            assert (tree / "one" / name).read_bytes() == (tree / "two" / name).read_bytes()

    def test_bad_files_are_listed_and_the_rest_written(self, run, tree):
        (tree / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--jobs", "2")
        assert result.exit_code == 1
        assert "Error: photos/broken.png: " in result.stderr
        assert files_below(tree / "out") == ["a.png", "b.png"]
        assert "2 written, 1 failed" in result.stderr

    def test_fail_fast(self, run, tree):
        (tree / "photos" / "0-broken.png").write_text("not an image")
        result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--jobs", "1", "--fail-fast")
        assert result.exit_code == 1
        assert not (tree / "out").exists() or files_below(tree / "out") == []

    def test_collision_refused_before_any_work(self, run, tree):
        result = run("apply", "-k", "blur", "photos/**/*.png", "-o", "out/{ext}.png")
        assert result.exit_code == 2 and "would be written to" in result.output
        assert not (tree / "out").exists()

    def test_empty_glob_exit_2(self, run, tree):
        result = run("apply", "-k", "blur", "nothing/*.png", "-o", "out/")
        assert result.exit_code == 2 and "nothing/*.png: no file matches" in result.output

    def test_same_output_bytes_run_after_run(self, run, tree):
        run("apply", "-k", "gaussian5", "photos/*.png", "-o", "r1/")
        run("apply", "-k", "gaussian5", "photos/*.png", "-o", "r2/")
        assert all((tree / "r1" / n).read_bytes() == (tree / "r2" / n).read_bytes() for n in ["a.png", "b.png"])


def _blocked_batch(tree: Path, count: int) -> None:
    """``count`` images, then a FIFO that no one writes: the batch cannot end by itself."""
    big = Image.open(tree / "photos" / "b.png").resize((400, 300))
    (tree / "many").mkdir()
    for i in range(count):
        big.save(tree / "many" / f"{i:03d}.png")
    os.mkfifo(tree / "many" / "zzz.png")  # sorted last: handed out after every real file


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_batch_leaves_no_partial_files(tree, signum):
    _blocked_batch(tree, 10)
    process = subprocess.Popen(
        [*IMGCONV, "apply", "-k", "gaussian:sigma=4", "--backend", "scipy", "many/*.png", "-o", "out/", "--jobs", "2"],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Outputs appear whole (renamed into place): wait until every real file is
    # done, while one worker is still blocked on the FIFO, then interrupt.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((tree / "out").glob("[0-9]*.png"))) < 10:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    code, word = (130, b"interrupted") if signum == signal.SIGINT else (143, b"terminated")
    assert process.returncode == code, stderr
    assert b"Traceback" not in stderr
    assert b"10 written, 0 failed" in stderr and b"(" + word + b")" in stderr
    assert stderr.splitlines()[-1] == b"imgconv: " + word
    leftovers = [p.name for p in (tree / "out").iterdir() if p.name.endswith(".part") or p.name.startswith(".")]
    assert leftovers == []
    written = sorted(p.name for p in (tree / "out").iterdir())
    assert written == [f"{i:03d}.png" for i in range(10)]
    for name in written:  # every finished output is a whole, valid image
        Image.open(tree / "out" / name).load()


def test_binary_output_to_a_terminal_is_refused(tree):
    main, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [*IMGCONV, "apply", "-k", "blur", "photos/a.png", "-"],
            cwd=tree,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(main)
    assert result.returncode == 2
    assert b"refusing to write binary image data to a terminal" in result.stderr


def test_pipeline_stdin_to_stdout(tree):
    data = (tree / "photos" / "a.png").read_bytes()
    first = subprocess.run([*IMGCONV, "apply", "-k", "blur", "-", "-"], input=data, capture_output=True, check=True)
    second = subprocess.run(
        [*IMGCONV, "apply", "-k", "edge3", "--range", "abs", "-", "-"],
        input=first.stdout,
        capture_output=True,
        check=True,
    )
    assert second.stdout.startswith(b"\x89PNG") and second.stderr == b""
    assert np.asarray(Image.open(__import__("io").BytesIO(second.stdout))).shape == (40, 48)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_pattern_rule_with_jobs(tree):
    makefile = tree / "Makefile"
    makefile.write_text(
        f"IMGCONV := {sys.executable} -m imgconv\n"
        "SOURCES := $(wildcard photos/*.png)\n"
        "all: $(SOURCES:photos/%.png=out/%.png)\n"
        "out/%.png: photos/%.png\n"
        "\t$(IMGCONV) apply -k sharpen $< $@\n"
    )
    subprocess.run(["make", "-j2", "--no-print-directory"], cwd=tree, check=True, capture_output=True)
    assert files_below(tree / "out") == ["a.png", "b.png"]
    again = subprocess.run(
        ["make", "-j2", "--no-print-directory"], cwd=tree, check=True, capture_output=True, text=True
    )
    assert "Nothing to be done" in again.stdout


def test_pooling_shares_the_batch_machinery(run, tree):
    result = run("maxpool", "--size", "2", "photos/**/*.png", "-o", "pooled/{relpath}-{kernel}.png", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert files_below(tree / "pooled") == [
        "2020/c-maxpool2x2.png",
        "2020/d-maxpool2x2.png",
        "a-maxpool2x2.png",
        "b-maxpool2x2.png",
    ]
    assert Image.open(tree / "pooled" / "a-maxpool2x2.png").size == (24, 20)


def test_progress_bar_only_on_a_terminal(tree):
    """With stderr on a terminal the batch draws a rich progress bar there."""
    code, shown, stdout = stderr_on_terminal(
        [*IMGCONV, "apply", "-k", "blur", "photos/**/*.png", "-o", "out/", "--jobs", "1"], cwd=tree
    )
    assert code == 0 and stdout == b""
    assert b"/4" in shown  # the bar's "done/total" column
    assert b"imgconv: 4 written, 0 failed" in shown


def test_dry_run_with_update_lists_only_stale_outputs(run, tree):
    run("apply", "-k", "blur", "photos/*.png", "-o", "out/")
    os.utime(tree / "photos" / "a.png", (time.time() + 10, time.time() + 10))
    result = run("apply", "-k", "blur", "photos/*.png", "-o", "out/", "--update", "--dry-run")
    assert result.output == "photos/a.png -> out/a.png\n"


def test_stdin_into_a_template_is_a_usage_error(run, tree):
    result = run("apply", "-k", "blur", "-", "-o", "out/{stem}.png", input=(tree / "photos" / "a.png").read_bytes())
    assert result.exit_code == 2 and "standard input has no name" in result.output


def test_truncated_stdout_is_a_failure(tree, samples):
    # 600x400 RGB at zlib level 0 is 720 kB, far more than a pipe holds.
    process = subprocess.Popen(
        [*IMGCONV, "apply", "-k", "blur", "--png-level", "0", samples / "coffee.png", "-"],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.read(10)
    process.stdout.close()  # the reader goes away early, as `| head -c 10` does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and b"the reader closed the pipe" in stderr
