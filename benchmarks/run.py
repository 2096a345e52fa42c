"""Run the benchmark cases and write benchmarks/results.md and results.json.

    python benchmarks/run.py                      # every case (what `make bench` runs)
    python benchmarks/run.py --case throughput    # one case (repeatable)
    BENCH_QUICK=1 python benchmarks/run.py        # smaller inputs, fewer repeats: a smoke run

Benchmarks are measurements, not tests: nothing here fails on a slow time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

from cases import CASES, Context
from harness import HERE, Settings, find_imagemagick, imgconv_command
from inputs import prepare
import report


def _versions(magick_version: str) -> str:
    import numpy
    import PIL
    import scipy

    import imgconv

    parts = [f"imgconv {imgconv.__version__}", f"Python {platform.python_version()}", f"numpy {numpy.__version__}",
             f"scipy {scipy.__version__}", f"Pillow {PIL.__version__}"]
    try:
        import cv2
        parts.append(f"OpenCV {cv2.__version__}")
    except ImportError:
        parts.append("OpenCV not installed")
    parts.append(magick_version.removeprefix("Version: ") if magick_version else "ImageMagick not found")
    return ", ".join(parts)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=list(CASES), help="run only this case (repeatable)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                        help="smaller inputs and fewer repeats (also BENCH_QUICK=1)")
    args = parser.parse_args(argv)

    # Installed programs run from bytecode caches; with them disabled (as some
    # shells and sandboxes do) every imgconv process would recompile its
    # modules, ~25 ms that users do not pay.  The warm-up run writes the caches.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    settings = Settings.from_env(args.quick)
    selected = args.case or list(CASES)
    began = time.perf_counter()
    print(f"preparing inputs in {settings.work} ...", flush=True)
    inputs = prepare(settings)
    magick, missing = find_imagemagick()
    if magick is None:
        print(f"note: {missing}; its rows are skipped", flush=True)
    ctx = Context(settings, inputs, imgconv_command(), magick, missing)

    groups = []
    for name in selected:
        started = time.perf_counter()
        print(f"case {name} ...", flush=True)
        groups += CASES[name](ctx)
        print(f"case {name}: {time.perf_counter() - started:.0f} s", flush=True)

    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": _machine(),
        "versions": _versions(magick.version if magick else ""),
        "mode": "quick (BENCH_QUICK)" if settings.quick else "full",
        "cases": selected,
        "seconds": time.perf_counter() - began,
    }
    md, js = report.write(HERE, groups, meta)
    print(md.read_text())
    print(f"written: {md.relative_to(HERE.parent)}, {js.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
