"""Every backend gives the same pixels: the parity bar of the backends.

Each test is parametrised over ``backends.names()``, so a newly registered
backend is held to the same bar.  A backend may refuse a request (Pillow and
kernels over 5x5); it may never answer it differently.  Crops of the sample
photos, downscaled by striding, keep the full matrix to a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from click.testing import CliRunner
from PIL import Image

from imgconv import backends
from imgconv.choices import BORDERS, GEOMETRIES
from imgconv.cli import cli
from imgconv.errors import UsageFailure
from imgconv.filtering import convolve
from imgconv.finishing import finish
from imgconv.kernels import Kernel, load_registry, parse_spec
from imgconv.plan import FilterOptions, FilterPlan
from imgconv.reading import read_picture

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
SAMPLE_FILES = {"gray": "camera.png", "rgb": "coffee.png", "gray16": "astronaut-gray16.png"}
REGISTRY = list(load_registry(()))


@pytest.fixture(scope="module")
def crops() -> dict[str, tuple[np.ndarray, int]]:
    """48x64 crops of the samples, downscaled 4x, with their maximum value."""
    out = {}
    for name, file in SAMPLE_FILES.items():
        picture = read_picture(SAMPLES / file)
        out[name] = (picture.data[::4, ::4][20:68, 30:94], picture.maxval)
    return out


def accepts(name: str, image: np.ndarray, kernels: list[Kernel], geometry: str = "same") -> bool:
    """Whether backend ``name`` serves this request (the pipeline's own question)."""
    integer = bool(np.array_equal(image, np.floor(image)))
    request = FilterPlan.make(kernels, FilterOptions(geometry=geometry), integer_input=None).request(
        integer_input=integer
    )
    try:
        backends.choose(name, request)
    except UsageFailure:
        return False
    return True


def pixels(image, kernels, maxval, backend, **options) -> np.ndarray:
    return finish(convolve(image, kernels, backend=backend, **options), maxval=maxval)


@pytest.mark.parametrize("sample", SAMPLE_FILES)
@pytest.mark.parametrize("name", backends.names())
def test_registry_kernels_agree_to_the_byte(crops, name, sample):
    """Every registry kernel x border x geometry gives scipy's bytes (8- and 16-bit)."""
    image, maxval = crops[sample]
    served = 0
    for kernel in REGISTRY:
        if not accepts(name, image, [kernel]):
            continue
        for border in BORDERS:
            for geometry in GEOMETRIES:
                want = pixels(image, [kernel], maxval, "scipy", border=border, geometry=geometry)
                got = pixels(image, [kernel], maxval, name, border=border, geometry=geometry)
                assert got.dtype == want.dtype and got.shape == want.shape
                differ = np.flatnonzero(got != want)
                assert differ.size == 0, (
                    f"{name} vs scipy: {kernel.name} {border} {geometry} on {sample}: "
                    f"{differ.size} values differ, first at {np.unravel_index(differ[0], got.shape)}"
                )
        served += 1
    assert served >= 15, f"{name} served only {served} of {len(REGISTRY)} registry kernels"


@pytest.mark.parametrize("name", backends.names())
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_zero_border_is_scipy_signal_convolve(crops, name, geometry):
    """Cross-check against scipy.signal.convolve itself, independent of our pipeline."""
    for sample in ("gray", "rgb"):
        image, maxval = crops[sample]
        for kernel in REGISTRY:
            if not accepts(name, image, [kernel], geometry):
                continue
            weights, divisor = kernel.integer_form()
            planes = [
                scipy.signal.convolve(image[:, :, c].astype(float), weights, mode=geometry, method="direct")
                for c in range(image.shape[2])
            ]
            want = finish(np.stack(planes, axis=2) / float(divisor) + float(kernel.offset), maxval=maxval)
            got = pixels(image, [kernel], maxval, name, geometry=geometry)
            assert np.array_equal(got, want), f"{name}: {kernel.name} {geometry} on {sample}"


@pytest.mark.parametrize("name", backends.names())
def test_real_valued_kernels_agree_within_one_level(name):
    """Random Gaussian weights and chains through a divisor: at most 1 level on 0.01% of pixels."""
    picture = read_picture(SAMPLES / "camera.png")
    image = picture.data[:256, :256]
    rng = np.random.default_rng(3)
    cases = [[Kernel("random", tuple(map(tuple, rng.normal(size=shape))))] for shape in ((3, 3), (5, 5), (7, 4))]
    cases += [[parse_spec("blur"), parse_spec("sharpen")], [parse_spec("gaussian:sigma=1.2"), parse_spec("edge3")]]
    served = 0
    for kernels in cases:
        if not accepts(name, image, kernels):
            continue
        served += 1
        for border in ("zero", "reflect"):
            want = convolve(image, kernels, backend="scipy", border=border)
            got = convolve(image, kernels, backend=name, border=border)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * float(np.abs(want).max()))
            levels = np.abs(finish(got, maxval=255).astype(int) - finish(want, maxval=255).astype(int))
            assert levels.max() <= 1 and np.count_nonzero(levels) <= 1e-4 * levels.size
    if name != "pil":  # Pillow sums in float32, so it refuses real-valued weights
        assert served == len(cases)


