"""The command line: click commands that parse, call the library, report.

Library exceptions carry their exit code (see ``imgconv.errors``); here they
become click's usage errors (exit 2, with the usage line) or one-line
runtime errors (exit 1).  Heavy imports (numpy, scipy, Pillow, rich) happen
inside the commands that need them, so ``imgconv --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import click

from imgconv import __version__
from imgconv.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, ImgconvError

# The names imgconv.convolve and imgconv.backends define, repeated so that
# --help need not import numpy; tests/test_cli.py keeps them equal.
GEOMETRIES = ("same", "full", "valid")
BORDERS = ("zero", "nearest", "reflect", "mirror", "wrap")
RANGES = ("clip", "abs", "normalize", "float")
COLORS = ("auto", "gray", "rgb")
BACKEND_CHOICES = ("auto", "scipy", "numpy", "pil")


@contextmanager
def reported() -> Iterator[None]:
    """Turn library errors into click errors with the documented exit code."""
    try:
        yield
    except ImgconvError as exc:
        if exc.exit_code == EXIT_USAGE:
            raise click.UsageError(str(exc)) from None
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imgconv")
def cli() -> None:
    """Filter images with convolution kernels and pool them.

    One meaning of "convolve" on every backend: true convolution as
    scipy.signal.convolve, zero border, round half up, clip.
    """


def registry_option(function):
    return click.option(
        "--registry",
        "registries",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Extra YAML kernel registry (repeatable); adds to and overrides the built-in names.",
    )(function)


def load_kernels(specs: Sequence[str], registries: Sequence[str]):
    """Parse every ``--kernel`` spec against one load of the registry."""
    from imgconv.kernels import load_registry, parse_spec

    registry = load_registry(registries)
    return [parse_spec(spec, registry) for spec in specs]


def file_options(function):
    """The options every file command shares: inputs, outputs, batch, encoding."""
    options = [
        click.argument("paths", nargs=-1, metavar="INPUT... [OUTPUT]"),
        click.option("-o", "--output", metavar="PATH",
                     help="Output file, folder (ending in '/') or template: {stem} {name} {ext} {parent} "
                          "{relpath} {reldir} {kernel}. Without it, the last PATH is the output of one input."),
        click.option("--format", "fmt", metavar="FMT", default=None,
                     help="Output format (png, jpeg, tiff, bmp, webp, ppm, npy, csv, txt); "
                          "for '-' the default is the input's format, else png."),
        click.option("--depth", type=click.Choice(["8", "16"]), default=None,
                     help="Output bit depth [default: the input's; 8 for matrices]."),
        click.option("--png-level", type=click.IntRange(0, 9), default=1, show_default=True,
                     help="PNG zlib level: 1 is fast, 9 is small."),
        click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True,
                     help="JPEG/WebP quality."),
        click.option("--max-pixels", type=click.IntRange(1), default=None,
                     help="Refuse larger images before decoding [default: 100,000,000]."),
        click.option("--in-place", is_flag=True, help="Allow an output to be an input file (overwrite it)."),
        click.option("-j", "--jobs", type=click.IntRange(1), default=None,
                     help="Files processed in parallel [default: the number of CPUs]."),
        click.option("--dry-run", is_flag=True, help="Print each INPUT -> OUTPUT pair and do nothing."),
        click.option("--update", is_flag=True, help="Skip inputs whose output exists and is newer (like make)."),
        click.option("--fail-fast", is_flag=True, help="Stop at the first file that fails."),
        click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def output_options(fmt, depth, png_level, quality, in_place):
    from imgconv.jobs import OutputOptions

    return OutputOptions(fmt=fmt, depth=int(depth) if depth else None, png_level=png_level,
                         quality=quality, in_place=in_place)


def run_files(paths, output, work, *, label, in_place, jobs, dry_run, update, fail_fast, quiet) -> None:
    """Plan the inputs -> outputs, check the plan, run ``work`` on each file.

    One input and one output run in this process and report like any single
    command; several run as a batch with progress, a summary and exit 1 (or
    2) if any file failed.
    """
    import os

    from imgconv import batch

    with reported():
        if output is None:
            if len(paths) != 2:
                raise click.UsageError(
                    "give INPUT OUTPUT, or inputs with -o/--output (a folder ending in '/' or a template)"
                )
            paths, output = paths[:1], paths[1]
        if not paths:
            raise click.UsageError("no INPUT given")
        inputs = batch.expand(paths)
        tasks = batch.plan(inputs, output, kernel=label)
        batch.check_plan(tasks, in_place=in_place)
    skipped = 0
    if update:
        fresh = [t for t in tasks if not batch.up_to_date(t)]
        skipped, tasks = len(tasks) - len(fresh), fresh
    if dry_run:
        for task in tasks:
            click.echo(f"{task.source} -> {task.target}")
        return
    single = len(tasks) == 1 and len(inputs) == 1
    if single:
        with reported():
            work(tasks[0].source, tasks[0].target)
        return
    summary = run_batch(tasks, work, jobs=jobs or os.cpu_count() or 1, fail_fast=fail_fast, quiet=quiet)
    summary.skipped = skipped
    if not quiet:
        click.echo(
            f"imgconv: {summary.done} written, {len(summary.failures)} failed, {summary.skipped} up to date, "
            f"{summary.seconds:.2f} s" + (" (interrupted)" if summary.interrupted else ""),
            err=True,
        )
    if summary.interrupted:
        raise KeyboardInterrupt
    if summary.exit_code:
        sys.exit(summary.exit_code)


def run_batch(tasks, work, *, jobs, fail_fast, quiet):
    """Run with a rich progress bar on stderr when it is a terminal."""
    import time

    from imgconv import batch

    def report(task, failure):
        if failure is not None:
            click.echo(f"Error: {batch.describe(failure)}", err=True)

    if quiet or not sys.stderr.isatty():
        return batch.run(tasks, work, jobs=jobs, fail_fast=fail_fast, progress=report)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        bar_id = bar.add_task("imgconv", total=len(tasks), rate="")
        started = time.perf_counter()

        def show(task, failure):
            if failure is not None:
                console.print(f"Error: {batch.describe(failure)}", markup=False, highlight=False)
            done = bar.tasks[0].completed + 1
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.update(bar_id, advance=1, rate=f"{done / elapsed:.1f} files/s")

        return batch.run(tasks, work, jobs=jobs, fail_fast=fail_fast, progress=show)


@cli.command()
@click.option("-k", "--kernel", "specs", multiple=True, required=True, metavar="SPEC",
              help="Registry name, rows '0,-1,0;-1,5,-1;0,-1,0', 'RxC:values', 'gaussian:sigma=S[,size=N]', "
                   "'box:N' or '@FILE'. Repeat to chain kernels.")
@registry_option
@click.option("--correlate", is_flag=True, help="Apply kernels as written (correlation) instead of rotated 180 degrees.")
@click.option("--geometry", type=click.Choice(GEOMETRIES), default="same", show_default=True,
              help="Output size, as scipy.signal.convolve's mode.")
@click.option("--border", type=click.Choice(BORDERS), default="zero", show_default=True,
              help="How the image is extended past its edges (scipy.ndimage names).")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Divide the final result by this.")
@click.option("--offset", type=float, default=0.0, show_default=True, help="Add this to the final result.")
@click.option("--range", "value_range", type=click.Choice(RANGES), default=None,
              help="How results map to output values [default: clip for images, float for matrices].")
@click.option("--relu", is_flag=True, help="Set negative results to 0 before the range step.")
@click.option("--color", type=click.Choice(COLORS), default="auto", show_default=True,
              help="auto keeps gray as gray and colour as colour; gray uses ITU-R 601-2 luma.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="auto", show_default=True,
              help="Convolution engine; every backend gives the same pixels.")
@file_options
def apply(specs, registries, correlate, geometry, border, scale, offset, value_range, relu, color, backend,
          paths, output, fmt, depth, png_level, quality, max_pixels, in_place, jobs, dry_run, update,
          fail_fast, quiet) -> None:
    """Convolve images (or matrices) with one or more kernels.

    INPUT may be a file, a quoted glob ('photos/**/*.jpg', expanded by
    imgconv) or '-' for stdin; OUTPUT a file or '-' for stdout. With
    several inputs, give -o with a folder or a template.

    \b
    Examples:
      imgconv apply -k sharpen in.png out.png
      imgconv apply -k gaussian5 -k edge3 --range abs in.jpg edges.png
      imgconv apply -k '1,-1;-1,1' --geometry full A.csv -
      imgconv apply -k blur 'photos/**/*.jpg' -o 'out/{relpath}.png'
    """
    from functools import partial

    from imgconv import backends
    from imgconv.convolve import FilterOptions
    from imgconv.jobs import apply_file

    with reported():
        kernels = load_kernels(specs, registries)
        options = FilterOptions(geometry=geometry, border=border, correlate=correlate, backend=backend,
                                scale=scale, offset=offset, relu=relu, value_range=value_range)
        outputs = output_options(fmt, depth, png_level, quality, in_place)
        backends.choose(backend, options.request(kernels))  # refuse before reading any image
    work = partial(apply_file, kernels=kernels, options=options, color=color, output=outputs, max_pixels=max_pixels)
    run_files(paths, output, work, label="+".join(specs), in_place=in_place, jobs=jobs, dry_run=dry_run,
              update=update, fail_fast=fail_fast, quiet=quiet)


# --------------------------------------------------------------------------
# pooling


class WindowType(click.ParamType):
    """``N`` or ``ROWSxCOLS`` (positive integers), e.g. ``2`` or ``2x3``."""

    name = "N|RxC"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from imgconv.errors import UsageFailure
        from imgconv.pooling import parse_window

        try:
            return parse_window(value, option=param.opts[0] if param else "--size")
        except UsageFailure as exc:
            self.fail(exc.cause, param, ctx)


WINDOW = WindowType()
POOL_OPS = ("max", "mean", "min")


def pool_options(function):
    """The options every pooling command shares: the window, then apply's file options."""
    options = [
        click.option("--size", type=WINDOW, metavar=WINDOW.name, required=True, help="Window: N or ROWSxCOLS, e.g. 2 or 2x3."),
        click.option("--stride", type=WINDOW, metavar=WINDOW.name, default=None, help="Step between windows: N or ROWSxCOLS [default: the size]."),
        click.option("--padding", type=click.Choice(("valid", "same")), default="valid", show_default=True,
                     help="Keras's padding: valid keeps whole windows; same gives ceil(n / stride), ignoring cells outside."),
        click.option("--range", "value_range", type=click.Choice(RANGES), default=None,
                     help="How results map to output values [default: clip for images, float for matrices]."),
        click.option("--color", type=click.Choice(COLORS), default="auto", show_default=True,
                     help="auto keeps gray as gray and colour as colour; gray uses ITU-R 601-2 luma."),
        file_options,
    ]
    for option in reversed(options):
        function = option(function)
    return function


