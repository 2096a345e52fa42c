"""A CNN's convolutional stage, shown: a bank of kernels, ReLU, max pooling.

The blog post's network applies many kernels to one image (``Conv2D(64,
(3, 3), activation='relu')``), each giving a feature map, and then
``MaxPooling2D(pool_size=(2, 2))``.  ``feature_maps`` does that to a gray
image with the registry's kernels, and ``contact_sheet`` lays the input and
every map out in one labelled grid, each map scaled for display on its own.

>>> import numpy as np
>>> from imgconv.kernels import parse_spec
>>> image = np.zeros((4, 4)); image[:, 2:] = 10
>>> (edges,) = feature_maps(image, [parse_spec('1,-1')], relu=True, pool_size=(2, 2))
>>> edges.tolist()
[[0.0, 10.0], [0.0, 10.0]]
>>> grid_shape(5), grid_shape(4), grid_shape(1)
((2, 3), (2, 2), (1, 1))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from imgconv.choices import DISPLAYS, Display, check
from imgconv.errors import ParameterError
from imgconv.kernels import Kernel

if TYPE_CHECKING:
    from imgconv.jobs import OutputOptions
    from imgconv.picture import Picture

#: Sheet layout, in pixels: the gap around cells and the label strip above each.
GAP = 4
LABEL_HEIGHT = 14
BACKGROUND = 255
INK = 0


def feature_maps(
    image: np.ndarray,
    kernels: Sequence[Kernel],
    *,
    relu: bool = False,
    pool_size: tuple[int, int] | None = None,
    subject: str | None = None,
) -> list[np.ndarray]:
    """One float64 map per kernel: convolve (``same``, zero border, as a
    Conv2D with ``padding='same'``), then ReLU, then max pooling (stride =
    size, ``valid``, as ``MaxPooling2D``).  A window larger than the image
    is refused before any map is computed."""
    from imgconv.filtering import convolve
    from imgconv.pooling import PoolOptions, check_pool_fits, pool_planes

    window = None
    if pool_size is not None:
        window = PoolOptions(size=pool_size)
        # features pools with 'valid' windows only: the way out is a smaller window
        check_pool_fits(
            image.shape[:2], size=window.window, padding="valid", subject=subject, remedy="give a smaller --pool"
        )
    maps = []
    for kernel in kernels:
        values = convolve(image, [kernel])
        if relu:
            values = np.maximum(values, 0.0)
        if window is not None:
            values = pool_planes(values, window, checked=True)  # 'same' maps have the image's shape
        maps.append(values)
    return maps


def for_display(values: np.ndarray, *, display: Display = "normalize") -> np.ndarray:
    """A map as 8-bit gray: ``normalize`` spreads its own min..max over
    0..255 (signed edges stay visible); ``abs`` shows the magnitude, clipped.

    >>> import numpy as np
    >>> for_display(np.array([-2.0, 0.0, 2.0])).tolist(), for_display(np.array([-2.0, 300.0]), display='abs').tolist()
    ([0, 128, 255], [2, 255])
    """
    from imgconv.finishing import Finish

    check("display", display, DISPLAYS)
    return Finish(maxval=255, value_range=display)(values)  # an infinite map clips, as a file's result does


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns for ``count`` cells: as square as possible, wider than tall."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def contact_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Lay 8-bit gray ``tiles`` out in a grid, each under its label.

    Every cell is as large as the largest tile (and its label); tiles sit at
    the cell's top left.  Text is drawn with Pillow's built-in bitmap font,
    so the same tiles give the same bytes on every machine.

    >>> import numpy as np
    >>> sheet = contact_sheet([np.zeros((20, 30), np.uint8)] * 3, ['a', 'b', 'c'])
    >>> sheet.shape == (2 * (20 + LABEL_HEIGHT) + 3 * GAP, 2 * 30 + 3 * GAP)
    True
    """
    from PIL import Image, ImageDraw

    font = _bitmap_font()
    rows, cols = grid_shape(len(tiles))
    cell_h = max(t.shape[0] for t in tiles)
    cell_w = max(max(t.shape[1] for t in tiles), *(int(font.getbbox(label)[2]) for label in labels))
    sheet = Image.new(
        "L", (cols * cell_w + (cols + 1) * GAP, rows * (cell_h + LABEL_HEIGHT) + (rows + 1) * GAP), BACKGROUND
    )
    draw = ImageDraw.Draw(sheet)
    for index, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        row, col = divmod(index, cols)
        left = GAP + col * (cell_w + GAP)
        top = GAP + row * (cell_h + LABEL_HEIGHT + GAP)
        draw.text((left, top), label, fill=INK, font=font)
        sheet.paste(Image.fromarray(np.ascontiguousarray(tile)), (left, top + LABEL_HEIGHT))
    return np.asarray(sheet)


