"""Streaming: huge images in strips give the bytes of the whole-image route.

Every case runs one job twice on a small real photo: with a budget large
enough for the whole image, and with a budget made for a few rows per strip
(so the image really goes through in several bands, which the row observer
confirms), and compares the files byte for byte.
"""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from terminal import stderr_on_terminal

from imgconv import sinks
from imgconv.formats import format_for
from imgconv.jobs import ApplyJob, OutputOptions, PoolJob
from imgconv.kernels import parse_spec
from imgconv.memory import parse_size
from imgconv.plan import FilterOptions, FilterPlan
from imgconv.pooling import PoolOptions
from imgconv.sources import open_source
from imgconv.streaming import observe_rows

IMGCONV = [sys.executable, "-m", "imgconv"]
WHOLE = 1 << 40


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> np.ndarray:
    """A 29 x 37 RGBA crop of a real photo (odd sizes on purpose)."""
    root = Path(__file__).resolve().parent.parent / "sample_images"
    rgba = np.asarray(Image.open(root / "chelsea-alpha.png").convert("RGBA"))
    return np.ascontiguousarray(rgba[100:129, 150:187])


@pytest.fixture(scope="module")
def inputs(photo, tmp_path_factory) -> dict[str, Path]:
    """The photo in every layout that streams."""
    folder = tmp_path_factory.mktemp("inputs")
    rgb, gray = photo[:, :, :3], np.asarray(Image.fromarray(photo[:, :, :3]).convert("L"))
    gray16 = gray.astype(np.uint16) * 257 + np.arange(gray.size, dtype=np.uint16).reshape(gray.shape) % 200
    files = {
        "rgb.tif": lambda p: tifffile.imwrite(p, rgb, rowsperstrip=5, metadata=None),
        "tiled.tif": lambda p: tifffile.imwrite(p, rgb, tile=(16, 16), compression="zlib", predictor=2, metadata=None),
        "rgba.tif": lambda p: tifffile.imwrite(p, photo, photometric="rgb", extrasamples=["unassalpha"], metadata=None),
        "la.tif": lambda p: tifffile.imwrite(
            p, np.dstack([gray, photo[:, :, 3]]), photometric="minisblack", extrasamples=["unassalpha"], metadata=None
        ),
        "gray16.tif": lambda p: tifffile.imwrite(p, gray16, metadata=None, byteorder=">"),
        "float.tif": lambda p: tifffile.imwrite(p, gray.astype(np.float32) / 7, metadata=None),
        "gray.pgm": lambda p: Image.fromarray(gray).save(p),
        "gray16.pgm": lambda p: Image.fromarray(gray16).save(p),
        "rgb.ppm": lambda p: Image.fromarray(rgb).save(p),
        "matrix.npy": lambda p: np.save(p, gray.astype(np.float64) / 3 - 20),
        "planes.npy": lambda p: np.save(p, rgb.astype(np.int16) - 100),
    }
    for name, write in files.items():
        write(folder / name)
    return {name: folder / name for name in files}


def strip_budget(job, source: Path, target: Path, rows: int) -> int:
    """A budget that gives strips of about ``rows`` output rows, well below the whole image's."""
    with open_source(str(source), color=job.color) as opened:
        _, costs, whole = job.memory_plan(opened, str(target), format_for(str(target), job.output.fmt))
    budget = costs.total(rows)
    assert budget < whole
    return budget


def both_routes(job, source: Path, folder: Path, name: str, *, rows: int = 4) -> bytes:
    """Run ``job`` whole and in strips of ``rows`` rows; the two files must be equal."""
    from dataclasses import replace

    whole, strips = folder / f"whole-{name}", folder / f"strips-{name}"
    bands: list[int] = []
    with observe_rows(lambda done, total, what: bands.append(done)):
        replace(job, memory=WHOLE)(str(source), str(whole))
        assert bands == []  # the whole image fits: no strips
        replace(job, memory=strip_budget(job, source, strips, rows))(str(source), str(strips))
    assert len(bands) >= 2, "the small budget must stream in several bands"
    assert whole.read_bytes() == strips.read_bytes()
    return whole.read_bytes()


