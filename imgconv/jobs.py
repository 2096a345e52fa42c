"""One file in, one file out: the jobs that ``apply`` and ``pool`` run per file.

A job is made once per run from its plan and is picklable, so batch
workers and remote tasks call the very object the command built:
``job(source, target)``.  Checks that do not need the image (formats, the
backend for this kind of input, overwriting the input) run before
anything is read, so a usage error never costs a decode and never touches
a file.

A file of several frames (an animation, a multi-page TIFF) goes through
the same job: the frames are decoded, transformed and written one at a
time, each with the metadata the output may carry (none with ``strip``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgconv.choices import Color, FrameChoice, ValueRange
from imgconv.errors import ImgconvError, UsageFailure
from imgconv.formats import STDIO, by_extension, check_capacity, check_frames, format_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from imgconv.encoders import EncodeOptions
    from imgconv.finishing import AnyFinish, Finish
    from imgconv.formats import Format
    from imgconv.kernels import Kernel
    from imgconv.memory import Costs
    from imgconv.picture import Picture
    from imgconv.plan import FilterOptions, FilterPlan
    from imgconv.pooling import PoolOptions
    from imgconv.rows import Rows
    from imgconv.sources import Source
    from imgconv.streaming import Operation


@dataclass(frozen=True)
class OutputOptions:
    """How results are written: format, bit depth, encoder settings, metadata."""

    fmt: str | None = None  # --format; None: from the extension
    depth: int | None = None  # --depth; None: the input's (8 for matrices)
    png_level: int = 1
    quality: int = 90
    in_place: bool = False
    strip: bool = False  # --strip: no ICC profile, no EXIF

    def encode_options(self) -> EncodeOptions:
        from imgconv.encoders import EncodeOptions

        return EncodeOptions(png_level=self.png_level, quality=self.quality)


def stdin_identity() -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file standard input reads, or None (closed, or a stand-in stream)."""
    import sys

    try:
        if sys.stdin is None:
            return None
        info = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return info.st_dev, info.st_ino


def refuse_overwrite(source: str, target: str, *, in_place: bool) -> None:
    """Never write over an input unless ``--in-place`` says so (``-``: the
    file standard input reads); never replace a device, FIFO or socket."""
    from imgconv.output import check_target

    check_target(target)
    if in_place or target == STDIO:
        return
    try:
        info = os.stat(target)
        if source == STDIO:
            same = stdin_identity() == (info.st_dev, info.st_ino)
        else:
            same = os.path.samefile(source, target)
    except (OSError, ValueError):
        same = False
    if same:
        raise UsageFailure("is the input file; refusing to overwrite it (give --in-place to allow)", subject=target)


def check_output(target: str, output: OutputOptions, *, value_range: ValueRange | None) -> None:
    """Refuse an output format that cannot hold the result, before reading."""
    if target == STDIO and not output.fmt:
        return  # the format follows the input's, known after reading
    fmt = format_for(target, output.fmt)
    value_range = value_range or ("float" if fmt.matrix else "clip")
    if value_range == "float":
        check_capacity(fmt, is_float=True, depth=None, channels=1, has_alpha=False, target=target)
    if output.depth == 16:
        check_capacity(fmt, is_float=False, depth=16, channels=1, has_alpha=False, target=target)


