"""Inputs and outputs that are not plain files: devices, FIFOs, pipes, stdin.

The outputs refused here are FIFOs made in a temporary folder, never a
real device: a regression would replace ``/dev/null`` for the machine.

An output that is not a regular file is refused before any work (a
symbolic link is replaced, as ``mv`` does); an input that is a pipe or a
FIFO is read once, whole, whatever the output format; standard input
that is the output file is refused as a named input is.  Also here: the
TIFFs that both routes read through one reader (damaged strips, sparse
tiles), and the memory budget checked when a job is made.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import pixels
from PIL import Image

from imgconv.errors import ParameterError

IMGCONV = [sys.executable, "-m", "imgconv"]


def imgconv(*args: object, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    return subprocess.run([*IMGCONV, *map(str, args)], timeout=120, **kwargs)


def assert_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """One clean error line (after click's usage lines for code 2) holding every needle."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr
    if code == 1:
        assert len(lines) == 1, stderr  # nothing else (no codec's own line) on stderr
    for needle in needles:
        assert needle in errors[0], stderr


@pytest.fixture
def image(tmp_path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------
# Outputs that are not regular files


def test_fifo_output_is_refused_and_kept(image, tmp_path):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    result = imgconv("apply", "-k", "sharpen", image, fifo)
    assert_error(result, 2, f"{fifo}: not a regular file", "'-'")
    assert fifo.is_fifo()


def test_fifo_output_of_a_streamed_file_is_refused(tmp_path):
    source = tmp_path / "in.ppm"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(source)
    fifo = tmp_path / "out.ppm"
    os.mkfifo(fifo)
    result = imgconv("apply", "-k", "sharpen", "--memory", "64K", source, fifo)
    assert_error(result, 2, f"{fifo}: not a regular file")
    assert fifo.is_fifo()


def test_fifo_among_batch_outputs_is_refused_before_any_work(image, tmp_path):
    other = tmp_path / "other.png"
    other.write_bytes(image.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "other.png")
    result = imgconv("apply", "-k", "sharpen", image, other, "-o", f"{out}/")
    assert_error(result, 2, f"{out}/other.png: not a regular file")
    assert sorted(p.name for p in out.iterdir()) == ["other.png"]  # in.png was not written either
    assert (out / "other.png").is_fifo()


def test_symbolic_link_output_is_replaced_as_mv_does(image, tmp_path):
    aimed = tmp_path / "aimed.png"
    aimed.write_bytes(b"kept")
    link = tmp_path / "link.png"
    link.symlink_to(aimed)
    result = imgconv("apply", "-k", "sharpen", image, link)
    assert result.returncode == 0, result.stderr.decode()
    assert not link.is_symlink() and pixels(link).shape == (24, 32, 3)
    assert aimed.read_bytes() == b"kept"


def test_features_refuses_a_fifo_output(image, tmp_path):
    fifo = tmp_path / "sheet.png"
    os.mkfifo(fifo)
    result = imgconv("features", "-k", "sharpen", image, "-o", fifo)
    assert_error(result, 2, f"{fifo}: not a regular file")
    assert fifo.is_fifo()


def test_library_write_refuses_a_fifo(tmp_path):
    # Never a real device here: a regression would replace it for the whole machine.
    from imgconv.errors import OutputError
    from imgconv.output import write_atomic

    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        write_atomic(fifo, b"data")
    assert fifo.is_fifo()


# --------------------------------------------------------------------------
# Inputs read once: pipes, FIFOs, stdin


@pytest.mark.parametrize("suffix", ["png", "ppm", "tif"])
def test_pipe_input_to_a_streaming_format(image, tmp_path, suffix):
    expected = tmp_path / f"expected.{suffix}"
    assert imgconv("apply", "-k", "sharpen", image, expected).returncode == 0
    got = tmp_path / f"got.{suffix}"
    with open(image, "rb") as data:
        piped = subprocess.Popen(["cat"], stdin=data, stdout=subprocess.PIPE)
        result = imgconv("apply", "-k", "sharpen", "/dev/stdin", got, stdin=piped.stdout)
        piped.stdout.close()
        piped.wait()
    assert result.returncode == 0, result.stderr.decode()
    assert got.read_bytes() == expected.read_bytes()


def test_named_fifo_input_is_read_once(image, tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as writer:  # waits for the reader, as a FIFO does
            writer.write(image.read_bytes())

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    got, expected = tmp_path / "got.png", tmp_path / "expected.png"
    result = imgconv("apply", "-k", "sharpen", fifo, got)
    feeder.join(timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert imgconv("apply", "-k", "sharpen", image, expected).returncode == 0
    assert got.read_bytes() == expected.read_bytes()


def test_stdin_that_is_the_output_is_refused(image, tmp_path):
    target = tmp_path / "b.png"
    target.write_bytes(image.read_bytes())
    with open(target, "rb") as stdin:
        result = imgconv("apply", "-k", "sharpen", "-", target, stdin=stdin)
    assert_error(result, 2, f"{target}: is an input file; refusing to overwrite it", "--in-place")
    assert target.read_bytes() == image.read_bytes()


def test_stdin_that_is_the_output_in_place(image, tmp_path):
    target = tmp_path / "b.png"
    target.write_bytes(image.read_bytes())
    with open(target, "rb") as stdin:
        result = imgconv("apply", "-k", "sharpen", "--in-place", "-", target, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    assert target.read_bytes() != image.read_bytes()


def test_stdin_that_is_another_file_is_written(image, tmp_path):
    target = tmp_path / "b.png"
    target.write_bytes(image.read_bytes())
    with open(image, "rb") as stdin:
        result = imgconv("apply", "-k", "sharpen", "-", target, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()


# --------------------------------------------------------------------------
# TIFFs read by one reader on both routes


def _deflate_tiff(path: Path) -> None:
    ramp = np.linspace(0, 255, 2000).astype(np.uint8)
    rng = np.random.default_rng(3)
    values = (ramp[None, :, None] ^ rng.integers(0, 4, (1500, 2000, 3), dtype=np.uint8)).astype(np.uint8)
    tifffile.imwrite(path, values, photometric="rgb", compression="zlib")


@pytest.mark.parametrize("memory", [[], ["--memory", "8M"]], ids=["whole", "strips"])
def test_damaged_compressed_tiff_is_one_error_on_both_routes(tmp_path, memory):
    whole = tmp_path / "whole.tif"
    _deflate_tiff(whole)
    damaged = tmp_path / "t.tif"
    data = whole.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    result = imgconv("apply", "-k", "sharpen", *memory, damaged, tmp_path / "o.png")
    assert_error(result, 1, f"{damaged}: cannot decode the image")
    assert not (tmp_path / "o.png").exists()


def _sparse_tiff(path: Path) -> None:
    """A tiled TIFF whose second tile is absent (offset 0, byte count 0), as GDAL writes."""
    values = np.full((128, 128, 3), 200, np.uint8)
    tifffile.imwrite(path, values, photometric="rgb", tile=(64, 64), compression="zlib")
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        places = [(page.tags[name].valueoffset, page.tags[name].dtype) for name in ("TileOffsets", "TileByteCounts")]
        order = tiff.byteorder
    with open(path, "r+b") as handle:
        for place, dtype in places:
            code = order + ("H" if dtype == 3 else "I")
            handle.seek(place + struct.calcsize(code))  # the second tile's entry
            handle.write(struct.pack(code, 0))


def test_sparse_tiled_tiff_is_zeros_on_both_routes(tmp_path):
    source = tmp_path / "sparse.tif"
    _sparse_tiff(source)
    whole, strips = tmp_path / "whole.png", tmp_path / "strips.png"
    assert imgconv("apply", "-k", "identity", source, whole).returncode == 0
    assert imgconv("apply", "-k", "identity", "--memory", "1M", source, strips).returncode == 0
    assert whole.read_bytes() == strips.read_bytes()
    result = pixels(whole)
    assert (result[:64, 64:] == 0).all() and (result[:64, :64] == 200).all() and (result[64:] == 200).all()


# --------------------------------------------------------------------------
# The memory budget, checked when the job is made


@pytest.mark.parametrize("memory", [0, -1, True, 1.5, 1e9])
def test_bad_memory_is_refused_before_reading(tmp_path, memory):
    from imgconv import FilterOptions, apply_file, parse_spec

    with pytest.raises(ParameterError, match="memory"):
        # The input does not exist: the budget is refused before it is looked for.
        apply_file(
            str(tmp_path / "none.png"), str(tmp_path / "o.png"), [parse_spec("sharpen")], FilterOptions(), memory=memory
        )
