"""Reading pictures: which reader takes a file, stdin, or a matrix.

Image files become 8- or 16-bit planes following the colour policy
(``--color``), with the metadata an output may carry (ICC profile, EXIF):
binary PGM/PPM are mapped (``imgconv.rawfiles``; no Pillow), PNG goes to
imgconv's own reader (``imgconv.png_read``) when it gives Pillow's pixels,
everything else to Pillow (``imgconv.pillow_read``).  ``.npy``, ``.csv``
and ``.txt`` files are numeric matrices (``imgconv.matrices``; a ``.npy``
file is mapped too).  ``-`` reads stdin and sniffs the format from the bytes.

Every byte comes through ``imgconv.limits``: a file larger than
``--max-pixels`` allows is refused by its size, and stdin or a pipe is read
only as far as its decoder asks, so garbage is refused at its first bytes
and an endless stream at the limit, while Ctrl-C and SIGTERM still act.
A regular file is mapped only once its size is known to be within the
limit (a PNG's within what its header allows), and only the bytes its
header declares are read through the mapping.

``read_frames`` opens a file and says how many frames it holds before any
frame of an animation is decoded, then decodes them one at a time as they
are asked for: the frames of an animated GIF, PNG (APNG) or WebP and the
pages of a TIFF (``frames='first'``: only the first).  Other formats give
one picture, whatever Pillow counts in them (a camera's JPEG may hold a
preview image as a second "frame", a PSD its layers).  ``read_picture``
is the first frame.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
>>> _ = open(path, 'w').write('1.5,-2\\n')
>>> read_picture(path).data[:, :, 0].tolist()
[[1.5, -2.0]]
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from imgconv.choices import COLORS, FRAME_CHOICES, Color, FrameChoice, check
from imgconv.errors import InputError
from imgconv.formats import STDIO, Format, by_extension, by_name
from imgconv.limits import METADATA_BYTES, Limit, human_bytes, input_byte_limit, open_input, read_all, read_head
from imgconv.matrices import check_npy_size
from imgconv.picture import Animation, Picture, to_color

#: Refuse images above this many pixels before decoding them (decompression
#: bombs); ``--max-pixels`` raises it.  An 8K frame is 33 million pixels.
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass
class Frames:
    """The frames of one input, known in number when the file is opened.

    A still image is decoded when it is opened; the frames of an animation
    (or the pages of a TIFF) one at a time as they are iterated (once).

    ``format`` is the source's format name; ``animation`` the frame count
    and loop count.
    """

    format: str
    animation: Animation
    pictures: Iterator[Picture]

    def __iter__(self) -> Iterator[Picture]:
        return self.pictures


class _Once(Iterator[Picture]):
    """One picture, forgotten once given: the frames of a still image hold
    no reference to its planes while the result is filtered and encoded."""

    def __init__(self, picture: Picture) -> None:
        self.picture: Picture | None = picture

    def __next__(self) -> Picture:
        picture, self.picture = self.picture, None
        if picture is None:
            raise StopIteration
        return picture


def read_picture(
    source: str | os.PathLike[str], *, color: Color = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image or matrix file (its first frame).

    Parameters
    ----------
    source : path or '-'
        ``-`` reads stdin, sniffing the format from the bytes.
    color : {'auto', 'gray', 'rgb'}
        ``auto`` keeps gray as gray and colour as colour; ``gray`` uses
        ITU-R 601-2 luma; ``rgb`` repeats a gray plane.
    max_pixels : int
        Images (and matrices) declaring more pixels are refused before decoding.

    Returns
    -------
    Picture
        With the input's ICC profile and EXIF (without orientation) in ``metadata``.
    """
    return next(iter(read_frames(source, color=color, max_pixels=max_pixels, frames="first")))


