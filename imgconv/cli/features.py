"""``imgconv features``: a CNN's convolutional stage as one contact sheet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from imgconv.choices import DISPLAYS, Display
from imgconv.cli.options import WINDOW, registry_option
from imgconv.cli.report import reported

if TYPE_CHECKING:
    from imgconv.kernels import Kernel, Registry


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
    from imgconv.entry import resume_collector
    from imgconv.features import features_file
    from imgconv.jobs import OutputOptions
    from imgconv.kernels import load_registry, parse_spec

    resume_collector()  # the start-up is over (imgconv.entry)
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