@dataclass(frozen=True, kw_only=True)
class FileJob:
    """What every one-file job shares: read, transform, write atomically.

    Subclasses say what is checked before reading (``preflight``), the
    range they were asked for, and what the picture goes through: whole
    (``step``) or as rows (``operation``, with its ``output_shape`` and
    ``costs``).  When the input reads in strips and the output writes in
    strips, ``strip_route.streamed`` chooses from the memory budget (``memory``; None:
    ``IMGCONV_MEMORY`` or 1 GiB) between the whole image and strips.
    """

    color: Color = "auto"
    output: OutputOptions = field(default_factory=OutputOptions)
    max_pixels: int | None = None
    frames: FrameChoice = "all"
    memory: int | None = None

    def __post_init__(self) -> None:
        # Refused when the job is made, not only when a file happens to stream:
        # ``memory=`` and, without it, an IMGCONV_MEMORY that is not a size.
        from imgconv.memory import budget

        budget(self.memory)

    def __call__(self, source: str, target: str) -> None:
        from imgconv.reading import DEFAULT_MAX_PIXELS, read_frames
        from imgconv.writing import write_frames

        refuse_overwrite(source, target, in_place=self.output.in_place)
        self.preflight(source)
        check_output(target, self.output, value_range=self.value_range)
        from imgconv.strip_route import streamed

        if streamed(self, source, target):
            return
        # The whole-image route.  Full-image copies of the pixels it holds (arrays
        # of H x W x C values; a mapped file's pages and strip-sized temporaries
        # are not counted), per format family:
        #   read   binary PGM/PPM (8-bit, --color as stored) and float64 .npy: 0, the
        #          mapped file is the planes; 16-bit PGM or other .npy types: 1 (to
        #          native uint16 / float64); a --color change: +1 (8-bit: +2, Pillow's
        #          convert and its array).  PNG: 2 by imgconv's reader (inflated rows,
        #          unfiltered rows), 1 by libvips (its decode, copied out once).
        #          TIFF of the kinds that stream (read by tifffile, as in strips): 1
        #          (the stored samples), +1 for 16-bit or float (converted), +2 with
        #          alpha (planes and alpha split off).
        #          Pillow's formats (JPEG, other TIFFs, BMP, ...): 2 (its
        #          decode, the array made from it), +1 with alpha (planes split off).
        #   filter 1: the result, each strip finished into it; +1 float64 array per
        #          kernel before the last of a chain, +1 for --range normalize; alpha
        #          carried: +1 float64 plane.
        #   write  PGM/PPM 8-bit and .npy: 0, the result is written to the temporary
        #          file as it lies; 16-bit PGM: 1 (big-endian).  TIFF: 0 (1 MiB strips
        #          copied on their way).  PNG: 2 (Up-filtered rows, deflated pieces).
        #          Pillow's formats: 0 (its image shares the array) plus its encoder's
        #          buffers.  Alpha beside the colour: +1 (the two joined).
        # So PPM -> PPM holds 1 copy (the result); PNG -> PNG 4 (libvips) or 5; JPEG -> JPEG 3.
        subject = source if source != STDIO else "<stdin>"
        try:
            frames = read_frames(
                source, color=self.color, max_pixels=self.max_pixels or DEFAULT_MAX_PIXELS, frames=self.frames
            )
            fmt = format_for(target, self.output.fmt, fallback=frames.format)
            check_frames(fmt, frames.animation.count, target=target)  # before a frame of an animation is decoded
            value_range = self.value_range or ("float" if fmt.matrix else "clip")

            def results() -> Iterator[Picture]:
                from imgconv.metadata import Metadata

                for picture in frames:
                    depth = self.output.depth or picture.depth or 8
                    result = self.step(picture, maxval=(1 << depth) - 1, value_range=value_range, subject=subject)
                    del picture  # the input's planes (or mapping) are not held while the result is encoded
                    if self.output.strip:
                        result.metadata = Metadata()
                    yield result

            write_frames(results(), target, animation=frames.animation, fmt=fmt, options=self.output.encode_options())
        except MemoryError:
            # Within --max-pixels, yet more than this machine (or its limit) can give: name the file.
            raise ImgconvError("out of memory; the image needs more than is available here", subject=subject) from None

    def streams(self, source: Source) -> bool:
        """Whether this job's request runs in strips on ``source``."""
        return True

    def memory_plan(self, source: Source, target: str, fmt: Format) -> tuple[Finish, Costs, int]:
        """``strip_route.memory_plan``: the finish, the cost of a band, the whole image's bytes."""
        from imgconv.strip_route import memory_plan

        return memory_plan(self, source, target, fmt)

    def finish(self, *, maxval: int, value_range: ValueRange, source_max: int | None) -> Finish:
        """The finish of a result at ``maxval``'s depth, as ``transform`` makes it."""
        from imgconv.finishing import Finish

        return Finish.make(maxval=maxval, value_range=value_range, source_max=source_max)

    @property
    def value_range(self) -> ValueRange | None:
        """The range asked for; None: clip for images, float for matrices."""
        return None

    def preflight(self, source: str) -> None:
        """Checks of this job that need only the input's name."""

    def step(self, picture: Picture, *, maxval: int, value_range: ValueRange, subject: str) -> Picture:
        raise NotImplementedError

    def check_shape(self, shape: tuple[int, int], *, subject: str) -> None:
        """Refuse an image this job cannot run on, as the whole-image route would."""
        raise NotImplementedError

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        raise NotImplementedError

    def operation(self, *, integer_input: bool, subject: str) -> Operation:
        """What this job does to rows (the streaming route)."""
        raise NotImplementedError

    def costs(self, source: Source, finish: Finish) -> Costs:
        """What a band of output rows holds, from the source's rows to the finished band."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class ApplyJob(FileJob):
    """Filter one file with a plan (``imgconv apply``)."""

    plan: FilterPlan

    @property
    def value_range(self) -> ValueRange | None:
        return self.plan.options.value_range

    def preflight(self, source: str) -> None:
        # Images hold integers (linear light does not); a matrix file may not
        # (the pipeline picks again once it is read).
        found = by_extension(source)
        self.plan.engine(integer_input=not (found is not None and found.matrix) and not self.plan.options.linear)

    def finish(self, *, maxval: int, value_range: ValueRange, source_max: int | None) -> Finish:
        from imgconv.finishing import Finish

        options = self.plan.options
        return Finish.make(
            maxval=maxval,
            value_range=value_range,
            scale=options.scale,
            offset=options.offset,
            relu=options.relu,
            source_max=source_max,
        )

    def streams(self, source: Source) -> bool:
        # Linear light and premultiplied or separate alpha run whole for now.
        options = self.plan.options
        return not options.linear and (options.alpha_mode == "carry" or not source.has_alpha)

    def check_shape(self, shape: tuple[int, int], *, subject: str) -> None:
        self.plan.check_fits(shape, subject=subject)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        return self.plan.output_shape(shape)

    def operation(self, *, integer_input: bool, subject: str) -> Operation:
        from imgconv.padding import alpha_index
        from imgconv.pipeline import chain
        from imgconv.rows import IndexRows
        from imgconv.streaming import Operation

        plan, options = self.plan, self.plan.options
        engine = plan.engine(integer_input=integer_input)
        shapes = [k.shape for k in plan.kernels]

        def planes(rows: Rows, finish: Finish) -> Rows:
            return chain(rows, plan, engine, finish)

        def alpha(rows: Rows) -> Rows:
            height, width, _ = rows.shape
            row_map = alpha_index(height, [kh for kh, _ in shapes], geometry=options.geometry, border=options.border)
            column_map = alpha_index(width, [kw for _, kw in shapes], geometry=options.geometry, border=options.border)
            return IndexRows(rows, row_map, column_map)

        return Operation(planes, alpha)

    def costs(self, source: Source, finish: Finish) -> Costs:
        from imgconv.strip_route import apply_costs

        return apply_costs(self, source, finish)

    def step(self, picture: Picture, *, maxval: int, value_range: ValueRange, subject: str) -> Picture:
        from imgconv import pipeline
        from imgconv.padding import align_alpha
        from imgconv.picture import transform

        plan, options = self.plan, self.plan.options
        if options.linear and picture.is_matrix:
            from imgconv.errors import ParameterError

            raise ParameterError(
                f"filters the light of 8- and 16-bit images; {subject} holds a matrix or float values",
                parameter="linear",
            )

        def planes(data: np.ndarray, finish: AnyFinish) -> np.ndarray:
            return pipeline.run(data, plan, finish, subject=subject)

        def alpha(values: np.ndarray) -> np.ndarray:
            shapes = [k.shape for k in plan.kernels]
            return align_alpha(values, shapes, geometry=options.geometry, border=options.border)

        return transform(
            picture,
            planes,
            alpha,
            maxval=maxval,
            value_range=value_range,
            scale=options.scale,
            offset=options.offset,
            relu=options.relu,
            alpha_mode=options.alpha_mode,
            linear=options.linear,
        )


@dataclass(frozen=True, kw_only=True)
class PoolJob(FileJob):
    """Pool one file (``imgconv pool``, ``maxpool``, ...)."""

    options: PoolOptions

    @property
    def value_range(self) -> ValueRange | None:
        return self.options.value_range

    def check_shape(self, shape: tuple[int, int], *, subject: str) -> None:
        from imgconv.pooling import check_pool_fits

        check_pool_fits(shape, size=self.options.window, padding=self.options.padding, subject=subject)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        from imgconv.pooling import pool_shape

        options = self.options
        return pool_shape(shape, size=options.window, stride=options.steps, padding=options.padding)

    def operation(self, *, integer_input: bool, subject: str) -> Operation:
        from imgconv.pooling import PoolRows
        from imgconv.rows import MappedRows
        from imgconv.streaming import Operation

        options = self.options

        def planes(rows: Rows, finish: Finish) -> Rows:
            pooled = PoolRows(rows, options)
            return MappedRows(pooled, finish) if finish.elementwise else pooled

        return Operation(planes, lambda rows: PoolRows(rows, options))

    def costs(self, source: Source, finish: Finish) -> Costs:
        from imgconv.strip_route import pool_costs

        return pool_costs(self, source, finish)

    def step(self, picture: Picture, *, maxval: int, value_range: ValueRange, subject: str) -> Picture:
        from imgconv.picture import transform
        from imgconv.pooling import pool_planes

        options = self.options

        def planes(data: np.ndarray, finish: AnyFinish) -> np.ndarray:
            return finish(pool_planes(data, options, subject=subject))

        def alpha(values: np.ndarray) -> np.ndarray:
            return pool_planes(values, options, checked=True)  # the colour planes' shape was checked

        return transform(picture, planes, alpha, maxval=maxval, value_range=value_range)


def apply_file(
    source: str,
    target: str,
    kernels: Sequence[Kernel],
    options: FilterOptions,
    *,
    color: Color = "auto",
    output: OutputOptions | None = None,
    max_pixels: int | None = None,
    frames: FrameChoice = "all",
    memory: int | None = None,
) -> None:
    """Read ``source``, filter it with ``kernels``, write ``target`` atomically.

    Parameters
    ----------
    source, target : str
        Paths, or ``'-'`` for stdin / stdout.
    kernels : sequence of Kernel
    options : FilterOptions
    color : {'auto', 'gray', 'rgb'}
    output : OutputOptions, optional
    max_pixels : int, optional
    frames : {'all', 'first'}
        Every frame of an animation (or page of a TIFF), or the first.
    memory : int, optional
        The budget in bytes (``imgconv.memory``): whole image when it fits,
        strips when both formats stream; None: ``IMGCONV_MEMORY`` or 1 GiB.
    """
    from imgconv.plan import FilterPlan

    plan = FilterPlan.make(kernels, options, integer_input=not options.linear)
    output = output or OutputOptions()
    job = ApplyJob(color=color, output=output, max_pixels=max_pixels, frames=frames, memory=memory, plan=plan)
    job(source, target)


def pool_file(
    source: str,
    target: str,
    options: PoolOptions,
    *,
    color: Color = "auto",
    output: OutputOptions | None = None,
    max_pixels: int | None = None,
    frames: FrameChoice = "all",
    memory: int | None = None,
) -> None:
    """Read ``source``, pool it, write ``target`` atomically (as ``apply_file``)."""
    output = output or OutputOptions()
    job = PoolJob(color=color, output=output, max_pixels=max_pixels, frames=frames, memory=memory, options=options)
    job(source, target)
