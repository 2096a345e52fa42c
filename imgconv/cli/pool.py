"""``imgconv pool`` and its fixed forms ``maxpool``, ``avgpool``, ``minpool``."""

from __future__ import annotations

from typing import Any

import click

from imgconv.choices import PADDINGS, POOL_OPS, Color, Padding, PoolOp, ValueRange
from imgconv.cli.options import WINDOW, F, FileArguments, color_option, file_options, range_option, stack
from imgconv.cli.report import reported


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


maxpool = fixed_pool_command("maxpool", "max", "MaxPooling2D")
avgpool = fixed_pool_command("avgpool", "mean", "AveragePooling2D")
minpool = fixed_pool_command("minpool", "min", "Keras has no MinPooling2D; it is -maxpool(-x)")
