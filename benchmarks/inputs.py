"""The benchmark inputs, generated from sample_images/ into benchmarks/data/.

Generated once and reused (a run checks only that the files exist), and
deterministic, so two machines measure the same pixels.  Upscaling a real
photo with LANCZOS keeps photo-like content (PNG sizes and decode times
depend on it) without shipping large files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from harness import REPO, Settings

SAMPLES = REPO / "sample_images"
SIZES = {"4K": (3840, 2160), "8K": (7680, 4320)}
PHOTO_SIDE = 512


@dataclass(frozen=True)
class Inputs:
    folder: Path
    size: dict[str, tuple[int, int]]  # "4K"/"8K" -> (width, height), after --quick scaling

    def image(self, label: str, mode: str = "RGB", ext: str = "png") -> Path:
        """e.g. ``image('4K', 'L', 'tif')``: the 4K grayscale TIFF."""
        return self.folder / f"{label}-{mode}.{ext}"

    @property
    def photos(self) -> Path:
        return self.folder / "photos"


def prepare(settings: Settings) -> Inputs:
    from PIL import Image

    folder = settings.work / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    size = {label: (w // settings.scale, h // settings.scale) for label, (w, h) in SIZES.items()}
    inputs = Inputs(folder, size)
    coffee = None
    for label, dims in size.items():
        wanted = [inputs.image(label, mode, ext) for mode in ("RGB", "L") for ext in ("png", "ppm", "tif")]
        if all(p.exists() for p in wanted):
            continue
        coffee = coffee or Image.open(SAMPLES / "coffee.png").convert("RGB")
        rgb = coffee.resize(dims, Image.Resampling.LANCZOS)
        for mode, picture in (("RGB", rgb), ("L", rgb.convert("L"))):
            for ext in ("png", "ppm", "tif"):
                picture.save(inputs.image(label, mode, ext))  # Pillow's defaults: what users get
    _make_photos(inputs.photos, settings.photos)
    return inputs


def _make_photos(folder: Path, count: int) -> None:
    """``count`` 512x512 RGB PNGs: random crops of the samples, resized."""
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
        side = chooser.randint(min(width, height) // 2, min(width, height))
        left, top = chooser.randint(0, width - side), chooser.randint(0, height - side)
        crop = source.crop((left, top, left + side, top + side))
        crop.resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS).save(folder / f"photo-{index:03d}.png")


def _as_rgb(image):
    """8-bit RGB; 16-bit grayscale is scaled down, as Pillow's convert would clip it to white."""
    from PIL import Image
    import numpy as np

    if image.mode.startswith("I"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    return image.convert("RGB")
