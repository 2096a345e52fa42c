"""The ``imgconv`` console script: serve the call, or run it in-process.

This runs before anything heavy is imported, and its first act is to
install imgconv's signal handling (``imgconv.entry``), so Ctrl-C or SIGTERM
at any later moment ends the call with one line and exit 130 or 143.  With
``IMGCONV_SERVER=auto`` the call goes to the resident server
(``imgconv.server.client``, which imports only what talking to it needs);
whenever the server cannot take the call, and always without that setting,
the command line runs here as it always has.  ``imgconv server ...`` itself
always runs here.
"""

from __future__ import annotations

import os
import sys

from imgconv.entry import top_level


def main() -> None:
    top_level(_serve_or_run)  # signal handling first, before the server client or click import


def _serve_or_run() -> None:
    if os.environ.get("IMGCONV_SERVER") == "auto" and sys.argv[1:2] != ["server"]:
        from imgconv.server.client import run

        code = run(sys.argv)
        if code is not None:
            sys.exit(code)
    from imgconv.cli import main as run_in_process

    run_in_process()
