"""Draw docs/linear-blur.png, the README's picture of --linear.

A black/white edge, blurred with a Gaussian (sigma 16) as ``imgconv apply``
does, once on the sRGB levels and once with ``--linear``, and under them
the levels of one row of each across the edge.  Run from the repository:

    .venv/bin/python docs/linear_blur.py [OUTPUT]

Everything is computed by imgconv and drawn with Pillow's bitmap font, so
the picture's pixels are the same on every machine (``make docs``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import imgconv

WIDTH, BAND, LABEL, PLOT, MARGIN = 400, 36, 14, 120, 8
KERNEL = "gaussian:sigma=16"
PAPER, RULE = (236, 236, 236), (150, 150, 150)


def bands() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edge, its gamma-space blur and its linear-light blur (8-bit gray)."""
    edge = np.zeros((BAND, WIDTH), np.uint8)
    edge[:, WIDTH // 2 :] = 255
    gamma = imgconv.filter_image(edge, KERNEL, border="nearest")
    linear = imgconv.filter_image(edge, KERNEL, border="nearest", linear=True)
    return edge, gamma, linear


def picture() -> Image.Image:
    edge, gamma, linear = bands()
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    rows = [
        ("the edge", edge),
        (f"-k '{KERNEL}': sRGB levels averaged", gamma),
        (f"-k '{KERNEL}' --linear: light averaged", linear),
    ]
    height = len(rows) * (LABEL + BAND + MARGIN) + LABEL + PLOT + 2 * MARGIN
    sheet = Image.new("RGB", (WIDTH + 2 * MARGIN, height), PAPER)
    draw = ImageDraw.Draw(sheet)
    top = MARGIN // 2
    for label, band in rows:
        draw.text((MARGIN, top + 1), label, fill="black", font=font)
        sheet.paste(Image.fromarray(band).convert("RGB"), (MARGIN, top + LABEL))
        draw.rectangle((MARGIN - 1, top + LABEL - 1, MARGIN + WIDTH, top + LABEL + BAND), outline=RULE)
        top += LABEL + BAND + MARGIN
    draw.text((MARGIN, top + 1), "the levels of one row: sRGB average (red), --linear (blue)", fill="black", font=font)
    top += LABEL
    draw.rectangle((MARGIN - 1, top - 1, MARGIN + WIDTH, top + PLOT + 1), fill="white", outline=RULE)
    middle = top + PLOT - round(128 / 255 * PLOT)
    draw.line((MARGIN, middle, MARGIN + WIDTH - 1, middle), fill=(215, 215, 215))  # level 128
    draw.line((MARGIN + WIDTH // 2, top, MARGIN + WIDTH // 2, top + PLOT), fill=(215, 215, 215))  # the edge
    for band, colour in ((gamma, (200, 30, 30)), (linear, (30, 60, 200))):
        points = [(MARGIN + x, top + PLOT - round(int(level) / 255 * PLOT)) for x, level in enumerate(band[0])]
        draw.line(points, fill=colour, width=2)
    return sheet


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("linear-blur.png")
    picture().save(target, optimize=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
