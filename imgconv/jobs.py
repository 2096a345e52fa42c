"""One file in, one file out: the jobs that ``apply``, ``pool`` (and batch) run.

Checks that do not need the image (formats, backend limits, overwriting
the input) run before anything is read, so a usage error never costs a
decode and never touches a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from imgconv.errors import UsageFailure
from imgconv.kernels import Kernel

if TYPE_CHECKING:
    from imgconv.images import Picture
    from imgconv.pooling import PoolOptions


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
    from imgconv.images import EXTENSIONS, MATRIX_FORMATS

    refuse_overwrite(source, target, in_place=output.in_place)
    # Images hold integers; a matrix file may not (the pipeline checks again once it is read).
    matrix = EXTENSIONS.get(os.path.splitext(source)[1].lower()) in MATRIX_FORMATS
    backends.choose(options.backend, options.request(kernels, integer_input=not matrix))
    check_output(target, output, value_range=options.value_range)


def check_output(target: str, output: OutputOptions, *, value_range: str | None) -> None:
    """Refuse an output format that cannot hold the result, before reading."""
    from imgconv.images import MATRIX_FORMATS, STDIO, check_capacity, format_for

    if target == STDIO and not output.fmt:
        return  # the format follows the input's, known after reading
    fmt = format_for(target, output.fmt)
    value_range = value_range or ("float" if fmt in MATRIX_FORMATS else "clip")
    if value_range == "float":
        check_capacity(fmt, is_float=True, depth=None, channels=1, has_alpha=False, target=target)
    if output.depth == 16:
        check_capacity(fmt, is_float=False, depth=16, channels=1, has_alpha=False, target=target)


def output_format(target: str, output: OutputOptions, input_format: str) -> str:
    """The format written: ``--format``, the extension, else the input's."""
    from imgconv.images import EXTENSIONS, format_for

    writable = set(EXTENSIONS.values())
    return format_for(target, output.fmt, fallback=input_format if input_format in writable else None)


def convert_file(
    source: str,
    target: str,
    step: Callable[..., "Picture"],
    *,
    value_range: str | None,
    color: str = "auto",
    output: OutputOptions = OutputOptions(),
    max_pixels: int | None = None,
) -> None:
    """Read ``source``, run ``step`` on it, write ``target`` atomically.

    The steps every one-file command shares (apply, pool): the output format
    and depth, the range default, the atomic write.  ``step(picture,
    maxval=, value_range=, subject=)`` returns the finished Picture.
    """
    from imgconv.images import DEFAULT_MAX_PIXELS, MATRIX_FORMATS, read_picture, write_picture

    picture = read_picture(source, color=color, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    fmt = output_format(target, output, picture.format)
    value_range = value_range or ("float" if fmt in MATRIX_FORMATS else "clip")
    depth = output.depth or picture.depth or 8
    subject = source if source != "-" else "<stdin>"
    result = step(picture, maxval=(1 << depth) - 1, value_range=value_range, subject=subject)
    write_picture(result, target, fmt=fmt, options=output.encode_options())


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

    def step(picture, *, maxval: int, value_range: str, subject: str):
        check_fits(picture.data.shape[:2], kernels, options.geometry, subject=subject)
        return filter_picture(picture, kernels, options, maxval=maxval, value_range=value_range)

    preflight(source, target, kernels, options, output)
    convert_file(source, target, step, value_range=options.value_range, color=color, output=output,
                 max_pixels=max_pixels)


def pool_file(
    source: str,
    target: str,
    options: PoolOptions,
    *,
    color: str = "auto",
    output: OutputOptions = OutputOptions(),
    max_pixels: int | None = None,
) -> None:
    """Read ``source``, pool it, write ``target`` atomically (as apply_file)."""
    from imgconv.pooling import check_pool_fits, pool_picture

    def step(picture, *, maxval: int, value_range: str, subject: str):
        check_pool_fits(picture.data.shape[:2], size=options.size, padding=options.padding, subject=subject)
        return pool_picture(picture, options, maxval=maxval, value_range=value_range)

    refuse_overwrite(source, target, in_place=output.in_place)
    check_output(target, output, value_range=options.value_range)
    convert_file(source, target, step, value_range=options.value_range, color=color, output=output,
                 max_pixels=max_pixels)