def apply_job(*specs: str, output: OutputOptions | None = None, color="auto", **options) -> ApplyJob:
    plan = FilterPlan.make([parse_spec(s) for s in specs], FilterOptions(**options))
    return ApplyJob(plan=plan, color=color, output=output or OutputOptions())


# --------------------------------------------------------------------------
# Byte-identical to the whole-image route


@pytest.mark.parametrize("border", ["zero", "nearest", "reflect", "mirror", "wrap"])
@pytest.mark.parametrize("geometry", ["same", "full", "valid"])
def test_every_border_and_geometry(inputs, tmp_path, border, geometry):
    data = both_routes(apply_job("sharpen", border=border, geometry=geometry), inputs["rgba.tif"], tmp_path, "o.png")
    expected = {"same": (29, 37), "full": (31, 39), "valid": (27, 35)}[geometry]
    assert Image.open(io.BytesIO(data)).size == expected[::-1]


@pytest.mark.parametrize("border", ["zero", "nearest", "reflect", "mirror", "wrap"])
def test_a_31x31_kernel_wider_than_the_strips(inputs, tmp_path, border):
    both_routes(apply_job("box:31", border=border), inputs["rgb.tif"], tmp_path, "o.png", rows=2)


def test_a_kernel_larger_than_the_image_wraps_around_it_more_than_once(inputs, tmp_path):
    both_routes(apply_job("gaussian:sigma=6", border="wrap"), inputs["gray.pgm"], tmp_path, "o.pgm", rows=3)


@pytest.mark.parametrize("border", ["zero", "reflect", "wrap"])
def test_a_chain_of_two_kernels(inputs, tmp_path, border):
    job = apply_job("gaussian5", "edge3", border=border, value_range="abs")
    both_routes(job, inputs["rgb.tif"], tmp_path, "o.png", rows=3)
    both_routes(apply_job("sharpen", "blur", border=border, geometry="full"), inputs["la.tif"], tmp_path, "o.tif")


@pytest.mark.parametrize(
    "options",
    [
        {"value_range": "normalize"},
        {"value_range": "normalize", "relu": True, "border": "wrap"},
        {"value_range": "abs", "scale": 3, "offset": 7},
        {"relu": True, "offset": -40},
    ],
)
def test_ranges_and_finishing(inputs, tmp_path, options):
    both_routes(apply_job("sobel-x", **options), inputs["rgba.tif"], tmp_path, "o.png")
    both_routes(apply_job("gaussian5", "laplacian", **options), inputs["gray16.tif"], tmp_path, "o.tif")


def test_normalize_takes_two_passes(inputs, tmp_path):
    seen: list[str] = []
    job = apply_job("edge3", value_range="normalize", border="reflect")
    budget = strip_budget(job, inputs["rgb.tif"], tmp_path / "o.png", 5)
    with observe_rows(lambda done, total, what: seen.append(what)):
        ApplyJob(plan=job.plan, memory=budget)(str(inputs["rgb.tif"]), str(tmp_path / "o.png"))
    assert seen[0].startswith("pass 1") and seen[-1].startswith("pass 2")


@pytest.mark.parametrize("name", ["matrix.npy", "planes.npy", "float.tif"])
def test_float_results(inputs, tmp_path, name):
    both_routes(apply_job("gaussian:sigma=1", "1,-2;3,1/3", value_range="float"), inputs[name], tmp_path, "o.npy")


def test_float_gray_tiff_output(inputs, tmp_path):
    data = both_routes(apply_job("blur", value_range="float"), inputs["matrix.npy"], tmp_path, "o.tif")
    assert Image.open(io.BytesIO(data)).mode == "F"


OUTPUTS = {
    "rgb.tif": ["png", "tif", "npy", "ppm"],
    "tiled.tif": ["png", "tif", "npy", "ppm"],
    "rgba.tif": ["png", "tif", "npy"],
    "la.tif": ["png", "tif", "npy"],
    "gray16.tif": ["png", "tif", "npy", "pgm"],
    "gray.pgm": ["png", "tif", "npy", "pgm"],
    "gray16.pgm": ["png", "tif", "npy", "pgm"],
    "rgb.ppm": ["png", "tif", "npy", "ppm"],
    "matrix.npy": ["png", "tif", "npy", "pgm"],
    "planes.npy": ["png", "tif", "npy", "ppm"],
}


