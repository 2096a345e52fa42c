"""Pooling: Keras/TensorFlow shapes and padding, every colour mode, the CLI."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgconv.errors import ParameterError, UsageFailure
from imgconv.pooling import parse_window, pool, pool_shape

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"

#: The blog post's 4x4 -> 2x2 max pooling, as a matrix file.
BLOG_CSV = "1,3,2,1\n4,6,5,0\n3,1,1,2\n0,2,7,4\n"


def invoke(*args, input: bytes | str | None = None):
    from imgconv.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def reference_pool(
    image: np.ndarray, size: tuple[int, int], stride: tuple[int, int], padding: str, op: str
) -> np.ndarray:
    """TensorFlow's definition, written out with loops: pad with NaN, reduce ignoring NaN."""
    h, w = image.shape
    if padding == "valid":
        out = [(n - k) // s + 1 for n, k, s in zip((h, w), size, stride, strict=True)]
        before = [0, 0]
    else:
        out = [math.ceil(n / s) for n, s in zip((h, w), stride, strict=True)]
        before = [max((o - 1) * s + k - n, 0) // 2 for o, s, k, n in zip(out, stride, size, (h, w), strict=True)]
    padded = np.full((h + 2 * size[0], w + 2 * size[1]), np.nan)
    padded[before[0] : before[0] + h, before[1] : before[1] + w] = image
    reduce = {"max": np.nanmax, "mean": np.nanmean, "min": np.nanmin}[op]
    result = np.empty(out)
    for i in range(out[0]):
        for j in range(out[1]):
            result[i, j] = reduce(
                padded[i * stride[0] : i * stride[0] + size[0], j * stride[1] : j * stride[1] + size[1]]
            )
    return result


class TestHandComputed:
    def test_blog_example_4x4_to_2x2(self):
        a = np.loadtxt(io.StringIO(BLOG_CSV), delimiter=",")
        assert pool(a, size=2).tolist() == [[6, 5], [3, 7]]

    def test_same_odd_window_stride_2(self):
        # 5x5: out 3, pad_total max(2*2+3-5, 0) = 2, one before and one after.
        a = np.arange(25).reshape(5, 5)  # a[r, c] = 5r + c
        assert pool(a, size=3, stride=2, padding="same").tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
        assert pool(a, size=3, stride=2, padding="same", op="mean").tolist() == [
            [3.0, 4.5, 6.0],
            [10.5, 12.0, 13.5],
            [18.0, 19.5, 21.0],
        ]

    def test_same_puts_the_smaller_pad_before(self):
        # n=4, size 2, stride 1: pad_total 1, all of it after (TensorFlow), so
        # the last window is [8] alone, not the first window [1].
        assert pool(np.array([[1, 5, 2, 8]]), size=(1, 2), stride=1, padding="same").tolist() == [[5, 5, 8, 8]]
        # n=6, size 4: pad_total 3, one before and two after, so windows start
        # at -1 (two before would give [9, 9, 9, 0, 7, 7]).
        assert pool(np.array([[9, 0, 0, 0, 0, 7]]), size=(1, 4), stride=1, padding="same").tolist() == [
            [9, 9, 0, 7, 7, 7]
        ]

    def test_stride_smaller_than_window(self):
        row = np.array([[1, 2, 3, 4, 5]])
        assert pool(row, size=(1, 3), stride=1).tolist() == [[3, 4, 5]]
        assert pool(row, size=(1, 3), stride=1, op="mean").tolist() == [[2.0, 3.0, 4.0]]

    def test_stride_larger_than_window_skips_cells(self):
        row = np.arange(7)[np.newaxis]
        assert pool(row, size=(1, 2), stride=(1, 3)).tolist() == [[1, 4]]
        assert pool(row, size=(1, 2), stride=(1, 3), padding="same").tolist() == [[1, 4, 6]]

    def test_negative_values_are_not_mixed_with_padding(self):
        row = np.array([[-4.0, -2.0, -6.0]])
        assert pool(row, size=2, padding="same").tolist() == [[-2.0, -6.0]]  # not 0
        assert pool(row, size=2, padding="same", op="mean").tolist() == [[-3.0, -6.0]]  # / cells inside
        assert pool(row, size=2, padding="same", op="min").tolist() == [[-4.0, -6.0]]

    def test_one_row_images(self):
        row = np.array([[3, 1, 4, 1, 5]])
        assert pool(row, size=(1, 2)).tolist() == [[3, 4]]
        assert pool(row, size=2, padding="same").tolist() == [[3, 4, 5]]
        with pytest.raises(
            ParameterError, match=r"^padding: the image \(1x5\) is smaller than the pooling window \(2x2\)"
        ):
            pool(row, size=2)

    def test_rectangular_window_and_channels(self):
        a = np.arange(24).reshape(2, 4, 3)
        result = pool(a, size=(2, 2))
        assert result.shape == (1, 2, 3)
        assert result[0, 1].tolist() == a[1, 3].tolist()

    def test_max_and_min_keep_the_dtype(self):
        a = np.array([[0, 65535], [7, 9]], dtype=np.uint16)
        assert pool(a, size=2).dtype == np.uint16 and pool(a, size=2)[0, 0] == 65535
        assert pool(a, size=2, op="min")[0, 0] == 0
        assert pool(a, size=2, op="mean").dtype == np.float64

    def test_shape_formulas(self):
        assert pool_shape((32, 32), size=(2, 2), stride=(2, 2), padding="valid") == (16, 16)
        assert pool_shape((5, 7), size=(2, 3), stride=(2, 2), padding="valid") == (2, 3)
        assert pool_shape((5, 7), size=(2, 3), stride=(2, 2), padding="same") == (3, 4)


CASES = [
    ((7, 9), (2, 2), (2, 2)),
    ((7, 9), (3, 3), (2, 2)),
    ((8, 5), (3, 2), (1, 1)),
    ((6, 11), (2, 3), (3, 4)),
    ((1, 13), (1, 4), (1, 3)),
    ((5, 5), (5, 5), (1, 1)),
    ((9, 4), (4, 1), (2, 1)),
]


@pytest.mark.parametrize("shape,size,stride", CASES)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("op", ["max", "mean", "min"])
def test_matches_loop_reference(shape, size, stride, padding, op):
    rng = np.random.default_rng(sum(shape) * 100 + sum(size) * 10 + sum(stride))
    image = rng.normal(-3.0, 10.0, shape)  # mostly negative: padding must not leak in
    expected = reference_pool(image, size, stride, padding, op)
    result = pool(image, size=size, stride=stride, padding=padding, op=op)
    assert result.shape == expected.shape
    if op == "mean":
        np.testing.assert_allclose(result, expected, rtol=1e-12)
    else:
        assert np.array_equal(result, expected)


def test_same_window_far_larger_than_image():
    # Nothing is padded, so a huge window costs nothing extra.
    image = np.array([[1.0, -2.0], [3.0, 4.0]])
    assert pool(image, size=1000, stride=1, padding="same", op="mean").tolist() == [[1.5] * 2] * 2


class TestWindowParsing:
    @pytest.mark.parametrize("text,expected", [("2", (2, 2)), ("2x3", (2, 3)), ("4X1", (4, 1)), (" 3 ", (3, 3))])
    def test_valid(self, text, expected):
        assert parse_window(text) == expected

    @pytest.mark.parametrize("text", ["0", "abc", "2x", "x2", "2x0", "-1", "2.5", ""])
    def test_invalid(self, text):
        with pytest.raises(UsageFailure, match="is not a window"):
            parse_window(text)


# --------------------------------------------------------------------------
# The command line


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def blog_csv(tmp_path) -> Path:
    path = tmp_path / "A.csv"
    path.write_text(BLOG_CSV)
    return path


class TestCli:
    def test_blog_example_from_csv(self, blog_csv):
        result = invoke("maxpool", "--size", "2", blog_csv, "-")
        assert result.exit_code == 0, result.output
        assert result.stdout == "6,5\n3,7\n"

    def test_mean_of_a_matrix_stays_float(self, blog_csv):
        result = invoke("avgpool", "--size", "2", blog_csv, "-")
        assert result.stdout == "3.5,2\n1.5,3.5\n"

    def test_generic_pool_equals_the_named_commands(self, blog_csv, tmp_path):
        for op, command in (("max", "maxpool"), ("mean", "avgpool"), ("min", "minpool")):
            generic = invoke("pool", "--op", op, "--size", "3", "--stride", "1x2", "--padding", "same", blog_csv, "-")
            named = invoke(command, "--size", "3", "--stride", "1x2", "--padding", "same", blog_csv, "-")
            assert generic.exit_code == named.exit_code == 0
            assert generic.stdout == named.stdout

    @pytest.mark.parametrize("size", ["0", "abc", "2x"])
    def test_bad_size_is_a_usage_error(self, blog_csv, size):
        result = invoke("maxpool", "--size", size, blog_csv, "-")
        assert result.exit_code == 2
        assert "Invalid value for '--size'" in result.output and f"'{size}' is not a window" in result.output

    def test_bad_stride_is_a_usage_error(self, blog_csv):
        result = invoke("pool", "--size", "2", "--stride", "0", blog_csv, "-")
        assert result.exit_code == 2 and "Invalid value for '--stride'" in result.output

    def test_missing_size(self, blog_csv):
        assert invoke("maxpool", blog_csv, "-").exit_code == 2

    def test_missing_input(self, tmp_path):
        result = invoke("maxpool", "--size", "2", tmp_path / "nope.png", tmp_path / "out.png")
        assert result.exit_code == 1
        assert result.output.strip() == f"Error: {tmp_path / 'nope.png'}: no such file"
        assert not (tmp_path / "out.png").exists()

    def test_window_larger_than_image_names_the_file(self, blog_csv, tmp_path):
        result = invoke("maxpool", "--size", "5", blog_csv, tmp_path / "o.csv")
        assert result.exit_code == 1
        assert f"Error: {blog_csv}: the image (4x4) is smaller than the pooling window (5x5)" in result.output
        assert not (tmp_path / "o.csv").exists()

    def test_gray_image_to_stdout(self):
        result = invoke("maxpool", "--size", "2", SAMPLES / "camera.png", "-")
        assert result.exit_code == 0
        out = Image.open(io.BytesIO(result.stdout_bytes))
        assert out.format == "PNG" and out.size == (256, 256)
        expected = pool(pixels(SAMPLES / "camera.png"), size=2)
        assert np.array_equal(np.asarray(out), expected)

    def test_stdin_to_file_with_format(self, tmp_path):
        data = (SAMPLES / "camera.png").read_bytes()
        result = invoke("minpool", "--size", "4", "--format", "npy", "-", tmp_path / "o.bin", input=data)
        assert result.exit_code == 0, result.output
        assert np.load(tmp_path / "o.bin").shape == (128, 128)

    def test_mean_of_8bit_rounds_half_up(self, tmp_path):
        Image.fromarray(np.array([[0, 1, 1, 2, 3, 3]], dtype=np.uint8)).save(tmp_path / "in.png")
        assert invoke("avgpool", "--size", "1x2", tmp_path / "in.png", tmp_path / "o.png").exit_code == 0
        assert pixels(tmp_path / "o.png").tolist() == [[1, 2, 3]]  # 0.5, 1.5, 3.0

    def test_rgb_pools_each_channel(self, tmp_path):
        out = tmp_path / "o.png"
        assert (
            invoke(
                "maxpool", "--size", "3", "--stride", "2", "--padding", "same", SAMPLES / "coffee.png", out
            ).exit_code
            == 0
        )
        image = pixels(SAMPLES / "coffee.png")
        assert Image.open(out).mode == "RGB"
        assert np.array_equal(pixels(out), pool(image, size=3, stride=2, padding="same"))

    def test_alpha_is_pooled_with_the_same_op(self, tmp_path):
        source = SAMPLES / "chelsea-alpha.png"
        rgba = pixels(source)
        for command, op in (("maxpool", "max"), ("avgpool", "mean")):
            out = tmp_path / f"{command}.png"
            assert invoke(command, "--size", "2", source, out).exit_code == 0
            result = pixels(out)
            assert Image.open(out).mode == "RGBA" and result.shape == (150, 225, 4)
            expected_alpha = pool(rgba[:, :, 3], size=2, op=op)
            assert np.array_equal(result[:, :, 3], np.floor(expected_alpha + 0.5))

    def test_16bit_stays_16bit(self, tmp_path):
        out = tmp_path / "o.png"
        assert invoke("avgpool", "--size", "2", SAMPLES / "astronaut-gray16.png", out).exit_code == 0
        assert Image.open(out).mode == "I;16"
        source = np.asarray(Image.open(SAMPLES / "astronaut-gray16.png")).astype(np.uint16)
        expected = np.floor(pool(source, size=2, op="mean") + 0.5)
        assert np.array_equal(np.asarray(Image.open(out)).astype(np.uint16), expected)

    def test_refuses_to_overwrite_the_input(self, tmp_path):
        target = tmp_path / "c.png"
        target.write_bytes((SAMPLES / "camera.png").read_bytes())
        result = invoke("maxpool", "--size", "2", target, target)
        assert result.exit_code == 2 and "refusing to overwrite" in result.output
        assert invoke("maxpool", "--size", "2", "--in-place", target, target).exit_code == 0
        assert Image.open(target).size == (256, 256)

    def test_float_range_into_png_is_refused_before_reading(self, tmp_path):
        result = invoke("maxpool", "--size", "2", "--range", "float", tmp_path / "missing.png", tmp_path / "o.png")
        assert result.exit_code == 2 and "PNG cannot hold --range float values" in result.output
