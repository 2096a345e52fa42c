"""What the warm parent holds, and how it knows that it is still current.

``PRELOAD`` and ``warm_up`` make every forked child start as a second call
in one process would; ``stamp_paths`` and ``install_stamp`` tell the
parent, before each call, whether the installation it imported has changed.
"""

from __future__ import annotations

import os
import sys

from imgconv.server import protocol

#: Imported before the first fork, so that no call pays for them.  Only
#: modules whose import changes nothing a call can observe: Pillow's
#: plugins are loaded with ``preinit()``, exactly as the first read of an
#: in-process run loads them, so file identification keeps its order.
PRELOAD = (
    "imgconv.cli",
    # The command line loads each command's module when it is named: all of them here.
    "imgconv.cli.apply",
    "imgconv.cli.pool",
    "imgconv.cli.features",
    "imgconv.cli.info",
    "imgconv.server.commands",
    "imgconv.batch",
    "imgconv.jobs",
    "imgconv.reading",
    "imgconv.writing",
    "imgconv.encoders",
    "imgconv.pipeline",
    "imgconv.filtering",
    "imgconv.pooling",
    "imgconv.picture",
    "imgconv.features",
    "imgconv.png",
    "imgconv.png_read",
    "imgconv.png_vips",
    "imgconv.kernels",
    "imgconv.backends.numpy_backend",
    "imgconv.backends.scipy_backend",
    "imgconv.backends.pil_backend",
    "numpy",
    "scipy.ndimage",
    "PIL.Image",
    "PIL.ImageOps",
    "rich.console",
    "rich.progress",
    "rich.table",
    "json",
    "difflib",
    "concurrent.futures",
    "imgconv.server.child",
    "resource",
    "tempfile",
    "atexit",
)


def stamp_paths() -> tuple[list[str], list[str]]:
    """(files, folders) whose state ``install_stamp`` records; listed once, after the preload.

    Every file of imgconv's loaded packages (modules, and data such as the
    registry) and those folders (a module added); the folder of every other
    loaded top-level package (reinstalling one replaces it); the folders on
    the import path (installing or removing any distribution changes
    site-packages), except a source checkout holding imgconv, whose own
    files are already listed and whose other files are not code; the
    standard library's folder and the interpreter.
    """
    import site

    package = protocol.package_dir()
    modules = [(name, getattr(module, "__file__", None) or "") for name, module in list(sys.modules.items())]
    loaded = {os.path.dirname(file) for _, file in modules if file.startswith(package + os.sep)} | {package}
    files = sorted(
        entry.path
        for folder in loaded
        for entry in os.scandir(folder)
        if entry.is_file() and not entry.name.startswith(".")
    )
    stdlib = os.path.dirname(os.__file__)
    packages = {
        os.path.dirname(file)
        for name, file in modules
        if "." not in name and file.endswith("__init__.py") and not file.startswith(stdlib + os.sep)
    }
    checkout = os.path.dirname(package)
    sites = set(site.getsitepackages()) | {site.getusersitepackages()}
    path = {p for p in sys.path if p and os.path.isdir(p) and (p != checkout or p in sites)}
    folders = [*sorted(loaded | packages | path), stdlib, sys.executable]
    return files, folders


def install_stamp(paths: tuple[list[str], list[str]]) -> tuple:
    """Sizes and times of ``stamp_paths()``: a few dozen ``stat`` calls, cheap enough for every call."""
    files, folders = paths
    stamp: list[tuple[int, int] | int | None] = []
    for path in files:
        try:
            info = os.stat(path)
            stamp.append((info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append(None)
    for path in folders:
        try:
            stamp.append(os.stat(path).st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def warm_up() -> list[str]:
    """Run a few small calls in the parent before serving, so every child starts warm.

    A first call pays for one-time work (decoders, caches, the kernels'
    integer forms) that the command line's second call in one process does
    not; the test suite runs many calls in one process, so a call's answer
    does not depend on what ran before it.  The images are tiny, so no
    thread is started (the parent must stay single-threaded to fork safely).
    A failure here costs speed only: the failures are returned, for the log.
    """
    import contextlib
    import io
    import shutil
    import tempfile

    import numpy as np
    from PIL import Image

    from imgconv import png_vips
    from imgconv.cli import cli

    # libvips starts threads once it decodes, and this process forks every
    # call: it must never decode through libvips (children turn it back on).
    png_vips.ENABLED = False
    failures = []
    folder = tempfile.mkdtemp(prefix="imgconv-warm-")
    try:
        pixels = (np.arange(8 * 8 * 3) % 251).astype(np.uint8).reshape(8, 8, 3)
        for ext in ("png", "ppm"):
            Image.fromarray(pixels).save(os.path.join(folder, f"in.{ext}"))
        calls = [
            ["apply", "-k", "sharpen", "in.png", "out.png"],
            ["apply", "-k", "sharpen", "in.ppm", "out.ppm"],
            ["apply", "-k", "gaussian5", "--color", "gray", "in.png", "gray.png"],
            ["maxpool", "--size", "2", "in.png", "pooled.png"],
        ]
        here = os.getcwd()
        os.chdir(folder)
        try:
            for args in calls:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    try:
                        cli.main(args=args, prog_name="imgconv", standalone_mode=False)
                    except BaseException as exc:
                        failures.append(f"warm-up call {' '.join(args)} failed: {type(exc).__name__}: {exc}")
        finally:
            os.chdir(here)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return failures
