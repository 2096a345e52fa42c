"""Case 6, server: the cost of one call per file, with and without the resident server.

Every row is a whole process (or a whole ``xargs``), and each group's
subjects run in turn, A B C D A B C D ..., so that a machine whose load
drifts (other jobs share it) slows them alike:

- one call on a 64x64 PPM and on a 512x512 PNG (sharpen): imgconv through a
  warm server (``IMGCONV_SERVER=auto``), imgconv in-process (no server),
  ImageMagick ``convert -morphology Convolve`` (the reference) and a minimal
  numpy+Pillow script doing the same filter (``minimal_filter.py``);
- 64 files of 512x512 through ``xargs -P8``, one process per file, as
  ``make -j8`` would run them: imgconv served, imgconv in-process, convert;
- the server's memory at rest, after those calls.

The server runs in a private runtime folder under benchmarks/data/, is
started with ``imgconv server start`` and stopped by its PID.  Each row of
served calls says how many were really served (from ``server status``).
imgconv's own modules are byte-compiled first, as any install has them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from inputs import PHOTO_LIKE
from harness import HERE, REPO, Group, Row, run

SERVED = "imgconv, warm server"
IN_PROCESS = "imgconv, no server"
MINIMAL = "numpy+Pillow script"
CONVERT = "ImageMagick convert"
PARENT_RSS, SPARE_RSS, TOTAL_PSS = "server parent RSS", "spare child RSS", "parent + spare PSS"

TINY_TITLE = "64x64 RGB PPM -> PPM, sharpen, one call"
PHOTO_TITLE = "512x512 RGB PNG -> PNG, sharpen, one call"
MEMORY_TITLE = "server memory at rest"
XARGS_FILES = 64
SHARPEN_IM = "3x3: 0,-1,0 -1,5,-1 0,-1,0"


def server(ctx) -> list[Group]:
    work = ctx.settings.work / "server"
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    tiny = _tiny_input(work)
    photos = sorted(ctx.inputs.photos(PHOTO_LIKE).glob("*.png"))[:XARGS_FILES]
    # What every install has (pip compiles on install); without it each cold
    # call would also compile imgconv's modules.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "imgconv")], check=True,
                   stdout=subprocess.DEVNULL)
    runtime = work / "runtime"
    runtime.mkdir(exist_ok=True)
    os.chmod(runtime, 0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCONV_SERVER")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    served_env = {**env, "IMGCONV_SERVER": "auto"}
    started = subprocess.run([*ctx.imgconv, "server", "start", "--idle", "900"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        reason = f"the server did not start: {started.stderr.strip()}"
        return [Group("server", title, reference=SERVED, rows=[Row(SERVED, skipped=reason)])
                for title in (TINY_TITLE, PHOTO_TITLE)]
    pid = int(re.search(r"pid (\d+)", started.stdout).group(1))
    try:
        groups = [
            _one_call(ctx, TINY_TITLE, tiny, out / "tiny", env, served_env),
            _one_call(ctx, PHOTO_TITLE, photos[0], out / "photo", env, served_env),
            _xargs(ctx, photos, out, env, served_env),
            _memory(pid),
        ]
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return groups


def _tiny_input(work: Path) -> Path:
    from PIL import Image

    path = work / "tiny-64.ppm"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        photo = Image.open(REPO / "sample_images" / "coffee.png").convert("RGB")
        photo.crop((250, 150, 314, 214)).save(path)
    return path


def _served_count(ctx, env: dict) -> int:
    text = subprocess.run([*ctx.imgconv, "server", "status"], env=env, capture_output=True, text=True).stdout
    match = re.search(r"(\d+) served", text)
    return int(match.group(1)) if match else -1


def interleaved(subjects: list[tuple[str, Callable[[], object]]], settings, repeats: int) -> dict[str, list[float]]:
    """Wall times of several subjects taken in turn (A B C A B C ...), so that a
    machine whose load drifts slows every subject alike and their ratios hold.

    Each subject runs once to warm up; it stops repeating, as ``timed`` does,
    once its samples add up to the budget (after at least 3), and a subject
    whose warm-up alone exceeds the budget keeps that one run.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in subjects}
    done = set()
    for name, call in subjects:
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        if first > settings.budget:
            samples[name], done = [first], done | {name}
    for _ in range(repeats):
        for name, call in subjects:
            if name in done:
                continue
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
            if sum(samples[name]) > settings.budget and len(samples[name]) >= 3:
                done.add(name)
    return samples


