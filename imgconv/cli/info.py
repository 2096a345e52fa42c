"""Commands that describe imgconv itself: ``kernels list``, ``kernels show``, ``backends``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from imgconv.cli.options import load_kernels, registry_option
from imgconv.cli.report import print_table, reported

if TYPE_CHECKING:
    from imgconv.kernels import Kernel


@click.group()
def kernels() -> None:
    """List the kernel registry or show one kernel."""


@kernels.command("list")
@registry_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
def kernels_list(registries: Sequence[str], as_json: bool) -> None:
    """List every kernel of the registry (built-in, IMGCONV_KERNELS, --registry)."""
    from imgconv.kernels import format_number, load_registry

    with reported():
        registry = load_registry(registries)
    if as_json:
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
    print_table(header, rows, title=f"{len(rows)} kernels")


def _kernel_json(kernel: Kernel) -> dict[str, Any]:
    from imgconv.kernels import format_number

    def number(value: Any) -> int | float:
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
def kernels_show(registries: Sequence[str], as_json: bool, spec: str) -> None:
    """Show the resolved matrix of SPEC (a name, inline or parametric spec)."""
    from imgconv.kernels import format_number

    with reported():
        (kernel,) = load_kernels([spec], registries)
    if as_json:
        click.echo(json.dumps(_kernel_json(kernel), indent=2))
        return
    cells = [[format_number(v) for v in row] for row in kernel.values]
    width = max(len(c) for row in cells for c in row)
    described = f"  {kernel.description}" if kernel.description else ""
    click.echo(f"{kernel.name}  {kernel.shape[0]}x{kernel.shape[1]}{described}")
    for row in cells:
        click.echo("  [ " + "  ".join(c.rjust(width) for c in row) + " ]")
    click.echo(f"sum:       {format_number(kernel.total)}")
    click.echo(f"scale:     {format_number(kernel.scale)}  (out = conv / scale + offset)")
    click.echo(f"offset:    {format_number(kernel.offset)}")
    factors = kernel.factors()
    if factors:
        column, line = (", ".join(map(format_number, f)) for f in factors)
        click.echo(f"separable: yes, column [{column}] x row [{line}]")
    else:
        click.echo("separable: no")
    click.echo(f"origin:    {kernel.origin}" + (f"  ({kernel.source})" if kernel.source else ""))
    click.echo(
        "note:      applied by true convolution (rotated 180 degrees, as scipy.signal.convolve); "
        "--correlate applies it as written"
    )


@click.command("backends")
def backends_command() -> None:
    """List the convolution backends, their limits and availability."""
    from imgconv import backends

    rows = []
    for name in backends.names():
        backend = backends.get(name)
        reason = backend.unavailable()
        rows.append((name, "yes" if not reason else f"no: {reason}", backend.summary, backend.limits))
    print_table(("backend", "available", "engine", "limits"), rows, rich=False)
