"""What the stress checks share: how to run imgconv, burn CPU, and judge a run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMGCONV = [sys.executable, "-m", "imgconv"]
SAMPLES = ROOT / "sample_images"

#: imgconv's named temporaries, and any hidden file it might leave.
TEMPORARY = re.compile(r"^\..*(\.imgconv\.part|\.part)$")


class Burners:
    """CPU-bound processes beside the measurement (``with Burners(2):``)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Burners:
        for _ in range(self.count):
            self.processes.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def leftovers(folder: Path) -> list[str]:
    """Temporary (hidden) files below ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_file())


def environment() -> dict[str, str]:
    """The environment for imgconv processes: this checkout's package first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
