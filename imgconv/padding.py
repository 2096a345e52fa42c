"""Borders and geometry: which image cell each padded position reads.

The image is padded by the kernel size minus one on each side with the
border rule, the full convolution is taken, and the geometry's window is
cut from it: so a backend only ever computes a *valid* correlation of
padded planes.  Here that padding is described as index maps (one per
axis), so a strip of rows can be padded on its own, without a padded copy
of the whole image.

>>> pad_index(3, 3, geometry='full', border='reflect').tolist()
[1, 0, 0, 1, 2, 2, 1]
>>> pad_index(3, 3, geometry='same', border='zero').tolist()
[-1, 0, 1, 2, -1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgconv.choices import Border, Geometry

#: Our border names (scipy.ndimage's meanings) -> numpy.pad modes.
NUMPY_PAD_MODES = {
    "zero": "constant",
    "nearest": "edge",
    "reflect": "symmetric",
    "mirror": "reflect",
    "wrap": "wrap",
}


def pad_widths(kernel_shape: tuple[int, int], geometry: Geometry) -> tuple[tuple[int, int], tuple[int, int]]:
    """How far the image is padded (before, after) per axis for a geometry.

    Equal to padding by ``k - 1`` on each side and cutting scipy's window
    out of the full result: ``same`` keeps the full result from
    ``(k - 1) // 2``, so it needs ``k // 2`` before and ``(k - 1) // 2`` after.

    >>> pad_widths((3, 2), 'same'), pad_widths((3, 2), 'full'), pad_widths((3, 2), 'valid')
    (((1, 1), (1, 0)), ((2, 2), (1, 1)), ((0, 0), (0, 0)))
    """
    widths = []
    for k in kernel_shape:
        if geometry == "full":
            widths.append((k - 1, k - 1))
        elif geometry == "same":
            widths.append((k // 2, (k - 1) // 2))
        else:
            widths.append((0, 0))
    return widths[0], widths[1]


def output_shape(shape: tuple[int, int], kernel_shape: tuple[int, int], geometry: Geometry) -> tuple[int, int]:
    """The H x W after one kernel step, as ``scipy.signal.convolve`` gives it.

    >>> output_shape((5, 5), (3, 3), 'full'), output_shape((5, 5), (3, 3), 'valid')
    ((7, 7), (3, 3))
    """
    (h, w), (kh, kw) = shape, kernel_shape
    if geometry == "full":
        return h + kh - 1, w + kw - 1
    if geometry == "valid":
        return h - kh + 1, w - kw + 1
    return h, w


def pad(planes: np.ndarray, kernel_shape: tuple[int, int], *, geometry: Geometry, border: Border) -> np.ndarray:
    """Pad H x W x C planes so a valid correlation yields the geometry's window.

    The image is first padded by ``k - 1`` on every side, then the part the
    geometry needs is cut out: exactly the definition in the README, which
    also pins down what happens when the pad is wider than the image.
    """
    (top, bottom), (left, right) = pad_widths(kernel_shape, geometry)
    kh, kw = kernel_shape
    if top == bottom == left == right == 0:
        return planes
    mode = NUMPY_PAD_MODES[border]
    wide: np.ndarray = np.pad(planes, ((kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)), mode=mode)  # type: ignore[call-overload]
    return wide[kh - 1 - top : wide.shape[0] - (kh - 1 - bottom), kw - 1 - left : wide.shape[1] - (kw - 1 - right)]


def pad_index(length: int, k: int, *, geometry: Geometry, border: Border) -> np.ndarray:
    """Which image index each padded position reads (-1: a zero), along one axis.

    The same numbers ``pad`` produces, as indices: padding ``arange(length)``
    by the border rule and cutting the geometry's window.
    """
    before, after = pad_widths((k, 1), geometry)[0]
    mode = NUMPY_PAD_MODES[border]
    extra = {"constant_values": -1} if mode == "constant" else {}
    wide = np.pad(np.arange(length), (k - 1, k - 1), mode=mode, **extra)  # type: ignore[call-overload]
    return wide[k - 1 - before : len(wide) - (k - 1 - after)]  # type: ignore[no-any-return]


def longest_run(indices: np.ndarray) -> tuple[int, int]:
    """Start and stop of the longest run of consecutive, valid indices.

    >>> longest_run(np.array([1, 0, 0, 1, 2, 2, 1]))
    (2, 5)
    """
    breaks = np.flatnonzero((np.diff(indices) != 1) | (indices[1:] < 0) | (indices[:-1] < 0)) + 1
    bounds = np.concatenate(([0], breaks, [len(indices)]))
    longest = int(np.argmax(np.diff(bounds)))
    start, stop = int(bounds[longest]), int(bounds[longest + 1])
    if indices[start] < 0:
        return 0, 0
    return start, stop


def gather(
    planes: np.ndarray, row_map: np.ndarray, column_map: np.ndarray, column_run: tuple[int, int] | None = None
) -> np.ndarray:
    """The padded strip that ``row_map`` x ``column_map`` describe (-1 reads 0).

    The longest run of consecutive indices is copied as one slice (the
    image itself, between the pads); only the few pad positions are gathered.
    ``column_run`` (from ``longest_run(column_map)``) saves finding it per strip.
    """
    # Every border rule steps by at most +1, so rows whose ends are len - 1
    # apart are consecutive: the strip lies inside the image, a plain slice.
    if row_map[0] >= 0 and row_map[-1] - row_map[0] == len(row_map) - 1:
        source = planes[row_map[0] : row_map[0] + len(row_map)]
    else:
        source = planes.take(np.maximum(row_map, 0), axis=0)
        source[row_map < 0] = 0
    strip = np.empty((len(row_map), len(column_map), planes.shape[2]), dtype=planes.dtype)
    start, stop = column_run if column_run is not None else longest_run(column_map)
    strip[:, start:stop] = source[:, column_map[start] : column_map[start] + stop - start]
    for edge in (slice(0, start), slice(stop, len(column_map))):
        indices = column_map[edge]
        if indices.size:
            strip[:, edge] = source.take(np.maximum(indices, 0), axis=1)
            strip[:, edge][:, indices < 0] = 0
    return strip


def align_alpha(
    alpha: np.ndarray, kernel_shapes: Sequence[tuple[int, int]], *, geometry: Geometry, border: Border
) -> np.ndarray:
    """Carry an alpha plane through the geometry of each kernel step, unblurred.

    ``same`` leaves it as it is; ``full`` extends it by the border rule (zero
    border: transparent); ``valid`` cuts it to the pixels that remain.

    >>> align_alpha(np.full((2, 2), 9), [(3, 3)], geometry='full', border='zero').tolist()[0]
    [0, 0, 0, 0]
    """
    for kh, kw in kernel_shapes:
        if geometry == "full":
            widths = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
            alpha = np.pad(alpha, widths, mode=NUMPY_PAD_MODES[border])  # type: ignore[call-overload]
        elif geometry == "valid":
            h, w = alpha.shape
            alpha = alpha[kh // 2 : kh // 2 + h - kh + 1, kw // 2 : kw // 2 + w - kw + 1]
    return alpha


def alpha_index(length: int, kernel_sides: Sequence[int], *, geometry: Geometry, border: Border) -> np.ndarray:
    """Which alpha cell each output position carries along one axis (-1: a
    zero), through every kernel step: ``align_alpha`` as an index map.

    >>> alpha_index(3, [3], geometry='full', border='reflect').tolist()
    [0, 0, 1, 2, 2]
    >>> alpha_index(3, [3], geometry='full', border='zero').tolist()
    [-1, 0, 1, 2, -1]
    >>> alpha_index(6, [3, 3], geometry='valid', border='zero').tolist()
    [2, 3]
    """
    cells = np.arange(1, length + 1)[:, np.newaxis]  # shifted by one: a zero border pads 0, read as -1
    aligned = align_alpha(cells, [(k, 1) for k in kernel_sides], geometry=geometry, border=border)
    return aligned[:, 0] - 1