@pytest.mark.parametrize(("name", "ext"), [(n, e) for n, exts in OUTPUTS.items() for e in exts])
def test_every_format_pair(inputs, tmp_path, name, ext):
    output = OutputOptions(depth=8) if name.endswith(".npy") else OutputOptions()
    value_range = "clip" if name.endswith(".npy") else None
    job = apply_job("sharpen", border="wrap", value_range=value_range, output=output)
    both_routes(job, inputs[name], tmp_path, f"o.{ext}")


@pytest.mark.parametrize(
    ("name", "color"), [("rgba.tif", "gray"), ("la.tif", "rgb"), ("gray16.pgm", "rgb"), ("planes.npy", "gray")]
)
def test_colour_conversions(inputs, tmp_path, name, color):
    output = OutputOptions(depth=8) if name.endswith(".npy") else OutputOptions()
    job = apply_job("blur", color=color, output=output, value_range="clip" if name.endswith(".npy") else None)
    both_routes(job, inputs[name], tmp_path, "o.png")


@pytest.mark.parametrize(("name", "depth"), [("gray16.tif", 8), ("rgba.tif", 16), ("gray.pgm", 16)])
def test_bit_depth_changes(inputs, tmp_path, name, depth):
    both_routes(apply_job("emboss", output=OutputOptions(depth=depth)), inputs[name], tmp_path, "o.png")


@pytest.mark.parametrize("op", ["max", "mean", "min"])
@pytest.mark.parametrize(("size", "stride", "padding"), [(2, None, "valid"), (3, 2, "same"), ((3, 2), (1, 3), "same")])
def test_pooling(inputs, tmp_path, op, size, stride, padding):
    job = PoolJob(options=PoolOptions(size=size, stride=stride, padding=padding, op=op))
    both_routes(job, inputs["rgba.tif"], tmp_path, "o.png", rows=2)
    both_routes(job, inputs["gray16.tif"], tmp_path, "o.tif", rows=3)


def test_pooling_normalize_and_matrices(inputs, tmp_path):
    job = PoolJob(options=PoolOptions(size=3, stride=2, padding="same", op="mean", value_range="normalize"))
    both_routes(job, inputs["rgb.tif"], tmp_path, "o.png", rows=2)
    both_routes(PoolJob(options=PoolOptions(size=2, op="mean")), inputs["matrix.npy"], tmp_path, "o.npy", rows=2)


def test_bigtiff_output(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "BIGTIFF_AFTER", 100)
    data = both_routes(apply_job("sharpen"), inputs["rgb.tif"], tmp_path, "o.tif")
    assert data[:4] == b"II+\x00"
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        assert tiff.is_bigtiff and tiff.pages.first.shape == (29, 37, 3)


def test_png_pieces_across_strips(inputs, tmp_path, monkeypatch):
    from imgconv import png

    monkeypatch.setattr(png, "PIECE", 300)  # many deflate pieces, cut across the strips
    data = both_routes(apply_job("sharpen"), inputs["rgba.tif"], tmp_path, "o.png", rows=3)
    assert data.count(b"IDAT") > 10


def test_strips_on_one_thread_and_many(inputs, tmp_path, monkeypatch):
    job = apply_job("gaussian5", "sharpen", border="mirror")
    monkeypatch.setenv("IMGCONV_THREADS", "1")
    one = both_routes(job, inputs["rgb.tif"], tmp_path, "one.png")
    monkeypatch.setenv("IMGCONV_THREADS", "3")
    assert both_routes(job, inputs["rgb.tif"], tmp_path, "three.png") == one


# --------------------------------------------------------------------------
# What streams, and what does not


