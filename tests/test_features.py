"""The feature-map contact sheet, and apply's --relu, through the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgconv.features import GAP, LABEL_HEIGHT, grid_shape

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def invoke(*args, input: bytes | str | None = None):
    from imgconv.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def small_gray(tmp_path) -> Path:
    """A 48x64 crop of a real photo keeps the sheet tests fast."""
    path = tmp_path / "gray.png"
    Image.open(SAMPLES / "camera.png").crop((200, 100, 264, 148)).save(path)
    return path


def sheet_size(count: int, cell_h: int, cell_w: int) -> tuple[int, int]:
    """(width, height) of a sheet of ``count`` cells, as Pillow reports sizes."""
    rows, cols = grid_shape(count)
    return cols * cell_w + (cols + 1) * GAP, rows * (cell_h + LABEL_HEIGHT) + (rows + 1) * GAP


@pytest.mark.parametrize(
    "names,grid",
    [("edge1", (1, 2)), ("edge1,sobel-x,sobel-y,laplacian", (2, 3)), ("sobel-x,sobel-y,laplacian", (2, 2))],
)
def test_grid_has_one_cell_per_kernel_plus_the_input(small_gray, tmp_path, names, grid):
    count = len(names.split(",")) + 1
    assert grid_shape(count) == grid
    out = tmp_path / "sheet.png"
    result = invoke("features", small_gray, "-o", out, "--kernels", names)
    assert result.exit_code == 0, result.output
    sheet = Image.open(out)
    assert sheet.mode == "L"
    # Each cell is at least as wide as the image; labels may widen it.
    cell_w = (sheet.size[0] - (grid[1] + 1) * GAP) // grid[1]
    assert cell_w >= 64
    assert sheet.size == sheet_size(count, 48, cell_w)


def test_cells_hold_the_input_and_normalised_maps(small_gray, tmp_path):
    out = tmp_path / "sheet.png"
    assert invoke("features", small_gray, "-o", out, "-k", "identity", "-k", "0,0,0;0,-1,0;0,0,0").exit_code == 0
    sheet = np.asarray(Image.open(out))
    image = np.asarray(Image.open(small_gray))
    top = GAP + LABEL_HEIGHT
    assert np.array_equal(sheet[top : top + 48, GAP : GAP + 64], image)
    # The identity map, normalised, spans the full range; the negated one is its inverse.
    cell_w = (sheet.shape[1] - 3 * GAP) // 2
    identity = sheet[top : top + 48, 2 * GAP + cell_w : 2 * GAP + cell_w + 64]
    assert identity.min() == 0 and identity.max() == 255
    # Three cells make a 2x2 grid: the negated map is first on the second row.
    second = top + 48 + GAP + LABEL_HEIGHT
    negated = sheet[second : second + 48, GAP : GAP + 64].astype(int)
    assert np.abs(negated - (255 - identity.astype(int))).max() <= 1  # rounding at exact halves


def test_relu_and_pool_enlarge_maps_back_to_the_cell(small_gray, tmp_path):
    out = tmp_path / "sheet.png"
    result = invoke("features", small_gray, "-o", out, "--kernels", "sobel-x", "--relu", "--pool", "2")
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    cell_w = (sheet.shape[1] - 3 * GAP) // 2
    top, left = GAP + LABEL_HEIGHT, 2 * GAP + cell_w
    tile = sheet[top : top + 48, left : left + 64]
    # A 24x32 pooled map shown as 2x2 blocks.
    assert np.array_equal(tile, np.repeat(np.repeat(tile[::2, ::2], 2, axis=0), 2, axis=1))


def test_output_is_deterministic_and_goes_to_stdout(small_gray, tmp_path):
    args = ("features", small_gray, "--kernels", "edge1,sobel-y", "-k", "1,-1")
    first = invoke(*args, "-o", "-")
    assert first.exit_code == 0
    assert Image.open(io.BytesIO(first.stdout_bytes)).format == "PNG"
    assert invoke(*args, "-o", "-").stdout_bytes == first.stdout_bytes
    assert invoke(*args, "-o", tmp_path / "s.png").exit_code == 0
    assert (tmp_path / "s.png").read_bytes() == first.stdout_bytes


def test_colour_and_16bit_inputs_become_gray(tmp_path):
    for name in ("coffee.png", "astronaut-gray16.png", "chelsea-alpha.png"):
        out = tmp_path / f"{name}.sheet.png"
        assert invoke("features", SAMPLES / name, "-o", out, "-k", "laplacian", "--display", "abs").exit_code == 0
        assert Image.open(out).mode == "L"


def test_inline_specs_in_kernels_list_are_refused_with_a_hint(small_gray, tmp_path):
    result = invoke("features", small_gray, "-o", tmp_path / "s.png", "--kernels", "1,0,-1")
    assert result.exit_code == 2
    assert "give inline specs with -k" in result.output


def test_no_kernel_is_a_usage_error(small_gray, tmp_path):
    result = invoke("features", small_gray, "-o", tmp_path / "s.png")
    assert result.exit_code == 2 and "give at least one kernel" in result.output


def test_missing_image(tmp_path):
    result = invoke("features", tmp_path / "none.png", "-o", tmp_path / "s.png", "-k", "edge1")
    assert result.exit_code == 1 and "no such file" in result.output


def test_pool_larger_than_image_names_the_file(tmp_path):
    (tmp_path / "m.csv").write_text("1,2\n3,4\n")
    result = invoke("features", tmp_path / "m.csv", "-o", tmp_path / "s.png", "-k", "edge1", "--pool", "3")
    assert result.exit_code == 1 and f"{tmp_path / 'm.csv'}: the image (2x2) is smaller" in result.output


class TestApplyRelu:
    def test_relu_zeroes_negative_results_of_a_matrix(self, tmp_path):
        (tmp_path / "A.csv").write_text("1,-2\n-3,4\n")
        plain = invoke("apply", "-k", "1x1:-1", tmp_path / "A.csv", "-")
        relu = invoke("apply", "-k", "1x1:-1", "--relu", tmp_path / "A.csv", "-")
        assert plain.stdout == "-1,2\n3,-4\n"
        assert relu.exit_code == 0 and relu.stdout == "0,2\n3,0\n"

    def test_relu_comes_before_the_range_step(self, small_gray, tmp_path):
        # With --range abs, negative edge responses show up; ReLU removes them first.
        for flags, name in (((), "abs.png"), (("--relu",), "relu.png"), (("--relu", "--range", "clip"), "clip.png")):
            assert (
                invoke("apply", "-k", "sobel-x", "--range", "abs", *flags, small_gray, tmp_path / name).exit_code == 0
            )
        absolute = np.asarray(Image.open(tmp_path / "abs.png"))
        relu = np.asarray(Image.open(tmp_path / "relu.png"))
        assert (relu <= absolute).all() and (relu < absolute).any()
        # Non-negative values: abs and clip agree after ReLU.
        assert np.array_equal(relu, np.asarray(Image.open(tmp_path / "clip.png")))


def test_a_pool_window_larger_than_the_image_names_features_own_option(run, small_gray, tmp_path):
    result = run("features", small_gray, "-o", tmp_path / "sheet.png", "-k", "edge1", "--pool", "100")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        "the image (48x64) is smaller than the pooling window (100x100); give a smaller --pool"
    )
    assert "--padding" not in result.stderr and not (tmp_path / "sheet.png").exists()
