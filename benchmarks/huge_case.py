"""9. huge: a 20000x20000 RGB TIFF streamed in strips, beside libvips.

The image (uncompressed strips, 1.2 GB raw; made once, a band at a time,
by ``inputs.huge_tiff``) goes through ``imgconv apply -k sharpen`` into a
TIFF and a PNG, beside libvips' ``vips conv in out sharpen.mat --precision
integer`` (PNG at ``compression=1``, imgconv's default zlib level), and
through ``imgconv maxpool --size 2``.  Wall time and peak RSS of each whole
process by ``/usr/bin/time -v``, with the default ``--memory``.  imgconv and
vips run in turn (A B A B ...), so a drifting load slows both alike.
"""

from __future__ import annotations

import os
import shutil

from harness import Group, Row, time_and_rss
from inputs import huge_tiff

VIPS = "libvips vips conv"
HUGE_RUNS = 3  # each run is seconds long

#: MB: 512 MiB, the streaming issue's bound for a 20000x20000 image.
HUGE_RSS = 512 * 1024 * 1024 / 1e6


def huge(ctx) -> list[Group]:
    source = huge_tiff(ctx.settings)
    side = source.stem.split("-")[1]
    out = ctx.settings.work / "out-huge"
    out.mkdir(parents=True, exist_ok=True)
    matrix = out / "sharpen.mat"
    matrix.write_text("3 3 1 0\n0 -1 0\n-1 5 -1\n0 -1 0\n")  # scale 1, offset 0; symmetric, so correlation = convolution
    vips = shutil.which("vips", path="/usr/bin:" + os.environ.get("PATH", ""))
    runs = 1 if ctx.settings.quick else HUGE_RUNS
    groups = []
    for ext, vips_target in (("tif", "vips.tif"), ("png", "vips.png[compression=1]")):
        name = "TIFF" if ext == "tif" else "PNG"
        subjects = {"imgconv apply": [*ctx.imgconv, "apply", "-k", "sharpen", source, out / f"imgconv.{ext}"]}
        if vips:
            subjects[VIPS] = [vips, "conv", source, str(out / vips_target), matrix, "--precision", "integer"]
        samples = _alternate(subjects, runs)
        title = f"{side}x{side} RGB TIFF -> {name}, 3x3 sharpen"
        reference = VIPS if vips else "imgconv apply"
        timing, peak = Group("huge", f"{title}: wall time", reference), Group("huge", f"{title}: peak RSS", reference)
        for subject, (seconds, rss) in samples.items():
            timing.rows.append(Row(subject, seconds, note="zlib level 1" if ext == "png" else ""))
            peak.rows.append(Row(subject, rss, unit="MB", note="max RSS by /usr/bin/time -v"))
        if not vips:
            for group in (timing, peak):
                group.rows.append(Row(VIPS, skipped="libvips is not installed (apt-get install libvips-tools)"))
        groups += [timing, peak]
    for ext in ("tif", "png"):
        name = "TIFF" if ext == "tif" else "PNG"
        command = [*ctx.imgconv, "maxpool", "--size", "2", source, out / f"maxpool.{ext}"]
        seconds, rss = _alternate({"imgconv maxpool": command}, 1)["imgconv maxpool"]
        group = Group("huge", f"{side}x{side} RGB TIFF -> {name}, maxpool --size 2: peak RSS", "imgconv maxpool")
        group.rows.append(Row("imgconv maxpool", rss, unit="MB", note=f"one run, {seconds[0]:.1f} s"))
        groups.append(group)
    return groups


def _alternate(subjects: dict[str, list], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each subject run ``runs`` times, one after the other in turn: (wall times, peak RSS)."""
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in subjects}
    for _ in range(runs):
        for name, command in subjects.items():
            seconds, rss = time_and_rss(command)
            samples[name][0].append(seconds)
            samples[name][1].append(rss)
    return samples


def huge_targets(groups: list[Group], find, at_most) -> list:
    """The streaming issue's targets: within 2x libvips' peak RSS and 1.5x its time, under 512 MiB."""
    targets = []
    for ext in ("TIFF", "PNG"):
        timing = find(groups, "huge", f"-> {ext}, 3x3 sharpen: wall time")
        peak = find(groups, "huge", f"-> {ext}, 3x3 sharpen: peak RSS")
        targets.append(at_most(f"huge, sharpen TIFF -> {ext}: imgconv peak RSS / libvips peak RSS",
                               peak.ratio("imgconv apply", VIPS) if peak else None, 2))
        targets.append(at_most(f"huge, sharpen TIFF -> {ext}: imgconv time / libvips time",
                               timing.ratio("imgconv apply", VIPS) if timing else None, 1.5))
    for label, subject in (("-> TIFF, 3x3 sharpen: peak RSS", "imgconv apply"),
                           ("-> PNG, 3x3 sharpen: peak RSS", "imgconv apply"),
                           ("-> TIFF, maxpool --size 2: peak RSS", "imgconv maxpool")):
        group = find(groups, "huge", label)
        row = group.row(subject) if group else None
        targets.append(at_most(f"huge, {label.removeprefix('-> ')}: max RSS of {subject} (MB)",
                               row.median if row else None, HUGE_RSS, " MB"))
    return targets
