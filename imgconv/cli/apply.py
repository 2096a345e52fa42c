"""``imgconv apply``: convolve images (or matrices) with one or more kernels.

Each command of the group lives in a module of its own, loaded when the
command line names it (``imgconv.cli.LazyGroup``), so a call imports only
what its command needs.
"""

from __future__ import annotations

from typing import Any

import click

from imgconv import backends
from imgconv.choices import (
    ALPHA_MODES,
    AUTO,
    BORDERS,
    GEOMETRIES,
    AlphaMode,
    Border,
    Color,
    Geometry,
    ValueRange,
)
from imgconv.cli.options import FileArguments, color_option, file_options, load_kernels, range_option, registry_option
from imgconv.cli.report import reported


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
