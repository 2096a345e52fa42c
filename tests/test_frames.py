"""Every frame: animated GIF, PNG and WebP, multi-page TIFF, GIF output, --frames."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import crop, pixels
from PIL import Image

import imgconv

DURATIONS = [40, 50, 60, 70, 80, 90, 100, 110, 120, 130]
ANIMATED = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}


def frame_arrays(count: int = 10, *, alpha: bool = False, seed: int = 0) -> list[np.ndarray]:
    """Distinct frames: a background colour, a white bar that moves, and
    (with alpha) a transparent band that moves the other way."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        frame = np.zeros((16, 40, 4), np.uint8)
        frame[:, :, :3] = rng.integers(0, 256, 3, dtype=np.uint8)
        frame[:, 3 * index : 3 * index + 3, :3] = 255
        frame[:, :, 3] = 255
        if alpha:
            frame[:, 37 - 3 * index : 40 - 3 * index, 3] = 0
        frames.append(frame if alpha else frame[:, :, :3])
    return frames


def save_animation(path, fmt: str, frames: list[np.ndarray], **params) -> None:
    images = [Image.fromarray(f) for f in frames]
    if fmt == "WEBP":
        params.setdefault("lossless", True)
    images[0].save(path, fmt, save_all=True, append_images=images[1:], **params)


def read_frames(path) -> tuple[list[np.ndarray], list, Image.Image]:
    """Every frame (RGBA), every duration (read after each frame is loaded), and the image."""
    image = Image.open(path)
    frames, durations = [], []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        frames.append(np.asarray(image.convert("RGBA")))
        durations.append(image.info.get("duration"))
    return frames, durations, image


def apply(run, *args) -> None:
    result = run("apply", *args)
    assert result.exit_code == 0, result.stderr


def filtered(frame: np.ndarray, kernel: str = "blur") -> np.ndarray:
    """What apply makes of one frame: colour filtered, alpha carried."""
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]) if frame.shape[2] == 3 else frame
    return np.dstack([imgconv.filter_image(rgba[:, :, :3], kernel), rgba[:, :, 3]])


def webp_still(rgba: np.ndarray, *, alpha: bool) -> np.ndarray:
    """``rgba`` through libwebp's still encoder at imgconv's default quality, decoded."""
    buffer = io.BytesIO()
    Image.fromarray(rgba if alpha else rgba[:, :, :3]).save(buffer, "WEBP", quality=90)
    return np.asarray(Image.open(buffer).convert("RGBA"))


@pytest.mark.parametrize("fmt", list(ANIMATED))
@pytest.mark.parametrize("alpha", [False, True], ids=["opaque", "alpha"])
def test_animations_keep_frames_durations_and_loop(run, tmp_path, fmt, alpha):
    source = tmp_path / f"in.{ANIMATED[fmt]}"
    extra = {"disposal": 2} if fmt == "GIF" else {}
    save_animation(source, fmt, frame_arrays(alpha=alpha), duration=DURATIONS, loop=3, **extra)
    target = tmp_path / f"out.{ANIMATED[fmt]}"
    apply(run, "-k", "blur", source, target)
    written, durations, image = read_frames(target)
    assert len(written) == 10
    assert [round(d) for d in durations] == DURATIONS
    assert image.info["loop"] == 3
    # Each frame is its own frame, filtered.  The blurred frames have fewer
    # than 256 colours, so even the GIF is exact; WebP frames are libwebp's
    # still coding of the filtered frame.
    source_frames, _, _ = read_frames(source)
    for got, frame in zip(written, source_frames, strict=True):
        expected = filtered(frame)
        if fmt == "WEBP":
            expected = webp_still(expected, alpha=alpha)
        assert np.array_equal(got[:, :, 3], expected[:, :, 3])
        visible = expected[:, :, 3] > 0
        assert np.array_equal(got[visible], expected[visible])


