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


class TestImageArgument:
    """One check for the ``image`` of filter_image, convolve and pool."""

    @pytest.mark.parametrize(
        "image",
        [
            np.array([["a", "b"], ["c", "d"]]),
            np.zeros((2, 2), "datetime64[s]"),
            np.zeros((2, 2), complex),
            np.array([[1, None], [2, 3]], dtype=object),
            np.zeros((0, 3), np.uint8),
            np.zeros((3, 0)),
            np.zeros((3, 3, 0)),
            np.zeros((2, 2, 2, 2)),
            np.zeros(5),
            np.float64(3.0),
        ],
        ids=["str", "datetime", "complex", "object", "0x3", "3x0", "3x3x0", "4-D", "1-D", "0-D"],
    )
    @pytest.mark.parametrize(
        "call",
        [
            lambda image: imgconv.filter_image(image, "box:3"),
            lambda image: imgconv.filter_image(image, "box:3", geometry="full"),
            lambda image: imgconv.convolve(image, "box:3", geometry="valid"),
            lambda image: imgconv.pool(image, size=2),
            lambda image: imgconv.pool(image, size=2, op="mean"),
        ],
        ids=["filter", "filter-full", "convolve-valid", "maxpool", "meanpool"],
    )
    def test_what_is_not_an_image_names_image(self, call, image):
        with pytest.raises(ParameterError) as caught:
            call(image)
        assert caught.value.parameter == "image" and str(caught.value).startswith("image: expected ")
        assert "--" not in str(caught.value)

    def test_big_endian_is_read_by_value(self):
        native = np.full((4, 4), 1000, np.uint16)
        swapped = native.astype(">u2")
        result = imgconv.filter_image(swapped, "box:3")
        assert result.dtype == np.dtype(np.uint16) and result.dtype.isnative
        assert result.tolist()[0] == [444, 667, 667, 444]  # 4000/9, 6000/9 rounded half up
        pooled = imgconv.pool(swapped, size=2)
        assert pooled.dtype == np.dtype(np.uint16) and pooled.tolist() == [[1000, 1000], [1000, 1000]]
        assert imgconv.convolve(swapped, "1").dtype == np.float64

    def test_big_endian_in_linear_light(self):
        native = np.array([[0, 65535]], np.uint16)
        result = imgconv.filter_image(native.astype(">u2"), "1,1", scale=2, linear=True)
        assert result.dtype == np.uint16
        assert np.array_equal(result, imgconv.filter_image(native, "1,1", scale=2, linear=True))

    def test_dtype_asks_by_value_too(self):
        result = imgconv.filter_image(np.full((2, 2), 7, np.uint8), "2", dtype=">u2")
        assert result.dtype == np.dtype(np.uint16) and result.dtype.isnative and result.tolist() == [[14, 14]] * 2

    @pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint32, np.float16, np.float32, bool])
    def test_other_types_give_float64(self, dtype):
        # 1, 2; 3, 4 (or 1, 0; 1, 1 as bools) summed over a 2x2 'valid' window: 10 (3).
        values = [[1, 0], [1, 1]] if dtype is bool else [[1, 2], [3, 4]]
        image = np.array(values, dtype)
        result = imgconv.filter_image(image, "1,1;1,1", geometry="valid")
        assert result.dtype == np.float64 and result.tolist() == [[3.0 if dtype is bool else 10.0]]

    def test_negative_values_of_signed_integers(self):
        image = np.array([[-100, 50, -3]], np.int8)
        assert imgconv.filter_image(image, "1,1", geometry="valid").tolist() == [[-50.0, 47.0]]
        assert imgconv.pool(image, size=(1, 2), padding="same").tolist() == [[50, -3]]
        assert imgconv.pool(image, size=(1, 2), padding="same").dtype == np.int8

    def test_views_filter_as_their_copies(self):
        base = np.arange(80, dtype=np.uint8).reshape(8, 10)
        for view in (base[::-1, ::-2], base[1:7:2, 3:], base.T, np.broadcast_to(base[:1], (4, 10))):
            assert not view.flags.c_contiguous
            assert np.array_equal(imgconv.filter_image(view, "sharpen"), imgconv.filter_image(view.copy(), "sharpen"))
            assert np.array_equal(imgconv.pool(view, size=2), imgconv.pool(view.copy(), size=2))
        # Hand-computed: rows 7 and 6 of the view hold 79, 77, 75, 73, 71 and 69, 67, 65, 63, 61.
        assert imgconv.pool(base[::-1, ::-2], size=2).tolist() == [[79, 75], [59, 55], [39, 35], [19, 15]]

    def test_bool_pooling_is_any_and_all(self):
        image = np.array([[True, False, False, False], [False, False, False, False]])
        assert imgconv.pool(image, size=2).tolist() == [[True, False]]
        assert imgconv.pool(image, size=2).dtype == bool
        assert imgconv.pool(image, size=2, op="min").tolist() == [[False, False]]
        assert imgconv.pool(~image, size=2, op="min").tolist() == [[False, True]]
        assert imgconv.pool(image, size=2, op="mean").tolist() == [[0.25, 0.0]]

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    @pytest.mark.parametrize("dtype", ["uint8", "uint16", "float64", None])
    def test_non_finite_values_are_refused(self, bad, dtype):
        image = np.ones((3, 3))
        image[1, 2] = bad
        with pytest.raises(ParameterError, match=r"^image: holds NaN or infinite values"):
            imgconv.filter_image(image, "box:3", dtype=dtype)

    def test_convolve_and_pool_carry_nan_as_numpy_does(self):
        image = np.array([[1.0, np.nan, 3.0, 4.0]])
        assert np.isnan(imgconv.convolve(image, "1,1", geometry="valid")[0, :2]).all()
        assert imgconv.convolve(image, "1,1", geometry="valid")[0, 2] == 7.0
        assert imgconv.pool(image, size=(1, 2)).tolist()[0][1] == 4.0
        assert np.isnan(imgconv.pool(image, size=(1, 2))[0, 0])