def read_frames(
    source: str | os.PathLike[str],
    *,
    color: Color = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    frames: FrameChoice = "all",
) -> Frames:
    """Open an image or matrix file; its frames are decoded as they are iterated.

    Parameters
    ----------
    source : path or '-'
    color, max_pixels
        As ``read_picture``.
    frames : {'all', 'first'}
        ``all`` gives every frame of an animated GIF, PNG or WebP and every
        page of a TIFF; ``first`` only the first.

    Returns
    -------
    Frames
        The frames of an animation share one layout (gray or colour, alpha
        or not) and carry their ``timing``; pages keep their own.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'm.csv')
    >>> _ = open(path, 'w').write('1,2\\n')
    >>> found = read_frames(path)
    >>> found.animation.count, [p.data.shape for p in found]
    (1, [(1, 2, 1)])
    """
    check("color", color, COLORS)
    check("frames", frames, FRAME_CHOICES)
    name = os.fspath(source)
    subject = "<stdin>" if name == STDIO else name
    limit = Limit(input_byte_limit(max_pixels), subject=subject, error=InputError, hint=_RAISE_PIXELS)
    stream = open_input(name, limit, stdin=name == STDIO)
    owned = True  # until the image's frames take the stream over
    try:
        head = read_head(stream, limit)
        if not head:
            raise InputError("the file is empty", subject=subject)
        matrix: Format | None
        if name == STDIO:
            matrix = _sniff(head)
        else:
            found = by_extension(name)
            matrix = found if found is not None and found.matrix else None
        size = None if name == STDIO else _regular_size(stream)
        if matrix is None:
            if size is not None and head[:2] in (b"P5", b"P6"):
                mapped = _map_pnm(name, size, color=color, subject=subject, max_pixels=max_pixels)
                if mapped is not None:
                    return Frames("PPM", Animation(), _Once(mapped))
            if size is not None and head[:4] in TIFF_SIGNATURES:
                tiff = _read_tiff(name, color=color, subject=subject, max_pixels=max_pixels, frames=frames)
                if tiff is not None:
                    return Frames("TIFF", Animation(), _Once(tiff))
            owned = False
            return _open_image(stream, limit, subject, color=color, max_pixels=max_pixels, frames=frames)
        # Refuse what the first bytes already show is wrong, before reading the rest.
        if matrix.name == "NPY":
            check_npy_size(head, subject, max_pixels)
            if size is not None:
                from imgconv.matrices import map_npy

                mapped = map_npy(name, size, subject=subject)
                if mapped is not None:
                    return Frames("NPY", Animation(), _Once(to_color(mapped, color)))
        elif b"\0" in head:
            raise InputError("not a text matrix (it holds NUL bytes)", subject=subject)
        data = read_all(stream, limit)
    finally:
        if owned:
            stream.close()
    assert matrix.reader is not None  # every matrix format has one
    module, function = matrix.reader.split(":")
    reader: Callable[..., Picture] = getattr(importlib.import_module(module), function)
    picture = to_color(reader(data, subject=subject, max_pixels=max_pixels), color)
    return Frames(picture.format, Animation(), _Once(picture))


def _regular_size(stream: BinaryIO) -> int | None:
    """The size of a regular file (which may be mapped); None for a pipe or a device, read as a stream."""
    import stat

    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


#: How a refusal by size tells the user to raise the limit.
_RAISE_PIXELS = "raise it with --max-pixels"


def _sniff(data: bytes) -> Format | None:
    """The matrix format of stdin's bytes, or None for an image."""
    if data.startswith(b"\x93NUMPY"):
        return by_name("NPY")
    head = data[:4096].removeprefix(b"\xef\xbb\xbf")  # a spreadsheet's byte-order mark
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    stripped = text.strip()
    if stripped and all(ch in "0123456789+-.eE,; \t\r\n" for ch in stripped):
        return by_name("CSV" if "," in stripped else "TXT")
    return None


# Images


def _map_pnm(path: str, size: int, *, color: Color, subject: str, max_pixels: int) -> Picture | None:
    """A binary PGM/PPM that Pillow would read as ``rawfiles.open_pnm`` does,
    mapped instead of decoded (no Pillow unless ``--color`` converts 8-bit
    samples); None leaves the file to Pillow, which reports what is wrong."""
    from imgconv.pillow_read import check_size
    from imgconv.rawfiles import open_pnm
    from imgconv.sources import convert_8bit

    opened = open_pnm(path, size)
    if opened is None:
        return None
    _, samples, depth, _ = opened
    try:
        check_size((samples.width, samples.height), subject, max_pixels)
        stored = samples.mapped()
    finally:
        samples.close()
    if depth == 8:
        planes, _ = convert_8bit(stored, color)  # the mapped samples themselves when no conversion is asked
        return Picture(planes, None, "PPM", 8)
    return to_color(Picture(stored.astype(np.uint16), None, "PPM", 16), color)