def test_the_strip_reader_gives_pillows_pixels(inputs):
    from imgconv.reading import read_picture

    for name in OUTPUTS:
        for color in ("auto", "gray", "rgb"):
            picture = read_picture(inputs[name], color=color)
            with open_source(str(inputs[name]), color=color) as source:
                assert source.shape == picture.data.shape and source.depth == picture.depth
                assert np.array_equal(source.planes.read(0, source.height), picture.data), (name, color)
                if picture.alpha is not None:
                    assert np.array_equal(source.alpha.read(0, source.height)[:, :, 0], picture.alpha)


def test_layouts_read_differently_by_pillow_go_whole(photo, tmp_path):
    rgb = photo[:, :, :3]
    Image.fromarray(rgb).save(tmp_path / "lzw.tif", compression="tiff_lzw")  # tifffile needs imagecodecs for LZW
    tifffile.imwrite(tmp_path / "turned.tif", rgb, extratags=[(274, "H", 1, 6, True)], metadata=None)
    tifffile.imwrite(tmp_path / "premultiplied.tif", photo, photometric="rgb", extrasamples=["assocalpha"])
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(rgb[:, :, 0].astype(float)))
    (tmp_path / "ascii.pgm").write_bytes(b"P2\n2 1\n255\n0 255\n")
    for name in ("lzw.tif", "turned.tif", "premultiplied.tif", "photo.png", "fortran.npy", "ascii.pgm"):
        assert open_source(str(tmp_path / name)) is None, name


def test_a_file_that_cannot_stream_takes_the_whole_route_under_any_budget(photo, tmp_path, run):
    Image.fromarray(photo[:, :, :3]).save(tmp_path / "in.png")
    result = run("apply", "-k", "sharpen", tmp_path / "in.png", tmp_path / "o.png", "--memory", "1K")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------
# The command line


def test_memory_option_and_environment(inputs, tmp_path, run):
    source = inputs["rgba.tif"]
    for memory in ("4G", "60K"):
        assert (
            run(
                "apply", "-k", "unsharp5", "--border", "reflect", source, tmp_path / f"{memory}.png", "--memory", memory
            ).exit_code
            == 0
        )
    assert (tmp_path / "4G.png").read_bytes() == (tmp_path / "60K.png").read_bytes()
    result = run(
        "apply", "-k", "unsharp5", "--border", "reflect", source, tmp_path / "env.png", env={"IMGCONV_MEMORY": "60K"}
    )
    assert result.exit_code == 0 and (tmp_path / "env.png").read_bytes() == (tmp_path / "4G.png").read_bytes()
    result = run("maxpool", "--size", "2", source, tmp_path / "p.png", "--memory", "20K")
    assert result.exit_code == 0, result.output


def test_bad_memory_values(inputs, tmp_path, run):
    result = run("apply", "-k", "sharpen", inputs["rgb.tif"], tmp_path / "o.png", "--memory", "lots")
    assert result.exit_code == 2 and "--memory" in result.output and "is not a size" in result.output
    result = run("apply", "-k", "box:31", inputs["rgb.tif"], tmp_path / "o.png", "--memory", "2K")
    assert result.exit_code == 2 and "streaming this image needs at least" in result.output
    assert "raise --memory" in result.output and not (tmp_path / "o.png").exists()
    result = run("apply", "-k", "sharpen", inputs["rgb.tif"], tmp_path / "o.png", env={"IMGCONV_MEMORY": "x"})
    assert result.exit_code == 2 and "IMGCONV_MEMORY" in result.output


def test_max_pixels_guards_whole_decodes_only(inputs, photo, tmp_path, run):
    result = run("apply", "-k", "sharpen", inputs["rgb.tif"], tmp_path / "o.png", "--max-pixels", "100")
    assert result.exit_code == 0, result.output  # streamed: not decoded whole
    Image.fromarray(photo[:, :, :3]).save(tmp_path / "in.jpg")
    result = run("apply", "-k", "sharpen", tmp_path / "in.jpg", tmp_path / "o.png", "--max-pixels", "100")
    assert result.exit_code == 1
    assert "TIFF, binary PPM/PGM and .npy inputs stream into .png, .tif, .ppm or .npy outputs" in result.output


