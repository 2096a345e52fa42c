"""Reading and writing: colour modes, 16-bit, EXIF, matrices, atomic writes."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from imgconv import formats, writing
from imgconv.errors import InputError, OutputError, UsageFailure
from imgconv.picture import Picture
from imgconv.reading import read_picture
from imgconv.writing import encode_picture, write_atomic, write_picture


def save(image: Image.Image, path, **params):
    image.save(path, **params)
    return str(path)


class TestModes:
    def test_gray_stays_gray(self, samples):
        picture = read_picture(samples / "camera.png")
        assert picture.data.shape == (512, 512, 1) and picture.depth == 8 and picture.alpha is None

    def test_rgb_is_three_matrices(self, samples):
        picture = read_picture(samples / "coffee.png")
        assert picture.data.shape == (400, 600, 3)

    def test_alpha_is_kept_aside(self, samples):
        picture = read_picture(samples / "chelsea-alpha.png")
        assert picture.data.shape == (300, 451, 3)
        assert picture.alpha.shape == (300, 451) and picture.alpha.min() == 0 and picture.alpha.max() == 255

    def test_sixteen_bit_gray(self, samples):
        picture = read_picture(samples / "astronaut-gray16.png")
        assert picture.depth == 16 and picture.data.dtype == np.uint16 and picture.data.max() > 255

    def test_gray_uses_pillow_luma(self, samples):
        picture = read_picture(samples / "coffee.png", color="gray")
        expected = np.asarray(Image.open(samples / "coffee.png").convert("L"))
        assert np.array_equal(picture.data[:, :, 0], expected)

    def test_rgb_from_gray(self, samples):
        picture = read_picture(samples / "camera.png", color="rgb")
        assert picture.data.shape == (512, 512, 3)
        assert np.array_equal(picture.data[:, :, 0], picture.data[:, :, 2])

    @pytest.mark.parametrize(
        ("mode", "channels", "alpha"),
        [("1", 1, False), ("LA", 1, True), ("P", 3, False), ("PA", 3, True), ("CMYK", 3, False), ("RGBA", 3, True)],
    )
    def test_other_modes_are_converted(self, tmp_path, mode, channels, alpha):
        image = Image.new("RGBA", (4, 3), (10, 200, 30, 128)).convert(mode)
        if mode in ("P", "PA"):
            image = Image.new("RGB", (4, 3), (10, 200, 30)).convert("P")
            if mode == "PA":
                image.info["transparency"] = 0
        fmt = {"CMYK": "TIFF"}.get(mode, "PNG")
        path = save(image, tmp_path / f"x.{fmt.lower()}", format=fmt)
        picture = read_picture(path)
        assert picture.data.shape[2] == channels
        assert (picture.alpha is not None) == alpha

    def test_exif_orientation_is_applied(self, tmp_path):
        image = Image.new("L", (4, 2), 0)
        image.putpixel((0, 0), 255)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        path = save(image, tmp_path / "r.jpg", exif=exif, quality=100)
        picture = read_picture(path)
        assert picture.data.shape[:2] == (4, 2)

    def test_first_frame_of_an_animation(self, tmp_path):
        frames = [Image.new("L", (3, 3), v) for v in (10, 200)]
        path = tmp_path / "a.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:])
        picture = read_picture(path)
        assert picture.data.shape[:2] == (3, 3)


class TestMatrices:
    def test_csv_and_txt_and_npy(self, tmp_path):
        (tmp_path / "m.csv").write_text("1,2\n3,4.5\n")
        (tmp_path / "m.txt").write_text("# a comment\n1 2\n3 4.5\n")
        np.save(tmp_path / "m.npy", np.array([[1, 2], [3, 4.5]]))
        for name in ("m.csv", "m.txt", "m.npy"):
            picture = read_picture(tmp_path / name)
            assert picture.is_matrix and picture.data[:, :, 0].tolist() == [[1, 2], [3, 4.5]]

    def test_three_d_npy(self, tmp_path):
        np.save(tmp_path / "c.npy", np.zeros((2, 3, 4)))
        assert read_picture(tmp_path / "c.npy").data.shape == (2, 3, 4)

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("1,2\n3\n", "line 2: 1 values"),
            ("1,x\n", "'x' is not a number"),
            ("1,nan\n", "NaN"),
            ("\n\n", "no numbers"),
        ],
    )
    def test_bad_csv(self, tmp_path, content, message):
        (tmp_path / "bad.csv").write_text(content)
        with pytest.raises(InputError, match=message):
            read_picture(tmp_path / "bad.csv")

    def test_text_output_round_trips_floats(self, tmp_path):
        values = np.array([[0.1, -2.0], [1e-20, 255.0]])[:, :, None]
        write_picture(Picture(values, None, "CSV", None), tmp_path / "o.csv")
        assert (tmp_path / "o.csv").read_text() == "0.1,-2\n1e-20,255\n"
        assert np.array_equal(read_picture(tmp_path / "o.csv").data, values)


class TestErrors:
    def test_missing(self, tmp_path):
        with pytest.raises(InputError, match="no such file"):
            read_picture(tmp_path / "nope.png")

    def test_directory(self, tmp_path):
        with pytest.raises(InputError, match="is a directory"):
            read_picture(tmp_path)

    def test_empty(self, tmp_path):
        (tmp_path / "e.png").write_bytes(b"")
        with pytest.raises(InputError, match="empty"):
            read_picture(tmp_path / "e.png")

    def test_not_an_image(self, tmp_path):
        (tmp_path / "t.png").write_text("hello, I am text")
        with pytest.raises(InputError, match="not an image"):
            read_picture(tmp_path / "t.png")

    def test_truncated(self, samples, tmp_path):
        data = (samples / "camera.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
        with pytest.raises(InputError, match="cannot decode"):
            read_picture(tmp_path / "cut.png")

    def test_pixel_limit_is_checked_before_decoding(self, samples):
        with pytest.raises(InputError, match=r"over the limit of 1,000 .*--max-pixels"):
            read_picture(samples / "camera.png", max_pixels=1000)


class TestWriting:
    @pytest.mark.parametrize(
        ("fmt", "data", "alpha", "message"),
        [
            ("PNG", np.zeros((2, 2, 1)), None, "cannot hold --range float"),
            ("JPEG", np.zeros((2, 2, 1), np.uint16), None, "cannot hold 16-bit"),
            ("JPEG", np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), "cannot hold the alpha"),
            ("CSV", np.zeros((2, 2, 3)), None, "2-D matrix"),
            ("TIFF", np.zeros((2, 2, 3)), None, "one channel"),
        ],
    )
    def test_format_that_cannot_hold_the_result(self, fmt, data, alpha, message):
        with pytest.raises(UsageFailure, match=message):
            encode_picture(Picture(data, alpha, "PNG", 8), fmt)

    def test_float_tiff(self, tmp_path):
        values = np.array([[0.5, -1.25]])[:, :, None]
        write_picture(Picture(values, None, "NPY", None), tmp_path / "f.tif")
        assert np.asarray(Image.open(tmp_path / "f.tif")).tolist() == [[0.5, -1.25]]

    def test_sixteen_bit_png(self, tmp_path):
        data = np.array([[0, 65535]], dtype=np.uint16)[:, :, None]
        write_picture(Picture(data, None, "PNG", 16), tmp_path / "s.png")
        assert np.asarray(Image.open(tmp_path / "s.png")).tolist() == [[0, 65535]]

    def test_unknown_extension(self):
        with pytest.raises(UsageFailure, match=r"unknown output extension '\.xyz'"):
            formats.format_for("out.xyz")

    def test_encoding_is_deterministic(self, samples):
        picture = read_picture(samples / "chelsea-alpha.png")
        assert encode_picture(picture, "PNG") == encode_picture(picture, "PNG")

    def test_atomic_write_leaves_nothing_on_failure(self, tmp_path, monkeypatch):
        target = tmp_path / "out.png"
        target.write_bytes(b"old")

        def broken_replace(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OutputError, match="No space left"):
            write_atomic(target, b"new data")
        assert target.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["out.png"]

    def test_atomic_write_permissions_follow_umask(self, tmp_path):
        mask = os.umask(0o022)
        os.umask(mask)
        write_atomic(tmp_path / "p.png", b"x")
        assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o666 & ~mask

    def test_creates_missing_folders(self, tmp_path):
        write_atomic(tmp_path / "a" / "b" / "c.png", b"x")
        assert (tmp_path / "a" / "b" / "c.png").read_bytes() == b"x"

    def test_binary_never_goes_to_a_terminal(self):
        class Terminal(io.BytesIO):
            def isatty(self):
                return True

        with pytest.raises(UsageFailure, match="terminal"):
            writing.write_stdout(b"\x89PNG", text=False, stream=Terminal())
        stream = Terminal()
        writing.write_stdout(b"1,2\n", text=True, stream=stream)
        assert stream.getvalue() == b"1,2\n"


class TestPngWriter:
    """imgconv's own PNG writer: every mode, both depths, read back by Pillow."""

    @pytest.mark.parametrize("channels", [1, 2, 3, 4])
    @pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
    @pytest.mark.parametrize("level", [0, 1, 9])
    def test_round_trip(self, channels, dtype, level):

        from imgconv.png import write_png

        rng = np.random.default_rng(channels)
        pixels = rng.integers(0, np.iinfo(dtype).max + 1, (37, 53, channels)).astype(dtype)
        buffer = io.BytesIO()
        write_png(pixels, buffer, level=level)
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
        if dtype == np.uint8 or channels == 1:  # Pillow reduces 16-bit colour to 8 bits when reading
            back = np.asarray(image).reshape(pixels.shape)
            assert np.array_equal(back.astype(np.int64), pixels.astype(np.int64))
        assert image.size == (53, 37)

    def test_pieces_make_one_valid_zlib_stream(self, monkeypatch):
        import zlib

        from imgconv import png

        monkeypatch.setattr(png, "PIECE", 1000)  # force many pieces on a small image
        pixels = np.random.default_rng(3).integers(0, 256, (64, 100, 3)).astype(np.uint8)
        buffer = io.BytesIO()
        png.write_png(pixels, buffer, level=1)
        data = buffer.getvalue()
        idat, position = b"", 8
        while position < len(data):
            length = int.from_bytes(data[position : position + 4], "big")
            kind = data[position + 4 : position + 8]
            if kind == b"IDAT":
                idat += data[position + 8 : position + 8 + length]
            position += 12 + length
        assert len(zlib.decompress(idat)) == 64 * (100 * 3 + 1)  # checks the Adler-32 too
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)

    def test_sixteen_bit_colour_png_through_the_cli(self, run, samples, tmp_path):
        out = tmp_path / "c16.npy"
        assert (
            run(
                "apply", "-k", "identity", "--color", "rgb", samples / "astronaut-gray16.png", tmp_path / "c16.png"
            ).exit_code
            == 0
        )
        assert (
            run(
                "apply", "-k", "identity", "--color", "rgb", "--range", "clip", samples / "astronaut-gray16.png", out
            ).exit_code
            == 0
        )
        assert np.load(out).dtype == np.uint16
