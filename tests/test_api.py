"""The Python API: one call, typed options, dtypes that follow the input,
errors that name the Python parameter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import signal

import imgconv
from imgconv.errors import KernelError, ParameterError, UsageFailure


class TestFilterImage:
    def test_a_name_is_enough(self):
        image = np.full((3, 3), 100, np.uint8)
        assert imgconv.filter_image(image, "sharpen").tolist() == [[255, 200, 255], [200, 100, 200], [255, 200, 255]]

    def test_names_specs_and_kernels_mix(self):
        image = np.arange(30, dtype=np.uint8).reshape(5, 6)
        kernel = imgconv.parse_spec("1,2,1")
        mixed = imgconv.filter_image(image, ["gaussian3", "0,1,0;1,-4,1;0,1,0", kernel], border="reflect")
        step = imgconv.convolve(image, ["gaussian3", "0,1,0;1,-4,1;0,1,0", kernel], border="reflect")
        assert np.array_equal(mixed, imgconv.finish(step, maxval=255))

    def test_sixteen_bit_stays_sixteen_bit(self):
        result = imgconv.filter_image(np.full((4, 4), 1000, np.uint16), "box:3")
        assert result.dtype == np.uint16
        assert result[1, 1] == 1000 and result[0, 0] == 444  # 4000 / 9, not clipped at 255

    def test_the_one_line_of_the_issue(self):
        script = "import numpy as np, imgconv; print(imgconv.filter_image(np.full((4,4),1000,np.uint16),'box:3').dtype)"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "uint16"

    def test_float_in_float_out(self):
        image = np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
        result = imgconv.filter_image(image, "1,-1")
        assert result.dtype == np.float64
        assert np.array_equal(result, signal.convolve(image, [[1, -1]], mode="same"))

    def test_other_integers_give_floats(self):
        result = imgconv.filter_image(np.array([[1, 2], [3, 4]]), "1/3")
        assert result.dtype == np.float64 and result[0, 0] == pytest.approx(1 / 3)

    def test_dtype_asks_for_another_output(self):
        result = imgconv.filter_image(np.full((2, 2), 200, np.uint8), "2", dtype=np.uint16)
        assert result.dtype == np.uint16 and result.tolist() == [[400, 400], [400, 400]]

    def test_colour_planes(self):
        rgb = np.zeros((4, 4, 3), np.uint8)
        rgb[..., 1] = 10
        assert imgconv.filter_image(rgb, "2")[..., 1].tolist() == [[20] * 4] * 4


class TestErrorsNameTheParameter:
    @pytest.mark.parametrize(
        ("call", "parameter"),
        [
            (lambda: imgconv.filter_image(np.zeros((3, 3)), "blur", border="edge"), "border"),
            (lambda: imgconv.filter_image(np.zeros((3, 3)), "blur", geometry="big"), "geometry"),
            (lambda: imgconv.filter_image(np.zeros((3, 3), np.uint8), "blur", value_range="wide"), "value_range"),
            (lambda: imgconv.filter_image(np.zeros((3, 3), np.uint8), "blur", backend="gpu"), "backend"),
            (lambda: imgconv.filter_image(np.zeros((3, 3), np.uint8), "blur", scale=0), "scale"),
            (lambda: imgconv.filter_image(np.zeros((3, 3), np.uint8), "blur", dtype=np.int8), "dtype"),
            (lambda: imgconv.filter_image(np.zeros((2, 3, 3, 1)), "blur"), "image"),
            (lambda: imgconv.filter_image(np.zeros((3, 3)), []), "kernels"),
            (lambda: imgconv.pool(np.zeros((4, 4)), size=0), "size"),
            (lambda: imgconv.pool(np.zeros((4, 4)), size=2, stride=(1, 0)), "stride"),
            (lambda: imgconv.pool(np.zeros((4, 4)), size=2, op="median"), "op"),
            (lambda: imgconv.pool(np.zeros((2, 2, 2, 2)), size=2), "image"),
            (lambda: imgconv.finish(np.zeros(2), maxval=255, value_range="wrap"), "value_range"),
        ],
    )
    def test_value_errors_name_the_python_parameter(self, call, parameter):
        with pytest.raises(ParameterError) as caught:
            call()
        assert isinstance(caught.value, ValueError)
        assert caught.value.parameter == parameter and str(caught.value).startswith(f"{parameter}: ")
        assert "--" not in str(caught.value)

    def test_a_bad_kernel_is_a_value_error(self):
        with pytest.raises(ValueError, match="row 2 has 1 values") as caught:
            imgconv.filter_image(np.zeros((3, 3)), "1,2;3")
        assert isinstance(caught.value, KernelError) and isinstance(caught.value, UsageFailure)

    def test_the_command_line_names_its_option(self, run, small_gray, tmp_path):
        result = run("maxpool", "--size", "2", "--stride", "2", "--padding", "valid", small_gray, tmp_path / "o.png")
        assert result.exit_code == 0
        result = run("apply", "-k", "box:9", "--backend", "pil", small_gray, tmp_path / "o.png")
        assert result.exit_code == 2 and "--backend: backend 'pil' cannot do this" in result.output
        assert "use --backend scipy" in result.output


def test_the_public_names_are_all_there():
    assert "filter_image" in imgconv.__all__ and "apply_kernels" not in imgconv.__all__
    for name in imgconv.__all__:
        assert getattr(imgconv, name) is not None
    with pytest.raises(AttributeError):
        imgconv.apply_kernels  # noqa: B018 - the old alias is gone


def test_a_type_checker_sees_real_types(tmp_path):
    """mypy on a user's script: real signatures, Literal options, py.typed."""
    script = tmp_path / "user.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import imgconv

            out = imgconv.filter_image(np.zeros((3, 3), np.uint8), "sharpen", border="reflect")
            reveal_type(out)
            reveal_type(imgconv.parse_spec)
            imgconv.filter_image(np.zeros((3, 3)), "blur", border="edge")
            imgconv.pool(np.zeros((4, 4)), size=2, op="median")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    lines = result.stdout.splitlines()
    assert any('Revealed type is "numpy.ndarray' in line for line in lines), result.stdout
    assert any("def (spec: str, registry:" in line and "-> imgconv.kernels.model.Kernel" in line for line in lines)
    assert any(
        'Argument "border" to "filter_image" has incompatible type "Literal[\'edge\']"' in line for line in lines
    )
    assert any('Argument "op" to "pool" has incompatible type "Literal[\'median\']"' in line for line in lines)