#: The first bytes of a TIFF and a BigTIFF, either byte order.
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff(path: str, *, color: Color, subject: str, max_pixels: int, frames: FrameChoice) -> Picture | None:
    """A TIFF that the strip route reads (``sources.open_source``), read
    whole through the same reader (tifffile), so both routes give the same
    pixels: a sparse tile is zeros on both, and a damaged strip is one
    ``InputError`` on both.  None leaves the file to Pillow: any other
    TIFF, later pages asked for (``frames='all'`` of several), or more
    than ``max_pixels`` (Pillow's route refuses it in its words)."""
    from imgconv.sources import open_source

    opened = open_source(path, color=color, max_pixels=max_pixels)
    if opened is None:
        return None
    with opened:
        if opened.format != "TIFF" or (opened.pages > 1 and frames == "all"):
            return None
        if opened.height == 0 or opened.width == 0:
            return None  # Pillow's route says the image has no pixels
        metadata = opened.metadata()
        planes, alpha = opened.convert(opened.samples.read(0, opened.height))
    if planes.dtype.kind == "f" and not np.isfinite(planes).all():
        raise InputError("float image holds NaN or infinite values", subject=subject)
    return Picture(planes, alpha, "TIFF", opened.depth, metadata=metadata)


def _open_image(
    stream: BinaryIO, limit: Limit, subject: str, *, color: Color, max_pixels: int, frames: FrameChoice
) -> Frames:
    """The frames of an image file, which own ``stream`` from here: a still
    image closes it once decoded, an animation once its frames are read."""
    from imgconv.pillow_read import animation_frames, closing, identify, still

    try:
        head = read_head(stream, limit, 64)
        if head.startswith(PNG_SIGNATURE):
            # imgconv's own reader takes the whole file (mapped, or read from a
            # stream), within what its header allows.
            data: bytes | memoryview | None = _map_png(stream, _png_limit(head, limit))
            if data is None:
                data = read_all(stream, _png_limit(head, limit))
                stream.close()
                stream = io.BytesIO(data)
            fast = _fast_png(data, color=color, max_pixels=max_pixels)
            del data  # a declined file goes to Pillow from its stream; the mapping is released
            if fast is not None:
                return Frames("PNG", Animation(), _Once(fast))
        image, source_format, first, count = identify(stream, subject, max_pixels=max_pixels, frames=frames)
        if count == 1 and first == 0:
            # Decoded now: a generator would hold the decoded image while the picture is filtered.
            pictures = _Once(still(image, source_format, subject, color=color))
            stream.close()
            return Frames(source_format, Animation(), pictures)
    except BaseException:
        stream.close()
        raise
    loop = image.info.get("loop")
    loop = None if loop is None else int(loop)
    if source_format == "GIF":  # GIF counts repeats after the first play
        from imgconv.gif import plays_of_gif

        loop = plays_of_gif(loop)
    animation = Animation(count=count, loop=loop)
    frames_of = animation_frames(image, source_format, subject, first, count, color, max_pixels)
    return Frames(source_format, animation, closing(frames_of, stream))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_limit(head: bytes, limit: Limit) -> Limit:
    """The bytes a PNG may take, from its header: the rows its IHDR declares
    (a deflate stream is never much larger than its data) twice over, plus
    room for metadata; so a PNG header followed by endless garbage is
    refused after megabytes, not gigabytes.  A header that is not right
    keeps the general limit (Pillow reports it)."""
    import struct

    if len(head) < 33 or head[12:16] != b"IHDR":
        return limit
    width, height, bits, color_type = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color_type, 4)
    rows = height * (1 + (width * channels * max(bits, 1) + 7) // 8)
    bound = 2 * rows + METADATA_BYTES
    if bound >= limit.count:
        return limit
    return Limit(bound, subject=limit.subject, error=limit.error, hint=f"more than its {width}x{height} pixels need")


def _map_png(stream: BinaryIO, limit: Limit) -> memoryview | None:
    """A regular file's bytes, mapped (no copy), once its size is within
    ``limit``; None for a pipe or a device, which is read as a stream."""
    import mmap

    size = _regular_size(stream)
    if size is None:
        return None
    if size > limit.count:
        raise limit.refuse(f"more than {human_bytes(limit.count)} arrived")  # as read_all words it
    # The view keeps the mapping alive; it is unmapped when the last view of it goes.
    return memoryview(mmap.mmap(stream.fileno(), size, access=mmap.ACCESS_READ))


def _fast_png(data: bytes | memoryview, *, color: Color, max_pixels: int) -> Picture | None:
    """A still PNG decoded by imgconv's own reader (``imgconv.png_read``) when
    it provably gives what Pillow would; None leaves it to Pillow."""
    from imgconv import png_read
    from imgconv.metadata import Metadata

    decoded = png_read.read_png(data, color=color, max_pixels=max_pixels)
    if decoded is None:
        return None
    return Picture(decoded.planes, decoded.alpha, "PNG", decoded.depth, metadata=Metadata(icc=decoded.icc))
