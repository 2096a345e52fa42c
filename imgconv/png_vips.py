"""PNG rows that numpy cannot unfilter fast, decoded by libvips.

Rows filtered with Paeth or Average (most files from Pillow, libpng or
ImageMagick) and interlaced files need a byte-by-byte loop; libvips (its
libpng with zlib-ng) does it in C at about twice Pillow's speed.  It is an
optional extra (``pip install 'imgconv[vips]'``): without it those files go
to Pillow.

libvips starts worker threads once it has decoded something, and a process
with threads must not fork and go on decoding in the child; the resident
server's parent therefore never decodes through here
(``imgconv.server.warm`` turns the route off while it warms up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from imgconv.png_chunks import Layout

#: Off in a process that will fork (the resident server's parent).
ENABLED = True


def vips_rows(data: bytes | memoryview, layout: Layout) -> np.ndarray | None:
    """The unfiltered rows (H x stride bytes, 16-bit big-endian, as ``_unfilter``
    gives them) decoded by libvips, when ``pyvips`` is installed: its libpng
    with zlib-ng unfilters Paeth and Average rows and de-interlaces in C,
    about twice Pillow's speed (a system libvips may use libspng instead).  Only for the kinds where libvips returns the stored
    samples unchanged: 8- and 16-bit gray, gray + alpha, RGB and RGBA without
    a tRNS chunk (libvips would turn one into an alpha band).  Palette and
    1/2/4-bit files are left to Pillow."""
    if layout.color_type == 3 or layout.bits < 8 or layout.gray_or_rgb_transparency:
        return None
    pyvips = pyvips_module() if ENABLED else None
    if pyvips is None:
        return None
    try:
        # fail_on="warning": a damaged file is an error here, never a guess; Pillow then has its say.
        if isinstance(data, bytes):
            image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="warning")
        else:  # a mapped file: read where it lies, not copied into bytes first
            source = pyvips.Source.new_from_memory(data)
            image = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="warning")
        if image.get("vips-loader") not in ("pngload_buffer", "pngload_source"):
            return None
        expected = ("ushort" if layout.bits == 16 else "uchar", layout.channels, layout.width, layout.height)
        if (image.format, image.bands, image.width, image.height) != expected:
            return None
        samples = image.write_to_memory()
    except pyvips.Error:
        return None
    if layout.bits == 16:
        values = np.frombuffer(samples, dtype=np.uint16).astype(">u2")
        return values.view(np.uint8).reshape(layout.height, layout.stride)
    return np.frombuffer(samples, dtype=np.uint8).reshape(layout.height, layout.stride)


def pyvips_module() -> Any:
    """The ``pyvips`` module with its operation cache off (a decoded file is
    used once), or None when it or libvips is missing."""
    global _PYVIPS
    if _PYVIPS is False:
        try:
            import pyvips  # type: ignore[import-untyped]
        except Exception:  # ImportError, or OSError/cffi errors when libvips cannot be loaded
            _PYVIPS = None
        else:
            pyvips.cache_set_max(0)
            _quiet(pyvips)
            _PYVIPS = pyvips
    return _PYVIPS


def _quiet(pyvips: Any) -> None:
    """Keep libvips' messages out of Python while it decodes.

    pyvips routes every libvips message through a Python callback, and
    libvips reports each finished thread pool, so each decode calls back into
    Python; a signal handled during that callback has its exception swallowed
    by cffi, and a batch worker told to stop (SIGTERM raises SystemExit)
    carried on.  Keep the callback for warnings and errors only (a decode
    that warns fails anyway), and keep those off stderr: imgconv reports a
    failed file in one line of its own.
    """
    import logging

    logging.getLogger("pyvips").addHandler(logging.NullHandler())
    try:
        flags = pyvips.GLogLevelFlags
        pyvips._remove_log_handler()
        levels = (
            flags.LEVEL_WARNING | flags.LEVEL_CRITICAL | flags.LEVEL_ERROR | flags.FLAG_FATAL | flags.FLAG_RECURSION
        )
        pyvips._log_handler_id = pyvips.glib_lib.g_log_set_handler(
            b"VIPS", levels, pyvips._log_handler_cb, pyvips.ffi.NULL
        )
    except AttributeError:  # another pyvips: its own handler stays
        pass


_PYVIPS: Any = False  # not yet imported: pyvips costs ~20 ms, paid only for PNGs that need it
