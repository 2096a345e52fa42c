"""The Pillow backend: ``ImageFilter.Kernel``'s C loop, with its quirks hidden.

Pillow's kernel filter (``src/libImaging/Filter.c``) differs from imgconv in
four measured ways; each is undone here so the result is exactly the valid
correlation every backend computes:

1. Orientation: it applies the kernel's rows bottom to top (an impulse
   through ``1..9`` gives ``3,2,1;6,5,4;9,8,7``), so it correlates with the
   rows reversed.  We pass ``flipud(weights)``, which it reverses back.
2. Scale: it divides by the kernel sum unless told otherwise; we pass 1.
3. Border: it copies the outer 1 (3x3) or 2 (5x5) pixels through
   unfiltered.  Our planes arrive padded, so we keep only the inner, valid
   region it did filter.
4. Arithmetic: it sums in float32, adds 0.5 and truncates, clamping 8-bit
   ('L', 'RGB') results to 0..255 and 32-bit ('I') results below at 0; it
   has no 'F' mode for kernels.  We filter in 'I' mode, where a float32 sum
   of integers is exact while it stays below 2**23: negative weights are
   lifted by Pillow's ``offset`` (subtracted again here), negative pixels
   by a shift (added back as ``shift * sum(weights)``), and pixels or
   weights too large for 2**23 are cut into digits filtered separately and
   recombined exactly in float64.

So it serves only integer weights over integer-valued planes (images, and
chains whose earlier kernels have no divisor), kernels up to 5x5 (smaller
ones are embedded in a 3x3 or 5x5 of zeros), and refuses the rest.

>>> import numpy as np
>>> from imgconv.kernels import parse_spec
>>> impulse = np.zeros((3, 3, 1)); impulse[1, 1] = 1
>>> padded = np.pad(impulse, ((1, 1), (1, 1), (0, 0)))
>>> BACKEND.correlate_valid(padded, parse_spec('1,2,3;4,5,6;7,8,9'))[:, :, 0].astype(int).tolist()
[[9, 8, 7], [6, 5, 4], [3, 2, 1]]
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from imgconv.backends import Request

if TYPE_CHECKING:
    from imgconv.kernels import Kernel

#: Pillow's C loop only takes square kernels of these sides.
SIDES = (3, 5)

#: float32 holds every half-integer below this exactly (24-bit significand);
#: Pillow's running sum is ``offset + 0.5 + products``.
_FLOAT32_EXACT = 2**23

#: Weights with a larger sum of magnitudes are cut into base-256 digits.
_WEIGHT_BASE = 256


class PilBackend:
    name = "pil"
    summary = "Pillow ImageFilter.Kernel C loop, 32-bit 'I' mode, float32 sums kept exact"
    limits = "kernels up to 5x5; integer weights on integer pixels (no divisor before the last kernel)"

    def unavailable(self) -> str | None:
        return _probe()

    def refuse(self, request: Request) -> str | None:
        for index, (kh, kw) in enumerate(request.kernel_shapes, start=1):
            if max(kh, kw) > SIDES[-1]:
                return f"kernel {index} is {kh}x{kw}; Pillow filters only up to 5x5"
        for index in range(1, len(request.kernel_shapes) + 1):
            if not request.integer_kernels[index - 1]:
                return (
                    f"kernel {index} has real-valued weights, or integer weights too large to sum exactly; "
                    "Pillow's float32 sums would not be exact"
                )
            if index > len(request.exact_steps) or not request.exact_steps[index - 1]:
                return (
                    f"kernel {index} would get non-integer values (a float matrix, or the output of a kernel "
                    "with a divisor); Pillow's float32 sums would not be exact"
                )
        return None

    def correlate_valid(self, planes: np.ndarray, kernel: Kernel) -> np.ndarray:
        planes = np.asarray(planes, dtype=np.float64)
        weights = kernel.integer_form()[0]
        if not (kernel.integer_weights and np.array_equal(planes, np.floor(planes))):
            raise ValueError("the pil backend needs integer weights and integer-valued planes")
        kh, kw = weights.shape
        side = next(s for s in SIDES if s >= max(kh, kw))
        height, width = planes.shape[0] - kh + 1, planes.shape[1] - kw + 1
        # Embed the kernel top-left in a side x side kernel of zeros, and pad the
        # planes below and right so that the valid region keeps its size.
        square = np.zeros((side, side), dtype=np.int64)
        square[:kh, :kw] = weights
        if (kh, kw) != (side, side):
            planes = np.pad(planes, ((0, side - kh), (0, side - kw), (0, 0)))
        shift = min(float(planes.min()), 0.0)
        lifted = planes - shift if shift else planes  # integers >= 0, exact below 2**53
        digits = _digits(square)
        out = _filter_chunked(lifted, digits[0][0], height, width)
        for digit, scale in digits[1:]:
            out += scale * _filter_chunked(lifted, digit, height, width)
        if shift:
            out += shift * float(weights.sum())
        return out


def _digits(weights: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Signed base-256 digits of the weights, when their magnitudes sum too high."""
    if np.abs(weights).sum() < _FLOAT32_EXACT // 2:
        return [(weights, 1.0)]
    digits, rest, scale = [], np.abs(weights), 1.0
    while rest.any():
        digits.append((np.sign(weights) * (rest % _WEIGHT_BASE), scale))
        rest, scale = rest // _WEIGHT_BASE, scale * _WEIGHT_BASE
    return digits


