"""Kernel specs, the registry and its error messages."""

from __future__ import annotations

from fractions import Fraction

import pytest

from imgconv.errors import KernelError, RegistryError
from imgconv.kernels import Kernel, gaussian, load_registry, parse_registry, parse_spec

F = Fraction


def values(spec: str):
    return [[float(v) for v in row] for row in parse_spec(spec).values]


class TestInlineSpecs:
    def test_rows(self):
        assert values("0,-1,0;-1,5,-1;0,-1,0") == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]

    def test_flat_square_list(self):
        assert values("1,2,1,2,4,2,1,2,1") == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]

    def test_spaces_separate_values(self):
        assert values("1 2; 3 4") == [[1, 2], [3, 4]]

    def test_imagemagick_prefix(self):
        assert parse_spec("3x1:1,2,1").shape == (3, 1)
        assert values("2x3:1,2,3,4,5,6") == [[1, 2, 3], [4, 5, 6]]

    def test_fractions_are_exact(self):
        k = parse_spec("1/9,1/9,1/9;1/9,1/9,1/9;1/9,1/9,1/9")
        assert k.values[0][0] == F(1, 9) and k.total == 1
        weights, divisor = k.integer_form()
        assert weights.tolist() == [[1.0] * 3] * 3 and divisor == 9

    def test_decimals_are_exact(self):
        assert parse_spec("0.25,0.5,0.25").values == ((F(1, 4), F(1, 2), F(1, 4)),)

    def test_rectangular_and_even_sized(self):
        assert parse_spec("1,2").shape == (1, 2)
        assert parse_spec("1,-1;-1,1").shape == (2, 2)

    def test_gaussian_size_from_sigma(self):
        k = parse_spec("gaussian:sigma=1.5")
        assert k.shape == (11, 11)
        assert abs(k.total - 1) < 1e-12
        assert k.values[5][5] == max(v for row in k.values for v in row)

    def test_gaussian_explicit_size(self):
        assert parse_spec("gaussian:sigma=2,size=9").shape == (9, 9)

    @pytest.mark.parametrize("sigma", ["1e-200", "1e-320"])
    def test_gaussian_with_a_tiny_sigma_is_an_impulse(self, sigma):
        k = parse_spec(f"gaussian:sigma={sigma},size=3")
        assert [list(map(float, row)) for row in k.values] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
        assert parse_spec(f"gaussian:sigma={sigma}").shape == (3, 3)

    def test_box(self):
        k = parse_spec("box:5")
        assert k.shape == (5, 5) and k.scale == 25
        assert parse_spec("box:3x7").shape == (3, 7)

    def test_file_yaml_and_text(self, tmp_path):
        (tmp_path / "k.yaml").write_text("values: [[1, 2, 1]]\nscale: 4\n")
        (tmp_path / "k.txt").write_text("1 0 -1\n2 0 -2\n1 0 -1\n")
        assert parse_spec(f"@{tmp_path / 'k.yaml'}").scale == 4
        assert parse_spec(f"@{tmp_path / 'k.txt'}").shape == (3, 3)

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("1,2;3", "row 2 has 1 values, row 1 has 2"),
            ("1,x,3", "value 2"),
            ("0,-1,0;-1,five,-1", "value 5 (row 2, column 2)"),
            ("1,nan,1", "non-finite value 'nan'"),
            ("1,inf,1", "non-finite value 'inf'"),
            ("1,2,3", None),  # a 1x3 row is fine
            ("3x3:1,2", "needs 9 values, got 2"),
            ("1/0,1", "division by zero"),
            ("gaussian:sigma=-1", "sigma must be a positive number"),
            ("gaussian:size=3", "gaussian needs sigma"),
            ("box:0", "at least 1"),
            ("box:1001", "larger than the limit"),
            ("sobel:x", "unknown parametric kernel 'sobel'"),
            ("@/nonexistent/k.yaml", "no such file"),
            ("   ", "the spec is empty"),
        ],
    )
    def test_malformed(self, spec, message):
        if message is None:
            assert parse_spec(spec).shape == (1, 3)
            return
        with pytest.raises(KernelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_spec(spec)

    def test_enormous_kernel_refused(self):
        with pytest.raises(KernelError, match="1001x1001 is larger than the limit of 256x256"):
            parse_spec("gaussian:sigma=1,size=1001")

    def test_limit_can_be_raised(self, monkeypatch):
        monkeypatch.setenv("IMGCONV_MAX_KERNEL", "400")
        assert parse_spec("box:300").shape == (300, 300)


class TestKernelProperties:
    def test_separable_factors_are_exact(self):
        column, row = parse_spec("gaussian5").factors()
        assert [int(v) for v in column] == [1, 4, 6, 4, 1]
        assert [int(v) for v in row] == [1, 4, 6, 4, 1]

    def test_not_separable(self):
        assert parse_spec("sharpen").factors() is None

    def test_flipped_rotates_180(self):
        assert values("1,2;3,4") == [[1, 2], [3, 4]]
        assert [[int(v) for v in r] for r in parse_spec("1,2;3,4").flipped().values] == [[4, 3], [2, 1]]

    def test_real_kernel_keeps_floats(self):
        k = gaussian(1.0)
        assert not k.exact
        weights, divisor = k.integer_form()
        assert divisor == 1 and weights.shape == (7, 7)

    def test_zero_scale_refused(self):
        with pytest.raises(KernelError, match="scale"):
            Kernel("z", ((1,),), scale=0)


class TestRegistry:
    def test_blog_kernels_are_all_there(self):
        reg = load_registry()
        expected = {
            "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
            "edge1": [[1, 0, -1], [0, 0, 0], [-1, 0, 1]],
            "edge2": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            "edge3": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
            "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
            "blur": [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
            "gaussian3": [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
            "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
        }
        for name, rows in expected.items():
            assert [[int(v) for v in r] for r in reg.get(name).values] == rows, name
        assert reg.get("blur").scale == 9
        assert reg.get("gaussian3").scale == 16
        assert reg.get("gaussian5").scale == 256
        assert reg.get("emboss").scale == 1

    def test_unsharp_has_its_factor_and_centre(self):
        k = load_registry().get("unsharp5")
        assert k.values[2][2] == -476 and k.scale == -256
        assert k.total / k.scale == 1

    def test_usual_family(self):
        reg = load_registry()
        for name in [
            "sobel-x",
            "sobel-y",
            "prewitt-x",
            "prewitt-y",
            "scharr-x",
            "scharr-y",
            "laplacian",
            "log5",
            "motion-blur",
        ]:
            k = reg.get(name)
            assert k.description and k.source, name
        assert reg.get("log5").shape == (5, 5)
        assert reg.get("log5").total == 0

    def test_unknown_name_suggests(self):
        with pytest.raises(KernelError, match="did you mean 'sharpen'"):
            parse_spec("sharpn")

    def test_user_registry_overrides_and_adds(self, tmp_path, monkeypatch):
        extra = tmp_path / "mine.yaml"
        extra.write_text(
            "kernels:\n  - name: sharpen\n    values: [[0, 0, 0], [0, 2, 0], [0, 0, 0]]\n"
            "  - name: mine\n    values: '1,1'\n    scale: 2\n"
        )
        reg = load_registry([extra])
        assert reg.get("sharpen").values[1][1] == 2
        assert reg.get("mine").scale == 2
        monkeypatch.setenv("IMGCONV_KERNELS", str(extra))
        assert load_registry().get("mine").origin == str(extra)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("kernels: [\n", "line 2"),
            ("kernels:\n  - !!python/object/apply:os.system ['true']\n", "tags are not allowed"),
            ("kernels:\n  - name: a\n    values: [[1]]\n  - name: a\n    values: [[2]]\n", "line 4.*defined twice"),
            ("kernels:\n  - name: a\n", "line 2.*'values' is missing"),
            ("kernels:\n  - values: [[1]]\n", "'name' is missing"),
            ("kernels:\n  - name: a\n    values: [[1, x]]\n", "'x' is not a number"),
            ("kernels:\n  - name: a\n    values: [[1, 2], [3]]\n", "row 2 has 1 values"),
            ("kernels:\n  - name: a\n    values: [[1]]\n    scale: zero\n", "scale: 'zero' is not a number"),
            ("kernels:\n  - name: a\n    values: [[1]]\n    colour: red\n", "unknown field"),
            ("kernels:\n  - name: a\n    values: [[.nan]]\n", "non-finite"),
            ("kernels: 3\n", "expected a list"),
        ],
    )
    def test_bad_registries(self, text, message):
        with pytest.raises(RegistryError, match=message):
            parse_registry(text, origin="r.yaml")

    def test_missing_registry_file(self, tmp_path):
        with pytest.raises(RegistryError, match="no such file"):
            load_registry([tmp_path / "absent.yaml"])


class TestRegistryCache:
    def test_cache_gives_the_same_kernels(self, tmp_path, monkeypatch):
        from imgconv.kernels import registry as kernels

        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        parsed = kernels.builtin_kernels()
        files = list((tmp_path / "imgconv").glob("kernels-*.json"))
        assert len(files) == 1
        cached = kernels.builtin_kernels()
        assert cached == parsed
        assert cached["unsharp5"].scale == -256 and cached["blur"].values[0][0] == 1

    def test_a_damaged_cache_is_parsed_again(self, tmp_path, monkeypatch):
        from imgconv.kernels import registry as kernels

        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        kernels.builtin_kernels()
        (cache,) = (tmp_path / "imgconv").glob("kernels-*.json")
        cache.write_text('[{"name": "sharpen", "values": [[1, 2], [3]]')
        assert kernels.builtin_kernels()["sharpen"].values[1][1] == 5

    def test_an_unwritable_cache_folder_is_harmless(self, tmp_path, monkeypatch):
        from imgconv.kernels import registry as kernels

        (tmp_path / "file").write_text("not a folder")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
        assert kernels.builtin_kernels()["sharpen"].shape == (3, 3)
