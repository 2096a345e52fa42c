"""Colour profiles and EXIF: carried into every format that holds them, --strip drops them."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import pixels
from PIL import Image, ImageCms

import imgconv
from imgconv.metadata import Metadata

#: A real sRGB profile (little CMS), and a copy that says it is for gray images.
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GRAY_PROFILE = SRGB[:16] + b"GRAY" + SRGB[20:]

WITH_PROFILE = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp"}


def camera_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[271] = "Imgconv Camera"  # Make
    exif[272] = "Model 1"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal, in the EXIF folder
    exif.get_ifd(0x8825)[1] = "N"  # GPSLatitudeRef, in the GPS folder
    return exif


def photo(tmp_path, fmt: str, *, mode: str = "RGB", icc: bytes | None = SRGB, exif: Image.Exif | None = None):
    rng = np.random.default_rng(7)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (18, 26, channels), dtype=np.uint8)
    image = Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)
    path = tmp_path / f"in.{WITH_PROFILE.get(fmt, fmt.lower())}"
    params = {}
    if icc is not None:
        params["icc_profile"] = icc
    if exif is not None:
        params["exif"] = exif.tobytes()
    image.save(path, fmt, **params)
    return path


def apply(run, *args) -> None:
    result = run("apply", "-k", "blur", *args)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("fmt", list(WITH_PROFILE))
def test_the_profile_is_kept_byte_for_byte(run, tmp_path, fmt):
    source = photo(tmp_path, fmt)
    target = tmp_path / f"out.{WITH_PROFILE[fmt]}"
    apply(run, source, target)
    assert Image.open(target).info["icc_profile"] == SRGB


@pytest.mark.parametrize("source_fmt", list(WITH_PROFILE))
@pytest.mark.parametrize("target_fmt", list(WITH_PROFILE))
def test_the_profile_crosses_formats(run, tmp_path, source_fmt, target_fmt):
    source = photo(tmp_path, source_fmt)
    target = tmp_path / f"out.{WITH_PROFILE[target_fmt]}"
    apply(run, source, target)
    assert Image.open(target).info.get("icc_profile") == SRGB


@pytest.mark.parametrize("extension", ["gif", "bmp", "ppm", "npy"])
def test_formats_without_a_profile_are_written_without_one(run, tmp_path, extension):
    apply(run, photo(tmp_path, "PNG"), tmp_path / f"out.{extension}")
    assert (tmp_path / f"out.{extension}").stat().st_size > 0


def test_sixteen_bit_and_gray_outputs_keep_a_gray_profile(run, tmp_path):
    Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).save(
        tmp_path / "g16.png", icc_profile=GRAY_PROFILE
    )
    for extension in ("png", "tif"):
        apply(run, tmp_path / "g16.png", tmp_path / f"out.{extension}")
        written = Image.open(tmp_path / f"out.{extension}")
        assert written.mode == "I;16" and written.info["icc_profile"] == GRAY_PROFILE


def test_a_profile_of_another_colour_space_is_dropped(run, tmp_path):
    source = photo(tmp_path, "PNG")  # an RGB profile
    apply(run, "--color", "gray", source, tmp_path / "gray.png")
    assert "icc_profile" not in Image.open(tmp_path / "gray.png").info
    gray = photo(tmp_path, "PNG", mode="L", icc=GRAY_PROFILE)
    apply(run, "--color", "rgb", gray, tmp_path / "rgb.png")
    assert "icc_profile" not in Image.open(tmp_path / "rgb.png").info
    apply(run, gray, tmp_path / "gray2.png")
    assert Image.open(tmp_path / "gray2.png").info["icc_profile"] == GRAY_PROFILE
    apply(run, gray, tmp_path / "gray.webp")  # WebP stores gray as colour
    assert "icc_profile" not in Image.open(tmp_path / "gray.webp").info


@pytest.mark.parametrize("extension", ["jpg", "png", "tif", "webp"])
def test_exif_is_kept_without_the_orientation_it_had(run, tmp_path, extension):
    source = photo(tmp_path, "JPEG", exif=camera_exif(orientation=6))
    target = tmp_path / f"out.{extension}"
    apply(run, source, target)
    written = Image.open(target)
    assert written.size == (18, 26)  # turned upright once, on reading
    exif = written.getexif()
    assert exif[271] == "Imgconv Camera" and exif[272] == "Model 1"
    assert 0x0112 not in exif  # a viewer must not turn it again
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert exif.get_ifd(0x8825)[1] == "N"


def test_exif_from_a_tiff_keeps_its_descriptive_tags_only(run, tmp_path):
    source = photo(tmp_path, "TIFF", exif=camera_exif(orientation=1))
    apply(run, source, tmp_path / "out.jpg")
    exif = Image.open(tmp_path / "out.jpg").getexif()
    assert exif[271] == "Imgconv Camera"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert not {256, 257, 273, 279} & set(exif)  # the TIFF's own layout tags are not EXIF


def test_strip_drops_every_profile_and_exif(run, tmp_path):
    for fmt, extension in WITH_PROFILE.items():
        source = photo(tmp_path, fmt, exif=camera_exif())
        target = tmp_path / f"stripped.{extension}"
        apply(run, "--strip", source, target)
        written = Image.open(target)
        assert "icc_profile" not in written.info
        assert not {271, 0x0112, 0x8769} & set(written.getexif())


def test_png_metadata_chunks_come_right_after_the_header(run, tmp_path):
    apply(run, photo(tmp_path, "JPEG", exif=camera_exif()), tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    kinds, position = [], 8
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        assert crc == zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF
        kinds.append(kind)
        position += 12 + length
    assert kinds[:3] == [b"IHDR", b"iCCP", b"eXIf"]
    assert kinds[3] == b"IDAT" and kinds[-1] == b"IEND"


def test_without_metadata_a_png_gains_no_chunk(run, tmp_path):
    apply(run, photo(tmp_path, "PNG", icc=None), tmp_path / "out.png")
    data = (tmp_path / "out.png").read_bytes()
    assert b"iCCP" not in data and b"eXIf" not in data


def test_pixels_are_the_same_with_and_without_metadata(run, tmp_path):
    source = photo(tmp_path, "PNG", exif=camera_exif(orientation=1))
    apply(run, source, tmp_path / "kept.png")
    apply(run, "--strip", source, tmp_path / "stripped.png")
    assert np.array_equal(pixels(tmp_path / "kept.png"), pixels(tmp_path / "stripped.png"))


def test_the_library_reads_and_writes_metadata(tmp_path):
    picture = imgconv.read_picture(photo(tmp_path, "JPEG", exif=camera_exif()))
    assert picture.metadata.icc == SRGB
    assert picture.metadata.exif is not None and b"Imgconv Camera" in picture.metadata.exif
    imgconv.write_picture(picture, tmp_path / "copy.webp")
    assert Image.open(tmp_path / "copy.webp").info["icc_profile"] == SRGB
    picture.metadata = Metadata()
    imgconv.write_picture(picture, tmp_path / "bare.webp")
    assert "icc_profile" not in Image.open(tmp_path / "bare.webp").info


def test_damaged_exif_is_dropped_and_the_picture_read(run, tmp_path):
    image = Image.fromarray(np.zeros((4, 4, 3), np.uint8))
    image.save(tmp_path / "bad.jpg", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    apply(run, tmp_path / "bad.jpg", tmp_path / "out.png")
    assert pixels(tmp_path / "out.png").shape == (4, 4, 3)