def _filter_chunked(lifted: np.ndarray, weights: np.ndarray, height: int, width: int) -> np.ndarray:
    """Exact valid correlation of non-negative integer planes, ``bits`` bits at a time."""
    from PIL import Image, ImageFilter

    total = int(np.abs(weights).sum())
    # Chunks of ``bits`` bits keep every running sum below 2**23 (see module doc),
    # and Pillow's offset ``lift`` keeps it >= 0, where 'I' mode would clamp.
    bits = max(1, ((_FLOAT32_EXACT - 1) // max(total, 1) + 1).bit_length() - 1)
    lift = int(-weights[weights < 0].sum()) * ((1 << bits) - 1)
    side = weights.shape[0]
    kernel = ImageFilter.Kernel((side, side), np.flipud(weights).ravel().tolist(), scale=1, offset=lift)
    margin = side // 2
    out = np.empty((height, width, lifted.shape[2]))
    high = float(lifted.max())
    position = 0
    while True:
        chunk = lifted if high < 2.0**bits else np.floor_divide(lifted, 2.0**position) % 2.0**bits
        for channel in range(lifted.shape[2]):
            plane = np.ascontiguousarray(chunk[:, :, channel], dtype=np.int32)
            filtered = Image.fromarray(plane).filter(kernel)  # int32 array: mode 'I'
            # tobytes() is the fastest way out of Pillow; 'I' is native-endian int32.
            values = np.frombuffer(filtered.tobytes(), dtype=np.int32).reshape(plane.shape)
            valid = values[margin : margin + height, margin : margin + width]
            if position == 0:
                np.subtract(valid, lift, out=out[:, :, channel])
            else:
                out[:, :, channel] += 2.0**position * (valid - lift)
        position += bits
        if high < 2.0**position:
            return out


@lru_cache(maxsize=1)
def _probe() -> str | None:
    """Why Pillow cannot serve as a backend here, checked once by an impulse test.

    A Pillow whose kernel filter lacks 'I' mode, or orients kernels unlike
    the one measured, would give other pixels; such a Pillow is unavailable.
    """
    try:
        from PIL import Image, ImageFilter  # noqa: F401
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency
        return f"Pillow is not installed ({exc})"
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1
    try:
        got = _filter_chunked(impulse[:, :, np.newaxis], np.arange(-4, 5).reshape(3, 3), 3, 3)
    except (ValueError, OSError) as exc:
        return f"this Pillow cannot filter 32-bit images ({exc})"
    if not np.array_equal(got[:, :, 0], np.arange(4, -5, -1).reshape(3, 3)):
        return "this Pillow orients kernels unlike the one measured"
    return None


BACKEND = PilBackend()
