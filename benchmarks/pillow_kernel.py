"""What a user writes to sharpen one image with Pillow: the PPM sharpen target's peer.

    python benchmarks/pillow_kernel.py IN OUT

Four lines: open, ``ImageFilter.Kernel`` with imgconv's ``sharpen``
weights, save.  Pillow's border differs from imgconv's zero border (it
copies the edge pixels), which changes nothing of the cost.
"""

import sys

from PIL import Image, ImageFilter

image = Image.open(sys.argv[1])
image.filter(ImageFilter.Kernel((3, 3), [0, -1, 0, -1, 5, -1, 0, -1, 0], scale=1)).save(sys.argv[2])
