"""The test suite, many times in a row, beside CPU-bound processes.

Timing-dependent tests fail on a loaded machine now and then; the suite's
tests wait for observable states instead.  This runs ``pytest`` (what
``make test`` runs after the linters) ``--runs`` times while ``--burners``
processes spin on the CPUs, and reports every run's result and time.

    python tests/stress/suite_under_load.py                # 20 runs beside 2 burners, 15-25 minutes
    python tests/stress/suite_under_load.py --runs 3 -- -k batch

Arguments after ``--`` go to pytest.  Exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Burners, environment, median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    options = parser.parse_args()
    results = []
    with Burners(options.burners):
        for index in range(options.runs):
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", *options.pytest_args],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**environment(), "COLUMNS": "250"},  # whole lines in pytest's summary
            )
            seconds = time.perf_counter() - started
            last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
            results.append((run.returncode, seconds))
            print(f"run {index + 1:2}: exit {run.returncode}, {seconds:6.1f} s  {last}", flush=True)
            if run.returncode:
                text = run.stdout
                details = text[text.find("= FAILURES =") : text.find("short test summary")]
                failures = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
                print(details[-6000:], "\n".join(failures or text.splitlines()[-30:]), sep="\n", flush=True)
    failed = sum(1 for code, _ in results if code)
    times = [seconds for _, seconds in results]
    print(
        f"\n{len(results)} runs beside {options.burners} CPU burners: {len(results) - failed} passed, {failed} failed; "
        f"median {median(times):.1f} s, slowest {max(times):.1f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
