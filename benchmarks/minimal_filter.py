"""The least a script can do to sharpen one image: the baseline of a cold imgconv call.

    python benchmarks/minimal_filter.py IN OUT

Imports numpy and Pillow, reads IN, convolves it with imgconv's ``sharpen``
(0,-1,0 / -1,5,-1 / 0,-1,0; zero border, exact integer sums, clipped to
0..255) and writes OUT with Pillow.  It gives the same pixels as
``imgconv apply -k sharpen IN OUT`` on 8-bit RGB or gray images; the
benchmark checks that, so the two do the same work.
"""

import sys

import numpy as np
from PIL import Image

source, target = sys.argv[1:3]
image = np.asarray(Image.open(source))
planes = image.astype(np.int16) if image.ndim == 3 else image.astype(np.int16)[:, :, None]
height, width = planes.shape[:2]
padded = np.pad(planes, ((1, 1), (1, 1), (0, 0)))
out = (5 * padded[1:-1, 1:-1] - padded[:-2, 1:-1] - padded[2:, 1:-1] - padded[1:-1, :-2] - padded[1:-1, 2:])
result = np.clip(out, 0, 255).astype(np.uint8)
Image.fromarray(result if image.ndim == 3 else result[:, :, 0]).save(target)
