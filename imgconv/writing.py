"""Writing pictures: atomically into files, or to stdout.

Every output is written atomically: encoded straight into a temporary file
in the target folder, then renamed over the target, so a failed run never
leaves a partial file behind.  Binary data is never sent to a terminal.

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
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from imgconv.encoders import EncodeOptions, FrameWriterType, Writer
from imgconv.errors import InputError, OutputError, UsageFailure
from imgconv.formats import STDIO, Format, check_capacity, check_frames, format_for
from imgconv.picture import Animation, Picture


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


def write_stdout(payload: bytes, *, text: bool, stream: BinaryIO | None = None) -> None:
    """Write to stdout; binary data is never sent to a terminal."""
    stream = stream or sys.stdout.buffer
    if not text and stream.isatty():
        raise UsageFailure("refusing to write binary image data to a terminal; redirect it or give a file", subject="-")
    view = memoryview(payload)
    try:
        # A raw or non-blocking stream may take only part: a cut image must not pass for success.
        while view:
            written = stream.write(view)
            if not written:
                raise OutputError("stdout took no more data; the output is incomplete", subject="-")
            view = view[written:]
        stream.flush()
    except BrokenPipeError:
        raise OutputError("the reader closed the pipe before the whole output was written", subject="-") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_atomic(path: Path, payload: bytes | Callable[[BinaryIO], object]) -> None:
    """Write ``payload`` (bytes, or a function writing to a stream) to ``path``
    via a temporary file in the same folder and a rename."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        cause = f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
        raise OutputError(f"cannot create folder {folder}: {cause}", subject=str(path)) from None
    if path.is_dir():
        raise OutputError("is a directory", subject=str(path))
    try:
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
    try:
        # Readable too: a multi-page TIFF writer reads back the offsets it patches.
        with os.fdopen(handle, "w+b") as stream:
            if callable(payload):
                payload(stream)
            else:
                stream.write(payload)
        os.chmod(temp_name, 0o666 & ~_UMASK)
        os.replace(temp_name, path)
    except BaseException as exc:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
        raise
