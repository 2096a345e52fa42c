"""The command line, through click's CliRunner and real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import pixels
from PIL import Image
from scipy import signal

A_CSV = "255,7,3\n212,240,4\n218,216,230\n"


class TestApply:
    def test_sharpen_matches_scipy(self, run, small_gray, tmp_path):
        out = tmp_path / "out.png"
        result = run("apply", "--kernel", "sharpen", small_gray, out)
        assert result.exit_code == 0, result.output
        assert result.output == ""  # quiet unless asked
        image = pixels(small_gray).astype(float)
        expected = signal.convolve(image, np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]), mode="same", method="direct")
        assert np.array_equal(pixels(out), np.clip(np.floor(expected + 0.5), 0, 255).astype(np.uint8))

    def test_blog_example_prints_csv(self, run, tmp_path):
        (tmp_path / "A.csv").write_text(A_CSV)
        result = run("apply", "-k", "1,-1;-1,1", "--geometry", "full", tmp_path / "A.csv", "-")
        assert result.exit_code == 0
        assert result.output == "255,-248,-4,-3\n-43,276,-232,-1\n6,-30,250,-226\n-218,2,-14,230\n"

    def test_matrix_to_npy_keeps_floats(self, run, tmp_path):
        (tmp_path / "A.csv").write_text(A_CSV)
        assert run("apply", "-k", "box:2", tmp_path / "A.csv", tmp_path / "o.npy").exit_code == 0
        assert np.load(tmp_path / "o.npy")[0, 0] == pytest.approx(255 / 4)

    def test_scale_option_gives_the_gaussian(self, run, small_rgb, tmp_path):
        run("apply", "-k", "gaussian3", small_rgb, tmp_path / "a.png")
        run("apply", "-k", "1,2,1;2,4,2;1,2,1", "--scale", "16", small_rgb, tmp_path / "b.png")
        assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

    def test_fractions_equal_the_registry_blur(self, run, small_gray, tmp_path):
        run("apply", "-k", "blur", small_gray, tmp_path / "a.png")
        run("apply", "-k", "3x3:" + ",".join(["1/9"] * 9), small_gray, tmp_path / "b.png")
        assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

    def test_chained_kernels_round_once(self, run, small_gray, tmp_path):
        run("apply", "-k", "gaussian3", "-k", "edge3", "--range", "float", small_gray, tmp_path / "c.npy")
        image = pixels(small_gray).astype(float)
        step = signal.convolve(image, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16, mode="same", method="direct")
        both = signal.convolve(step, np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]), mode="same", method="direct")
        assert np.allclose(np.load(tmp_path / "c.npy"), both, atol=1e-9)

    def test_correlate_flips_gradients(self, run, small_gray, tmp_path):
        run("apply", "-k", "sobel-x", "--range", "float", small_gray, tmp_path / "conv.npy")
        run("apply", "-k", "sobel-x", "--correlate", "--range", "float", small_gray, tmp_path / "corr.npy")
        assert np.array_equal(np.load(tmp_path / "conv.npy")[1:-1, 1:-1], -np.load(tmp_path / "corr.npy")[1:-1, 1:-1])

    @pytest.mark.parametrize(("geometry", "shape"), [("same", (48, 64)), ("full", (52, 68)), ("valid", (44, 60))])
    def test_geometry_sets_the_size(self, run, small_gray, tmp_path, geometry, shape):
        run("apply", "-k", "gaussian5", "--geometry", geometry, small_gray, tmp_path / "g.png")
        assert pixels(tmp_path / "g.png").shape == shape

    def test_alpha_is_carried_unchanged(self, run, samples, tmp_path):
        out = tmp_path / "cat.png"
        assert run("apply", "-k", "gaussian5", samples / "chelsea-alpha.png", out).exit_code == 0
        before, after = Image.open(samples / "chelsea-alpha.png"), Image.open(out)
        assert after.mode == "RGBA"
        assert np.array_equal(np.asarray(before)[:, :, 3], np.asarray(after)[:, :, 3])

    def test_sixteen_bit_stays_sixteen_bit(self, run, samples, tmp_path):
        out = tmp_path / "a16.png"
        assert run("apply", "-k", "gaussian3", samples / "astronaut-gray16.png", out).exit_code == 0
        assert Image.open(out).mode == "I;16" and pixels(out).max() > 255
        assert (
            run(
                "apply", "-k", "gaussian3", "--depth", "8", samples / "astronaut-gray16.png", tmp_path / "a8.png"
            ).exit_code
            == 0
        )
        assert Image.open(tmp_path / "a8.png").mode == "L"

    def test_gray_option(self, run, small_rgb, tmp_path):
        run("apply", "-k", "identity", "--color", "gray", small_rgb, tmp_path / "g.png")
        assert np.array_equal(pixels(tmp_path / "g.png"), np.asarray(Image.open(small_rgb).convert("L")))

    @pytest.mark.parametrize("value_range", ["clip", "abs", "normalize"])
    def test_ranges(self, run, small_gray, tmp_path, value_range):
        out = tmp_path / f"{value_range}.png"
        assert run("apply", "-k", "edge3", "--range", value_range, small_gray, out).exit_code == 0
        values = pixels(out)
        if value_range == "normalize":
            assert values.min() == 0 and values.max() == 255

    def test_relu(self, run, tmp_path):
        (tmp_path / "m.csv").write_text("0,0,0\n0,1,0\n0,0,0\n")
        result = run("apply", "-k", "edge3", "--relu", tmp_path / "m.csv", "-")
        assert result.output == "0,0,0\n0,8,0\n0,0,0\n"

    def test_stdin_to_stdout(self, run, small_gray, tmp_path):
        result = run("apply", "-k", "blur", "-", "-", input=small_gray.read_bytes())
        assert result.exit_code == 0
        run("apply", "-k", "blur", small_gray, tmp_path / "f.png")
        assert result.stdout_bytes == (tmp_path / "f.png").read_bytes()

    def test_format_option_for_stdout(self, run, small_gray):
        result = run("apply", "-k", "blur", "--format", "jpeg", small_gray, "-")
        assert result.stdout_bytes[:3] == b"\xff\xd8\xff"

    def test_same_input_same_bytes(self, run, small_rgb, tmp_path):
        run("apply", "-k", "unsharp5", small_rgb, tmp_path / "1.png")
        run("apply", "-k", "unsharp5", small_rgb, tmp_path / "2.png")
        assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()

    def test_registry_option_and_environment(self, run, small_gray, tmp_path):
        reg = tmp_path / "r.yaml"
        reg.write_text("kernels:\n  - name: twice\n    values: [[2]]\n")
        assert run("apply", "-k", "twice", "--registry", reg, small_gray, tmp_path / "t.png").exit_code == 0
        assert np.array_equal(pixels(tmp_path / "t.png"), np.clip(pixels(small_gray).astype(int) * 2, 0, 255))
        result = run("apply", "-k", "twice", small_gray, tmp_path / "e.png", env={"IMGCONV_KERNELS": str(reg)})
        assert result.exit_code == 0


class TestErrors:
    """Exit 2 for usage, 1 for runtime; one line, no traceback, no file left."""

    def check(self, result, code, *needles, folder=None, allowed=()):
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        for needle in needles:
            assert needle in result.output, result.output
        if folder is not None:
            assert sorted(p.name for p in folder.iterdir()) == sorted(allowed)

    def test_unknown_kernel_suggests(self, run, small_gray, tmp_path):
        result = run("apply", "-k", "gausian5", small_gray, tmp_path / "o.png")
        self.check(result, 2, "unknown kernel 'gausian5'", "did you mean 'gaussian5'")

    def test_malformed_spec_names_the_position(self, run, small_gray, tmp_path):
        self.check(run("apply", "-k", "0,-1,0;-1,x,-1", small_gray, tmp_path / "o.png"), 2, "value 5 (row 2, column 2)")

    @pytest.mark.parametrize("spec", ["1,2;3", "", "1,nan", "inf"])
    def test_bad_kernels(self, run, small_gray, tmp_path, spec):
        self.check(run("apply", "-k", spec, small_gray, tmp_path / "o.png"), 2, "kernel")

    def test_missing_input(self, run, tmp_path):
        result = run("apply", "-k", "blur", tmp_path / "missing.png", tmp_path / "o.png")
        self.check(result, 1, f"Error: {tmp_path / 'missing.png'}: no such file", folder=tmp_path)

    def test_not_an_image(self, run, tmp_path):
        (tmp_path / "text.png").write_text("not a png")
        self.check(
            run("apply", "-k", "blur", tmp_path / "text.png", tmp_path / "o.png"),
            1,
            "not an image",
            folder=tmp_path,
            allowed=["text.png"],
        )

    def test_output_equal_to_input_is_refused(self, run, small_gray, tmp_path):
        before = small_gray.read_bytes()
        self.check(run("apply", "-k", "blur", small_gray, small_gray), 2, "refusing to overwrite", "--in-place")
        assert small_gray.read_bytes() == before
        assert run("apply", "-k", "blur", "--in-place", small_gray, small_gray).exit_code == 0
        assert small_gray.read_bytes() != before

    def test_float_into_png_is_a_usage_error(self, run, small_gray, tmp_path):
        out = tmp_path / "sub"
        self.check(
            run("apply", "-k", "blur", "--range", "float", small_gray, out / "o.png"), 2, "cannot hold --range float"
        )
        assert not out.exists()

    def test_unknown_extension(self, run, small_gray, tmp_path):
        self.check(run("apply", "-k", "blur", small_gray, tmp_path / "o.xyz"), 2, "unknown output extension")

    def test_bad_choice_lists_the_choices(self, run, small_gray, tmp_path):
        self.check(
            run("apply", "-k", "blur", "--border", "edge", small_gray, tmp_path / "o.png"),
            2,
            "'edge' is not one of",
            "zero",
            "wrap",
        )

    def test_valid_geometry_too_small(self, run, tmp_path):
        (tmp_path / "m.csv").write_text("1,2\n3,4\n")
        self.check(
            run("apply", "-k", "gaussian5", "--geometry", "valid", tmp_path / "m.csv", tmp_path / "o.csv"),
            1,
            "smaller than kernel 'gaussian5'",
            folder=tmp_path,
            allowed=["m.csv"],
        )

    def test_alpha_into_jpeg(self, run, samples, tmp_path):
        self.check(
            run("apply", "-k", "blur", samples / "chelsea-alpha.png", tmp_path / "c.jpg"),
            2,
            "cannot hold the alpha",
            folder=tmp_path,
        )

    def test_bad_registry_names_file_and_line(self, run, small_gray, tmp_path):
        reg = tmp_path / "r.yaml"
        reg.write_text("kernels:\n  - name: a\n    values: [[1, 2], [3]]\n")
        self.check(
            run("apply", "-k", "blur", "--registry", reg, small_gray, tmp_path / "o.png"),
            2,
            f"{reg}, line 2",
            "row 2 has 1 values",
        )

    def test_zero_scale(self, run, small_gray, tmp_path):
        self.check(run("apply", "-k", "blur", "--scale", "0", small_gray, tmp_path / "o.png"), 2, "--scale")


class TestKernelsCommands:
    def test_list_plain_when_piped(self, run):
        result = run("kernels", "list")
        assert result.exit_code == 0
        lines = result.output.splitlines()
        assert lines[0].split()[:5] == ["name", "size", "sum", "scale", "separable"]
        assert any(line.startswith("unsharp5 ") and "-256" in line for line in lines)

    def test_list_json(self, run):
        data = json.loads(run("kernels", "list", "--json").output)
        by_name = {k["name"]: k for k in data}
        assert by_name["sharpen"]["values"] == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
        assert by_name["gaussian5"]["scale"] == 256 and by_name["gaussian5"]["size"] == [5, 5]
        assert {"name", "size", "values", "scale", "offset", "description"} <= set(by_name["blur"])

    def test_list_rich_table_on_a_terminal(self):
        # rich draws box characters only when stdout is a terminal.
        script = "import sys; sys.stdout.isatty = lambda: True; from imgconv.cli import main; main(['kernels', 'list'])"
        output = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}
        ).stdout
        assert "┃" in output or "│" in output
        assert "unsharp5" in output

    def test_show_fractions_and_factors(self, run):
        result = run(
            "kernels", "show", "3x3:" + ",".join(["1/16", "1/8", "1/16", "1/8", "1/4", "1/8", "1/16", "1/8", "1/16"])
        )
        assert result.exit_code == 0
        assert "1/16" in result.output and "sum:       1" in result.output
        assert "separable: yes" in result.output
        assert "true convolution" in result.output

    def test_show_registry_kernel(self, run):
        output = run("kernels", "show", "unsharp5").output
        assert "-476" in output and "scale:     -256" in output and "separable: no" in output

    def test_show_parametric(self, run):
        assert "9x9" in run("kernels", "show", "gaussian:sigma=2,size=9").output

    def test_show_unknown(self, run):
        result = run("kernels", "show", "sharpe")
        assert result.exit_code == 2 and "did you mean 'sharpen'" in result.output


class TestProcess:
    def test_python_dash_m_and_help(self):
        result = subprocess.run([sys.executable, "-m", "imgconv", "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "apply" in result.stdout

    def test_runtime_error_is_one_line_on_stderr(self, tmp_path):
        result = subprocess.run(
            [sys.executable, "-m", "imgconv", "apply", "-k", "blur", str(tmp_path / "no.png"), str(tmp_path / "o.png")],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1
        assert result.stderr == f"Error: {tmp_path / 'no.png'}: no such file\n"
        assert result.stdout == ""

    def test_help_does_not_load_numpy(self):
        script = "import sys; from imgconv.cli import main\ntry:\n  main(['--help'])\nexcept SystemExit: pass\nprint('numpy' in sys.modules, 'PIL' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert result.stdout.strip().endswith("False False")


class TestDepth:
    """--depth rescales levels: 8 -> 16 multiplies by 257, 16 -> 8 divides (rounding half up)."""

    def test_eight_to_sixteen(self, run, small_gray, tmp_path):
        assert run("apply", "-k", "identity", "--depth", "16", small_gray, tmp_path / "o.png").exit_code == 0
        assert np.array_equal(pixels(tmp_path / "o.png").astype(int), pixels(small_gray).astype(int) * 257)

    def test_sixteen_to_eight(self, run, samples, tmp_path):
        source = samples / "astronaut-gray16.png"
        assert run("apply", "-k", "identity", "--depth", "8", source, tmp_path / "o.png").exit_code == 0
        expected = np.floor(pixels(source).astype(float) / 257 + 0.5)
        assert np.array_equal(pixels(tmp_path / "o.png"), expected.astype(np.uint8))

    def test_pooling_follows_the_same_rule(self, run, small_gray, tmp_path):
        assert run("maxpool", "--size", "2", "--depth", "16", small_gray, tmp_path / "p.png").exit_code == 0
        assert int(pixels(tmp_path / "p.png").max()) == int(pixels(small_gray).max()) * 257

    def test_tiny_scale_refused(self, run, small_gray, tmp_path):
        result = run("apply", "-k", "blur", "--scale", "1e-320", small_gray, tmp_path / "o.png")
        assert result.exit_code == 2 and "--scale" in result.output


# A matrix's channels are plain planes: a format takes them only if it can hold that many.
@pytest.mark.parametrize("channels", [2, 4, 5])
@pytest.mark.parametrize("ext", [".ppm", ".pgm", ".jpg", ".bmp", ".png", ".webp", ".gif", ".tif", ".npy"])
def test_a_matrix_of_many_channels_goes_only_where_they_fit(run, tmp_path, channels, ext):
    values = (np.arange(6 * 5 * channels).reshape(6, 5, channels) * 7 % 256).astype(np.uint8)
    np.save(tmp_path / "m.npy", values)
    target = tmp_path / f"o{ext}"
    result = run("apply", "-k", "0,0,0;0,1,0;0,0,0", tmp_path / "m.npy", target)
    any_count = ext in (".tif", ".npy")
    alpha = ext in (".png", ".webp", ".gif")
    if any_count or (alpha and channels in (2, 4)):
        assert result.exit_code == 0, result.stderr
        if ext in (".png", ".tif", ".npy"):  # lossless: the planes come back as they went in
            import tifffile

            back = {".npy": np.load, ".tif": tifffile.imread}.get(ext, pixels)(target)
            assert back.reshape(values.shape).tolist() == values.tolist()
    else:
        assert result.exit_code == 2
        held = "gray or RGB, with or without alpha" if alpha else "gray or RGB"
        assert f"holds {held}; this result has {channels} channels, write .tif or .npy" in result.stderr
        assert result.stderr.count("\n") <= 4 and not target.exists()


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_a_csv_with_a_byte_order_mark_is_read(run, tmp_path, stdin):
    """Spreadsheets save UTF-8 CSV with a byte-order mark; it is not part of the first value."""
    data = b"\xef\xbb\xbf1,2\n3,4\n"
    (tmp_path / "m.csv").write_bytes(data)
    args = ("-", "-") if stdin else (tmp_path / "m.csv", "-")
    result = run("apply", "-k", "1", *args, "--format", "csv", input=data if stdin else None)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "1,2\n3,4\n"