def run_pool(op, size, stride, padding, value_range, color, paths, output, fmt, depth, png_level, quality,
             max_pixels, in_place, jobs, dry_run, update, fail_fast, quiet) -> None:
    from functools import partial

    from imgconv.jobs import pool_file
    from imgconv.pooling import PoolOptions

    with reported():
        options = PoolOptions(size=size, stride=stride, padding=padding, op=op, value_range=value_range)
        outputs = output_options(fmt, depth, png_level, quality, in_place)
    work = partial(pool_file, options=options, color=color, output=outputs, max_pixels=max_pixels)
    label = f"{op}pool{size[0]}x{size[1]}"
    run_files(paths, output, work, label=label, in_place=in_place, jobs=jobs, dry_run=dry_run, update=update,
              fail_fast=fail_fast, quiet=quiet)


@cli.command()
@click.option("--op", type=click.Choice(POOL_OPS), default="max", show_default=True,
              help="What each window gives: its max, mean or min.")
@pool_options
def pool(op, **arguments) -> None:
    """Pool INPUT window by window (max, mean or min) and write OUTPUT.

    Shapes follow Keras (MaxPooling2D, AveragePooling2D): valid gives
    floor((n - size) / stride) + 1 per axis, same gives ceil(n / stride).
    maxpool, avgpool and minpool are this command with --op fixed.

    \b
    Examples:
      imgconv pool --op mean --size 2 in.png out.png
      imgconv pool --size 3 --stride 2 --padding same in.png out.png
    """
    run_pool(op, **arguments)


