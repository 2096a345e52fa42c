"""Property-based tests: every backend against a plain-numpy reference, and
random bytes and kernel specs that must end in a clean error.

The budget comes from the hypothesis profile loaded in conftest.py ('ci':
fixed and derandomized; IMGCONV_HYPOTHESIS_PROFILE=long searches further).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from imgconv import backends
from imgconv.choices import BORDERS, GEOMETRIES
from imgconv.cli import cli
from imgconv.errors import ParameterError, UsageFailure
from imgconv.filtering import convolve
from imgconv.finishing import finish
from imgconv.kernels import Kernel, load_registry, parse_spec
from imgconv.limits import EXCERPT_CHARS, MESSAGE_CHARS
from imgconv.plan import FilterOptions, FilterPlan

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: mode -> (channels filtered, maxval); alpha is carried aside, not filtered,
#: so RGBA and LA filter as RGB and L do.  None: a float matrix.
MODES = {
    "L": (1, 255),
    "RGB": (3, 255),
    "RGBA": (3, 255),
    "LA": (1, 255),
    "I;16": (1, 65535),
    "matrix": (1, None),
    "matrix-3": (3, None),
}


# --------------------------------------------------------------------------
# The reference: the README's definition, with no numpy.pad and no scipy


def source_index(i: int, n: int, border: str) -> int | None:
    """Which pixel of a row of n pixels index i (maybe outside) reads; None is zero."""
    if 0 <= i < n:
        return i
    if border == "zero":
        return None
    if border == "nearest":
        return min(max(i, 0), n - 1)
    if border == "wrap":
        return i % n
    if border == "reflect":  # c b a | a b c | c b a: the edge repeated, period 2n
        j = i % (2 * n)
        return j if j < n else 2 * n - 1 - j
    if n == 1:  # mirror with one pixel has nothing else to mirror
        return 0
    j = i % (2 * n - 2)  # mirror: c b | a b c | b a, period 2n - 2
    return j if j < n else 2 * n - 2 - j


def reference(planes: np.ndarray, weights: np.ndarray, *, geometry: str, border: str, correlate: bool) -> np.ndarray:
    """Pad by k - 1 with the border rule, sum shifted slices, cut the geometry's window."""
    h, w, c = planes.shape
    kh, kw = weights.shape
    k = weights if correlate else weights[::-1, ::-1]
    padded = np.zeros((h + 2 * (kh - 1), w + 2 * (kw - 1), c))
    for a in range(padded.shape[0]):
        for b in range(padded.shape[1]):
            r, s = source_index(a - (kh - 1), h, border), source_index(b - (kw - 1), w, border)
            if r is not None and s is not None:
                padded[a, b] = planes[r, s]
    fh, fw = h + kh - 1, w + kw - 1
    full = np.zeros((fh, fw, c))
    for u in range(kh):
        for v in range(kw):
            full += k[u, v] * padded[u : u + fh, v : v + fw]
    if geometry == "full":
        return full
    if geometry == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        return full[top : top + h, left : left + w]
    return full[kh - 1 : h, kw - 1 : w]


def reference_finish(values: np.ndarray, maxval: int) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, maxval)


# --------------------------------------------------------------------------
# Strategies


@st.composite
def images(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    channels, maxval = MODES[mode]
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)), channels)
    if maxval is None:
        values = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
        data = draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        return mode, np.array(data, dtype=np.float64).reshape(shape), None
    dtype = np.uint8 if maxval == 255 else np.uint16
    seed = draw(st.integers(0, 2**32 - 1))
    data = np.random.default_rng(seed).integers(0, maxval, shape, dtype=dtype, endpoint=True)
    return mode, data, maxval


@st.composite
def kernels(draw):
    shape = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    count = shape[0] * shape[1]
    if draw(st.booleans()):
        values = draw(st.lists(st.integers(-9, 9), min_size=count, max_size=count))
    else:
        # Every magnitude, subnormals included: scipy.ndimage skips weights at
        # or below DBL_EPSILON, which the scipy backend must make up for.
        real = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
        values = draw(st.lists(real, min_size=count, max_size=count))
    rows = tuple(tuple(values[r * shape[1] : (r + 1) * shape[1]]) for r in range(shape[0]))
    return Kernel("random", rows)


def able_backends(kernel: Kernel, geometry: str, border: str, *, integer_input: bool = True) -> list[str]:
    plan = FilterPlan.make([kernel], FilterOptions(geometry=geometry, border=border), integer_input=None)
    request = plan.request(integer_input=integer_input)
    able = [n for n in backends.names() if not (backends.get(n).unavailable() or backends.get(n).refuse(request))]
    assert able, "no backend serves this request"
    return able


# --------------------------------------------------------------------------
# Every backend agrees with the reference


