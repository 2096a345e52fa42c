"""The commands that read and write files: ``apply``, ``pool`` (and
``maxpool``, ``avgpool``, ``minpool``) and ``features``."""

from __future__ import annotations

from typing import Any

import click

from imgconv import backends
from imgconv.choices import (
    ALPHA_MODES,
    AUTO,
    BORDERS,
    DISPLAYS,
    GEOMETRIES,
    PADDINGS,
    POOL_OPS,
    AlphaMode,
    Border,
    Color,
    Display,
    Geometry,
    Padding,
    PoolOp,
    ValueRange,
)
from imgconv.cli.options import (
    WINDOW,
    F,
    FileArguments,
    color_option,
    file_options,
    load_kernels,
    range_option,
    registry_option,
    stack,
)
from imgconv.cli.report import reported
from imgconv.kernels import Kernel, Registry

# --------------------------------------------------------------------------
# apply


@click.command()
@click.option(
    "-k",
    "--kernel",
    "specs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help="Registry name, rows '0,-1,0;-1,5,-1;0,-1,0', 'RxC:values', 'gaussian:sigma=S[,size=N]', "
    "'box:N' or '@FILE'. Repeat to chain kernels.",
)
@registry_option
@click.option(
    "--correlate", is_flag=True, help="Apply kernels as written (correlation) instead of rotated 180 degrees."
)
@click.option(
    "--geometry",
    type=click.Choice(GEOMETRIES),
    default="same",
    show_default=True,
    help="Output size, as scipy.signal.convolve's mode.",
)
@click.option(
    "--border",
    type=click.Choice(BORDERS),
    default="zero",
    show_default=True,
    help="How the image is extended past its edges (scipy.ndimage names).",
)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Divide the final result by this.")
@click.option("--offset", type=float, default=0.0, show_default=True, help="Add this to the final result.")
@range_option
@click.option("--relu", is_flag=True, help="Set negative results to 0 before the range step.")
@color_option
@click.option(
    "--alpha",
    "alpha_mode",
    type=click.Choice(ALPHA_MODES),
    default="carry",
    show_default=True,
    help="Alpha: carried unfiltered; premultiplied into the colour while both are filtered (no halos "
    "at transparent edges); or filtered as one more channel.",
)
@click.option(
    "--linear",
    is_flag=True,
    help="Filter in linear light: decode sRGB, filter, encode back (blurs keep their brightness).",
)
@click.option(
    "--backend",
    type=click.Choice((AUTO, *backends.names())),
    default=AUTO,
    show_default=True,
    help="Convolution engine; every backend gives the same pixels.",
)
@file_options
def apply(
    specs: tuple[str, ...],
    registries: tuple[str, ...],
    correlate: bool,
    geometry: Geometry,
    border: Border,
    scale: float,
    offset: float,
    value_range: ValueRange | None,
    relu: bool,
    color: Color,
    alpha_mode: AlphaMode,
    linear: bool,
    backend: str,
    **files: Any,
) -> None:
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
    from imgconv.jobs import ApplyJob
    from imgconv.plan import FilterOptions, FilterPlan

    arguments = FileArguments(**files)
    with reported():
        options = FilterOptions(
            geometry=geometry,
            border=border,
            correlate=correlate,
            backend=backend,
            scale=scale,
            offset=offset,
            relu=relu,
            value_range=value_range,
            alpha_mode=alpha_mode,
            linear=linear,
        )
        # Refuses before any image is read; linear light is not integer-valued.
        plan = FilterPlan.make(load_kernels(specs, registries), options, integer_input=not linear)
        job = ApplyJob(plan=plan, color=color, **arguments.job_fields())
    arguments.run(job, label="+".join(specs))


# --------------------------------------------------------------------------
# pooling


def pool_options(function: F) -> F:
    """The options every pooling command shares: the window, then apply's file options."""
    return stack(
        function,
        [
            click.option(
                "--size", type=WINDOW, metavar=WINDOW.name, required=True, help="Window: N or ROWSxCOLS, e.g. 2 or 2x3."
            ),
            click.option(
                "--stride",
                type=WINDOW,
                metavar=WINDOW.name,
                default=None,
                help="Step between windows: N or ROWSxCOLS [default: the size].",
            ),
            click.option(
                "--padding",
                type=click.Choice(PADDINGS),
                default="valid",
                show_default=True,
                help="Keras's padding: valid keeps whole windows; same gives ceil(n / stride), ignoring cells outside.",
            ),
            range_option,
            color_option,
            file_options,
        ],
    )


def run_pool(
    op: PoolOp,
    size: tuple[int, int],
    stride: tuple[int, int] | None,
    padding: Padding,
    value_range: ValueRange | None,
    color: Color,
    **files: Any,
) -> None:
    from imgconv.jobs import PoolJob
    from imgconv.pooling import PoolOptions

    arguments = FileArguments(**files)
    with reported():
        options = PoolOptions(size=size, stride=stride, padding=padding, op=op, value_range=value_range)
        job = PoolJob(options=options, color=color, **arguments.job_fields())
    arguments.run(job, label=options.label)