def fixed_pool_command(name: str, op: str, layer: str) -> None:
    """Register ``name`` as ``pool --op op`` (one implementation, four commands)."""

    def command(**arguments) -> None:
        run_pool(op, **arguments)

    help_text = (
        f"{op.capitalize()}-pool INPUT and write OUTPUT: imgconv pool --op {op} ({layer}).\n\n"
        f"\b\nExamples:\n  imgconv {name} --size 2 in.png out.png\n  imgconv {name} --size 2x3 --stride 1 A.csv -"
    )
    short = f"{op.capitalize()}-pool INPUT into OUTPUT (pool --op {op})."
    cli.command(name, help=help_text, short_help=short)(pool_options(command))


fixed_pool_command("maxpool", "max", "MaxPooling2D")
fixed_pool_command("avgpool", "mean", "AveragePooling2D")
fixed_pool_command("minpool", "min", "Keras has no MinPooling2D; it is -maxpool(-x)")


@cli.command()
@click.option("-k", "--kernel", "specs", multiple=True, metavar="SPEC",
              help="A kernel, any form apply takes (inline specs too). Repeatable.")
@click.option("--kernels", "names", metavar="NAMES", default=None,
              help="Registry names separated by commas, e.g. edge1,sobel-x,sobel-y,laplacian (before any -k).")
