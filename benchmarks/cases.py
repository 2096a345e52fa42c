"""The benchmark cases; each returns the Groups it measured.

Subjects that cannot run here (a backend that refuses a kernel, a peer that
is not installed, batch mode not yet in imgconv) become skipped rows with
the reason, so the table always shows what was and was not compared.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass

from cluster_case import cluster
from harness import HERE, Group, ImageMagick, Row, Settings, batch_mode, peak_rss_mb, run, timed, timed_together
from inputs import CONTENTS, Inputs

#: (label, imgconv spec) for the throughput case, small kernels first.
KERNELS = [
    ("3x3 sharpen", "sharpen"),
    ("5x5 Gaussian", "gaussian5"),
    ("3x3 emboss", "emboss"),
    ("15x15 box", "box:15"),
    ("31x31 Gaussian", "gaussian:sigma=5,size=31"),
]

#: imgconv's ``sharpen`` in ImageMagick's kernel syntax.
SHARPEN_IM = "3x3: 0,-1,0 -1,5,-1 0,-1,0"

AUTO = "imgconv auto"


@dataclass(frozen=True)
class Context:
    settings: Settings
    inputs: Inputs
    imgconv: list[str]
    magick: ImageMagick | None
    magick_missing: str  # why ImageMagick rows are skipped, when they are


# --------------------------------------------------------------------------
# 1. in-process kernel throughput


def throughput(ctx: Context) -> list[Group]:
    import numpy as np
    from PIL import Image

    from imgconv import parse_spec

    groups = []
    for mode in ("RGB", "L"):
        pixels = np.asarray(Image.open(ctx.inputs.image("4K", mode)))
        for label, spec in KERNELS:
            kernel = parse_spec(spec)
            # Grayscale is a third of the RGB work and tells the same story;
            # the large kernels are measured on RGB only to keep a full run short.
            if mode == "L" and max(kernel.shape) > 5:
                continue
            w, h = ctx.inputs.size["4K"]
            group = Group("throughput", f"{w}x{h} {mode}, {label}", reference=AUTO)
            group.rows += _imgconv_backends(pixels, kernel, ctx.settings)
            group.rows += _peers(pixels, kernel, ctx.settings)
            groups.append(group)
    return groups


def _imgconv_backends(pixels, kernel, settings: Settings) -> list[Row]:
    """``filter_image`` to uint8 (what ``imgconv apply`` runs) on every backend that takes the kernel."""
    from imgconv import FilterOptions, FilterPlan, filter_image
    from imgconv import backends

    request = FilterPlan.make([kernel], FilterOptions(), integer_input=None).request(integer_input=True)
    rows = []
    for name in backends.names():
        engine = backends.get(name)
        reason = engine.unavailable() or engine.refuse(request)
        if reason:
            rows.append(Row(f"imgconv {name}", skipped=reason))
            continue
        samples = timed(lambda: filter_image(pixels, [kernel], backend=name), settings)
        rows.append(Row(f"imgconv {name}", samples))
    # auto is one of the backends above: reuse its samples rather than pay twice.
    chosen = backends.choose(backends.AUTO, request).name
    same = next(r for r in rows if r.subject == f"imgconv {chosen}")
    return [Row(AUTO, list(same.samples), note=f"auto chose {chosen}"), *rows]


def _peers(pixels, kernel, settings: Settings) -> list[Row]:
    import numpy as np
    from PIL import Image, ImageFilter
    from scipy import ndimage

    weights, divisor = kernel.flipped().integer_form()  # as imgconv convolves: rotated 180 degrees
    real = (np.asarray(weights, dtype=np.float64) / float(divisor)).astype(np.float32)
    rows = []

    if kernel.shape in ((3, 3), (5, 5)):
        picture = Image.fromarray(pixels)
        pil_kernel = ImageFilter.Kernel(kernel.shape, [float(v) for v in np.asarray(weights).flat], scale=float(divisor))
        rows.append(Row("Pillow Kernel", timed(lambda: picture.filter(pil_kernel), settings)))
    else:
        rows.append(Row("Pillow Kernel", skipped="ImageFilter.Kernel takes 3x3 and 5x5 only"))

    # The path a user writes: uint8 -> float32, convolve, round half up, clip, back to uint8.
    # (ndimage on the uint8 array itself would wrap modulo 256.)
    planar = real if pixels.ndim == 2 else real[:, :, np.newaxis]

    def scipy_path():
        values = ndimage.convolve(pixels.astype(np.float32), planar, mode="constant")
        return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)

    rows.append(Row("scipy.ndimage f32", timed(scipy_path, settings)))

    try:
        import cv2
    except ImportError:
        rows.append(Row("OpenCV filter2D", skipped="opencv-python-headless not installed (make bench installs it)"))
    else:
        # filter2D correlates, so it gets the rotated kernel; uint8 in, saturated uint8 out.
        flipped = np.ascontiguousarray(real[::-1, ::-1])
        rows.append(Row("OpenCV filter2D", timed(lambda: cv2.filter2D(pixels, -1, flipped, borderType=cv2.BORDER_CONSTANT), settings)))
    return rows


# --------------------------------------------------------------------------
# 2. whole process, one file


def whole_process(ctx: Context) -> list[Group]:
    out = ctx.settings.work / "out-whole"
    out.mkdir(parents=True, exist_ok=True)
    w, h = ctx.inputs.size["4K"]
    groups = []
    for ext in ("png", "ppm", "tif"):
        for content in CONTENTS:
            source, target = ctx.inputs.image("4K", "RGB", ext, content), out / f"imgconv.{ext}"
            group = Group("whole", f"{w}x{h} RGB {ext.upper()} -> {ext.upper()}, sharpen, {content}", reference="imgconv apply")
            group.rows.append(Row("imgconv apply", timed(lambda: run([*ctx.imgconv, "apply", "-k", "sharpen", source, target]), ctx.settings)))
            if ctx.magick is None:
                group.rows.append(Row("ImageMagick convert", skipped=ctx.magick_missing))
            else:
                convert = [*ctx.magick.convert, source, "-morphology", "Convolve", SHARPEN_IM]
                group.rows.append(Row("ImageMagick convert", timed(lambda: run([*convert, out / f"magick.{ext}"]), ctx.settings)))
                if ext == "png":
                    # ImageMagick's default PNG effort is zlib level 7, imgconv's is 1;
                    # this row separates the encoder setting from the filtering.
                    fast = timed(lambda: run([*convert, "-quality", "15", out / f"magick-fast.{ext}"]), ctx.settings)
                    group.rows.append(Row("ImageMagick convert -quality 15", fast, note="zlib level 1, like imgconv's default"))
            groups.append(group)
    groups += [_ppm_cost(ctx, content) for content in CONTENTS]
    return groups


#: The subjects of the PPM cost rows (issue 16's third target).
PPM_4K, PPM_TINY = "imgconv apply", "imgconv apply, 64x64"
PILLOW_4K, PILLOW_TINY = "Pillow Kernel script", "Pillow Kernel script, 64x64"
PPM_COST_TITLE = "RGB PPM -> PPM, sharpen, cost above a 64x64 run"


def _ppm_cost(ctx: Context, content: str) -> Group:
    """imgconv's cost of a 4K PPM above its cost of a 64x64 one, beside the same
    for a four-line Pillow script (``pillow_kernel.py``): what the image itself
    costs each, start-up and imports taken away.  The four run in turn, so a
    passing load falls on each alike."""
    from server_case import _tiny_input

    w, h = ctx.inputs.size["4K"]
    out = ctx.settings.work / "out-whole"
    source, tiny = ctx.inputs.image("4K", "RGB", "ppm", content), _tiny_input(ctx.settings.work)
    script = [sys.executable, HERE / "pillow_kernel.py"]
    commands = {
        PPM_4K: [*ctx.imgconv, "apply", "-k", "sharpen", source, out / "cost.ppm"],
        PPM_TINY: [*ctx.imgconv, "apply", "-k", "sharpen", tiny, out / "cost-tiny.ppm"],
        PILLOW_4K: [*script, source, out / "pillow.ppm"],
        PILLOW_TINY: [*script, tiny, out / "pillow-tiny.ppm"],
    }
    samples = timed_together({name: lambda c=c: run(c) for name, c in commands.items()}, ctx.settings)
    group = Group("whole", f"{w}x{h} {PPM_COST_TITLE}, {content}", reference=PPM_4K)
    group.rows += [Row(name, samples[name]) for name in commands]
    return group


# --------------------------------------------------------------------------
# 3. batch


ONE_CALL, PER_FILE = "imgconv, one call", "imgconv, one process per file"


def batch(ctx: Context) -> list[Group]:
    has_batch, has_jobs = batch_mode(ctx.imgconv)
    return [_batch(ctx, content, has_batch, has_jobs) for content in CONTENTS]


def _batch(ctx: Context, content: str, has_batch: bool, has_jobs: bool) -> Group:
    folder = ctx.inputs.photos(content)
    photos = sorted(folder.glob("*.png"))
    out = ctx.settings.work / "out-batch" / content
    for name in ("mogrify", "per-file", "one-call"):
        (out / name).mkdir(parents=True, exist_ok=True)
    title = f"{len(photos)} photos, 512x512 RGB PNG, sharpen, {content}"
    group = Group("batch", title, reference=ONE_CALL if has_batch else PER_FILE)

    if has_batch:
        jobs = ["--jobs", str(os.cpu_count() or 1)] if has_jobs else []
        command = [*ctx.imgconv, "apply", "-k", "sharpen", folder / "*.png", "-o", out / "one-call" / "{stem}.png", *jobs]
        group.rows.append(Row(ONE_CALL, timed(lambda: run(command), ctx.settings), note=" ".join(jobs)))
    else:
        group.rows.append(Row(ONE_CALL, skipped="this imgconv has no batch mode yet (apply --help lists no --output)"))

    def per_file():  # how a naive Makefile runs it: one process per file, one after another
        for photo in photos:
            run([*ctx.imgconv, "apply", "-k", "sharpen", photo, out / "per-file" / photo.name])

    group.rows.append(Row(PER_FILE, timed(per_file, ctx.settings)))

    if ctx.magick is None:
        group.rows.append(Row("ImageMagick mogrify", skipped=ctx.magick_missing))
    else:
        command = [*ctx.magick.mogrify, "-path", out / "mogrify", "-morphology", "Convolve", SHARPEN_IM, *photos]
        group.rows.append(Row("ImageMagick mogrify", timed(lambda: run(command), ctx.settings)))
    return group


# --------------------------------------------------------------------------
# 4. start-up


BASELINE = "python -c pass"


def startup(ctx: Context) -> list[Group]:
    # Many short runs, no time budget: each is a fraction of a second.
    settings = dataclasses.replace(ctx.settings, repeats=ctx.settings.startup_runs, budget=math.inf)
    group = Group("startup", "process wall time (stdout to a pipe)", reference=BASELINE)
    for subject, command in (
        (BASELINE, [sys.executable, "-c", "pass"]),
        ("imgconv --help", [*ctx.imgconv, "--help"]),
        ("imgconv kernels list", [*ctx.imgconv, "kernels", "list"]),
    ):
        group.rows.append(Row(subject, timed(lambda: run(command), settings)))
    return [group]


# --------------------------------------------------------------------------
# 5. peak memory


RAW = "raw image (W x H x 3 bytes)"


def memory(ctx: Context) -> list[Group]:
    w, h = ctx.inputs.size["8K"]
    target = ctx.settings.work / "out-memory.png"
    groups = []
    for content in CONTENTS:
        source = ctx.inputs.image("8K", "RGB", content=content)
        for label, spec in (KERNELS[0], KERNELS[-1]):
            group = Group("memory", f"{w}x{h} RGB PNG -> PNG, {label}, {content}", reference=RAW)
            group.rows.append(Row(RAW, [w * h * 3 / 1e6], unit="MB", note="computed"))
            # One run each: peak RSS barely varies, and the 31x31 run is the slowest of the harness.
            rss, how = peak_rss_mb([*ctx.imgconv, "apply", "-k", spec, source, target])
            group.rows.append(Row("imgconv apply", [rss], unit="MB", note=f"max RSS by {how}, one run"))
            groups.append(group)
    return groups


# --------------------------------------------------------------------------
# 6. the PNG codec, in process


PREVIOUS_WRITER = "previous writer (zlib level 1)"
WRITER = "imgconv writer (ISA-L level 1)"
PILLOW_DECODE = "Pillow decode"
READER = "imgconv read_png"


def png_codec(ctx: Context) -> list[Group]:
    """Encode and decode a sharpened 4K RGB frame (what ``imgconv apply -k
    sharpen`` writes) against the previous writer and Pillow."""
    import io

    import numpy as np
    from PIL import Image

    from imgconv import filter_image, parse_spec, png, png_read, png_vips

    def encode(pixels, **options) -> bytes:
        buffer = io.BytesIO()
        png.write_png(pixels, buffer, **options)
        return buffer.getvalue()

    def previous(pixels) -> bytes:
        # The writer before ISA-L: the same filter and pieces, deflated by zlib at level 1.
        saved, png.isal_zlib = png.isal_zlib, None
        try:
            return encode(pixels, level=1)
        finally:
            png.isal_zlib = saved

    def pillow(pixels) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    # Calls of a fraction of a second: more of them, for steadier medians.
    settings = dataclasses.replace(ctx.settings, repeats=2 * ctx.settings.repeats + 1)
    groups = []
    w, h = ctx.inputs.size["4K"]
    for content in CONTENTS:
        source = np.asarray(Image.open(ctx.inputs.image("4K", "RGB", content=content)))
        frame = filter_image(source, [parse_spec("sharpen")])
        speed = Group("png", f"encode {w}x{h} RGB, sharpened, {content}", reference=PREVIOUS_WRITER)
        size = Group("png", f"encoded size, {content}", reference=PREVIOUS_WRITER)
        writers = {PREVIOUS_WRITER: previous, WRITER: encode, "Pillow compress_level=1": pillow}
        # In turn, so that a passing load on the shared machine weighs on each alike.
        samples = timed_together({subject: lambda write=write: write(frame) for subject, write in writers.items()},
                                 settings)
        for subject, write in writers.items():
            speed.rows.append(Row(subject, samples[subject]))
            size.rows.append(Row(subject, [len(write(frame)) / 1e6], unit="MB"))
        groups += [speed, size]

        ours, theirs = encode(frame), ctx.inputs.image("4K", "RGB", content=content).read_bytes()
        for label, data in (("imgconv-written", ours), ("Pillow-written input", theirs)):
            group = Group("png", f"decode {w}x{h} RGB, {label}, {content}", reference=PILLOW_DECODE)
            samples = timed_together({PILLOW_DECODE: lambda data=data: np.asarray(Image.open(io.BytesIO(data))),
                                      READER: lambda data=data: png_read.read_png(data)}, settings)
            group.rows += [Row(PILLOW_DECODE, samples[PILLOW_DECODE]), Row(READER, samples[READER], note=_route(data))]
            groups.append(group)
    return groups


def _route(data: bytes) -> str:
    """Which of read_png's routes decodes ``data``."""
    from imgconv import png_read, png_vips

    if png_read.read_png(data) is None:
        return "declined: imgconv's reader hands the file to Pillow"
    saved, png_vips.ENABLED = png_vips.ENABLED, False
    try:
        by_numpy = png_read.read_png(data) is not None
    finally:
        png_vips.ENABLED = saved
    return "ISA-L and numpy" if by_numpy else "libvips (rows filtered with Paeth or Average)"


from huge_case import huge  # noqa: E402 - case 9 lives in its own module
from server_case import server  # noqa: E402 - case 7 lives in its own module

CASES = {
    "throughput": throughput,
    "whole": whole_process,
    "batch": batch,
    "startup": startup,
    "memory": memory,
    "png": png_codec,
    "server": server,
    "cluster": cluster,
    "huge": huge,
}
