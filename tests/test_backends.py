"""The backend registry, refusals, the auto rule, and the Pillow quirks the pil backend hides."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from imgconv import backends
from imgconv.backends import Request, numpy_backend
from imgconv.cli import cli
from imgconv.errors import UsageFailure
from imgconv.kernels import Kernel

NINE = list(range(1, 10))


def pillow(plane: np.ndarray, kernel: list[int], mode: str = "L", **options) -> np.ndarray:
    image = Image.fromarray(plane.astype(np.uint8 if mode == "L" else np.int32))
    return np.asarray(image.filter(ImageFilter.Kernel((3, 3), kernel, **options)), dtype=np.int64)


def impulse(size: int = 5, value: int = 1) -> np.ndarray:
    plane = np.zeros((size, size))
    plane[size // 2, size // 2] = value
    return plane


# -- the four measured Pillow quirks (if Pillow changes, these say how) ------


def test_pillow_reverses_kernel_rows_only():
    assert pillow(impulse(), NINE, scale=1)[1:4, 1:4].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]


def test_pillow_divides_by_the_kernel_sum_by_default():
    assert pillow(impulse(value=45), NINE)[2, 2] == 5  # 45 * 5 / 45


def test_pillow_copies_the_border_unfiltered():
    plane = np.full((5, 5), 10)
    out = pillow(plane, [1] * 9, scale=1)
    assert out[0].tolist() == [10] * 5 and out[2, 2] == 90


def test_pillow_saturates_8_bit_and_clamps_32_bit_at_zero():
    plane = np.full((3, 3), 200)
    assert pillow(plane, [0, 0, 0, 0, 2, 0, 0, 0, 0], scale=1)[1, 1] == 255
    assert pillow(plane, [0, 0, 0, 0, -1, 0, 0, 0, 0], mode="I", scale=1)[1, 1] == 0
    with pytest.raises(ValueError):
        Image.fromarray(np.zeros((3, 3), np.float32)).filter(ImageFilter.Kernel((3, 3), [1] * 9))


def as_kernel(weights: np.ndarray) -> Kernel:
    """Weights as a Kernel, the form backends correlate with (integers stay exact)."""
    return Kernel(
        "weights", tuple(tuple(int(v) if float(v).is_integer() else float(v) for v in row) for row in weights)
    )


def test_pil_backend_hides_every_quirk():
    """Orientation, scale, border, negative and over-range sums: scipy's numbers."""
    planes = np.pad(impulse(3, 250)[:, :, np.newaxis], ((1, 1), (1, 1), (0, 0)))
    weights = np.array([[1, 2, 3], [4, -500, 6], [7, 8, 9]], dtype=float)
    got = backends.get("pil").correlate_valid(planes, as_kernel(weights))
    assert np.array_equal(got, backends.get("scipy").correlate_valid(planes, as_kernel(weights)))
    assert got[1, 1, 0] == -125000 and got[0, 0, 0] == 2250


@pytest.mark.parametrize("high, weight", [(255, 500), (65535, 500), (65535, 2**26), (2**40, 7)])
def test_pil_backend_is_exact_past_float32(high, weight):
    """Sums beyond 2**24 (float32's integers) but below 2**53 come out exact."""
    rng = np.random.default_rng(high + weight)
    planes = rng.integers(-high // 4, high, (9, 11, 2)).astype(float)
    for shape in ((5, 5), (3, 3), (2, 3)):
        weights = rng.integers(-weight, weight + 1, shape).astype(float)
        want = backends.get("scipy").correlate_valid(planes, as_kernel(weights))
        assert np.array_equal(backends.get("pil").correlate_valid(planes, as_kernel(weights)), want)


def test_pil_backend_rejects_non_integer_planes():
    with pytest.raises(ValueError, match="integer"):
        backends.get("pil").correlate_valid(np.full((3, 3, 1), 0.5), as_kernel(np.ones((3, 3))))


# -- numpy strips ------------------------------------------------------------


def test_numpy_strips_and_integer_path_match_float_sums(monkeypatch):
    monkeypatch.setattr(numpy_backend, "STRIP_BYTES", 64)  # a strip of one or two rows
    rng = np.random.default_rng(1)
    integers = rng.integers(0, 65536, (23, 17, 3)).astype(float)
    for planes, weights in (
        (integers, rng.integers(-9, 9, (6, 4)).astype(float)),  # int32 sums
        (integers, np.full((3, 3), 2.0**20)),  # int64 sums
        (integers / 7, rng.normal(size=(4, 5))),  # float64 sums
        (integers * 2.0**30, np.full((3, 3), 2.0**20)),  # past 2**53: float64 like scipy
    ):
        want = backends.get("scipy").correlate_valid(planes, as_kernel(weights))
        assert np.array_equal(backends.get("numpy").correlate_valid(planes, as_kernel(weights)), want)


# -- registry, refusal, auto -------------------------------------------------


def test_every_registered_backend_follows_the_protocol():
    assert backends.names() == ["scipy", "numpy", "pil"]
    for name in backends.names():
        backend = backends.get(name)
        assert backend.name == name and backend.summary and backend.limits
        assert backend.unavailable() is None


def test_backends_command_lists_each_backend_with_its_limits():
    result = CliRunner().invoke(cli, ["backends"])
    assert result.exit_code == 0
    for name in backends.names():
        line = next(row for row in result.output.splitlines() if row.startswith(name + " "))
        assert "yes" in line and backends.get(name).limits in line


def request(*shapes, exact=True, integer=True) -> Request:
    return Request(tuple(shapes), (integer,) * len(shapes), exact_steps=(exact,) * len(shapes))


@pytest.mark.parametrize(
    "req, reason",
    [
        (request((9, 9)), "9x9"),
        (request((3, 3), integer=False), "real-valued"),
        (request((3, 3), exact=False), "non-integer values"),
        (Request(((3, 3),), (True,)), "non-integer values"),  # unknown exactness is not assumed
    ],
)
def test_pil_refuses_and_names_a_backend_that_can(req, reason):
    with pytest.raises(UsageFailure, match=f"{reason}.*use backend='scipy'"):
        backends.choose("pil", req)


def test_refusal_exits_2_before_reading_the_input(tmp_path):
    missing = tmp_path / "missing.png"
    result = CliRunner().invoke(
        cli, ["apply", "--backend", "pil", "-k", "motion-blur", str(missing), str(tmp_path / "o.png")]
    )
    assert result.exit_code == 2
    assert "--backend scipy" in result.output and "no such file" not in result.output.lower()


def test_float_matrix_input_is_refused_by_pil_before_reading(tmp_path):
    result = CliRunner().invoke(cli, ["apply", "--backend", "pil", "-k", "sharpen", str(tmp_path / "A.csv"), "-"])
    assert result.exit_code == 2 and "non-integer" in result.output


def test_auto_prefers_numpy_for_exact_runs_and_scipy_for_float_sums():
    assert backends.auto_order(request((3, 3), (5, 5))) == ["numpy", "scipy", "pil"]
    assert backends.auto_order(request((3, 3), (7, 7))) == ["numpy", "scipy", "pil"]
    assert backends.auto_order(request((7, 7), exact=False))[0] == "scipy"
    assert backends.choose("auto", request((9, 9))).name == "numpy"


def test_importing_the_registry_loads_no_engine():
    code = "import sys, imgconv.backends; print(sorted({'numpy', 'scipy', 'PIL'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
