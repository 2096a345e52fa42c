"""Run imgconv with its stderr on a pseudo-terminal, as a user at a shell sees it.

The progress bar only shows on a terminal, so the tests that check it run
the command with stderr on the secondary side of a pty and read everything
the terminal received until the process is done.
"""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path


def stderr_on_terminal(args: list[str], *, cwd: Path | None = None, timeout: float = 60) -> tuple[int, bytes, bytes]:
    """Run ``args`` with stderr on a terminal; (exit code, what the terminal showed, stdout)."""
    main, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=secondary,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=timeout)
    finally:
        os.close(main)
    assert process.stdout is not None
    return process.returncode, b"".join(chunks), process.stdout.read()