def test_a_bad_value_midway_leaves_no_file(tmp_path, run):
    values = np.zeros((40, 30))
    values[35, 3] = np.nan
    np.save(tmp_path / "nan.npy", values)
    result = run("apply", "-k", "blur", tmp_path / "nan.npy", tmp_path / "o.npy", "--memory", "30K")
    assert result.exit_code == 1 and "NaN or infinite" in result.output
    assert sorted(os.listdir(tmp_path)) == ["nan.npy"]


def test_progress_bar_counts_rows_on_a_terminal(inputs, tmp_path):
    code, shown, _ = stderr_on_terminal(
        [*IMGCONV, "apply", "-k", "sharpen", str(inputs["rgb.tif"]), str(tmp_path / "o.png"), "--memory", "40K"]
    )
    assert code == 0, shown
    assert b"/29" in shown and b"rows" in shown


def test_sizes():
    assert parse_size("64M") == 64 << 20 and parse_size("2GiB") == 2 << 30 and parse_size(" 10kb ") == 10240
    assert math.isclose(parse_size("0.5K"), 512)


def test_jobs_sets_the_cores_of_one_file_and_is_put_back(inputs, tmp_path, run, monkeypatch):
    monkeypatch.delenv("IMGCONV_THREADS", raising=False)
    for jobs in ("1", "2"):
        args = (
            "apply",
            "-k",
            "gaussian5",
            inputs["rgb.tif"],
            tmp_path / f"{jobs}.png",
            "--memory",
            "60K",
            "--jobs",
            jobs,
        )
        assert run(*args).exit_code == 0
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()
    assert "IMGCONV_THREADS" not in os.environ


# --------------------------------------------------------------------------
# Metadata, pages and the requests that run whole


def test_profile_and_descriptive_tags_stream_into_png_and_tiff(photo, tmp_path):
    icc = bytes(16) + b"RGB " + bytes(108)
    source = tmp_path / "tagged.tif"
    tifffile.imwrite(
        source,
        photo[:, :, :3],
        iccprofile=icc,
        resolution=(300, 300),
        resolutionunit=2,
        metadata=None,
        extratags=[(271, "s", 0, "Camera maker", True)],
    )
    for ext in ("png", "tif"):
        data = both_routes(apply_job("sharpen"), source, tmp_path, f"o.{ext}")
        image = Image.open(io.BytesIO(data))
        assert image.info.get("icc_profile") == icc
        assert image.getexif().get(271) == "Camera maker"


def test_exif_folders_into_tiff_go_whole(inputs, tmp_path, monkeypatch):
    from imgconv import sources
    from imgconv.metadata import Metadata
    from imgconv.sinks import tiff_tags

    exif = Image.Exif()
    exif[271] = "Camera maker"
    exif.get_ifd(0x8769)[0x829A] = 0.01  # exposure time, in the EXIF folder
    folders = Metadata(exif=exif.tobytes())
    assert tiff_tags(folders) is None  # tifffile is not given EXIF folders: Pillow writes them
    monkeypatch.setattr(sources.Source, "metadata", lambda self: folders)
    bands: list[int] = []
    with observe_rows(lambda done, total, what: bands.append(done)):
        ApplyJob(plan=apply_job("sharpen").plan, memory=1)(str(inputs["rgb.tif"]), str(tmp_path / "o.tif"))
    assert bands == []  # whole: the metadata decides the route


def test_pages_alpha_modes_and_linear_light_run_whole(photo, tmp_path):
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tiff:
        tiff.write(photo[:, :, :3], metadata=None)
        tiff.write(photo[::-1, :, :3], metadata=None)
    bands: list[int] = []
    with observe_rows(lambda done, total, what: bands.append(done)):
        ApplyJob(plan=apply_job("sharpen").plan, memory=1)(str(pages), str(tmp_path / "all.tif"))
        for options in ({"alpha_mode": "premultiplied"}, {"linear": True}):
            job = ApplyJob(plan=apply_job("blur", **options).plan, memory=1)
            job(str(pages), str(tmp_path / "x.png"))
    assert bands == []
    assert len(tifffile.TiffFile(tmp_path / "all.tif").pages) == 2
    first = ApplyJob(plan=apply_job("sharpen").plan, frames="first")
    both_routes(first, pages, tmp_path, "first.png")