@registry_option
@click.option("--relu", is_flag=True, help="Set negative responses to 0, as Conv2D(..., activation='relu').")
@click.option("--pool", "pool_size", type=WINDOW, metavar=WINDOW.name, default=None,
              help="Max-pool each map with this window and stride, as MaxPooling2D(pool_size=...).")
@click.option("--display", type=click.Choice(("normalize", "abs")), default="normalize", show_default=True,
              help="How each map becomes gray levels: its own min..max spread over 0..255, or |value| clipped.")
@click.option("-o", "--output", "target", required=True, metavar="OUTPUT", help="The sheet to write ('-' for stdout).")
@click.option("--format", "fmt", metavar="FMT", default=None, help="Output format [default: from OUTPUT; png for '-'].")
@click.option("--max-pixels", type=click.IntRange(1), default=None,
              help="Refuse larger images before decoding [default: 100,000,000].")
@click.option("--in-place", is_flag=True, help="Allow OUTPUT to be the IMAGE file.")
@click.argument("source", metavar="IMAGE")
def features(specs, names, registries, relu, pool_size, display, target, fmt, max_pixels, in_place, source) -> None:
    """Show a CNN's convolutional stage: IMAGE (as gray) and one feature map
    per kernel, optionally ReLU'd and max-pooled, in one labelled contact sheet.

    The grid has one cell per kernel plus one for the input.

    \b
    Examples:
      imgconv features photo.png -o sheet.png --kernels edge1,sobel-x,sobel-y,laplacian
      imgconv features photo.png -o sheet.png -k sobel-x -k '0,1,0;1,-4,1;0,1,0' --relu --pool 2
    """
    from imgconv.features import features_file, kernels_from_names
    from imgconv.jobs import OutputOptions
    from imgconv.kernels import load_registry, parse_spec

    with reported():
        registry = load_registry(registries)
        kernels = kernels_from_names(names, registry) if names else []
        kernels += [parse_spec(spec, registry) for spec in specs]
        features_file(source, target, kernels, relu=relu, pool_size=pool_size, display=display,
                      output=OutputOptions(fmt=fmt, in_place=in_place), max_pixels=max_pixels)


# --------------------------------------------------------------------------
# kernels


@cli.group()
def kernels() -> None:
    """List the kernel registry or show one kernel."""


