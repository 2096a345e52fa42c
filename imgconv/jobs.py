"""One file in, one file out: the job that ``apply`` (and batch) runs.

Checks that do not need the image (formats, backend limits, overwriting
the input) run before anything is read, so a usage error never costs a
decode and never touches a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from imgconv.errors import UsageFailure
from imgconv.kernels import Kernel


@dataclass(frozen=True)
class OutputOptions:
    """How results are written: format, bit depth, encoder settings."""

    fmt: str | None = None  # --format; None: from the extension
    depth: int | None = None  # --depth; None: the input's (8 for matrices)
    png_level: int = 1
    quality: int = 90
    in_place: bool = False

    def encode_options(self):
        from imgconv.images import EncodeOptions

        return EncodeOptions(png_level=self.png_level, quality=self.quality)


def refuse_overwrite(source: str, target: str, *, in_place: bool) -> None:
    """Never write over an input unless ``--in-place`` says so."""
    if in_place or "-" in (source, target):
        return
    try:
        same = os.path.exists(target) and os.path.samefile(source, target)
    except OSError:
        same = False
    if same:
        raise UsageFailure("is the input file; refusing to overwrite it (give --in-place to allow)", subject=target)


def preflight(source: str, target: str, kernels: Sequence[Kernel], options, output: OutputOptions) -> None:
    """Everything that can be refused before the image is read."""
    from imgconv import backends
    from imgconv.images import EXTENSIONS, MATRIX_FORMATS, STDIO, check_capacity, format_for

    refuse_overwrite(source, target, in_place=output.in_place)
    # Images hold integers; a matrix file may not (the pipeline checks again once it is read).
    matrix = EXTENSIONS.get(os.path.splitext(source)[1].lower()) in MATRIX_FORMATS
    backends.choose(options.backend, options.request(kernels, integer_input=not matrix))
    if target == STDIO and not output.fmt:
        return  # the format follows the input's, known after reading
    fmt = format_for(target, output.fmt)
    value_range = options.value_range or ("float" if fmt in MATRIX_FORMATS else "clip")
    if value_range == "float":
        check_capacity(fmt, is_float=True, depth=None, channels=1, has_alpha=False, target=target)
    if output.depth == 16:
        check_capacity(fmt, is_float=False, depth=16, channels=1, has_alpha=False, target=target)


def output_format(target: str, output: OutputOptions, input_format: str) -> str:
    """The format written: ``--format``, the extension, else the input's."""
    from imgconv.images import EXTENSIONS, format_for

    writable = set(EXTENSIONS.values())
    return format_for(target, output.fmt, fallback=input_format if input_format in writable else None)


def apply_file(
    source: str,
    target: str,
    kernels: Sequence[Kernel],
    options,
    *,
    color: str = "auto",
    output: OutputOptions = OutputOptions(),
    max_pixels: int | None = None,
) -> None:
    """Read ``source``, filter it with ``kernels``, write ``target`` atomically."""
    from imgconv.convolve import check_fits, filter_picture
    from imgconv.images import DEFAULT_MAX_PIXELS, MATRIX_FORMATS, read_picture, write_picture

    preflight(source, target, kernels, options, output)
    picture = read_picture(source, color=color, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    fmt = output_format(target, output, picture.format)
    value_range = options.value_range or ("float" if fmt in MATRIX_FORMATS else "clip")
    depth = output.depth or picture.depth or 8
    check_fits(picture.data.shape[:2], kernels, options.geometry, subject=source if source != "-" else "<stdin>")
    result = filter_picture(picture, kernels, options, maxval=(1 << depth) - 1, value_range=value_range)
    write_picture(result, target, fmt=fmt, options=output.encode_options())