@given(images(), kernels(), st.sampled_from(GEOMETRIES), st.sampled_from(BORDERS), st.booleans())
def test_every_backend_agrees_with_the_reference(image, kernel, geometry, border, correlate):
    mode, data, maxval = image
    weights = kernel.weights
    h, w = data.shape[:2]
    if geometry == "valid" and (kernel.shape[0] > h or kernel.shape[1] > w):
        with pytest.raises(ParameterError, match=r"^geometry: .*smaller than kernel"):
            convolve(data, [kernel], geometry=geometry, border=border)
        return
    expected = reference(data.astype(np.float64), weights, geometry=geometry, border=border, correlate=correlate)
    integer_input = bool(np.array_equal(data, np.floor(data)))
    for name in able_backends(kernel, geometry, border, integer_input=integer_input):
        result = convolve(data, [kernel], geometry=geometry, border=border, correlate=correlate, backend=name)
        assert result.shape == expected.shape, name
        if maxval is None:  # matrices keep float64 values
            scale = float(np.abs(weights).sum() * max(np.abs(data).max(), 1.0))
            assert np.allclose(result, expected, rtol=0, atol=1e-9 * scale), name
            continue
        finished = finish(result, maxval=maxval).astype(np.int64)
        wanted = reference_finish(expected, maxval).astype(np.int64)
        if kernel.exact:  # integer kernel on integer pixels: exact sums, so the same levels
            assert np.array_equal(finished, wanted), (name, mode)
        else:  # real weights: summation order may move a value across a .5
            assert np.abs(finished - wanted).max() <= 1, (name, mode)


def test_reference_border_rules_match_the_readme():
    # The README's table for a row 'a b c' padded by 3: the reference must
    # mean what the user manual says, or agreeing with it proves nothing.
    row = "abc"
    expected = {"zero": "000abc000", "nearest": "aaaabcccc", "reflect": "cbaabccba", "wrap": "abcabcabc"}
    for border, text in expected.items():
        got = "".join("0" if (j := source_index(i, 3, border)) is None else row[j] for i in range(-3, 6))
        assert got == text, border
    assert "".join(row[source_index(i, 3, "mirror")] for i in range(-2, 5)) == "cbabcba"


# --------------------------------------------------------------------------
# Random input bytes: always a clean error, never a traceback

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("random_bytes")


def apply_bytes(folder: Path, name: str, payload: bytes):
    source, target = folder / name, folder / "out" / "x.png"
    source.write_bytes(payload)
    result = RUNNER.invoke(cli, ["apply", "-k", "sharpen", str(source), str(target)], catch_exceptions=False)
    return result, source, target


def assert_clean_failure(result, source: Path, target: Path) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    assert result.stderr.startswith(f"Error: {source}: ")
    assert not target.parent.exists() or not any(target.parent.iterdir())


@given(st.binary(max_size=2000))
def test_random_bytes_are_a_clean_error(folder, payload):
    assert_clean_failure(*apply_bytes(folder, "random.png", payload))


@given(st.binary(max_size=2000))
def test_random_bytes_after_a_png_signature_are_a_clean_error(folder, payload):
    assert_clean_failure(*apply_bytes(folder, "signed.png", PNG_SIGNATURE + payload))


@given(st.binary(max_size=300))
def test_random_bytes_after_an_npy_magic_are_a_clean_error(folder, payload):
    result, source, target = apply_bytes(folder, "random.npy", b"\x93NUMPY" + payload)
    assume(result.exit_code != 0)  # a few bytes can make a valid tiny matrix
    assert_clean_failure(result, source, target)


@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(lambda b: PNG_SIGNATURE + b, st.binary(max_size=2000)),
        st.builds(lambda b: b"\x93NUMPY" + b, st.binary(max_size=300)),
        st.text(alphabet="0123456789,;. -e\n", max_size=200).map(str.encode),
    )
)
def test_random_bytes_on_stdin_are_read_within_bounds_or_refused(folder, payload):
    """Whatever arrives on stdin is sniffed from its first bytes, read through the bounded stream,
    and either makes an output or a one-line error naming <stdin>."""
    target = folder / "stdin-out" / "x.npy"
    result = RUNNER.invoke(cli, ["apply", "-k", "box:1", "-", str(target)], input=payload, catch_exceptions=False)
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    if result.exit_code == 0:
        assert target.exists()
        target.unlink()
    else:
        assert result.exit_code in (1, 2), result.output
        assert result.stderr.startswith("Error: ") and len(result.stderr) <= MESSAGE_CHARS + 8
        assert not target.exists()


# --------------------------------------------------------------------------
# Random kernel specs: a kernel or a usage error (exit 2)

SPEC_CHARS = "0123456789.,;: \n/x-+eE@abgiosnmzuh=_"
specs = st.one_of(
    st.text(alphabet=SPEC_CHARS, max_size=24),
    st.text(max_size=12),
    st.builds(
        "{}:{}".format, st.sampled_from(["box", "gaussian", "3x3", "2x1"]), st.text(alphabet=SPEC_CHARS, max_size=16)
    ),
)
REGISTRY = load_registry()


@given(specs)
def test_random_specs_parse_or_raise_a_usage_error(spec):
    try:
        kernel = parse_spec(spec, REGISTRY)
    except UsageFailure as exc:  # KernelError and RegistryError are usage failures
        assert exc.exit_code == 2 and str(exc)
    else:
        assert isinstance(kernel, Kernel) and min(kernel.shape) >= 1