def test_a_three_page_tiff_keeps_three_pages(run, tmp_path):
    rng = np.random.default_rng(3)
    pages = [
        Image.fromarray(rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (12, 15, 4), dtype=np.uint8)),
    ]
    pages[0].save(tmp_path / "in.tif", save_all=True, append_images=pages[1:])
    apply(run, "-k", "sharpen", tmp_path / "in.tif", tmp_path / "out.tif")
    written = Image.open(tmp_path / "out.tif")
    assert written.n_frames == 3
    for index, page in enumerate(pages):
        written.seek(index)
        array = np.asarray(page)
        colour = array if array.ndim == 2 else array[:, :, :3]
        expected = imgconv.filter_image(colour, "sharpen")
        assert written.mode == page.mode
        got = np.asarray(written)
        assert np.array_equal(got if got.ndim == 2 else got[:, :, :3], expected)


@pytest.mark.parametrize("fmt", [*ANIMATED, "TIFF"])
def test_frames_first_gives_one_frame(run, tmp_path, fmt):
    extension = ANIMATED.get(fmt, "tif")
    source = tmp_path / f"in.{extension}"
    frames = frame_arrays(4)
    save_animation(source, fmt, frames, **({} if fmt == "TIFF" else {"duration": 50, "loop": 0}))
    apply(run, "-k", "blur", "--frames", "first", source, tmp_path / f"out.{extension}")
    written, _, _ = read_frames(tmp_path / f"out.{extension}")
    assert len(written) == 1
    apply(run, "-k", "blur", "--frames", "first", source, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").size == (40, 16)


def test_frames_share_the_first_frames_layout(run, tmp_path):
    """A gray animation stays gray in every frame."""
    frames = [Image.fromarray(np.full((8, 8), level, np.uint8)) for level in (0, 100, 200)]
    frames[0].save(tmp_path / "gray.png", save_all=True, append_images=frames[1:], duration=40)
    apply(run, "-k", "identity", tmp_path / "gray.png", tmp_path / "out.png")
    written = Image.open(tmp_path / "out.png")
    assert written.mode == "L" and written.n_frames == 3
    written.seek(2)
    assert np.asarray(written).max() == 200


@pytest.mark.parametrize("extension", ["jpg", "bmp", "ppm", "npy"])
def test_one_frame_formats_refuse_several_frames(run, tmp_path, extension):
    save_animation(tmp_path / "in.gif", "GIF", frame_arrays(3), duration=50)
    result = run("apply", "-k", "blur", tmp_path / "in.gif", tmp_path / f"out.{extension}")
    assert result.exit_code == 2
    assert "holds one frame and the input has 3" in result.stderr and "--frames first" in result.stderr
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_gif_output_of_few_colours_is_exact(run, tmp_path):
    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    still = palette[rng.integers(0, 200, (30, 40))]
    Image.fromarray(still).save(tmp_path / "few.png")
    apply(run, "-k", "identity", tmp_path / "few.png", tmp_path / "few.gif")
    written = Image.open(tmp_path / "few.gif")
    assert written.format == "GIF" and getattr(written, "n_frames", 1) == 1
    assert np.array_equal(np.asarray(written.convert("RGB")), still)


def test_gif_round_trips(run, tmp_path):
    """GIF to GIF: frames, transparency, durations, loop and disposal come back."""
    frames = frame_arrays(alpha=True, seed=5)
    save_animation(tmp_path / "in.gif", "GIF", frames, duration=DURATIONS, loop=0, disposal=2)
    apply(run, "-k", "identity", tmp_path / "in.gif", tmp_path / "out.gif")
    source, source_durations, _ = read_frames(tmp_path / "in.gif")
    written, durations, image = read_frames(tmp_path / "out.gif")
    assert durations == source_durations == DURATIONS and image.info["loop"] == 0
    for got, expected in zip(written, source, strict=True):
        assert np.array_equal(got[:, :, 3], expected[:, :, 3])
        visible = expected[:, :, 3] > 0
        assert np.array_equal(got[visible], expected[visible])
    image.seek(3)
    assert image.disposal_method == 2


def test_gif_keeps_the_disposal_it_was_given(run, tmp_path):
    frames = frame_arrays(3, seed=6)  # opaque: no frame needs clearing
    save_animation(tmp_path / "in.gif", "GIF", frames, duration=50, disposal=[1, 3, 1], optimize=False)
    apply(run, "-k", "identity", tmp_path / "in.gif", tmp_path / "out.gif")
    image = Image.open(tmp_path / "out.gif")
    disposals = []
    for index in range(3):
        image.seek(index)
        disposals.append(image.disposal_method)
    assert disposals == [1, 3, 1]


def test_apng_keeps_the_disposal_it_was_given(run, tmp_path):
    save_animation(tmp_path / "in.png", "PNG", frame_arrays(3), duration=50, disposal=[0, 1, 2])
    apply(run, "-k", "blur", tmp_path / "in.png", tmp_path / "out.png")
    image = Image.open(tmp_path / "out.png")
    disposals = []
    for index in range(3):
        image.seek(index)
        disposals.append(image.info["disposal"])
    assert disposals == [0, 1, 2]


def test_a_photo_becomes_a_close_gif(run, samples, tmp_path):
    source = crop(samples / "coffee.png", (200, 150, 296, 222), tmp_path, "photo.png")
    apply(run, "-k", "identity", source, tmp_path / "photo.gif")
    written = np.asarray(Image.open(tmp_path / "photo.gif").convert("RGB")).astype(int)
    assert len(np.unique(written.reshape(-1, 3), axis=0)) <= 256
    assert np.abs(written - pixels(source)).mean() < 4


def test_animations_convert_between_formats(run, tmp_path):
    frames = frame_arrays(5, alpha=True, seed=8)
    save_animation(tmp_path / "in.png", "PNG", frames, duration=[100, 200, 300, 400, 500], loop=0)
    for extension in ("gif", "webp", "tif"):
        apply(run, "-k", "identity", tmp_path / "in.png", tmp_path / f"out.{extension}")
        written, durations, image = read_frames(tmp_path / f"out.{extension}")
        assert len(written) == 5
        if extension != "tif":
            assert durations == [100, 200, 300, 400, 500] and image.info["loop"] == 0
        for got, expected in zip(written, frames, strict=True):
            assert np.array_equal(got[:, :, 3] > 127, expected[:, :, 3] > 127)


def test_pages_of_another_size_do_not_make_an_animation(run, tmp_path):
    pages = [Image.new("RGB", (10, 10), "red"), Image.new("RGB", (12, 10), "blue")]
    pages[0].save(tmp_path / "in.tif", save_all=True, append_images=pages[1:])
    result = run("apply", "-k", "blur", tmp_path / "in.tif", tmp_path / "out.gif")
    assert result.exit_code == 2
    assert "12x10" in result.stderr and "write .tif" in result.stderr
    assert not list(tmp_path.glob("*out*"))


def test_batches_and_pooling_take_every_frame(run, tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        save_animation(tmp_path / f"{name}.gif", "GIF", frame_arrays(4, seed=seed), duration=50, loop=0)
    result = run("apply", "-k", "blur", tmp_path / "a.gif", tmp_path / "b.gif", "-o", f"{tmp_path}/out/", "-j", "2")
    assert result.exit_code == 0, result.stderr
    for name in ("a", "b"):
        assert Image.open(tmp_path / "out" / f"{name}.gif").n_frames == 4
    apply_pool = run("maxpool", "--size", "2", tmp_path / "a.gif", tmp_path / "pooled.png")
    assert apply_pool.exit_code == 0, apply_pool.stderr
    pooled = Image.open(tmp_path / "pooled.png")
    assert pooled.n_frames == 4 and pooled.size == (20, 8)


def test_stdout_follows_an_animated_input(run, tmp_path):
    save_animation(tmp_path / "in.gif", "GIF", frame_arrays(3), duration=50, loop=0)
    result = run("apply", "-k", "blur", tmp_path / "in.gif", "-")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"GIF89a")
    (tmp_path / "piped.gif").write_bytes(result.stdout_bytes)
    assert Image.open(tmp_path / "piped.gif").n_frames == 3


def test_a_damaged_frame_leaves_no_file(run, tmp_path):
    save_animation(tmp_path / "in.png", "PNG", frame_arrays(6), duration=50)
    data = (tmp_path / "in.png").read_bytes()
    position = data.rindex(b"fdAT")
    damaged = data[: position + 8] + bytes(16) + data[position + 24 :]
    (tmp_path / "bad.png").write_bytes(damaged)
    result = run("apply", "-k", "blur", tmp_path / "bad.png", tmp_path / "out.png")
    assert result.exit_code == 1
    assert "bad.png" in result.stderr and "frame 6 of 6" in result.stderr
    assert not list(tmp_path.glob("*out*"))


def test_the_library_reads_frames_one_at_a_time(tmp_path):
    from imgconv.reading import read_frames as read

    save_animation(tmp_path / "in.webp", "WEBP", frame_arrays(3), duration=[10, 20, 30], loop=2)
    frames = read(tmp_path / "in.webp")
    assert frames.animation.count == 3 and frames.animation.loop == 2
    pictures = iter(frames)
    first = next(pictures)
    assert first.timing is not None and first.timing.duration == 10
    assert [p.timing.duration for p in pictures if p.timing] == [20, 30]


def test_an_apng_default_image_is_not_a_frame(run, tmp_path):
    """An APNG may hold an image for viewers without animation: --frames first
    gives it, as such viewers show; the animation is the frames after it."""
    images = [Image.new("RGB", (4, 4), colour) for colour in ("red", "green", "blue")]
    images[0].save(tmp_path / "in.png", save_all=True, append_images=images[1:], default_image=True, duration=100)
    apply(run, "-k", "identity", tmp_path / "in.png", tmp_path / "out.gif")
    written, _, _ = read_frames(tmp_path / "out.gif")
    assert [tuple(frame[0, 0, :3]) for frame in written] == [(0, 128, 0), (0, 0, 255)]
    apply(run, "-k", "identity", "--frames", "first", tmp_path / "in.png", tmp_path / "first.png")
    assert tuple(pixels(tmp_path / "first.png")[0, 0]) == (255, 0, 0)


# How often an animation plays survives a change of format: APNG and WebP
# count plays, GIF counts repeats after the first play (0 is for ever in all three).
@pytest.mark.parametrize(
    ("source_fmt", "target_fmt"), [("PNG", "GIF"), ("GIF", "PNG"), ("WEBP", "GIF"), ("GIF", "WEBP")]
)
@pytest.mark.parametrize("plays", [0, 1, 2, 5])
def test_the_number_of_plays_survives_a_change_of_format(run, tmp_path, source_fmt, target_fmt, plays):
    def loop_for(fmt: str, plays: int) -> dict:
        if fmt != "GIF":
            return {"loop": plays}
        return {} if plays == 1 else {"loop": 0 if plays == 0 else plays - 1}

    def plays_of(fmt: str, info: dict) -> int:
        if fmt != "GIF":
            return info.get("loop", 1)
        return 1 if "loop" not in info else (0 if info["loop"] == 0 else info["loop"] + 1)

    source = tmp_path / f"in.{ANIMATED[source_fmt]}"
    save_animation(source, source_fmt, frame_arrays(3), duration=50, **loop_for(source_fmt, plays))
    assert plays_of(source_fmt, Image.open(source).info) == plays
    target = tmp_path / f"out.{ANIMATED[target_fmt]}"
    apply(run, "-k", "blur", source, target)
    assert plays_of(target_fmt, Image.open(target).info) == plays