class TestGeometryThatLeavesNothing:
    def test_the_library_names_geometry(self):
        with pytest.raises(ParameterError) as caught:
            imgconv.filter_image(np.zeros((2, 2), np.uint8), "box:3", geometry="valid")
        assert str(caught.value) == (
            "geometry: the image (2x2) is smaller than kernel 'box:3' (3x3), so 'valid' leaves nothing; "
            "use geometry='same'"
        )

    def test_a_later_kernel_that_no_longer_fits(self):
        with pytest.raises(ParameterError, match=r"^geometry: the image \(1x5\) is smaller than kernel 'box:3'"):
            imgconv.convolve(np.zeros((3, 5)), ["1;1;1", "box:3"], geometry="valid")

    def test_the_library_names_padding(self):
        with pytest.raises(ParameterError) as caught:
            imgconv.pool(np.zeros((2, 3)), size=3)
        assert str(caught.value) == (
            "padding: the image (2x3) is smaller than the pooling window (3x3), so 'valid' leaves nothing; "
            "use padding='same'"
        )

    def test_the_command_keeps_its_words_and_exit_code(self, run, tmp_path):
        """The file is at fault on the command line: exit 1, the option's words, as before."""
        source = tmp_path / "m.csv"
        source.write_text("1,2\n3,4\n")
        result = run("apply", "-k", "box:3", "--geometry", "valid", source, tmp_path / "o.csv")
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {source}: the image (2x2) is smaller than kernel 'box:3' (3x3), so --geometry valid "
            "leaves nothing; use --geometry same or full\n"
        )
        result = run("maxpool", "--size", "3", source, tmp_path / "o.csv")
        assert result.exit_code == 1
        assert result.output == (
            f"Error: {source}: the image (2x2) is smaller than the pooling window (3x3), so --padding valid "
            "leaves nothing; use --padding same\n"
        )
        assert not (tmp_path / "o.csv").exists()


class TestPoolArguments:
    @pytest.mark.parametrize("bad", [(2,), (2, 2, 2), 2.5, (2.0, 2), "2x2", "2", None, True, (2, "a"), {2: 2}])
    @pytest.mark.parametrize("parameter", ["size", "stride"])
    def test_window_forms_are_checked_up_front(self, parameter, bad):
        if parameter == "stride" and bad is None:
            bad = [None, None]  # None alone is the default stride, the window's size
        arguments = {"size": 2, parameter: bad}
        with pytest.raises(ParameterError) as caught:
            imgconv.pool(np.zeros((4, 4)), **arguments)
        assert caught.value.parameter == parameter
        assert str(caught.value).startswith(f"{parameter}: expected N or (rows, cols) with positive integers, got ")

    @pytest.mark.parametrize(("parameter", "bad"), [("padding", 1), ("padding", None), ("op", None), ("op", ["max"])])
    def test_words_are_checked_up_front(self, parameter, bad):
        with pytest.raises(ParameterError, match=f"^{parameter}: .* is not one of"):
            imgconv.pool(np.zeros((4, 4)), size=2, **{parameter: bad})

    def test_numpy_integers_and_lists_are_windows(self):
        image = np.arange(16).reshape(4, 4)
        expected = [[5, 7], [13, 15]]
        assert imgconv.pool(image, size=np.int64(2)).tolist() == expected
        assert imgconv.pool(image, size=[2, 2], stride=(np.uint8(2), 2)).tolist() == expected

    def test_the_options_object_checks_the_same_way(self):
        with pytest.raises(ParameterError, match=r"^size: expected N or"):
            imgconv.PoolOptions(size="2x2")


