"""The options the file commands share, and what they become."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from imgconv.choices import COLORS, FRAME_CHOICES, RANGES
from imgconv.cli.cluster import cluster_options, reported_in_one_line
from imgconv.cli.report import CommandReporter, reported
from imgconv.formats import format_words

if TYPE_CHECKING:
    from imgconv.batch import Executor
    from imgconv.batch.cluster import ClusterOptions
    from imgconv.choices import FrameChoice
    from imgconv.jobs import OutputOptions
    from imgconv.kernels import Kernel

F = TypeVar("F", bound=Callable[..., Any])


def registry_option(function: F) -> F:
    return click.option(
        "--registry",
        "registries",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Extra YAML kernel registry (repeatable); adds to and overrides the built-in names.",
    )(function)


range_option = click.option(
    "--range",
    "value_range",
    type=click.Choice(RANGES),
    default=None,
    help="How results map to output values [default: clip for images, float for matrices].",
)

color_option = click.option(
    "--color",
    type=click.Choice(COLORS),
    default="auto",
    show_default=True,
    help="auto keeps gray as gray and colour as colour; gray uses ITU-R 601-2 luma.",
)


def load_kernels(specs: Sequence[str], registries: Sequence[str]) -> list[Kernel]:
    """Parse every ``--kernel`` spec against one load of the registry."""
    from imgconv.kernels import load_registry, parse_spec

    registry = load_registry(registries)
    return [parse_spec(spec, registry) for spec in specs]


def stack(function: F, options: Sequence[Callable[[F], F]]) -> F:
    for option in reversed(options):
        function = option(function)
    return function


def file_options(function: F) -> F:
    """The options every file command shares: inputs, outputs, batch, encoding."""
    return stack(
        function,
        [
            click.argument("paths", nargs=-1, metavar="INPUT... [OUTPUT]"),
            click.option(
                "-o",
                "--output",
                metavar="PATH",
                help="Output file, folder (ending in '/') or template: {stem} {name} {ext} {parent} "
                "{relpath} {reldir} {kernel}. Without it, the last PATH is the output of one input.",
            ),
            click.option(
                "--format",
                "fmt",
                metavar="FMT",
                default=None,
                help=f"Output format ({format_words()}); for '-' the default is the input's format, else png.",
            ),
            click.option(
                "--depth",
                type=click.Choice(["8", "16"]),
                default=None,
                help="Output bit depth [default: the input's; 8 for matrices].",
            ),
            click.option(
                "--png-level",
                type=click.IntRange(0, 9),
                default=1,
                show_default=True,
                help="PNG zlib level: 1 is fast, 9 is small.",
            ),
            click.option(
                "--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG/WebP quality."
            ),
            click.option(
                "--frames",
                type=click.Choice(FRAME_CHOICES),
                default="all",
                show_default=True,
                help="Every frame of an animated GIF, PNG or WebP and every page of a TIFF, or the first only.",
            ),
            click.option(
                "--strip", is_flag=True, help="Write no metadata (the ICC profile and EXIF are carried by default)."
            ),
            click.option(
                "--max-pixels",
                type=click.IntRange(1),
                default=None,
                help="Refuse larger images before decoding [default: 100,000,000].",
            ),
            click.option(
                "--memory",
                type=SIZE,
                metavar=SIZE.name,
                default=None,
                help="Memory to plan for, e.g. 512M or 4G: whole images when they fit, else strips "
                "(TIFF, .npy, PPM/PGM in; PNG, TIFF, .npy, PPM/PGM out) [env IMGCONV_MEMORY; default: 1G].",
            ),
            click.option("--in-place", is_flag=True, help="Allow an output to be an input file (overwrite it)."),
            click.option(
                "-j",
                "--jobs",
                type=click.IntRange(1),
                default=None,
                help="Files processed in parallel; for one file, the cores its strips run on [default: the number of "
                "CPUs]; fewer files run at once when their images would not fit together in the memory available.",
            ),
            click.option("--dry-run", is_flag=True, help="Print each INPUT -> OUTPUT pair and do nothing."),
            click.option("--update", is_flag=True, help="Skip inputs whose output exists and is newer (like make)."),
            click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails."),
            click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
            cluster_options,
        ],
    )


@dataclass(frozen=True)
class FileArguments:
    """The values of ``file_options``, as one record."""

    paths: tuple[str, ...]
    output: str | None
    fmt: str | None
    depth: str | None
    png_level: int
    quality: int
    frames: str
    strip: bool
    max_pixels: int | None
    memory: int | None
    in_place: bool
    jobs: int | None
    dry_run: bool
    update: bool
    fail_fast: bool
    quiet: bool
    cluster: ClusterOptions | None = None  # --scheduler and friends (imgconv.cli.cluster)

    def output_options(self) -> OutputOptions:
        from imgconv.jobs import OutputOptions

        return OutputOptions(
            fmt=self.fmt,
            depth=int(self.depth) if self.depth else None,
            png_level=self.png_level,
            quality=self.quality,
            in_place=self.in_place,
            strip=self.strip,
        )

    def job_fields(self) -> dict[str, Any]:
        """What every per-file job takes from these options (``FileJob``'s fields)."""
        frames: FrameChoice = "first" if self.frames == "first" else "all"
        return {
            "output": self.output_options(),
            "max_pixels": self.max_pixels,
            "frames": frames,
            "memory": self.memory,
        }

    def run(self, job: Callable[[str, str], None], *, label: str) -> None:
        """Run ``job`` over the inputs (the library's batch orchestration); exit with its code."""
        import os

        from imgconv.entry import resume_collector

        resume_collector()  # the start-up is over (imgconv.entry)

        saved = os.environ.get("IMGCONV_THREADS")
        if self.jobs is not None:
            # One file runs in this process: --jobs is then the cores its strips use
            # (batch workers set their own single thread).
            os.environ["IMGCONV_THREADS"] = str(self.jobs)
        try:
            code = self._run(job, label)
        finally:
            if saved is None:
                os.environ.pop("IMGCONV_THREADS", None)
            else:
                os.environ["IMGCONV_THREADS"] = saved
        if code:
            sys.exit(code)

    def _run(self, job: Callable[[str, str], None], label: str) -> int:
        from imgconv.batch import LocalExecutor, run_files

        executor: Executor = LocalExecutor(self.jobs)
        errors = reported
        if self.cluster is not None:
            from imgconv.batch.cluster import ClusterExecutor

            executor, errors = ClusterExecutor(self.cluster), reported_in_one_line
        with errors():
            code = run_files(
                self.paths,
                self.output,
                job,
                label=label,
                reporter=CommandReporter(quiet=self.quiet),
                executor=executor,
                in_place=self.in_place,
                dry_run=self.dry_run,
                update=self.update,
                fail_fast=self.fail_fast,
            )
        return code


class WindowType(click.ParamType):
    """``N`` or ``ROWSxCOLS`` (positive integers), e.g. ``2`` or ``2x3``."""

    name = "N|RxC"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        from imgconv.errors import ParameterError
        from imgconv.pooling import parse_window

        try:
            return parse_window(value, parameter=param.name or "size" if param else "size")
        except ParameterError as exc:
            self.fail(exc.cause, param, ctx)


WINDOW = WindowType()


class SizeType(click.ParamType):
    """A number of bytes: ``512M``, ``4G``, ``1.5G``, ``65536`` (units of 1024)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from imgconv.errors import ParameterError
        from imgconv.memory import parse_size

        try:
            return parse_size(str(value))
        except ParameterError as exc:
            self.fail(exc.cause, param, ctx)


SIZE = SizeType()
