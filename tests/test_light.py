"""--alpha (carry, premultiplied, separate) and --linear, each held to an
independent float64 reference written here in a few lines of numpy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import pixels
from PIL import Image

from imgconv.jobs import ApplyJob
from imgconv.kernels import parse_spec
from imgconv.picture import Picture
from imgconv.plan import FilterOptions, FilterPlan

GAUSSIAN3 = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
UNSHARP = parse_spec("unsharp5")


# --------------------------------------------------------------------------
# The reference: float64 numpy, rounding once at the end


def convolve(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True convolution, 'same' geometry, zero border (scipy.signal.convolve's meaning)."""
    kh, kw = kernel.shape
    padded = np.pad(plane.astype(np.float64), ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)))
    flipped = kernel[::-1, ::-1]
    out = np.zeros(plane.shape)
    for i in range(kh):
        for j in range(kw):
            out += flipped[i, j] * padded[i : i + plane.shape[0], j : j + plane.shape[1]]
    return out


def to_light(levels: np.ndarray, top: int) -> np.ndarray:
    v = levels / top
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def to_levels(light: np.ndarray, top: int) -> np.ndarray:
    light = np.clip(light, 0, 1)
    return np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055) * top


def rounded(values: np.ndarray, top: int) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, top)


def reference(
    colour: np.ndarray, alpha: np.ndarray | None, kernel: np.ndarray, top: int, *, premultiplied: bool, linear: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The expected colour (H x W x C) and alpha, from the definitions in the README."""
    planes = to_light(colour, top) if linear else colour.astype(np.float64)
    finish = (lambda light: rounded(to_levels(light, top), top)) if linear else (lambda x: rounded(x, top))
    if not premultiplied or alpha is None:
        return np.dstack([finish(convolve(planes[:, :, c], kernel)) for c in range(colour.shape[2])]), alpha
    filtered_alpha = convolve(alpha, kernel)
    alpha_out = rounded(filtered_alpha, top)
    visible = alpha_out > 0
    out = []
    for c in range(colour.shape[2]):
        products = convolve(planes[:, :, c] * alpha, kernel)
        ratio = np.divide(products, filtered_alpha, out=np.zeros_like(products), where=visible)
        out.append(np.where(visible, finish(ratio), 0))
    return np.dstack(out), alpha_out


# --------------------------------------------------------------------------
# Inputs: gray, gray + alpha, RGB, RGBA (with fully transparent areas) and 16-bit gray


def noise(shape: tuple[int, ...], seed: int, top: int = 255) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top + 1, shape)


def with_holes(alpha: np.ndarray) -> np.ndarray:
    alpha = alpha.copy()
    alpha[4:10, 3:12] = 0  # an invisible area, whose colour must not leak out
    alpha[-6:, :] = 255
    return alpha


IMAGES = {
    "gray": ("L", lambda: noise((24, 20), 1)),
    "gray+alpha": ("LA", lambda: np.dstack([noise((24, 20), 2), with_holes(noise((24, 20), 3))])),
    "rgb": ("RGB", lambda: noise((24, 20, 3), 4)),
    "rgba": ("RGBA", lambda: np.dstack([noise((24, 20, 3), 5), with_holes(noise((24, 20), 6))])),
}


def save(tmp_path, name: str) -> tuple[object, np.ndarray]:
    mode, make = IMAGES[name]
    array = make().astype(np.uint8)
    path = tmp_path / f"{name}.png"
    Image.fromarray(array, mode).save(path)
    return path, array.reshape(array.shape[0], array.shape[1], -1)


def split(array: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if IMAGES[name][0] in ("LA", "RGBA"):
        return array[:, :, :-1], array[:, :, -1].astype(np.float64)
    return array, None


def run_ok(run, *args) -> None:
    result = run("apply", *args)
    assert result.exit_code == 0, result.stderr


# --------------------------------------------------------------------------
# --alpha premultiplied and --linear against the reference


@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize(
    ("flags", "premultiplied", "linear"),
    [
        (("--alpha", "premultiplied"), True, False),
        (("--linear",), False, True),
        (("--alpha", "premultiplied", "--linear"), True, True),
    ],
    ids=["premultiplied", "linear", "premultiplied+linear"],
)
def test_matches_the_float64_reference(run, tmp_path, name, flags, premultiplied, linear):
    source, array = save(tmp_path, name)
    run_ok(run, "-k", "gaussian3", *flags, source, tmp_path / "out.png")
    out = pixels(tmp_path / "out.png").astype(np.float64).reshape(array.shape)
    colour, alpha = split(array, name)
    expected, expected_alpha = reference(colour, alpha, GAUSSIAN3, 255, premultiplied=premultiplied, linear=linear)
    got_colour, got_alpha = split(out, name)
    assert np.abs(got_colour - expected).max() <= 1
    if alpha is not None:
        assert np.abs(got_alpha - expected_alpha).max() <= 1
        if premultiplied:
            assert not got_colour[got_alpha == 0].any()  # invisible pixels are 0, not leftovers


def test_linear_sixteen_bit_matches_and_keeps_its_precision(run, tmp_path):
    levels = noise((20, 18), 7, top=65535).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "g16.png")
    run_ok(run, "-k", "gaussian3", "--linear", tmp_path / "g16.png", tmp_path / "out.png")
    out = pixels(tmp_path / "out.png")
    assert out.dtype == np.uint16
    expected = rounded(to_levels(convolve(to_light(levels, 65535), GAUSSIAN3), 65535), 65535)
    assert np.abs(out - expected).max() <= 1
    assert np.count_nonzero(out % 257) > out.size // 2  # 16-bit levels, not 8-bit ones scaled up


def test_linear_float_output_is_unrounded(run, tmp_path):
    levels = noise((10, 12), 8).astype(np.uint8)
    Image.fromarray(levels).save(tmp_path / "g.png")
    run_ok(run, "-k", "gaussian3", "--linear", "--range", "float", tmp_path / "g.png", tmp_path / "out.npy")
    out = np.load(tmp_path / "out.npy")
    expected = to_levels(convolve(to_light(levels, 255), GAUSSIAN3), 255)
    assert np.allclose(out, expected, rtol=0, atol=1e-9)
    assert not np.array_equal(out, np.round(out))


@pytest.mark.parametrize("linear", [False, True])
def test_sixteen_bit_rgba_premultiplied_matches_the_reference(linear):
    # Pillow reads no 16-bit RGBA file, so the picture is made here and goes through apply's own step.
    colour = noise((16, 14, 3), 9, top=65535).astype(np.uint16)
    alpha = with_holes(noise((16, 14), 10, top=65535)).astype(np.uint16)
    alpha[alpha == 255] = 65535
    options = FilterOptions(alpha_mode="premultiplied", linear=linear)
    job = ApplyJob(plan=FilterPlan.make([parse_spec("gaussian3")], options, integer_input=not linear))
    result = job.step(Picture(colour, alpha, "PNG", 16), maxval=65535, value_range="clip", subject="x")
    expected, expected_alpha = reference(
        colour, alpha.astype(np.float64), GAUSSIAN3, 65535, premultiplied=True, linear=linear
    )
    assert result.data.dtype == np.uint16 and result.alpha is not None
    assert np.abs(result.data - expected).max() <= 1
    assert np.abs(result.alpha.astype(np.float64) - expected_alpha).max() <= 1


def test_premultiplied_sharpening_matches_the_reference(run, tmp_path):
    # A kernel with negative weights and a divisor: alpha can ring below 0 and colour past 255.
    source, array = save(tmp_path, "rgba")
    run_ok(run, "-k", "unsharp5", "--alpha", "premultiplied", source, tmp_path / "out.png")
    out = pixels(tmp_path / "out.png").astype(np.float64)
    weights = np.array(UNSHARP.values, dtype=np.float64) / float(UNSHARP.scale)
    expected, expected_alpha = reference(
        array[:, :, :3], array[:, :, 3].astype(np.float64), weights, 255, premultiplied=True, linear=False
    )
    assert np.abs(out[:, :, :3] - expected).max() <= 1
    assert np.abs(out[:, :, 3] - expected_alpha).max() <= 1


# --------------------------------------------------------------------------
# What users see


def test_premultiplied_blur_has_no_halo(run, tmp_path):
    """A red square on a transparent area whose hidden colour is green: a
    carried-alpha blur smears the green into the red edge, premultiplied does not."""
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :, 1] = 255  # invisible green
    rgba[6:14, 6:14] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "square.png")
    run_ok(run, "-k", "gaussian5", tmp_path / "square.png", tmp_path / "carry.png")
    run_ok(run, "-k", "gaussian5", "--alpha", "premultiplied", tmp_path / "square.png", tmp_path / "pre.png")
    carry, pre = pixels(tmp_path / "carry.png"), pixels(tmp_path / "pre.png")
    edge = (slice(6, 14), 6)
    assert carry[edge][:, 1].max() > 60  # a green fringe
    assert pre[edge][:, 1].max() == 0 and pre[edge][:, 0].min() == 255  # pure red
    visible = pre[:, :, 3] > 0
    assert not pre[:, :, 1][visible].any()
    assert not pre[~visible].any()


def test_linear_blur_keeps_the_light(run, tmp_path):
    """One-pixel black and white stripes, blurred: half the light is level 188, not 128."""
    stripes = np.tile(np.array([0, 255], np.uint8), (16, 16))
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    run_ok(run, "-k", "box:2x2", "--border", "wrap", tmp_path / "stripes.png", tmp_path / "gamma.png")
    run_ok(run, "-k", "box:2x2", "--border", "wrap", "--linear", tmp_path / "stripes.png", tmp_path / "linear.png")
    assert set(np.unique(pixels(tmp_path / "gamma.png"))) == {128}
    assert set(np.unique(pixels(tmp_path / "linear.png"))) == {188}


def test_carry_is_the_default_byte_for_byte(run, tmp_path):
    source, array = save(tmp_path, "rgba")
    run_ok(run, "-k", "unsharp5", source, tmp_path / "default.png")
    run_ok(run, "-k", "unsharp5", "--alpha", "carry", source, tmp_path / "carry.png")
    assert (tmp_path / "default.png").read_bytes() == (tmp_path / "carry.png").read_bytes()
    import imgconv

    out = pixels(tmp_path / "carry.png")
    assert np.array_equal(out[:, :, :3], imgconv.filter_image(array[:, :, :3], "unsharp5"))
    assert np.array_equal(out[:, :, 3], array[:, :, 3])


def test_premultiplied_and_separate_without_alpha_change_nothing(run, tmp_path):
    source, _ = save(tmp_path, "rgb")
    run_ok(run, "-k", "gaussian3", source, tmp_path / "carry.png")
    for mode in ("premultiplied", "separate"):
        run_ok(run, "-k", "gaussian3", "--alpha", mode, source, tmp_path / f"{mode}.png")
        assert (tmp_path / f"{mode}.png").read_bytes() == (tmp_path / "carry.png").read_bytes()


def test_separate_filters_alpha_as_a_channel(run, tmp_path):
    source, array = save(tmp_path, "rgba")
    run_ok(run, "-k", "gaussian3", "--alpha", "separate", source, tmp_path / "out.png")
    out = pixels(tmp_path / "out.png")
    import imgconv

    assert np.array_equal(out, imgconv.filter_image(array, "gaussian3"))


def test_premultiplied_takes_no_offset(run, tmp_path):
    source, _ = save(tmp_path, "rgba")
    result = run("apply", "-k", "blur", "--alpha", "premultiplied", "--offset", "10", source, tmp_path / "o.png")
    assert result.exit_code == 2
    assert "--alpha" in result.stderr and "offset" in result.stderr
    (tmp_path / "k.yaml").write_text("values: [[1, 1], [1, 1]]\nscale: 4\noffset: 2\n")
    result = run("apply", "-k", f"@{tmp_path / 'k.yaml'}", "--alpha", "premultiplied", source, tmp_path / "o.png")
    assert result.exit_code == 2 and "offset" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_linear_refuses_matrices(run, tmp_path):
    (tmp_path / "m.csv").write_text("1,2\n3,4\n")
    result = run("apply", "-k", "blur", "--linear", tmp_path / "m.csv", tmp_path / "o.csv")
    assert result.exit_code == 2
    assert "--linear" in result.stderr and "matrix" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_linear_in_the_library():
    import imgconv

    stripes = np.tile(np.array([0, 65535], np.uint16), (4, 4))
    out = imgconv.filter_image(stripes, "box:2x2", border="wrap", linear=True)
    assert out.dtype == np.uint16 and set(np.unique(out)) == {int(rounded(to_levels(np.array(0.5), 65535), 65535))}
    with pytest.raises(ValueError, match="linear"):
        imgconv.filter_image(stripes.astype(float), "blur", linear=True)


def test_the_readme_picture_is_what_its_script_draws(tmp_path):
    """docs/linear-blur.png is reproducible: the script draws the same pixels."""
    import runpy

    from conftest import ROOT

    script = runpy.run_path(str(ROOT / "docs" / "linear_blur.py"))
    drawn = np.asarray(script["picture"]())
    assert np.array_equal(drawn, pixels(ROOT / "docs" / "linear-blur.png"))
    _, gamma, linear = script["bands"]()
    assert (linear >= gamma).all() and (linear > gamma).any()  # linear light spreads the white further
