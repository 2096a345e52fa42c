"""The streaming issue's "done when" checks, as measurements (not tests).

    python benchmarks/streaming_checks.py            # 20000x20000 and 4000x3000 checks
    python benchmarks/streaming_checks.py --quick    # 5000x5000 instead of 20000x20000

1. A 20000x20000 RGB TIFF (1.2 GB raw) through ``apply -k sharpen`` into
   TIFF and into PNG, and through ``maxpool --size 2`` into TIFF, each with
   the default budget: wall time and peak RSS (``/usr/bin/time -v``), and
   the output's pixels against an independent reference (plain numpy sums
   of shifted input windows, and block maxima) on sampled windows: the four
   corners, the middle of each edge, and random windows inside.
2. A 4000x3000 RGB TIFF through every border, a 31x31 kernel, a chain of
   two kernels, normalize and pooling with same padding, each with
   ``--memory 64M`` (strips) and ``--memory 4G`` (whole image): the two PNG
   files must be byte-identical; peak RSS shows which route ran.

Results are printed and written to benchmarks/streaming-checks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, Settings, imgconv_command, time_and_rss  # noqa: E402
from inputs import SAMPLES, huge_tiff  # noqa: E402

WINDOW = 64
LIMIT_MB = 512 * 1024 * 1024 / 1e6


def windows(height: int, width: int, count: int, seed: int = 14) -> list[tuple[int, int]]:
    """Top-left corners: the corners, the middle of each edge, and ``count`` random places."""
    h, w = height - WINDOW, width - WINDOW
    places = [(0, 0), (0, w), (h, 0), (h, w), (0, w // 2), (h, w // 2), (h // 2, 0), (h // 2, w)]
    chooser = np.random.default_rng(seed)
    places += [(int(chooser.integers(0, h)), int(chooser.integers(0, w))) for _ in range(count)]
    return places


def sharpen_reference(image: np.ndarray, top: int, left: int) -> np.ndarray:
    """``sharpen`` (0,-1,0;-1,5,-1;0,-1,0, zero border) of one window, from plain shifted sums."""
    height, width = image.shape[:2]
    padded = np.zeros((WINDOW + 2, WINDOW + 2, 3), np.int32)
    r0, r1, c0, c1 = max(top - 1, 0), min(top + WINDOW + 1, height), max(left - 1, 0), min(left + WINDOW + 1, width)
    padded[r0 - (top - 1) : r1 - (top - 1), c0 - (left - 1) : c1 - (left - 1)] = image[r0:r1, c0:c1]
    centre = padded[1:-1, 1:-1]
    total = 5 * centre - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2] - padded[1:-1, 2:]
    return np.clip(total, 0, 255).astype(np.uint8)


def maxpool_reference(image: np.ndarray, top: int, left: int) -> np.ndarray:
    """2x2 max pooling (stride 2, valid) of the window of output cells at (top, left)."""
    block = np.asarray(image[2 * top : 2 * top + 2 * WINDOW, 2 * left : 2 * left + 2 * WINDOW])
    return block.reshape(WINDOW, 2, WINDOW, 2, 3).max(axis=(1, 3))


def read_output(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # the checker decodes the whole file; it is not what is measured
        return np.asarray(Image.open(path))
    import tifffile

    return tifffile.memmap(path, mode="r")


def huge_checks(settings: Settings, lines: list[str]) -> None:
    import tifffile

    source = huge_tiff(settings)
    image = tifffile.memmap(source, mode="r")
    height, width = image.shape[:2]
    out = settings.work / "out-checks"
    out.mkdir(parents=True, exist_ok=True)
    imgconv = imgconv_command()
    lines += [f"## {width}x{height} RGB TIFF, default budget", "",
              "| run | wall time | peak RSS | under 512 MiB | windows equal to the reference |", "|---|---|---|---|---|"]
    runs = [
        ("apply -k sharpen -> TIFF", ["apply", "-k", "sharpen"], out / "sharpen.tif", sharpen_reference, (height, width)),
        ("apply -k sharpen -> PNG", ["apply", "-k", "sharpen"], out / "sharpen.png", sharpen_reference, (height, width)),
        ("maxpool --size 2 -> TIFF", ["maxpool", "--size", "2"], out / "maxpool.tif", maxpool_reference, (height // 2, width // 2)),
    ]
    for label, arguments, target, reference, shape in runs:
        seconds, rss = time_and_rss([*imgconv, *arguments, source, target])
        result = read_output(target)
        assert result.shape[:2] == shape, (label, result.shape)
        places = windows(*shape, count=24)
        equal = sum(np.array_equal(np.asarray(result[t : t + WINDOW, l : l + WINDOW]), reference(image, t, l)) for t, l in places)
        del result
        verdict = "yes" if rss < LIMIT_MB else "NO"
        lines.append(f"| {label} | {seconds:.1f} s | {rss:.0f} MB | {verdict} | {equal} of {len(places)} |")
        print(lines[-1], flush=True)


def identity_checks(settings: Settings, lines: list[str]) -> None:
    from PIL import Image

    from imgconv.sinks import write_tiff

    source = settings.work / "inputs" / "4000x3000-RGB.tif"
    if not source.exists():
        photo = Image.open(SAMPLES / "coffee.png").convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
        with open(source, "wb") as stream:
            pixels = np.asarray(photo)
            write_tiff(stream, pixels.shape, pixels.dtype, [pixels])
    out = settings.work / "out-checks"
    out.mkdir(parents=True, exist_ok=True)
    imgconv = imgconv_command()
    cases = [(f"sharpen, --border {b}", ["apply", "-k", "sharpen", "--border", b]) for b in ("zero", "nearest", "reflect", "mirror", "wrap")]
    cases += [
        ("31x31 Gaussian, --border reflect", ["apply", "-k", "gaussian:sigma=5,size=31", "--border", "reflect"]),
        ("31x31 box, --border wrap", ["apply", "-k", "box:31", "--border", "wrap"]),
        ("chain gaussian5 + edge3, --range abs", ["apply", "-k", "gaussian5", "-k", "edge3", "--range", "abs"]),
        ("edge3 --range normalize, --border mirror", ["apply", "-k", "edge3", "--range", "normalize", "--border", "mirror"]),
        ("pool --op mean --size 3 --stride 2 --padding same", ["pool", "--op", "mean", "--size", "3", "--stride", "2", "--padding", "same"]),
        ("maxpool --size 3 --padding same", ["maxpool", "--size", "3", "--padding", "same"]),
    ]
    lines += ["", "## 4000x3000 RGB TIFF -> PNG: --memory 64M (strips) against --memory 4G (whole image)", "",
              "| case | 64M: time, peak RSS | 4G: time, peak RSS | byte-identical |", "|---|---|---|---|"]
    for label, arguments in cases:
        digests, figures = [], []
        for memory in ("64M", "4G"):
            target = out / f"identity-{memory}.png"
            seconds, rss = time_and_rss([*imgconv, *arguments, source, target, "--memory", memory])
            digests.append(hashlib.sha256(target.read_bytes()).hexdigest())
            figures.append(f"{seconds:.1f} s, {rss:.0f} MB")
        lines.append(f"| {label} | {figures[0]} | {figures[1]} | {'yes' if digests[0] == digests[1] else 'NO'} |")
        print(lines[-1], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5000x5000 instead of 20000x20000")
    args = parser.parse_args()
    settings = Settings.from_env(args.quick)
    started = time.perf_counter()
    lines = ["# Streaming checks", "", f"{time.strftime('%Y-%m-%d')}, {'quick' if args.quick else 'full'} run.", ""]
    huge_checks(settings, lines)
    identity_checks(settings, lines)
    lines += ["", f"Ran in {time.perf_counter() - started:.0f} s."]
    (HERE / "streaming-checks.md").write_text("\n".join(lines) + "\n")
    print("written: benchmarks/streaming-checks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
