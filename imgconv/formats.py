"""The file formats imgconv writes, one record each, and what follows from them.

Every fact about a format lives in its ``Format`` entry of ``FORMATS``: the
extensions and ``--format`` names that select it, what it can hold (16-bit,
alpha, floats, several frames, an ICC profile, EXIF), how matrices are read
back and which functions encode it.  The command line's help, the ``--format`` check and
the capacity checks are derived from this table, so a new output format is
one entry here plus its encoder.  Images are read by Pillow whatever their
extension; the table's readers are for matrix files.

This module imports nothing heavy: ``--help`` reads it.

>>> by_name('PNG').extensions, format_for('out.JPG').name, format_for('-', fallback='CSV').name
(('.png',), 'JPEG', 'CSV')
>>> check_capacity(by_name('JPEG'), is_float=False, depth=8, channels=3, has_alpha=True, target='x.jpg')
Traceback (most recent call last):
...
imgconv.errors.UsageFailure: x.jpg: JPEG cannot hold the alpha channel; write .png, .tif, .webp, .gif or .npy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from imgconv.errors import UsageFailure
from imgconv.limits import quote

STDIO = "-"

Holds = Literal["none", "gray", "all"]


@dataclass(frozen=True)
class Format:
    """One file format and everything imgconv knows about it.

    ``depth16`` and ``floats`` say whether 16-bit and float results fit:
    ``all`` (any channels), ``gray`` (one channel, no alpha) or ``none``.
    ``encoder`` is ``module:function`` (imported when a file is written);
    ``reader`` likewise for matrix formats (None: Pillow decodes it).
    ``frame_writer`` is ``module:class`` of the ``FrameWriter`` that writes
    several frames (None: the format holds one).  ``icc`` and ``exif`` say
    whether an output keeps the input's colour profile and EXIF;
    ``stores_gray`` is False for a format that stores gray as colour (so
    a gray profile does not fit it).
    ``options`` names the ``EncodeOptions`` fields the encoder honours.
    ``any_channels``: the format holds any number of channels (a matrix,
    or TIFF's extra samples); the others hold gray or RGB, plus alpha when
    ``alpha`` says so (a matrix's 2 or 4 channels are written as such).
    ``sink`` (``module:function``) writes the format in row strips, so huge
    results stream into it (``imgconv.sinks``); ``streams_in`` says files of
    the format are read in row strips (``imgconv.sources``).
    """

    name: str
    extensions: tuple[str, ...]
    names: tuple[str, ...]
    description: str
    encoder: str
    reader: str | None = None
    matrix: bool = False
    text: bool = False
    depth16: Holds = "none"
    floats: Holds = "none"
    alpha: bool = False
    any_channels: bool = False
    frame_writer: str | None = None
    icc: bool = False
    exif: bool = False
    stores_gray: bool = True
    options: tuple[str, ...] = ()
    sink: str | None = None
    streams_in: bool = False

    @property
    def extension(self) -> str:
        return self.extensions[0]

    @property
    def frames(self) -> bool:
        """Whether the format holds several frames (an animation, or pages)."""
        return self.frame_writer is not None


_PILLOW = "imgconv.encoders:encode_pillow"
_FRAMES = "imgconv.containers:"
_WHOLE = "imgconv.sinks:encode_whole"

FORMATS: tuple[Format, ...] = (
    Format(
        "PNG",
        (".png",),
        ("png",),
        "lossless, 8/16-bit, alpha, frames (APNG)",
        "imgconv.encoders:encode_png",
        depth16="all",
        alpha=True,
        frame_writer=_FRAMES + "ApngWriter",
        icc=True,
        exif=True,
        options=("png_level",),
        sink="imgconv.sinks:write_png",
    ),
    Format(
        "JPEG",
        (".jpg", ".jpeg"),
        ("jpeg", "jpg"),
        "lossy, 8-bit",
        _PILLOW,
        icc=True,
        exif=True,
        options=("quality",),
    ),
    Format(
        "TIFF",
        (".tif", ".tiff"),
        ("tiff", "tif"),
        "uncompressed; 16-bit and float gray; pages",
        "imgconv.sinks:encode_tiff",
        depth16="gray",
        floats="gray",
        alpha=True,
        any_channels=True,
        frame_writer=_FRAMES + "TiffWriter",
        icc=True,
        exif=True,
        sink="imgconv.sinks:write_tiff",
        streams_in=True,
    ),
    Format("BMP", (".bmp",), ("bmp",), "uncompressed, 8-bit", _PILLOW),
    Format(
        "WEBP",
        (".webp",),
        ("webp",),
        "lossy, 8-bit, alpha, frames",
        _PILLOW,
        alpha=True,
        frame_writer=_FRAMES + "WebpWriter",
        icc=True,
        exif=True,
        stores_gray=False,
        options=("quality",),
    ),
    Format(
        "GIF",
        (".gif",),
        ("gif",),
        "256 colours a frame, 1-bit alpha, frames",
        "imgconv.gif:encode_gif",
        alpha=True,
        frame_writer="imgconv.gif:GifWriter",
    ),
    Format(
        "PPM",
        (".ppm", ".pgm", ".pnm"),
        ("ppm", "pnm"),
        "binary PPM/PGM; 16-bit gray",
        _WHOLE,
        depth16="gray",
        sink="imgconv.sinks:write_pnm",
        streams_in=True,
    ),
    Format(
        "NPY",
        (".npy",),
        ("npy",),
        "numpy array, any values",
        _WHOLE,
        reader="imgconv.matrices:read_npy",
        matrix=True,
        depth16="all",
        floats="all",
        alpha=True,
        any_channels=True,
        sink="imgconv.sinks:write_npy",
        streams_in=True,
    ),
    Format(
        "CSV",
        (".csv",),
        ("csv",),
        "comma-separated matrix",
        "imgconv.encoders:encode_text",
        reader="imgconv.matrices:read_csv",
        matrix=True,
        text=True,
        depth16="gray",
        floats="gray",
    ),
    Format(
        "TXT",
        (".txt",),
        ("txt",),
        "space-separated matrix",
        "imgconv.encoders:encode_text",
        reader="imgconv.matrices:read_txt",
        matrix=True,
        text=True,
        depth16="gray",
        floats="gray",
    ),
)

_BY_NAME = {f.name: f for f in FORMATS}
_BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}
_BY_WORD = {word: f for f in FORMATS for word in f.names}


def by_name(name: str) -> Format:
    """The format called ``name`` (``'PNG'``); KeyError if imgconv cannot write it."""
    return _BY_NAME[name]


def writable(name: str | None) -> Format | None:
    """The format of that name if imgconv writes it (Pillow's ``'GIF'``: None)."""
    return _BY_NAME.get(name or "")


def by_extension(path: str) -> Format | None:
    """The format a file name's extension selects, or None."""
    import os

    return _BY_EXTENSION.get(os.path.splitext(path)[1].lower())


def format_words() -> str:
    """The ``--format`` names, for help text: ``png, jpeg, ...``."""
    return ", ".join(f.names[0] for f in FORMATS)


def format_for(target: str, explicit: str | None = None, *, fallback: str | None = None) -> Format:
    """The output format: ``explicit`` (``--format``), else the extension.

    ``-`` without ``--format`` takes ``fallback`` (the input's format) when
    imgconv can write it, else PNG.
    """
    if explicit:
        try:
            return _BY_WORD[explicit.lower()]
        except KeyError:
            raise UsageFailure(
                f"unknown format {quote(explicit)} (choose from {', '.join(sorted(_BY_WORD))})", subject="--format"
            ) from None
    if target == STDIO:
        return writable(fallback) or by_name("PNG")
    found = by_extension(target)
    if found is None:
        import os

        suffix = os.path.splitext(target)[1].lower()
        known = " ".join(sorted(_BY_EXTENSION))
        raise UsageFailure(
            f"unknown output extension {quote(suffix or '(none)')} (known: {known}; or give --format)", subject=target
        )
    return found


def streaming_hint() -> str:
    """Which formats stream (for the refusal of an image over ``--max-pixels``).

    >>> streaming_hint()
    'TIFF, binary PPM/PGM and .npy inputs stream into .png, .tif, .ppm or .npy outputs without that limit'
    """
    ins = [f.name if f.name == "TIFF" else f.extension for f in FORMATS if f.streams_in]
    ins = ["binary PPM/PGM" if word == "PPM" or word == ".ppm" else word for word in ins]
    outs = [f for f in FORMATS if f.sink is not None]
    return f"{', '.join(ins[:-1])} and {ins[-1]} inputs stream into {_listing(outs)} outputs without that limit"


def _listing(formats: list[Format], *, last: str = "or") -> str:
    """``.png, .tif, .webp or .npy``."""
    names = [f.extension for f in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def check_frames(fmt: Format, count: int, *, target: str) -> None:
    """Refuse a format that holds one frame for an input of several (a usage error).

    >>> check_frames(by_name('JPEG'), 10, target='x.jpg')
    Traceback (most recent call last):
    ...
    imgconv.errors.UsageFailure: x.jpg: JPEG holds one frame and the input has 10; give --frames first, or write .png, .tif, .webp or .gif
    """
    if count > 1 and not fmt.frames:
        able = [f for f in FORMATS if f.frames]
        raise UsageFailure(
            f"{fmt.name} holds one frame and the input has {count}; give --frames first, or write {_listing(able)}",
            subject=target,
        )


def check_capacity(
    fmt: Format, *, is_float: bool, depth: int | None, channels: int, has_alpha: bool, target: str
) -> None:
    """Refuse a format that cannot hold the result (a usage error)."""
    gray = channels == 1 and not has_alpha
    if is_float and fmt.floats == "none":
        anywhere = [f for f in FORMATS if f.floats != "none" and f.matrix]
        one_channel = [f for f in FORMATS if f.floats == "gray" and not f.matrix]
        where = f"{', '.join(f.extension for f in anywhere)} or a one-channel {_listing(one_channel)}"
        raise UsageFailure(f"{fmt.name} cannot hold --range float values; write {where}", subject=target)
    if is_float and fmt.floats == "gray" and not gray and not fmt.text:
        raise UsageFailure(f"a float {fmt.name} holds one channel only; write .npy for colour", subject=target)
    if depth == 16 and fmt.depth16 == "none":
        able = [f for f in FORMATS if f.depth16 != "none" and not f.text]
        raise UsageFailure(
            f"{fmt.name} cannot hold 16-bit values; write {_listing(able)}, or give --depth 8", subject=target
        )
    if depth == 16 and fmt.depth16 == "gray" and not gray and not fmt.text:
        raise UsageFailure(
            f"16-bit {fmt.name} output is written for grayscale only; write .npy, or give --depth 8", subject=target
        )
    if has_alpha and not fmt.alpha:
        able = [f for f in FORMATS if f.alpha]
        raise UsageFailure(f"{fmt.name} cannot hold the alpha channel; write {_listing(able)}", subject=target)
    total = channels + has_alpha
    if not fmt.any_channels and not fmt.text and total not in ((1, 2, 3, 4) if fmt.alpha else (1, 3)):
        able = [f for f in FORMATS if f.any_channels]
        held = "gray or RGB, with or without alpha" if fmt.alpha else "gray or RGB"
        raise UsageFailure(
            f"{fmt.name} holds {held}; this result has {total} channels, write {_listing(able)}", subject=target
        )
    if fmt.text and not gray:
        raise UsageFailure(
            f"{fmt.name} holds a 2-D matrix; this result has {channels + has_alpha} channels, write .npy",
            subject=target,
        )