def _measure(ctx, subjects: list[tuple[str, Callable[[], object]]], env: dict, *, calls_per_run: int,
             repeats: int) -> list[Row]:
    """Rows of interleaved subjects; the served one says how many calls the server really served."""
    runs = 0
    served_call = dict(subjects)[SERVED]

    def counted():
        nonlocal runs
        runs += 1
        served_call()

    before = _served_count(ctx, env)
    samples = interleaved([(n, counted if n == SERVED else c) for n, c in subjects], ctx.settings, repeats)
    served, expected = _served_count(ctx, env) - before, calls_per_run * runs  # warm-up included
    note = "every call served" if served == expected else f"only {served} of {expected} calls served"
    return [Row(name, samples[name], note=note if name == SERVED else "") for name, _ in subjects]


def _one_call(ctx, title: str, source: Path, out: Path, env: dict, served_env: dict) -> Group:
    import numpy as np
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    ext = source.suffix
    group = Group("server", title, reference=CONVERT)
    served = [*ctx.imgconv, "apply", "-k", "sharpen", source, out / f"served{ext}"]
    cold = [*ctx.imgconv, "apply", "-k", "sharpen", source, out / f"cold{ext}"]
    minimal = [sys.executable, HERE / "minimal_filter.py", source, out / f"minimal{ext}"]
    subjects = [
        (SERVED, lambda: run(served, env=served_env)),
        (IN_PROCESS, lambda: run(cold, env=env)),
        (MINIMAL, lambda: run(minimal, env=env)),
    ]
    if ctx.magick is not None:
        convert = [*ctx.magick.convert, source, "-morphology", "Convolve", SHARPEN_IM, out / f"magick{ext}"]
        subjects.append((CONVERT, lambda: run(convert, env=env)))
    # Short runs: as many as the start-up case takes, in turn.
    group.rows += _measure(ctx, subjects, env, calls_per_run=1, repeats=ctx.settings.startup_runs)
    same = np.array_equal(np.asarray(Image.open(out / f"minimal{ext}")), np.asarray(Image.open(out / f"cold{ext}")))
    group.row(MINIMAL).note = "same pixels as imgconv" if same else "PIXELS DIFFER from imgconv's"
    if ctx.magick is None:
        group.rows.append(Row(CONVERT, skipped=ctx.magick_missing))
    return group


def _xargs(ctx, photos: list[Path], out: Path, env: dict, served_env: dict) -> Group:
    names = "".join(f"{p.name}\n" for p in photos).encode()
    folder = photos[0].parent
    group = Group("server", f"{len(photos)} files of 512x512 RGB PNG, sharpen, one process each via xargs -P8",
                  reference=CONVERT)

    def xargs(command: list, target: Path, environment: dict):
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["xargs", "-P8", "-I{}", *map(str, command), str(target / "{}")], input=names,
                              cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise RuntimeError(f"xargs {command[0]} failed: {done.stderr.decode()[-500:]}")

    apply = [*ctx.imgconv, "apply", "-k", "sharpen", "{}"]
    subjects = [
        (SERVED, lambda: xargs(apply, out / "xargs-served", served_env)),
        (IN_PROCESS, lambda: xargs(apply, out / "xargs-cold", env)),
    ]
    if ctx.magick is not None:
        convert = [*ctx.magick.convert, "{}", "-morphology", "Convolve", SHARPEN_IM]
        # ImageMagick runs OpenMP threads on every core in each process; eight
        # processes on a small machine then compete.  The last row shows it single-threaded.
        single = {**env, "MAGICK_THREAD_LIMIT": "1"}
        subjects += [
            (CONVERT, lambda: xargs(convert, out / "xargs-magick", env)),
            (f"{CONVERT}, MAGICK_THREAD_LIMIT=1", lambda: xargs(convert, out / "xargs-magick1", single)),
        ]
    group.rows += _measure(ctx, subjects, env, calls_per_run=len(photos), repeats=ctx.settings.repeats)
    if ctx.magick is None:
        group.rows.append(Row(CONVERT, skipped=ctx.magick_missing))
    return group


def _memory(pid: int) -> Group:
    """RSS of the parent and of its spare child, and their PSS (shared pages counted once)."""
    group = Group("server", MEMORY_TITLE, reference=PARENT_RSS)
    spares = [int(p.name) for p in Path("/proc").glob("[0-9]*") if _parent_of(p) == pid]
    group.rows.append(Row(PARENT_RSS, [_status_kib(pid, "VmRSS") / 1024], unit="MB", note="/proc/PID/status"))
    if spares:
        group.rows.append(Row(SPARE_RSS, [_status_kib(spares[0], "VmRSS") / 1024], unit="MB",
                              note="the child forked ahead for the next call"))
        pss = sum(_rollup_kib(p, "Pss") for p in [pid, spares[0]]) / 1024
        group.rows.append(Row(TOTAL_PSS, [pss], unit="MB", note="/proc/PID/smaps_rollup: what the two cost together"))
    return group


def _parent_of(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _status_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


def _rollup_kib(pid: int, field: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return float("nan")
    return next((float(line.split()[1]) for line in lines if line.startswith(field + ":")), float("nan"))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
