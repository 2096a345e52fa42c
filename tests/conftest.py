"""Shared fixtures: the sample photos, a CLI runner, small helpers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgconv.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"

#: The stress checks take minutes and run on their own (see tests/stress/README.md).
collect_ignore = ["stress"]

# Tests send SIGINT to imgconv and expect it to stop.  A suite started where
# SIGINT is ignored (a non-interactive shell's background job) would hand that
# on to every process it starts, and imgconv keeps an inherited ignore, as
# nohup wants; a handler, unlike an ignore, is not inherited across exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def run():
    """Invoke the CLI in-process; returns click's Result (stderr kept apart)."""
    runner = CliRunner()

    def invoke(*args: str, input: bytes | str | None = None, env: dict | None = None):
        return runner.invoke(cli, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


def crop(path: Path, box: tuple[int, int, int, int], folder: Path, name: str) -> Path:
    """Save a crop of a sample photo (keeps tests fast, stays a real photo)."""
    target = folder / name
    Image.open(path).crop(box).save(target)
    return target


@pytest.fixture
def small_gray(samples, tmp_path) -> Path:
    return crop(samples / "camera.png", (200, 100, 264, 148), tmp_path, "gray.png")


@pytest.fixture
def small_rgb(samples, tmp_path) -> Path:
    return crop(samples / "coffee.png", (250, 150, 314, 198), tmp_path, "rgb.png")


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


# Property tests: a fixed, derandomized budget in CI, so a run is fast and
# reproducible; IMGCONV_HYPOTHESIS_PROFILE=long searches much further.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("IMGCONV_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the parsed-registry cache of the test run out of the user's home."""
    import os

    folder = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved
