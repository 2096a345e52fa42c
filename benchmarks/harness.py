"""Measuring tools shared by the cases: settings, timers, peak memory, peers.

Nothing here knows about a particular case.  A ``Group`` is one comparison
(one image and kernel, one file format, ...): every ``Row`` in it was
measured in the same run, and each row's ratio is its median divided by the
median of the group's reference row, so the ratios stay comparable on a
noisy or slower machine even when the absolute times do not.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
WORK = HERE / "data"
REPO = HERE.parent


@dataclass(frozen=True)
class Settings:
    """How hard to measure: the full run, or ``BENCH_QUICK=1`` for a smoke run."""

    quick: bool
    repeats: int  # timed runs of a fast subject (after one warm-up run)
    budget: float  # seconds: a subject stops repeating once its samples reach this
    startup_runs: int
    photos: int  # files in the batch case
    scale: int  # the 4K and 8K inputs are divided by this on each side

    @classmethod
    def from_env(cls, quick: bool) -> "Settings":
        if quick:
            return cls(quick=True, repeats=3, budget=3.0, startup_runs=5, photos=20, scale=4)
        return cls(quick=False, repeats=5, budget=10.0, startup_runs=15, photos=200, scale=1)

    @property
    def work(self) -> Path:
        # Quick and full inputs differ in size, so they never share a folder.
        return WORK / ("quick" if self.quick else "full")


@dataclass
class Row:
    """One subject of a comparison: its samples, or why it was skipped."""

    subject: str
    samples: list[float] = field(default_factory=list)
    unit: str = "s"  # "s" for wall time, "MB" for memory, else a count shown with its unit
    skipped: str | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Group:
    """Rows measured side by side; ratios are taken against ``reference``."""

    case: str
    title: str
    reference: str
    rows: list[Row] = field(default_factory=list)

    def row(self, subject: str) -> Row | None:
        return next((r for r in self.rows if r.subject == subject), None)

    def ratio(self, subject: str, reference: str | None = None) -> float | None:
        """median(subject) / median(reference); None when either is missing."""
        row, ref = self.row(subject), self.row(reference or self.reference)
        if row is None or ref is None or row.median is None or not ref.median:
            return None
        return row.median / ref.median


def timed(call: Callable[[], object], settings: Settings, *, warm_up: bool = True) -> list[float]:
    """Wall times of ``call``: ``settings.repeats`` runs, fewer for slow ones.

    The warm-up run (imports, caches, page faults) is not kept; when it alone
    exceeds the budget the subject is too slow to repeat within a full run's
    time, so that one run is kept as the only sample (the table shows n=1).
    """
    if warm_up:
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        if first > settings.budget:
            return [first]
    samples: list[float] = []
    while len(samples) < settings.repeats:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
        if sum(samples) > settings.budget and len(samples) >= 3:
            break
    return samples


def timed_together(calls: dict[str, Callable[[], object]], settings: Settings) -> dict[str, list[float]]:
    """Wall times of several calls taken in turn (A B C A B C ...), after one
    warm-up each: a load that comes and goes on a shared machine then falls
    on every subject alike, so their ratios hold even when the times drift."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    while min(map(len, samples.values())) < settings.repeats:
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
        if sum(map(sum, samples.values())) > settings.budget and min(map(len, samples.values())) >= 3:
            break
    return samples


def run(command: Sequence[str | os.PathLike[str]], **kwargs) -> subprocess.CompletedProcess:
    """Run a command quietly; a failure stops the harness with its stderr."""
    done = subprocess.run([str(c) for c in command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return done


def imgconv_command() -> list[str]:
    """The installed entry point beside this interpreter (what a user runs)."""
    script = Path(sys.executable).parent / "imgconv"
    return [str(script)] if script.exists() else [sys.executable, "-m", "imgconv"]


def batch_mode(imgconv: Sequence[str]) -> tuple[bool, bool]:
    """(one call can take a glob and ``-o`` template, it has ``--jobs``), from ``apply --help``."""
    text = subprocess.run([*imgconv, "apply", "--help"], capture_output=True, text=True).stdout
    return "--output" in text, "--jobs" in text


@dataclass(frozen=True)
class ImageMagick:
    convert: list[str]
    mogrify: list[str]
    version: str


def find_imagemagick() -> tuple[ImageMagick | None, str]:
    """The real ImageMagick, or None and why not.

    A ``convert`` on PATH is not necessarily ImageMagick (this project's
    machines carry a stand-in in /usr/local/bin), so each candidate must
    say 'ImageMagick' in its ``-version``; /usr/bin comes first because
    that is where the distribution's package installs the real one.
    """
    def real(command: list[str]) -> str | None:
        try:
            out = subprocess.run([*command, "-version"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        first = out.splitlines()[0] if out else ""
        return first if "ImageMagick" in first else None

    def candidates(name: str) -> list[str]:
        found = [f"/usr/bin/{name}", shutil.which(name)]
        return [c for c in dict.fromkeys(found) if c and os.path.exists(c)]

    for convert in candidates("convert"):
        version = real([convert])
        mogrify = next((m for m in candidates("mogrify") if real([m])), None)
        if version and mogrify:
            return ImageMagick([convert], [mogrify], version), ""
    for magick in candidates("magick"):  # ImageMagick 7 has one binary for both
        version = real([magick])
        if version:
            return ImageMagick([magick], [magick, "mogrify"], version), ""
    return None, "ImageMagick not found (no convert/mogrify/magick whose -version says ImageMagick)"


_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")

#: Runs a command in a fresh interpreter and prints its peak RSS in KiB, for
#: machines without GNU time; RUSAGE_CHILDREN covers only that one child.
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def peak_rss_mb(command: Sequence[str | os.PathLike[str]]) -> tuple[float, str]:
    """(peak RSS in MB, how it was measured) of one run of ``command``."""
    command = [str(c) for c in command]
    if os.path.exists("/usr/bin/time"):
        done = subprocess.run(["/usr/bin/time", "-v", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        match = _MAXRSS.search(done.stderr)
        if done.returncode != 0 or not match:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
        kib, how = int(match.group(1)), "/usr/bin/time -v"
    else:
        done = subprocess.run([sys.executable, "-c", _RUSAGE_WRAPPER, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
        kib, how = int(done.stdout.split()[-1]), "getrusage(RUSAGE_CHILDREN)"
    return kib * 1024 / 1e6, how


_ELAPSED = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)")


def time_and_rss(command: Sequence[str | os.PathLike[str]]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one run of ``command``."""
    command = [str(c) for c in command]
    if os.path.exists("/usr/bin/time"):
        done = subprocess.run(["/usr/bin/time", "-v", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        rss, elapsed = _MAXRSS.search(done.stderr), _ELAPSED.search(done.stderr)
        if done.returncode != 0 or not rss or not elapsed:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-500:]}")
        hours, minutes, seconds = elapsed.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(rss.group(1)) * 1024 / 1e6
    start = time.perf_counter()
    rss, _ = peak_rss_mb(command)
    return time.perf_counter() - start, rss
