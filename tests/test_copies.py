"""The whole-image route without needless copies (issue 16).

Binary PGM/PPM, ``.npy`` and PNG files are mapped, not read into bytes;
PGM/PPM and ``.npy`` never import Pillow; and the peak memory of a 4K run,
measured on a real process, stays within a budget counted in copies of the
image, so a copy that creeps back fails here.
"""

from __future__ import annotations

import mmap
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgconv import png
from imgconv.errors import InputError
from imgconv.reading import read_picture

IMGCONV = [sys.executable, "-m", "imgconv"]

#: Runs a command and prints its peak RSS (MiB): this helper's only child is
#: the command, so RUSAGE_CHILDREN is the command's own peak.
PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
)


def _mapped(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is a file mapping."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(16).integers(0, 256, (37, 53, 3), dtype=np.uint8)


# --------------------------------------------------------------------------
# Mapped reads give what Pillow and numpy give


def test_a_ppm_is_mapped_and_reads_as_pillow_decodes_it(tmp_path, noise):
    path = tmp_path / "a.ppm"
    Image.fromarray(noise).save(path)
    picture = read_picture(path)
    assert _mapped(picture.data) and not picture.data.flags.writeable
    assert np.array_equal(picture.data, np.asarray(Image.open(path)))
    assert (picture.format, picture.depth, picture.alpha) == ("PPM", 8, None)


@pytest.mark.parametrize("color", ["auto", "gray", "rgb"])
def test_pgm_and_ppm_follow_the_colour_policy_as_before(tmp_path, noise, color):
    gray16 = noise[:, :, 0].astype(np.uint16) * 257 + 3
    files = {"a.ppm": noise, "g.pgm": noise[:, :, 1], "w.pgm": gray16}
    for name, values in files.items():
        path = tmp_path / name
        Image.fromarray(values).save(path)
        expected = np.asarray(Image.open(path)).astype(values.dtype)
        expected = expected[:, :, np.newaxis] if expected.ndim == 2 else expected
        if color == "gray" and expected.shape[2] == 3:
            expected = np.asarray(Image.open(path).convert("L"))[:, :, np.newaxis]
        if color == "rgb" and expected.shape[2] == 1:
            expected = np.repeat(expected, 3, axis=2)
        picture = read_picture(path, color=color)
        assert picture.data.dtype == expected.dtype and np.array_equal(picture.data, expected), name
        assert picture.depth == (16 if values.dtype == np.uint16 else 8)


def test_a_float64_npy_is_mapped_and_other_types_become_float64(tmp_path):
    values = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    np.save(tmp_path / "f.npy", values)
    np.save(tmp_path / "i.npy", np.arange(24, dtype=np.int16).reshape(2, 4, 3))
    floats = read_picture(tmp_path / "f.npy")
    assert _mapped(floats.data) and floats.data.shape == (3, 4, 1)
    assert np.array_equal(floats.data[:, :, 0], values)
    integers = read_picture(tmp_path / "i.npy")
    assert integers.data.dtype == np.float64 and integers.data.shape == (2, 4, 3)
    assert np.array_equal(integers.data, np.arange(24).reshape(2, 4, 3))


def test_what_the_mapping_does_not_take_is_reported_as_before(tmp_path, noise):
    truncated = tmp_path / "t.ppm"
    Image.fromarray(noise).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(InputError, match=r"t\.ppm.*cannot decode the image"):
        read_picture(truncated)
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(np.ones((3, 4))))
    assert np.array_equal(read_picture(fortran).data[:, :, 0], np.ones((3, 4)))  # numpy's loader reads it
    short = tmp_path / "s.npy"
    np.save(short, np.ones((30, 40)))
    short.write_bytes(short.read_bytes()[:-8])
    with pytest.raises(InputError, match=r"not a valid \.npy matrix"):
        read_picture(short)


def test_a_ppm_over_the_pixel_limit_is_refused_before_it_is_mapped(tmp_path, noise):
    path = tmp_path / "a.ppm"
    Image.fromarray(noise).save(path)
    with pytest.raises(InputError, match=r"53x37 is 1,961 pixels, over the limit of 100"):
        read_picture(path, max_pixels=100)


@pytest.mark.parametrize("ext", ["ppm", "pgm", "npy"])
def test_pgm_ppm_and_npy_runs_never_import_pillow(tmp_path, noise, ext):
    source, target = tmp_path / f"in.{ext}", tmp_path / f"out.{ext}"
    if ext == "npy":
        np.save(source, noise[:, :, 0].astype(np.float64))
    else:
        Image.fromarray(noise if ext == "ppm" else noise[:, :, 0]).save(source)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgconv", "apply", "-k", "sharpen", source, target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "imgconv.pipeline" in imported  # the log is the real one
    assert not {name for name in imported if name == "PIL" or name.startswith("PIL.")}


# --------------------------------------------------------------------------
# Peak memory of a 4K run, counted in copies of the image


def _peak(command: list) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *map(str, command)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environment(), "IMGCONV_THREADS": "2"},  # the strips in flight, the same on every machine
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout)


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("IMGCONV_")}


def _write(path: Path, values: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, values)
    elif path.suffix == ".png":
        with path.open("wb") as stream:
            png.write_png(values, stream)  # imgconv's own reader takes it back
    else:
        Image.fromarray(values).save(path)


@pytest.mark.parametrize(
    ("ext", "copies"),
    [
        ("ppm", 3),  # mapped file + result (2.3 measured): one more copy fails
        ("png", 4),  # result + Up-filtered rows + deflated pieces (3.2 measured)
        ("npy", 3),  # float64 matrix: mapped file + result (2.4 measured)
    ],
)
def test_the_peak_memory_of_a_4k_run_stays_within_its_copies(tmp_path, ext, copies):
    """Peak RSS of ``imgconv apply -k sharpen`` on a 4K RGB image (a float64
    matrix for .npy) above the same run on 64x64, in copies of the raw image.
    Noise: a PNG file is as large as its pixels, the worst case for the mapping."""
    rng = np.random.default_rng(4)
    if ext == "npy":
        big = rng.random((2160, 3840))
    else:
        big = rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
    small = big[:64, :64].copy()
    runs = {}
    for name, values in (("big", big), ("small", small)):
        source = tmp_path / f"{name}.{ext}"
        _write(source, values)
        runs[name] = _peak([*IMGCONV, "apply", "-k", "sharpen", source, tmp_path / f"out-{name}.{ext}"])
    raw = big.nbytes / (1 << 20)
    above = runs["big"] - runs["small"]
    assert above <= copies * raw, f"{above:.0f} MiB above a 64x64 run: {above / raw:.2f} copies of {raw:.0f} MiB"
