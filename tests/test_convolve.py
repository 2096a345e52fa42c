"""The pipeline on tiny hand-computed matrices, and against scipy.signal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import signal

from imgconv.choices import BORDERS, GEOMETRIES
from imgconv.errors import ParameterError
from imgconv.filtering import convolve
from imgconv.finishing import Finish, finish
from imgconv.kernels import load_registry, parse_spec
from imgconv.padding import NUMPY_PAD_MODES, align_alpha
from imgconv.plan import FilterOptions, FilterPlan

# The blog post's scipy example: signal.convolve(A, B).
A = np.array([[255, 7, 3], [212, 240, 4], [218, 216, 230]])
B = "1,-1;-1,1"
A_CONV_B = [[255, -248, -4, -3], [-43, 276, -232, -1], [6, -30, 250, -226], [-218, 2, -14, 230]]


def reference(image: np.ndarray, kernel: np.ndarray, geometry: str, border: str) -> np.ndarray:
    """The README's definition, written independently with scipy.signal.

    Pad by the kernel size minus one with numpy.pad, take the full
    convolution, cut the original image's full window, then scipy's window
    for the geometry.
    """
    kh, kw = kernel.shape
    h, w = image.shape
    padded = np.pad(image.astype(float), ((kh - 1, kh - 1), (kw - 1, kw - 1)), mode=NUMPY_PAD_MODES[border])
    full = signal.convolve(padded, kernel, mode="full")[kh - 1 : kh - 1 + h + kh - 1, kw - 1 : kw - 1 + w + kw - 1]
    if geometry == "full":
        return full
    if geometry == "same":
        return full[(kh - 1) // 2 : (kh - 1) // 2 + h, (kw - 1) // 2 : (kw - 1) // 2 + w]
    return full[kh - 1 : h, kw - 1 : w]


class TestHandComputed:
    def test_blog_example_full(self):
        assert convolve(A, [parse_spec(B)], geometry="full").tolist() == A_CONV_B

    def test_blog_example_same_and_valid_are_windows_of_full(self):
        full = np.array(A_CONV_B)
        assert convolve(A, [parse_spec(B)]).tolist() == full[0:3, 0:3].tolist()
        assert convolve(A, [parse_spec(B)], geometry="valid").tolist() == full[1:3, 1:3].tolist()

    def test_three_by_three_by_hand(self):
        image = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
        # Centre of the sharpen kernel: 5*5 - (2 + 4 + 6 + 8) = 5; corner with zero border: 5*1 - 2 - 4 = -1.
        result = convolve(image, [parse_spec("sharpen")])
        assert result[1, 1] == 5 and result[0, 0] == -1
        assert result.tolist() == [[-1, 1, 7], [7, 5, 13], [23, 19, 31]]

    def test_scale_and_offset_of_a_kernel(self):
        k = parse_spec("blur")
        assert convolve(np.full((3, 3), 9), [k], geometry="valid").tolist() == [[9.0]]

    def test_chained_kernels_do_not_round_between_steps(self):
        image = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
        once = convolve(image, [parse_spec("blur"), parse_spec("blur")], geometry="full")
        assert once[3, 3] == pytest.approx(9 / 81)  # 3x3 box twice: 1-2-3-2-1 outer product / 81
        assert once.sum() == pytest.approx(1.0)

    def test_channels_are_filtered_independently(self):
        image = np.stack([A, A * 2, A * 3], axis=2)
        result = convolve(image, [parse_spec(B)], geometry="full")
        for c in range(3):
            assert result[:, :, c].tolist() == (np.array(A_CONV_B) * (c + 1)).tolist()

    def test_valid_needs_the_kernel_to_fit(self):
        with pytest.raises(ParameterError, match=r"^geometry: .*smaller than kernel"):
            convolve(np.ones((2, 2)), [parse_spec("sharpen")], geometry="valid")


class TestOrientation:
    """Impulse responses prove orientation in every border and geometry."""

    KERNEL = "1,2,3;4,5,6;7,8,9"

    @pytest.mark.parametrize("border", BORDERS)
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    def test_convolution_reproduces_the_kernel(self, border, geometry):
        impulse = np.zeros((7, 7))
        impulse[3, 3] = 1
        result = convolve(impulse, [parse_spec(self.KERNEL)], geometry=geometry, border=border)
        centre = {"same": 3, "full": 4, "valid": 2}[geometry]
        window = result[centre - 1 : centre + 2, centre - 1 : centre + 2]
        assert window.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]

    @pytest.mark.parametrize("border", BORDERS)
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    def test_correlation_rotates_it(self, border, geometry):
        impulse = np.zeros((7, 7))
        impulse[3, 3] = 1
        result = convolve(impulse, [parse_spec(self.KERNEL)], geometry=geometry, border=border, correlate=True)
        centre = {"same": 3, "full": 4, "valid": 2}[geometry]
        window = result[centre - 1 : centre + 2, centre - 1 : centre + 2]
        assert window.tolist() == [[9, 8, 7], [6, 5, 4], [3, 2, 1]]

    def test_even_kernel_matches_scipy_signal_in_every_geometry(self):
        impulse = np.zeros((5, 6))
        impulse[2, 3] = 1
        k = parse_spec("1,2;3,4")
        for geometry in GEOMETRIES:
            expected = signal.convolve(impulse, k.weights, mode=geometry)
            assert convolve(impulse, [k], geometry=geometry).tolist() == expected.tolist()


class TestBorders:
    ROW = np.array([[1.0, 2.0, 3.0]])

    @pytest.mark.parametrize(
        ("border", "left"),
        [
            ("zero", [0, 0, 0]),
            ("nearest", [1, 1, 1]),
            ("reflect", [3, 2, 1]),
            ("mirror", [2, 3, 2]),
            ("wrap", [1, 2, 3]),
        ],
    )
    def test_pixel_diagrams_of_the_readme(self, border, left):
        # Convolving with [0, 0, 0, 1] in full geometry shifts the row right
        # by three, so the first three outputs are the pad left of 'a b c'.
        picked = convolve(self.ROW, [parse_spec("1x4:0,0,0,1")], geometry="full", border=border)[0, :3]
        assert picked.tolist() == left

    @pytest.mark.parametrize("border", BORDERS)
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    @pytest.mark.parametrize("shape", [(3, 3), (2, 2), (1, 4), (5, 2), (4, 4)])
    def test_against_the_definition(self, border, geometry, shape):
        rng = np.random.default_rng(sum(shape))
        image = rng.integers(0, 256, size=(6, 7)).astype(float)
        kernel = rng.integers(-5, 6, size=shape)
        spec = ";".join(",".join(str(v) for v in row) for row in kernel) + ";"
        result = convolve(image, [parse_spec(spec)], geometry=geometry, border=border)
        assert np.array_equal(result, reference(image, kernel.astype(float), geometry, border))

    @pytest.mark.parametrize("border", ["nearest", "reflect", "mirror", "wrap"])
    def test_same_geometry_equals_scipy_ndimage(self, border):
        from scipy import ndimage

        rng = np.random.default_rng(1)
        image = rng.integers(0, 256, size=(9, 8)).astype(float)
        kernel = rng.integers(-3, 4, size=(3, 5)).astype(float)
        spec = ";".join(",".join(str(int(v)) for v in row) for row in kernel)
        ours = convolve(image, [parse_spec(spec)], border=border)
        assert np.array_equal(ours, ndimage.convolve(image, kernel, mode=border))

    def test_pad_wider_than_image(self):
        image = np.array([[5.0]])
        for border in BORDERS:
            result = convolve(image, [parse_spec("box:3")], border=border)
            assert result.shape == (1, 1)
            assert result[0, 0] == pytest.approx(5 / 9 if border == "zero" else 5.0)


@pytest.fixture(scope="module")
def photos():
    from conftest import SAMPLES

    gray = np.asarray(Image.open(SAMPLES / "camera.png"))[150:214, 180:260].astype(float)
    rgb = np.asarray(Image.open(SAMPLES / "coffee.png"))[100:148, 200:264].astype(float)
    return gray, rgb


class TestAgainstScipyOnPhotos:
    """Every registry kernel on a real photo, gray and RGB, as scipy computes it."""

    @pytest.mark.parametrize("name", [k.name for k in load_registry()])
    def test_registry_kernel(self, photos, name):
        kernel = load_registry().get(name)
        divisor = float(kernel.scale)
        gray, rgb = photos
        for geometry in GEOMETRIES:
            expected = signal.convolve(gray, kernel.weights, mode=geometry) / divisor + float(kernel.offset)
            assert np.allclose(convolve(gray, [kernel], geometry=geometry), expected, rtol=0, atol=1e-9)
        for c in range(3):
            expected = signal.convolve(rgb[:, :, c], kernel.weights, mode="same") / divisor
            assert np.allclose(convolve(rgb, [kernel])[:, :, c], expected, rtol=0, atol=1e-9)
        assert np.array_equal(
            finish(convolve(gray, [kernel]), maxval=255),
            np.clip(
                np.floor(signal.convolve(gray, kernel.weights, mode="same", method="direct") / divisor + 0.5), 0, 255
            ).astype(np.uint8),
        )


class TestFinish:
    def test_round_half_up(self):
        values = np.array([-0.5, 0.49, 0.5, 1.5, 2.5, 254.49, 254.5, 1000])
        assert finish(values, maxval=255).tolist() == [0, 0, 1, 2, 3, 254, 255, 255]

    def test_sixteen_bit(self):
        assert finish(np.array([70000.0, 1.5]), maxval=65535).tolist() == [65535, 2]
        assert finish(np.array([1.0]), maxval=65535).dtype == np.uint16

    def test_scale_offset_relu(self):
        values = np.array([-32.0, 32.0])
        assert finish(values, maxval=255, scale=16, offset=1).tolist() == [0, 3]
        assert finish(values, maxval=255, value_range="float", relu=True).tolist() == [0.0, 32.0]

    def test_abs(self):
        assert finish(np.array([-300.0, -2.5, 4.0]), maxval=255, value_range="abs").tolist() == [255, 3, 4]

    def test_normalize_spans_the_range_over_all_channels(self):
        values = np.array([[[-10.0, 0.0], [10.0, 5.0]]])
        assert finish(values, maxval=255, value_range="normalize").tolist() == [[[0, 128], [255, 191]]]

    def test_normalize_of_a_constant_is_zero(self):
        assert finish(np.full((2, 2), 7.0), maxval=255, value_range="normalize").tolist() == [[0, 0], [0, 0]]

    def test_float_keeps_values(self):
        assert finish(np.array([0.25, -3.0]), maxval=None, value_range="float").tolist() == [0.25, -3.0]


class TestAlpha:
    def test_same_keeps_alpha(self):
        alpha = np.arange(12, dtype=np.uint8).reshape(3, 4)
        assert np.array_equal(align_alpha(alpha, [(3, 3)], geometry="same", border="zero"), alpha)

    def test_full_and_valid_follow_the_geometry(self):
        alpha = np.full((4, 5), 200, dtype=np.uint8)
        full = align_alpha(alpha, [(3, 3)], geometry="full", border="zero")
        assert full.shape == (6, 7) and full[0, 0] == 0 and full[1, 1] == 200
        valid = align_alpha(alpha, [(3, 3)], geometry="valid", border="zero")
        assert valid.shape == (2, 3)


class TestFusedStrips:
    """The one-kernel strip route gives the bytes of finish(convolve(...))."""

    @pytest.mark.parametrize("backend", ["numpy", "scipy"])
    @pytest.mark.parametrize("name", ["sharpen", "blur", "gaussian5", "unsharp5", "emboss", "sobel-x", "motion-blur"])
    @pytest.mark.parametrize(
        ("value_range", "relu", "scale", "offset"),
        [("clip", False, 1.0, 0.0), ("abs", False, 1.0, 0.0), ("clip", True, 1.0, 0.0), ("clip", False, 3.0, 7.5)],
    )
    def test_same_bytes_as_the_whole_image_route(self, photos, backend, name, value_range, relu, scale, offset):
        from imgconv.pipeline import run

        rgb = photos[1].astype(np.uint8)
        kernel = load_registry().get(name)
        options = FilterOptions(backend=backend, relu=relu, scale=scale, offset=offset, border="mirror")
        expected = finish(
            convolve(rgb, [kernel], backend=backend, border="mirror"),
            maxval=255,
            value_range=value_range,
            relu=relu,
            scale=scale,
            offset=offset,
        )
        finished = Finish(maxval=255, value_range=value_range, scale=scale, offset=offset, relu=relu)
        assert np.array_equal(run(rgb, FilterPlan.make([kernel], options), finished), expected)

    def test_sixteen_bit_output_of_eight_bit_sums(self, photos):
        from imgconv.pipeline import run

        gray = photos[0].astype(np.uint8)[:, :, None]
        result = run(gray, FilterPlan.make([parse_spec("sharpen")], FilterOptions()), Finish(maxval=65535))
        assert result.dtype == np.uint16 and result.max() > 255

    @pytest.mark.parametrize("divisor", [1, 2, 9, 16, 256, -256, -9, 7])
    def test_integer_rounding_equals_the_float_formula(self, divisor):
        rng = np.random.default_rng(abs(divisor))
        sums = np.concatenate([rng.integers(-70000, 70000, 5000), np.arange(-600, 600)])
        for value_range in ("clip", "abs"):
            for relu in (False, True):
                finisher = Finish(maxval=255, value_range=value_range, relu=relu).after(divisor, 0)
                assert np.array_equal(finisher(sums), finisher(sums.astype(np.float64)))

    @pytest.mark.parametrize("border", BORDERS)
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    @pytest.mark.parametrize(
        ("size", "kernel"), [((5, 7), (3, 3)), ((1, 1), (5, 4)), ((2, 3), (7, 2)), ((6, 4), (1, 6))]
    )
    def test_index_maps_pad_like_numpy_pad(self, border, geometry, size, kernel):
        from imgconv.padding import gather, pad, pad_index

        if geometry == "valid" and (kernel[0] > size[0] or kernel[1] > size[1]):
            return
        planes = np.arange(1, size[0] * size[1] * 2 + 1, dtype=np.uint8).reshape(*size, 2)
        rows = pad_index(size[0], kernel[0], geometry=geometry, border=border)
        columns = pad_index(size[1], kernel[1], geometry=geometry, border=border)
        assert np.array_equal(gather(planes, rows, columns), pad(planes, kernel, geometry=geometry, border=border))
