"""Writing pictures: atomically into files, or to stdout.

Every output is written atomically: encoded straight into a temporary file
in the target folder, then renamed over the target, so a failed run never
leaves a partial file behind (``imgconv.output`` says how the temporary
file stays invisible).  Binary data is never sent to a terminal.

``write_frames`` writes a file of several frames, pulled one at a time
from an iterator (so decoding and filtering happen frame by frame while the
file is written); the first frame is made, and checked against the format,
before any file is opened.  What metadata a picture carries into a format
is decided here, once: what the format holds, and an ICC profile only when
its colour space is the output's.

>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
>>> write_picture(Picture(np.array([[1.5, -2.0]])[:, :, None], None, 'CSV', None), path)
>>> open(path).read()
'1.5,-2\\n'
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from imgconv.encoders import EncodeOptions, FrameWriterType, Writer
from imgconv.errors import InputError
from imgconv.formats import STDIO, Format, check_capacity, check_frames, format_for
from imgconv.output import write_atomic, write_stdout
from imgconv.picture import Animation, Picture

__all__ = ["encode_picture", "encoder_for", "write_atomic", "write_frames", "write_picture", "write_stdout"]


def fitted(picture: Picture, fmt: Format, *, target: str = "output") -> Picture:
    """Check that ``fmt`` can hold ``picture``; the picture with only the metadata ``fmt`` keeps."""
    data = picture.data
    check_capacity(
        fmt,
        is_float=data.dtype.kind == "f",
        depth=16 if data.dtype == np.uint16 else None,
        channels=data.shape[2],
        has_alpha=picture.alpha is not None,
        target=target,
    )
    stored = 3 if data.shape[2] == 1 and not fmt.stores_gray else data.shape[2]
    metadata = picture.metadata.only(icc=fmt.icc, exif=fmt.exif).fitting(channels=stored)
    return picture if metadata == picture.metadata else replace(picture, metadata=metadata)


def encoder_for(
    picture: Picture, fmt: Format, *, options: EncodeOptions | None = None, target: str = "output"
) -> Writer:
    """Check that ``fmt`` can hold ``picture``, then return what writes it to a stream."""
    picture = fitted(picture, fmt, target=target)
    module, function = fmt.encoder.split(":")
    make: Callable[..., Writer] = getattr(importlib.import_module(module), function)
    return make(picture, fmt, options or EncodeOptions(), target)


def encode_picture(
    picture: Picture, fmt: Format | str, *, options: EncodeOptions | None = None, target: str = "output"
) -> bytes:
    """Encode to bytes in ``fmt`` (a Format or its name); deterministic for equal input."""
    from imgconv.formats import by_name

    buffer = io.BytesIO()
    encoder_for(picture, by_name(fmt) if isinstance(fmt, str) else fmt, options=options, target=target)(buffer)
    return buffer.getvalue()


def write_picture(
    picture: Picture,
    target: str | os.PathLike[str],
    *,
    fmt: Format | str | None = None,
    options: EncodeOptions | None = None,
) -> None:
    """Encode and write ``picture``; ``-`` writes stdout.

    Parameters
    ----------
    picture : Picture
    target : path or '-'
    fmt : Format or str, optional
        A ``--format`` word or Format; by default from the extension.
    options : EncodeOptions
    """
    name = os.fspath(target)
    chosen = fmt if isinstance(fmt, Format) else format_for(name, fmt)
    _deliver(encoder_for(picture, chosen, options=options, target=name), name, text=chosen.text)


def _deliver(encode: Writer, name: str, *, text: bool) -> None:
    """Run ``encode`` into stdout (``-``, through memory) or atomically into the file ``name``."""
    if name == STDIO:
        buffer = io.BytesIO()
        encode(buffer)
        write_stdout(buffer.getvalue(), text=text)
    else:
        write_atomic(Path(name), encode)


def write_frames(
    pictures: Iterable[Picture],
    target: str | os.PathLike[str],
    *,
    animation: Animation,
    fmt: Format | str | None = None,
    options: EncodeOptions | None = None,
) -> None:
    """Encode and write the frames ``pictures`` yields; ``-`` writes stdout.

    Parameters
    ----------
    pictures : iterable of Picture
        ``animation.count`` finished frames, taken one at a time.
    target : path or '-'
    animation : Animation
        The frame count and loop count; one frame is written as ``write_picture`` writes it.
    fmt : Format or str, optional
        A ``--format`` word or Format; by default from the extension.
    options : EncodeOptions
    """
    name = os.fspath(target)
    chosen = fmt if isinstance(fmt, Format) else format_for(name, fmt)
    frames = iter(pictures)
    first = next(frames)
    if animation.count == 1:
        write_picture(first, name, fmt=chosen, options=options)
        return
    check_frames(chosen, animation.count, target=name)
    first = fitted(first, chosen, target=name)
    assert chosen.frame_writer is not None  # check_frames refuses formats without one
    module, function = chosen.frame_writer.split(":")
    make: FrameWriterType = getattr(importlib.import_module(module), function)

    def encode(stream: BinaryIO) -> None:
        writer = make(stream, chosen, options or EncodeOptions(), animation, name)
        writer.add(first)
        written = 1
        for picture in frames:
            writer.add(fitted(picture, chosen, target=name))
            written += 1
        if written != animation.count:
            raise InputError(f"the input announced {animation.count} frames and holds {written}")
        writer.close()

    _deliver(encode, name, text=chosen.text)
