"""Ctrl-C and SIGTERM at random moments of a ``--jobs 2`` batch, under CPU load.

Each try starts ``imgconv apply ... --jobs 2`` over a folder of photos while
two CPU-bound processes run beside it, sends SIGINT or SIGTERM after a
random delay between 0 and the length of a whole run (so start-up, the
workers' start, the middle and the end are all hit), and checks the promise:

* no traceback, and the last line is ``imgconv: interrupted`` (SIGINT,
  exit 130) or ``imgconv: terminated`` (SIGTERM, exit 143), or the batch
  had already finished (exit 0); a signal in the interpreter's own
  start-up, before imgconv's code runs, ends the process silently by that
  signal (the shell reports 130 or 143): counted apart, it is no failure
  unless it printed something;
* no temporary file left in the output folder;
* every output is a complete image, and the summary's "N written" is the
  number of outputs;
* no worker process outlives the batch.

    python tests/stress/signals.py                  # 50 tries, a few minutes
    python tests/stress/signals.py --tries 10 --burners 0

Exits 1 if any try broke the promise.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import IMGCONV, SAMPLES, Burners, environment, leftovers, median


def make_photos(folder: Path, count: int) -> None:
    from PIL import Image

    sources = [Image.open(SAMPLES / name).convert("RGB") for name in ("coffee.png", "chelsea-alpha.png", "camera.png")]
    folder.mkdir()
    for index in range(count):
        sources[index % len(sources)].resize((1200, 900)).save(folder / f"{index:03d}.png", compress_level=1)


def descendants(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (the workers), read from /proc."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stream:
                    fields = stream.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command(photos: Path, out: Path) -> list[str]:
    return [*IMGCONV, "apply", "-k", "gaussian5", f"{photos}/*.png", "-o", f"{out}/", "--jobs", "2"]


def one_try(photos: Path, out: Path, signum: int, delay: float) -> dict[str, object]:
    if out.exists():
        shutil.rmtree(out)
    process = subprocess.Popen(command(photos, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())
    workers: set[int] = set()
    deadline = time.perf_counter() + delay
    while time.perf_counter() < deadline and process.poll() is None:
        workers |= descendants(process.pid)
        time.sleep(0.005)
    workers |= descendants(process.pid)
    finished_first = process.poll() is not None
    if not finished_first:
        process.send_signal(signum)
    _, stderr_bytes = process.communicate(timeout=120)
    stderr = stderr_bytes.decode("utf-8", "replace")
    code = process.returncode
    problems = []
    expected = 130 if signum == signal.SIGINT else 143
    # Killed by the signal itself, silently: it arrived during the interpreter's
    # own start-up, before imgconv's code (and its handlers) existed; the shell
    # reports 128 + N all the same, and nothing can have been written yet.
    startup = code == -signum and not stderr.strip()
    if "Traceback" in stderr:
        problems.append("traceback")
    if code not in (0, expected) and not startup:
        problems.append(f"exit {code}")
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == expected:
        word = "interrupted" if signum == signal.SIGINT else "terminated"
        if not lines or lines[-1] != f"imgconv: {word}":
            problems.append(f"last line {lines[-1:]!r}")
    written = sorted(p for p in out.glob("*.png")) if out.exists() else []
    broken = []
    from PIL import Image

    for path in written:
        try:
            with Image.open(path) as image:
                image.load()
        except Exception:
            broken.append(path.name)
    if broken:
        problems.append(f"incomplete outputs {broken}")
    left = leftovers(out) if out.exists() else []
    if left:
        problems.append(f"leftovers {left}")
    summary = re.search(r"imgconv: (\d+) written", stderr)
    if summary and int(summary.group(1)) != len(written):
        problems.append(f"summary says {summary.group(1)} written, {len(written)} on disk")
    if code == expected and written and not summary:
        problems.append("no summary line although files were written")
    time.sleep(0.05)
    survivors = [pid for pid in workers if alive(pid)]
    if survivors:
        problems.append(f"workers still running {survivors}")
    return {
        "signal": signal.Signals(signum).name,
        "delay": round(delay, 3),
        "code": code,
        "written": len(written),
        "summary": int(summary.group(1)) if summary else None,
        "finished_first": finished_first,
        "startup": startup,
        "problems": problems,
        "stderr": stderr if problems else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes beside the batch [2]")
    parser.add_argument("--photos", type=int, default=16, help="photos in the batch [16]")
    parser.add_argument("--seed", type=int, default=11)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory(prefix="imgconv-signals-") as folder:
        photos, out = Path(folder) / "photos", Path(folder) / "out"
        make_photos(photos, options.photos)
        with Burners(options.burners):
            durations = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run(command(photos, out), check=True, capture_output=True, env=environment())
                durations.append(time.perf_counter() - started)
            length = median(durations)
            print(f"an uninterrupted batch of {options.photos} photos takes {length:.2f} s (median of 3)", flush=True)
            results = []
            for index in range(options.tries):
                signum = signal.SIGINT if index % 2 == 0 else signal.SIGTERM
                result = one_try(photos, out, signum, rng.uniform(0, length))
                results.append(result)
                flag = "FAIL " + "; ".join(result["problems"]) if result["problems"] else "ok"  # type: ignore[arg-type]
                print(
                    f"{index + 1:3} {result['signal']:7} after {result['delay']:6.3f} s: exit {result['code']}, "
                    f"{result['written']} written (summary {result['summary']}) {flag}",
                    flush=True,
                )
                if result["problems"]:
                    print(result["stderr"], flush=True)
    failed = [r for r in results if r["problems"]]
    tracebacks = sum("traceback" in r["problems"] for r in results)  # type: ignore[operator]
    left = sum(any(str(p).startswith("leftovers") for p in r["problems"]) for r in results)  # type: ignore[attr-defined]
    early = sum(bool(r["finished_first"]) for r in results)
    startup = sum(bool(r["startup"]) for r in results)
    print(
        f"\n{len(results)} tries ({options.burners} CPU burners): {len(failed)} broke the promise, "
        f"{tracebacks} tracebacks, {left} with leftover temporary files, {early} finished before the signal, "
        f"{startup} ended silently by the signal during the interpreter's start-up"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
