"""``kill -9`` in the middle of writing, then one normal run in the same folder.

Each try starts ``imgconv apply`` on a large photo, waits until the process
holds its output's temporary file open (seen in /proc/PID/fd), and kills it
with SIGKILL, which no clean-up can catch.  After all the tries, one normal
run writes into the same folder.  The promise: no temporary file is left,
and no output is damaged (an existing output is replaced whole, or kept).

Both kinds of temporary file are tried: the unnamed one (O_TMPFILE, Linux),
which a killed process cannot leave behind at all, and the named, locked
fallback, whose leftovers the next run sweeps away.

    python tests/stress/kill9.py                 # 20 tries of each kind, about a minute
    python tests/stress/kill9.py --tries 5 --scheme named

Exits 1 if a temporary file survives the normal run, or an output is damaged.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SAMPLES, environment, leftovers

#: Runs imgconv with the named temporary files forced (what a file system without O_TMPFILE gets).
NAMED = "import imgconv.output as o; o.USE_TMPFILE = False; from imgconv.entry import main; main()"
UNNAMED = "from imgconv.entry import main; main()"


def writing(pid: int, folder: Path) -> bool:
    """Whether ``pid`` holds a file of ``folder`` open for writing (its temporary file)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith(str(folder) + "/"):
            return True
    return False


def one_try(code: str, source: Path, out: Path, rng: random.Random) -> str:
    target = out / "photo.png"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "apply", "-k", "sharpen", "--png-level", "9", str(source), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    deadline = time.monotonic() + 120
    while not writing(process.pid, out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    if process.poll() is not None:
        return "finished before the kill"
    time.sleep(rng.uniform(0, 0.2))  # somewhere in the middle of the write
    process.send_signal(signal.SIGKILL)
    process.wait()
    return "killed while writing"


def check_outputs(out: Path) -> list[str]:
    from PIL import Image

    damaged = []
    for path in out.glob("*.png"):
        try:
            with Image.open(path) as image:
                image.load()
        except Exception:
            damaged.append(path.name)
    return damaged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--scheme", choices=["unnamed", "named", "both"], default="both")
    parser.add_argument("--seed", type=int, default=9)
    options = parser.parse_args()
    from PIL import Image

    rng = random.Random(options.seed)
    failed = False
    schemes = ["unnamed", "named"] if options.scheme == "both" else [options.scheme]
    with tempfile.TemporaryDirectory(prefix="imgconv-kill9-") as folder:
        source = Path(folder) / "big.png"
        Image.open(SAMPLES / "coffee.png").resize((6000, 4000)).save(source, compress_level=1)
        for scheme in schemes:
            code = UNNAMED if scheme == "unnamed" else NAMED
            out = Path(folder) / f"out-{scheme}"
            out.mkdir()
            outcomes = [one_try(code, source, out, rng) for _ in range(options.tries)]
            killed = outcomes.count("killed while writing")
            after_kills = leftovers(out)
            damaged = check_outputs(out)
            subprocess.run(
                [sys.executable, "-c", code, "apply", "-k", "sharpen", str(source), str(out / "normal.png")],
                check=True,
                env=environment(),
            )
            after_run = leftovers(out)
            damaged += check_outputs(out)
            print(
                f"{scheme} temporary files: {killed} of {options.tries} tries killed mid-write; "
                f"{len(after_kills)} temporary files left after the kills, {len(after_run)} after one normal run; "
                f"{len(damaged)} damaged outputs"
            )
            failed = failed or bool(after_run or damaged)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
