"""The ``imgconv`` console script: serve the call, or run it in-process.

This runs before anything heavy is imported.  With ``IMGCONV_SERVER=auto``
the call goes to the resident server (``imgconv.server.client``, which
imports only what talking to it needs); whenever the server cannot take
the call, and always without that setting, the command line runs here as
it always has.  ``imgconv server ...`` itself always runs here.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if os.environ.get("IMGCONV_SERVER") == "auto" and sys.argv[1:2] != ["server"]:
        try:
            from imgconv.server.client import run

            code = run(sys.argv)
        except KeyboardInterrupt:  # Ctrl-C before the server took the call: nothing ran
            os.write(2, b"imgconv: interrupted\n")
            sys.exit(130)
        if code is not None:
            sys.exit(code)
    from imgconv.cli import main as run_in_process

    run_in_process()
