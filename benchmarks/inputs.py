"""The benchmark inputs, generated from sample_images/ into benchmarks/data/.

Generated once and reused (a run checks only that the files exist), and
deterministic, so two machines measure the same pixels.  Two kinds of
content, each measured in every whole-process and batch row:

- upscaled: a real photo enlarged with LANCZOS.  Smooth, so it compresses
  unusually well, which flatters a fast PNG encoder.
- photo-like: a real photo at its native resolution, mirrored and tiled to
  the size (no seams, no interpolation), plus sensor-like noise of -6..+6
  levels from a fixed seed: detail and noise as in a camera's file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness import REPO, Settings

SAMPLES = REPO / "sample_images"
SIZES = {"4K": (3840, 2160), "8K": (7680, 4320)}
HUGE_SIDE = 20000  # the streaming case's square image
PHOTO_SIDE = 512

#: The kinds of content, in the order the tables show them.
UPSCALED, PHOTO_LIKE = "upscaled", "photo-like"
CONTENTS = (UPSCALED, PHOTO_LIKE)

#: Noise added to photo-like content: -NOISE..+NOISE levels, uniform.
NOISE = 6


@dataclass(frozen=True)
class Inputs:
    folder: Path
    size: dict[str, tuple[int, int]]  # "4K"/"8K" -> (width, height), after --quick scaling

    def image(self, label: str, mode: str = "RGB", ext: str = "png", content: str = UPSCALED) -> Path:
        """e.g. ``image('4K', 'L', 'tif')``: the 4K grayscale TIFF, upscaled content."""
        suffix = "" if content == UPSCALED else "-photo"
        return self.folder / f"{label}-{mode}{suffix}.{ext}"

    def photos(self, content: str = UPSCALED) -> Path:
        """The folder of the batch's 512x512 photos."""
        return self.folder / ("photos" if content == UPSCALED else "photos-photo")


def prepare(settings: Settings) -> Inputs:
    from PIL import Image

    folder = settings.work / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    size = {label: (w // settings.scale, h // settings.scale) for label, (w, h) in SIZES.items()}
    inputs = Inputs(folder, size)
    coffee = None
    for label, dims in size.items():
        for content in CONTENTS:
            wanted = [inputs.image(label, mode, ext, content) for mode in ("RGB", "L") for ext in ("png", "ppm", "tif")]
            if all(p.exists() for p in wanted):
                continue
            coffee = coffee or Image.open(SAMPLES / "coffee.png").convert("RGB")
            if content == UPSCALED:
                rgb = coffee.resize(dims, Image.Resampling.LANCZOS)
                gray = rgb.convert("L")
            else:
                rgb = photo_like(coffee, dims, seed=1)
                gray = photo_like(coffee.convert("L"), dims, seed=2)
            for mode, picture in (("RGB", rgb), ("L", gray)):
                for ext in ("png", "ppm", "tif"):
                    picture.save(inputs.image(label, mode, ext, content))  # Pillow's defaults: what users get
    for content in CONTENTS:
        _make_photos(inputs.photos(content), settings.photos, content)
    return inputs


def noise(shape: tuple[int, ...], seed: int, amplitude: int = NOISE):
    """Integers in -amplitude..amplitude, uniform (to 1 part in 5000), from
    PCG64's raw stream, which numpy keeps the same across versions."""
    import numpy as np

    count = int(np.prod(shape))
    raw = np.random.PCG64(seed).random_raw((count + 3) // 4).view(np.uint16)[:count]
    return (raw % (2 * amplitude + 1)).astype(np.int16).reshape(shape) - amplitude


def photo_like(source, dims: tuple[int, int], *, seed: int, offset: tuple[int, int] = (0, 0)):
    """``source`` at its own resolution, mirrored and tiled to ``dims`` (width,
    height) from ``offset`` in the tiling, plus noise: a Pillow image.

    >>> from PIL import Image
    >>> tile = Image.fromarray(__import__('numpy').full((3, 2), 100, dtype='uint8'))
    >>> picture = photo_like(tile, (5, 4), seed=0)
    >>> picture.size, 94 <= min(picture.getdata()) and max(picture.getdata()) <= 106
    ((5, 4), True)
    """
    import numpy as np
    from PIL import Image

    pixels = np.asarray(source)
    width, height = dims
    rows, cols = offset[1] + height, offset[0] + width
    # numpy's "symmetric" pad repeats the picture mirrored (edge pixel repeated): no seams.
    pad = [(0, max(0, rows - pixels.shape[0])), (0, max(0, cols - pixels.shape[1]))] + [(0, 0)] * (pixels.ndim - 2)
    tiled = np.pad(pixels, pad, mode="symmetric")[offset[1] : rows, offset[0] : cols]
    noisy = tiled.astype(np.int16) + noise(tiled.shape, seed)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _make_photos(folder: Path, count: int, content: str) -> None:
    """``count`` 512x512 RGB PNGs from the samples: random crops resized
    (upscaled), or random windows of the mirrored tiling plus noise (photo-like)."""
    from PIL import Image

    folder.mkdir(exist_ok=True)
    if len(list(folder.glob("*.png"))) == count:
        return
    for old in folder.glob("*.png"):
        old.unlink()
    sources = [_as_rgb(Image.open(p)) for p in sorted(SAMPLES.glob("*.png"))]
    chooser = random.Random(6)  # the number: any fixed seed would do
    for index in range(count):
        source = chooser.choice(sources)
        width, height = source.size
        if content == UPSCALED:
            side = chooser.randint(min(width, height) // 2, min(width, height))
            left, top = chooser.randint(0, width - side), chooser.randint(0, height - side)
            crop = source.crop((left, top, left + side, top + side))
            picture = crop.resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
        else:
            offset = (chooser.randint(0, 2 * width), chooser.randint(0, 2 * height))
            picture = photo_like(source, (PHOTO_SIDE, PHOTO_SIDE), seed=100 + index, offset=offset)
        picture.save(folder / f"photo-{index:03d}.png")


def _as_rgb(image):
    """8-bit RGB; 16-bit grayscale is scaled down, as Pillow's convert would clip it to white."""
    from PIL import Image
    import numpy as np

    if image.mode.startswith("I"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    return image.convert("RGB")


def huge_tiff(settings: Settings) -> Path:
    """A HUGE_SIDE x HUGE_SIDE RGB TIFF (uncompressed strips, 1.2 GB at full size),
    written a band at a time so that making it needs little memory: a real
    photo upscaled to a quarter of the side, tiled 4 x 4 with every other
    tile mirrored, so there are no seams."""
    import numpy as np
    from PIL import Image

    from imgconv.sinks import write_tiff

    side = HUGE_SIDE // settings.scale
    path = settings.work / "inputs" / f"huge-{side}-RGB.tif"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    quarter = side // 4
    tile = np.asarray(Image.open(SAMPLES / "coffee.png").convert("RGB").resize((quarter, quarter), Image.Resampling.LANCZOS))
    row = np.concatenate([tile, tile[:, ::-1]] * 2, axis=1)  # quarter x side

    def bands():
        for top in range(0, side, 500):
            index = np.arange(top, min(top + 500, side))
            mirrored = (index // quarter) % 2 == 1
            yield row[np.where(mirrored, quarter - 1 - index % quarter, index % quarter)]

    temporary = path.with_suffix(".part")
    with open(temporary, "wb") as stream:
        write_tiff(stream, (side, side, 3), np.dtype(np.uint8), bands())
    temporary.rename(path)
    return path
