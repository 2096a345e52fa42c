"""Encoders: a Picture to the bytes of one format.

Each ``Format`` names its encoder here.  An encoder takes the finished
Picture, its Format, the encode options and the target's name (for
messages) and returns a function that writes the file to a binary stream,
so that the work that can fail on the picture happens before any file is
opened, and the bytes go straight into the output's temporary file.
Outputs are deterministic: equal pictures give equal bytes.

The Picture's ``metadata`` is what the format keeps (the writer has
already left out what it cannot hold); without metadata every encoder
writes exactly the bytes it wrote before metadata was carried.  Several
frames go to the format's ``FrameWriter`` (``imgconv.containers``) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from imgconv.errors import UsageFailure
from imgconv.formats import Format
from imgconv.picture import Animation, Picture

Writer = Callable[[BinaryIO], Any]


class FrameWriter(Protocol):
    """Writes a file of several frames, handed over one at a time.

    Made as ``Writer(stream, fmt, options, animation, target)``; ``add``
    takes each finished frame in order (all checked to fit the format),
    ``close`` ends the file.
    """

    def add(self, picture: Picture) -> None: ...

    def close(self) -> None: ...


FrameWriterType = Callable[[BinaryIO, Format, "EncodeOptions", Animation, str], FrameWriter]


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode outputs; defaults favour speed (see the README)."""

    png_level: int = 1
    quality: int = 90


def encode_text(picture: Picture, fmt: Format, options: EncodeOptions, target: str) -> Writer:
    """CSV and TXT: one line per row; floats in their shortest exact form."""
    delimiter = "," if fmt.name == "CSV" else " "
    text = _format_text_matrix(picture.data[:, :, 0], delimiter=delimiter).encode("ascii")
    return lambda stream: stream.write(text)


def _format_text_matrix(matrix: np.ndarray, *, delimiter: str) -> str:
    if matrix.dtype.kind in "iu":
        cells = matrix.astype(str)
    else:
        # repr gives the shortest text that reads back to the same float.
        cells = np.vectorize(_short_float, otypes=[object])(matrix)
    return "".join(delimiter.join(row) + "\n" for row in cells.tolist())


def _short_float(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def encode_png(picture: Picture, fmt: Format, options: EncodeOptions, target: str) -> Writer:
    """PNG through imgconv's own writer (``imgconv.png``); floats go to Pillow."""
    if picture.data.dtype not in (np.uint8, np.uint16):
        return encode_pillow(picture, fmt, options, target)
    from imgconv.png import write_png

    pixels = png_pixels(picture)
    if picture.metadata:
        from imgconv.containers import write_png_with_metadata

        return lambda stream: write_png_with_metadata(pixels, stream, picture.metadata, level=options.png_level)
    return lambda stream: write_png(pixels, stream, level=options.png_level)


def png_pixels(picture: Picture) -> np.ndarray:
    """The H x W x C array a PNG holds: the planes, then alpha."""
    data, alpha = picture.data, picture.alpha
    return data if alpha is None else np.dstack([data, alpha.astype(data.dtype)])


def encode_pillow(picture: Picture, fmt: Format, options: EncodeOptions, target: str) -> Writer:
    """Any format Pillow writes; ``fmt.options`` says which settings apply."""
    image = pil_image(picture)
    params = pillow_params(picture, fmt, options)
    return lambda stream: save_with_pillow(image, stream, fmt, params, target)


def pil_image(picture: Picture) -> Any:
    """The Pillow image of a finished Picture (sharing its memory where it can)."""
    from PIL import Image

    data, alpha = picture.data, picture.alpha
    if data.dtype.kind == "f":
        return Image.fromarray(data[:, :, 0].astype(np.float32), mode="F")
    if data.dtype == np.uint16:
        image = Image.fromarray(np.ascontiguousarray(data[:, :, 0]))
        return image if image.mode == "I;16" else image.convert("I;16")
    planes = np.ascontiguousarray(data if alpha is None else np.dstack([data, alpha]))
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes.shape[2]]
    # frombuffer shares the array's memory: no copy of a large image.
    return Image.frombuffer(mode, (planes.shape[1], planes.shape[0]), planes, "raw", mode, 0, 1)


def pillow_params(picture: Picture, fmt: Format, options: EncodeOptions) -> dict[str, object]:
    """Pillow's save arguments for a format: its settings and the picture's metadata."""
    params: dict[str, object] = {}
    if "png_level" in fmt.options:
        params["compress_level"] = options.png_level
    if "quality" in fmt.options:
        params["quality"] = options.quality
    if fmt.name == "TIFF":
        params["compression"] = "raw"
    if picture.metadata.icc is not None:
        params["icc_profile"] = picture.metadata.icc
    if picture.metadata.exif is not None:
        params["exif"] = picture.metadata.exif
    return params


def save_with_pillow(image: Any, stream: BinaryIO, fmt: Format, params: dict[str, object], target: str) -> None:
    """``image.save`` with Pillow's refusals as usage errors and the disk's as output errors."""
    try:
        image.save(stream, format=fmt.name, **params)
    except OSError as exc:
        if exc.errno is not None:
            raise  # the disk, not the encoder: reported as an output error
        raise UsageFailure(f"cannot encode as {fmt.name}: {_first_line(exc)}", subject=target) from None
    except (ValueError, KeyError) as exc:
        raise UsageFailure(f"cannot encode as {fmt.name}: {_first_line(exc)}", subject=target) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