EDGE_CASES = [
    ("1x1 image", np.array([[200]]), ["sharpen", "gaussian5", "motion-blur", "1,-1;-1,1"]),
    ("image smaller than kernel", np.arange(6).reshape(2, 3) * 40, ["gaussian5", "unsharp5", "motion-blur"]),
    ("1xN kernels", np.arange(35).reshape(5, 7) * 7, ["1,2,1", "3x1:1,0,-1", "motion-blur-h", "1,-2,3,-4,5"]),
    (
        "even-sized kernels",
        np.arange(30).reshape(5, 6) * 8,
        ["1,-1;-1,1", "2x4:1,2,3,4,-4,-3,-2,-1", "box:4", "4x4:" + ",".join(["1"] * 16)],
    ),
]


@pytest.mark.parametrize("name", backends.names())
@pytest.mark.parametrize("label, image, specs", EDGE_CASES, ids=[case[0] for case in EDGE_CASES])
def test_edge_cases_agree(name, label, image, specs):
    for spec in specs:
        kernels = [parse_spec(spec)]
        for geometry in ("same", "full"):
            if not accepts(name, image, kernels, geometry):
                continue
            for border in BORDERS:
                want = convolve(image, kernels, backend="scipy", geometry=geometry, border=border)
                got = convolve(image, kernels, backend=name, geometry=geometry, border=border)
                assert np.array_equal(got, want), f"{label}: {spec} {geometry} {border}"
                assert np.array_equal(finish(got, maxval=65535), finish(want, maxval=65535))


@pytest.mark.parametrize("name", backends.names())
def test_16_bit_extremes_stay_exact(name):
    """Full-scale 16-bit values through sign-mixed kernels: sums beyond float32's 2**24."""
    image = np.tile(np.array([[0, 65535], [65535, 0]]), (6, 6))
    for spec in ("unsharp5", "log5", "laplacian8", "5x5:" + ",".join(["-300", "300"] * 12 + ["1"])):
        kernels = [parse_spec(spec)]
        if accepts(name, image, kernels):
            assert np.array_equal(convolve(image, kernels, backend=name), convolve(image, kernels, backend="scipy"))


@pytest.fixture(scope="module")
def sample_files(crops, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crops")
    paths = {}
    for name, (data, _) in crops.items():
        paths[name] = folder / f"{name}.png"
        plane = data[:, :, 0] if data.shape[2] == 1 else data
        Image.fromarray(plane).save(paths[name])
    return paths


CLI_CASES = [
    ("gray", ["-k", "sharpen"]),
    ("rgb", ["-k", "gaussian5", "--border", "reflect"]),
    ("gray16", ["-k", "sobel-x", "--range", "abs", "--geometry", "full"]),
    ("rgb", ["-k", "emboss", "-k", "edge2", "--border", "wrap", "--range", "normalize"]),
    ("gray", ["-k", "motion-blur", "--border", "mirror"]),
]


@pytest.mark.parametrize("sample, options", CLI_CASES)
def test_cli_outputs_are_byte_identical(sample_files, tmp_path, sample, options):
    """Through the command line, every able backend writes the same file."""
    outputs = {}
    for name in backends.names():
        target = tmp_path / f"{name}.png"
        result = CliRunner().invoke(cli, ["apply", *options, "--backend", name, str(sample_files[sample]), str(target)])
        if result.exit_code == 2 and "cannot do this" in result.output:
            continue  # refused before reading, as the refusal tests check
        assert result.exit_code == 0, result.output
        outputs[name] = target.read_bytes()
    assert "scipy" in outputs and "numpy" in outputs
    assert len(set(outputs.values())) == 1, f"outputs differ between {sorted(outputs)}"