@click.command()
@click.option(
    "--op",
    type=click.Choice(POOL_OPS),
    default="max",
    show_default=True,
    help="What each window gives: its max, mean or min.",
)
@pool_options
def pool(op: PoolOp, **arguments: Any) -> None:
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


def fixed_pool_command(name: str, op: PoolOp, layer: str) -> click.Command:
    """``name`` as ``pool --op op`` (one implementation, four commands)."""

    def command(**arguments: Any) -> None:
        run_pool(op, **arguments)

    help_text = (
        f"{op.capitalize()}-pool INPUT and write OUTPUT: imgconv pool --op {op} ({layer}).\n\n"
        f"\b\nExamples:\n  imgconv {name} --size 2 in.png out.png\n  imgconv {name} --size 2x3 --stride 1 A.csv -"
    )
    short = f"{op.capitalize()}-pool INPUT into OUTPUT (pool --op {op})."
    return click.command(name, help=help_text, short_help=short)(pool_options(command))


# --------------------------------------------------------------------------
# features


@click.command()
@click.option(
    "-k",
    "--kernel",
    "specs",
    multiple=True,
    metavar="SPEC",
    help="A kernel, any form apply takes (inline specs too). Repeatable.",
)
@click.option(
    "--kernels",
    "names",
    metavar="NAMES",
    default=None,
    help="Registry names separated by commas, e.g. edge1,sobel-x,sobel-y,laplacian (before any -k).",
)
@registry_option
@click.option("--relu", is_flag=True, help="Set negative responses to 0, as Conv2D(..., activation='relu').")
@click.option(
    "--pool",
    "pool_size",
    type=WINDOW,
    metavar=WINDOW.name,
    default=None,
    help="Max-pool each map with this window and stride, as MaxPooling2D(pool_size=...).",
)
@click.option(
    "--display",
    type=click.Choice(DISPLAYS),
    default="normalize",
    show_default=True,
    help="How each map becomes gray levels: its own min..max spread over 0..255, or |value| clipped.",
)
@click.option("-o", "--output", "target", required=True, metavar="OUTPUT", help="The sheet to write ('-' for stdout).")
@click.option("--format", "fmt", metavar="FMT", default=None, help="Output format [default: from OUTPUT; png for '-'].")
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=None,
    help="Refuse larger images before decoding [default: 100,000,000].",
)
@click.option("--in-place", is_flag=True, help="Allow OUTPUT to be the IMAGE file.")
@click.argument("source", metavar="IMAGE")
def features(
    specs: tuple[str, ...],
    names: str | None,
    registries: tuple[str, ...],
    relu: bool,
    pool_size: tuple[int, int] | None,
    display: Display,
    target: str,
    fmt: str | None,
    max_pixels: int | None,
    in_place: bool,
    source: str,
) -> None:
    """Show a CNN's convolutional stage: IMAGE (as gray) and one feature map
    per kernel, optionally ReLU'd and max-pooled, in one labelled contact sheet.

    The grid has one cell per kernel plus one for the input.

    \b
    Examples:
      imgconv features photo.png -o sheet.png --kernels edge1,sobel-x,sobel-y,laplacian
      imgconv features photo.png -o sheet.png -k sobel-x -k '0,1,0;1,-4,1;0,1,0' --relu --pool 2
    """
    from imgconv.features import features_file
    from imgconv.jobs import OutputOptions
    from imgconv.kernels import load_registry, parse_spec

    with reported():
        registry = load_registry(registries)
        kernels = kernels_from_names(names, registry) if names else []
        kernels += [parse_spec(spec, registry) for spec in specs]
        if not kernels:
            raise click.UsageError("--kernel: give at least one kernel (-k SPEC or --kernels NAMES)")
        features_file(
            source,
            target,
            kernels,
            relu=relu,
            pool_size=pool_size,
            display=display,
            output=OutputOptions(fmt=fmt, in_place=in_place),
            max_pixels=max_pixels,
        )


def kernels_from_names(text: str, registry: Registry) -> list[Kernel]:
    """``'edge1,sobel-x'`` -> registry kernels (``--kernels``).

    Only names: inline specs hold commas themselves (``'1,0,-1'``), so they
    go through repeated ``-k`` instead.

    >>> from imgconv.kernels import load_registry
    >>> [k.name for k in kernels_from_names('edge1, sobel-x', load_registry())]
    ['edge1', 'sobel-x']
    """
    from imgconv.errors import KernelError

    kernels = []
    for name in (part.strip() for part in text.split(",")):
        try:
            kernels.append(registry.get(name))
        except KernelError as exc:
            raise click.UsageError(
                f"--kernels: {exc.cause}; --kernels takes registry names separated by commas, give inline specs with -k"
            ) from None
    return kernels


COMMANDS = (
    apply,
    pool,
    fixed_pool_command("maxpool", "max", "MaxPooling2D"),
    fixed_pool_command("avgpool", "mean", "AveragePooling2D"),
    fixed_pool_command("minpool", "min", "Keras has no MinPooling2D; it is -maxpool(-x)"),
    features,
)