class TestFilterArguments:
    @pytest.mark.parametrize(
        ("arguments", "parameter"),
        [
            ({"scale": "2"}, "scale"),
            ({"scale": True}, "scale"),
            ({"offset": None}, "offset"),
            ({"relu": "no"}, "relu"),
            ({"correlate": None}, "correlate"),
            ({"linear": 1}, "linear"),
            ({"backend": None}, "backend"),
            ({"backend": 1}, "backend"),
            ({"value_range": ["clip"]}, "value_range"),
        ],
    )
    def test_types_are_checked_up_front(self, arguments, parameter):
        with pytest.raises(ParameterError) as caught:
            imgconv.filter_image(np.zeros((3, 3), np.uint8), "box:3", **arguments)
        assert caught.value.parameter == parameter and "--" not in str(caught.value)

    def test_numpy_scalars_and_fractions_are_numbers(self):
        from fractions import Fraction

        image = np.full((1, 1), 100, np.uint8)
        assert imgconv.filter_image(image, "1", scale=np.float32(4), offset=Fraction(1, 2)).tolist() == [[26]]
        assert imgconv.filter_image(image, "1", relu=np.bool_(True)).tolist() == [[100]]

    @pytest.mark.parametrize("bad", [3, None, 1.5])
    def test_kernels_that_are_not_kernels(self, bad):
        with pytest.raises(ParameterError, match=r"^kernels: expected a kernel name, spec or Kernel"):
            imgconv.filter_image(np.zeros((3, 3)), bad)

    def test_a_tuple_or_generator_of_kernels(self):
        image = np.array([[1.0, 2.0, 4.0]])
        assert imgconv.convolve(image, (k for k in ["2", "3"])).tolist() == [[6.0, 12.0, 24.0]]


class TestRegistryArgument:
    def test_a_path_is_loaded(self, tmp_path):
        path = tmp_path / "mine.yaml"
        path.write_text("kernels:\n  - name: triple\n    values: [[3]]\n")
        image = np.array([[1, 2]], np.uint8)
        for registry in (str(path), path):
            assert imgconv.filter_image(image, ["triple", "identity"], registry=registry).tolist() == [[3, 6]]
            assert imgconv.convolve(image, "triple", registry=registry).tolist() == [[3.0, 6.0]]
        assert imgconv.load_registry(str(path)).get("triple").shape == (1, 1)  # one file, not its characters

    def test_a_missing_file_names_the_file(self, tmp_path):
        with pytest.raises(KernelError, match="no such file") as caught:
            imgconv.filter_image(np.zeros((2, 2)), "box:3", registry=str(tmp_path / "none.yaml"))
        assert isinstance(caught.value, ValueError)

    @pytest.mark.parametrize("bad", [3, ["a.yaml"], {"kernels": []}])
    def test_anything_else_names_registry(self, bad):
        with pytest.raises(ParameterError, match=r"^registry: expected a Registry or the path of a registry file"):
            imgconv.filter_image(np.zeros((2, 2)), "box:3", registry=bad)


def test_parse_spec_takes_a_registry_path_and_refuses_what_is_not_a_spec(tmp_path):
    from imgconv.kernels import parse_spec

    (tmp_path / "mine.yaml").write_text("kernels:\n  - name: twice\n    values: [[2]]\n")
    assert parse_spec("twice", tmp_path / "mine.yaml").values == ((2,),)
    assert parse_spec("sharpen", str(tmp_path / "mine.yaml")).shape == (3, 3)  # the built-ins stay
    with pytest.raises(ParameterError, match=r"^spec: a kernel spec is a str, got int$"):
        parse_spec(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sigma", "size", "message"),
    [("a", None, "sigma: expected a number, got str"), (1.0, 2.5, "size: expected a whole number, got float")],
)
def test_gaussian_names_a_bad_argument(sigma, size, message):
    from imgconv.kernels.grammar import gaussian

    with pytest.raises(ParameterError, match=rf"^{message}$"):
        gaussian(sigma, size)
    assert gaussian(np.float32(1.0), np.int64(3)).shape == (3, 3)


def test_finish_refuses_values_without_a_level_and_a_bad_maxval():
    with pytest.raises(ParameterError, match=r"^values: holds NaN"):
        imgconv.finish(np.array([1.0, np.inf]), maxval=255)
    with pytest.raises(ParameterError, match=r"^maxval: expected a positive whole number or None, got '255'$"):
        imgconv.finish(np.array([1.0]), maxval="255")  # type: ignore[arg-type]
    assert imgconv.finish(np.array([np.nan]), maxval=None, value_range="float").tolist() != [0]
    assert imgconv.finish(np.array([2.5, 300.0]), maxval=255).tolist() == [3, 255]