#: Specs with long runs of any text: the message quotes only an excerpt of it.
long_specs = st.builds(
    lambda head, middle, tail, count: head + middle * count + tail,
    st.text(alphabet=SPEC_CHARS, max_size=8),
    st.text(min_size=1, max_size=8),
    st.text(alphabet=SPEC_CHARS, max_size=8),
    st.integers(100, 20_000),
)


@given(long_specs)
def test_messages_quote_only_an_excerpt_of_any_spec(spec):
    try:
        parse_spec(spec, REGISTRY)
    except UsageFailure as exc:
        assert len(str(exc)) <= MESSAGE_CHARS
        assert spec.strip() not in str(exc) or len(spec.strip()) <= EXCERPT_CHARS


@given(st.text(alphabet="{}:!.[]0123456789>stemnaxkrlpdi/_-", max_size=30))
def test_random_templates_expand_or_are_refused(template):
    from imgconv.batch import Input, expand_template

    try:
        filled = expand_template(template, Input("in/x/a.png", "in"), kernel="blur")
    except UsageFailure as exc:
        assert exc.exit_code == 2 and len(str(exc)) <= MESSAGE_CHARS
    else:
        assert "{" not in filled.replace("{{", "") or "{" in template


@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 400),
    st.integers(1, 400),
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from(["valid", "same"]),
    st.sampled_from(["max", "mean", "min"]),
    st.integers(0, 2**32 - 1),
)
def test_pooling_windows_of_any_size_agree_with_the_definition(h, w, kh, kw, sh, sw, padding, op, seed):
    """Windows from 1 to far larger than the image, against TensorFlow's definition written with loops."""
    from test_pooling import reference_pool

    from imgconv.pooling import pool

    image = np.random.default_rng(seed).normal(-3.0, 10.0, (h, w))
    if padding == "valid" and (kh > h or kw > w):
        with pytest.raises(ParameterError, match=r"^padding: .*smaller than the pooling window"):
            pool(image, size=(kh, kw), stride=(sh, sw), padding=padding, op=op)
        return
    expected = reference_pool(image, (kh, kw), (sh, sw), padding, op)
    result = pool(image, size=(kh, kw), stride=(sh, sw), padding=padding, op=op)
    assert result.shape == expected.shape
    assert np.allclose(result, expected, rtol=1e-12, atol=0) if op == "mean" else np.array_equal(result, expected)


@given(specs)
def test_random_specs_through_kernels_show(spec):
    result = RUNNER.invoke(cli, ["kernels", "show", spec], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert "Error: " in result.stderr and result.stdout == ""


@given(images(), kernels(), st.sampled_from(GEOMETRIES), st.sampled_from(BORDERS), st.booleans())
def test_the_strip_route_gives_the_whole_image_bytes(image, kernel, geometry, border, correlate):
    """filter_image (what apply runs: strips, integer rounding) == finish(convolve(...))."""
    from imgconv.filtering import filter_image

    mode, data, maxval = image
    if maxval is None or (geometry == "valid" and (kernel.shape[0] > data.shape[0] or kernel.shape[1] > data.shape[1])):
        return
    for name in able_backends(kernel, geometry, border):
        options = {"geometry": geometry, "border": border, "correlate": correlate, "backend": name}
        whole = finish(convolve(data, [kernel], **options), maxval=maxval)
        assert np.array_equal(
            filter_image(data, [kernel], dtype=np.uint8 if maxval == 255 else np.uint16, **options), whole
        ), (name, mode)


@given(
    images(),
    st.integers(1, 5),
    st.integers(1, 5),
    st.data(),
    st.integers(30, 1000),
    st.sampled_from(GEOMETRIES),
    st.sampled_from(BORDERS),
)
def test_tiny_weights_count_like_any_other(image, height, width, data, shift, geometry, border):
    """Integer weights times 2**-shift, divided again by --scale 2**-shift, give
    the integer kernel's own bytes on every backend: both steps are exact, so
    nothing may be lost (scipy.ndimage skips weights at or below DBL_EPSILON)."""
    from imgconv.filtering import filter_image

    mode, pixels, maxval = image
    assume(maxval is not None and (geometry != "valid" or (height <= pixels.shape[0] and width <= pixels.shape[1])))
    integers = data.draw(st.lists(st.integers(-9, 9), min_size=height * width, max_size=height * width))
    rows = [integers[r * width : (r + 1) * width] for r in range(height)]
    whole = Kernel("whole", tuple(tuple(v for v in row) for row in rows))
    tiny = Kernel("tiny", tuple(tuple(float(np.ldexp(v, -shift)) for v in row) for row in rows))
    dtype = np.uint8 if maxval == 255 else np.uint16
    expected = filter_image(pixels, whole, geometry=geometry, border=border, dtype=dtype)
    for name in able_backends(tiny, geometry, border):
        got = filter_image(pixels, tiny, geometry=geometry, border=border, backend=name, scale=2.0**-shift, dtype=dtype)
        assert np.array_equal(got, expected), (name, mode)
