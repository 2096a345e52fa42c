"""What travels with the pixels: the ICC colour profile and the EXIF data.

A colour-managed viewer needs the profile to show the right colours (an
image tagged Display P3 looks washed out when its profile is lost), and
photographers want their EXIF (camera, exposure, date, GPS) kept.  The
reader takes both from the input; the writer puts them into every output
format whose ``Format`` entry says it holds them (``icc``, ``exif``), and
``--strip`` drops both.

Two rules keep what is carried true of the output:

* EXIF loses its orientation tag, which the reader has already applied to
  the pixels (a viewer would turn the picture a second time), and its
  thumbnail, which shows the unfiltered picture.  A TIFF keeps its EXIF in
  the same tags that describe its pixel layout, so from a TIFF only the
  descriptive tags and the EXIF and GPS folders are taken.
* A profile describes one colour space: an RGB profile goes only into
  colour outputs and a gray one only into grayscale outputs; a profile of
  another space (a CMYK JPEG converted to RGB, ``--color gray`` on an RGB
  photo) is dropped rather than written where it would be wrong.

This module imports Pillow only when it reads EXIF.

>>> icc = bytes(16) + b'RGB ' + bytes(108)
>>> Metadata(icc=icc).fitting(channels=3).icc == icc, Metadata(icc=icc).fitting(channels=1).icc
(True, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The EXIF orientation tag (applied on reading, so never carried).
ORIENTATION = 0x0112
#: The EXIF and GPS sub-folders (IFDs) of an EXIF block.
EXIF_IFD, GPS_IFD = 0x8769, 0x8825

#: Tags of a TIFF's first folder that describe the picture rather than its
#: pixel layout: description, make, model, resolution, software, date,
#: artist, host computer, copyright.
_DESCRIPTIVE_TIFF_TAGS = frozenset({270, 271, 272, 282, 283, 296, 305, 306, 315, 316, 33432})

#: An ICC profile's header is 128 bytes; bytes 16-19 name its colour space.
_ICC_HEADER = 128
_SPACE_FOR_CHANNELS = {1: b"GRAY", 3: b"RGB "}


@dataclass(frozen=True)
class Metadata:
    """The metadata an output may carry.

    ``icc`` is the ICC profile as stored in the input; ``exif`` an EXIF
    block (``Exif\\0\\0`` and a TIFF structure, as Pillow writes it) without
    orientation.  Both None: nothing to carry.
    """

    icc: bytes | None = None
    exif: bytes | None = None

    def __bool__(self) -> bool:
        return self.icc is not None or self.exif is not None

    def fitting(self, *, channels: int) -> Metadata:
        """This metadata as an output of ``channels`` colour channels (alpha
        not counted) may carry it: the profile only if its colour space is
        that of the output."""
        icc = self.icc
        if icc is not None and (len(icc) < _ICC_HEADER or _SPACE_FOR_CHANNELS.get(channels) != icc[16:20]):
            icc = None
        return Metadata(icc=icc, exif=self.exif)

    def only(self, *, icc: bool, exif: bool) -> Metadata:
        """What a format that holds a profile (``icc``) and EXIF (``exif``) keeps."""
        return Metadata(icc=self.icc if icc else None, exif=self.exif if exif else None)


def from_pillow(image: Any, source_format: str) -> Metadata:
    """The metadata of a Pillow image (after its pixels are loaded, since a
    PNG may keep its EXIF after the image data)."""
    icc = image.info.get("icc_profile") or None
    return Metadata(icc=bytes(icc) if icc else None, exif=_exif(image, source_format))


def _exif(image: Any, source_format: str) -> bytes | None:
    """The image's EXIF without orientation and thumbnail, or None."""
    from PIL import Image

    try:
        found = image.getexif()
        if not len(found):
            return None  # most images: and no TIFF machinery is imported for them
        clean = Image.Exif()
        if source_format == "TIFF":
            for tag in _DESCRIPTIVE_TIFF_TAGS & set(found):
                clean[tag] = found[tag]
        else:
            # A copy, so that the image's own EXIF (read for its orientation) stays as it is.
            clean.load(found.tobytes())
            clean.pop(ORIENTATION, None)
        for folder in (EXIF_IFD, GPS_IFD):
            if folder in found:
                clean.pop(folder, None)
                content = found.get_ifd(folder)
                if content:
                    clean[folder] = dict(content)
        if not len(clean):
            return None
        return bytes(clean.tobytes())
    except Exception:  # damaged EXIF is dropped, as other readers drop it; the pixels still count
        return None