def _bitmap_font() -> Any:
    from PIL import ImageFont

    # Pillow >= 10.1 made load_default() a FreeType font when FreeType is
    # present, whose pixels depend on the FreeType version; the bitmap font
    # (load_default_imagefont, Pillow >= 10.4) draws the same everywhere.
    loader = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)
    return loader()


def feature_sheet(
    picture: Picture,
    kernels: Sequence[Kernel],
    *,
    relu: bool = False,
    pool_size: tuple[int, int] | None = None,
    display: Display = "normalize",
    subject: str | None = None,
) -> np.ndarray:
    """The contact sheet of a Picture (gray, one channel): input, then each map.

    Pooled maps are enlarged back by the pool size (each value a block, as
    nearest-neighbour), so every cell shows the same region of the input.
    """
    image = picture.data[:, :, 0].astype(np.float64)
    maps = feature_maps(image, kernels, relu=relu, pool_size=pool_size, subject=subject)
    if picture.maxval is None:
        shown = for_display(image)  # a matrix has no gray levels of its own
    else:
        shown = for_display(image * (255 / picture.maxval), display="abs")
    tiles, labels = [shown], [f"input {image.shape[0]}x{image.shape[1]}"]
    steps = ("relu " if relu else "") + (f"maxpool {pool_size[0]}x{pool_size[1]} " if pool_size else "")
    for kernel, values in zip(kernels, maps, strict=True):
        tile = for_display(values, display=display)
        if pool_size is not None:
            tile = np.repeat(np.repeat(tile, pool_size[0], axis=0), pool_size[1], axis=1)
        tiles.append(tile)
        labels.append(f"{_short(kernel.name)} {steps}{values.shape[0]}x{values.shape[1]}")
    return contact_sheet(tiles, labels)


def _short(name: str, limit: int = 24) -> str:
    """Inline specs can be long; the label keeps their start."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


def features_file(
    source: str,
    target: str,
    kernels: Sequence[Kernel],
    *,
    relu: bool = False,
    pool_size: tuple[int, int] | None = None,
    display: Display = "normalize",
    output: OutputOptions | None = None,
    max_pixels: int | None = None,
) -> None:
    """Read ``source`` as gray, write its feature-map sheet to ``target`` atomically.

    ``output`` is an OutputOptions (format, encoder settings, ``in_place``);
    the sheet is 8-bit gray, which every format holds.
    """
    from imgconv.batch.paths import check_named
    from imgconv.formats import format_for
    from imgconv.jobs import OutputOptions, refuse_overwrite
    from imgconv.picture import Picture
    from imgconv.reading import DEFAULT_MAX_PIXELS, read_picture
    from imgconv.writing import write_picture

    check_named(source)
    check_named(target)
    output = output or OutputOptions()
    check("display", display, DISPLAYS)
    if not kernels:
        raise ParameterError("give at least one kernel", parameter="kernels")
    refuse_overwrite(source, target, in_place=output.in_place)
    fmt = format_for(target, output.fmt)  # '-' without --format is PNG: a sheet is an image
    picture = read_picture(source, color="gray", max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    subject = source if source != "-" else "<stdin>"
    sheet = feature_sheet(picture, kernels, relu=relu, pool_size=pool_size, display=display, subject=subject)
    write_picture(Picture(sheet[:, :, np.newaxis], None, fmt.name, 8), target, fmt=fmt, options=output.encode_options())