@kernels.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
def kernels_list(registries, as_json) -> None:
    """List every kernel of the registry (built-in, IMGCONV_KERNELS, --registry)."""
    from imgconv.kernels import format_number, load_registry

    with reported():
        registry = load_registry(registries)
    if as_json:
        import json

        click.echo(json.dumps([_kernel_json(k) for k in registry], indent=2))
        return
    header = ("name", "size", "sum", "scale", "separable", "description")
    rows = [
        (
            k.name,
            f"{k.shape[0]}x{k.shape[1]}",
            format_number(k.total),
            format_number(k.scale),
            "yes" if k.separable else "no",
            k.description,
        )
        for k in registry
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, title=f"{len(rows)} kernels")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    else:
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header) - 1)]
        for row in (header, *rows):
            cells = [str(c).ljust(w) for c, w in zip(row, widths)]
            click.echo("  ".join([*cells, row[-1]]).rstrip())


def _kernel_json(kernel) -> dict:
    from imgconv.kernels import format_number

    def number(value):
        return int(value) if getattr(value, "denominator", None) == 1 else float(value)

    return {
        "name": kernel.name,
        "size": list(kernel.shape),
        "values": [[number(v) for v in row] for row in kernel.values],
        "exact_values": [[format_number(v) for v in row] for row in kernel.values],
        "scale": number(kernel.scale),
        "offset": number(kernel.offset),
        "sum": number(kernel.total),
        "separable": kernel.separable,
        "description": kernel.description,
        "source": kernel.source,
        "origin": kernel.origin,
    }


@kernels.command("show")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.argument("spec")
def kernels_show(registries, as_json, spec) -> None:
    """Show the resolved matrix of SPEC (a name, inline or parametric spec)."""
    from imgconv.kernels import format_number

    with reported():
        (kernel,) = load_kernels([spec], registries)
    if as_json:
        import json

        click.echo(json.dumps(_kernel_json(kernel), indent=2))
        return
    cells = [[format_number(v) for v in row] for row in kernel.values]
    width = max(len(c) for row in cells for c in row)
    click.echo(f"{kernel.name}  {kernel.shape[0]}x{kernel.shape[1]}" + (f"  {kernel.description}" if kernel.description else ""))
    for row in cells:
        click.echo("  [ " + "  ".join(c.rjust(width) for c in row) + " ]")
    click.echo(f"sum:       {format_number(kernel.total)}")
    click.echo(f"scale:     {format_number(kernel.scale)}  (out = conv / scale + offset)")
    click.echo(f"offset:    {format_number(kernel.offset)}")
    factors = kernel.factors()
    if factors:
        column, row = factors
        click.echo("separable: yes, column [" + ", ".join(map(format_number, column)) + "] x row ["
                   + ", ".join(map(format_number, row)) + "]")
    else:
        click.echo("separable: no")
    click.echo(f"origin:    {kernel.origin}" + (f"  ({kernel.source})" if kernel.source else ""))
    click.echo("note:      applied by true convolution (rotated 180 degrees, as scipy.signal.convolve); "
               "--correlate applies it as written")


# --------------------------------------------------------------------------
# backends


@cli.command("backends")
def backends_command() -> None:
    """List the convolution backends, their limits and availability."""
    from imgconv import backends

    rows = []
    for name in backends.names():
        backend = backends.get(name)
        reason = backend.unavailable()
        rows.append((name, "yes" if not reason else f"no: {reason}", backend.summary, backend.limits))
    header = ("backend", "available", "engine", "limits")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    for row in (header, *rows):
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[3]]).rstrip())


# The resident server's commands live with the server (imgconv/server/); they import only click.
from imgconv.server.commands import server as _server_commands  # noqa: E402

cli.add_command(_server_commands)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the group, map Ctrl-C and SIGTERM to exit 130."""
    import signal

    def interrupted(signum, frame):
        raise KeyboardInterrupt  # SIGTERM stops a run the way Ctrl-C does

    signal.signal(signal.SIGTERM, interrupted)
    try:
        cli.main(args=argv, prog_name="imgconv", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("imgconv: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`imgconv ... - | head`): not worth a message.
        sys.stderr.close()
        sys.exit(EXIT_FAILURE)
    except Exception as exc:
        if os.environ.get("IMGCONV_DEBUG"):
            raise
        click.echo(f"Error: internal error: {type(exc).__name__}: {exc} (IMGCONV_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(0)
