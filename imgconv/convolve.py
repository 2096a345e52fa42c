"""The convolution pipeline: pad, correlate on a backend, crop, finish.

One meaning, stated once (the README has the long form):

* orientation: true convolution, exactly ``scipy.signal.convolve`` (the
  kernel rotated 180 degrees); ``correlate=True`` applies it as written;
* geometry: ``same`` / ``full`` / ``valid`` as ``scipy.signal.convolve``;
* border: the image is padded by the kernel size minus one on each side with
  the border rule, the full convolution is taken, and the geometry's window
  is cut from it, so every backend only computes a valid correlation;
* arithmetic: float64; each kernel's own ``/ scale + offset`` at its step;
  nothing rounded or clipped between kernels;
* finish: ``/ scale + offset`` once more, optional ReLU, the range
  (clip / abs / normalize / float), round half up, clip to the output type.

>>> import numpy as np
>>> from imgconv.kernels import parse_spec
>>> a = np.array([[255, 7, 3], [212, 240, 4], [218, 216, 230]])
>>> convolve(a, [parse_spec('1,-1;-1,1')], geometry='full').astype(int).tolist()
[[255, -248, -4, -3], [-43, 276, -232, -1], [6, -30, 250, -226], [-218, 2, -14, 230]]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from imgconv import backends
from imgconv.errors import InputError, UsageFailure
from imgconv.kernels import Kernel

GEOMETRIES = ("same", "full", "valid")
BORDERS = ("zero", "nearest", "reflect", "mirror", "wrap")
RANGES = ("clip", "abs", "normalize", "float")

#: Our border names (scipy.ndimage's meanings) -> numpy.pad modes.
NUMPY_PAD_MODES = {
    "zero": "constant",
    "nearest": "edge",
    "reflect": "symmetric",
    "mirror": "reflect",
    "wrap": "wrap",
}


@dataclass(frozen=True)
class FilterOptions:
    """Every option of a convolution run, independent of files.

    Picklable, so batch workers receive exactly what the command parsed.
    """

    geometry: str = "same"
    border: str = "zero"
    correlate: bool = False
    backend: str = backends.AUTO
    scale: float = 1.0
    offset: float = 0.0
    relu: bool = False
    value_range: str | None = None  # None: clip for images, float for matrices

    def __post_init__(self) -> None:
        _check_choice("--geometry", self.geometry, GEOMETRIES)
        _check_choice("--border", self.border, BORDERS)
        if self.value_range is not None:
            _check_choice("--range", self.value_range, RANGES)
        if not np.isfinite(self.scale) or abs(self.scale) < np.finfo(np.float64).tiny:
            raise UsageFailure(f"must be a finite non-zero number above 2.2e-308, got {self.scale}", subject="--scale")
        if not np.isfinite(self.offset):
            raise UsageFailure(f"must be a finite number, got {self.offset}", subject="--offset")

    def request(self, kernels: Sequence[Kernel], *, integer_input: bool = True) -> backends.Request:
        """What the backend is asked; ``integer_input``: the planes hold integers (images do)."""
        return backends.Request(
            kernel_shapes=tuple(k.shape for k in kernels),
            integer_kernels=tuple(k.exact for k in kernels),
            geometry=self.geometry,
            border=self.border,
            value_range=self.value_range or "clip",
            exact_steps=exact_steps(kernels, integer_input=integer_input),
        )


def exact_steps(kernels: Sequence[Kernel], *, integer_input: bool) -> tuple[bool, ...]:
    """Which kernel steps sum integer weights over integer-valued planes.

    Padding keeps integers (zero, or copies of pixels); a step passes
    integers on only when its divisor is 1 (or -1) and its offset is whole,
    so ``blur`` (divisor 9) makes every later step inexact.

    >>> from imgconv.kernels import parse_spec
    >>> exact_steps([parse_spec('sharpen'), parse_spec('blur'), parse_spec('edge3')], integer_input=True)
    (True, True, False)
    >>> exact_steps([parse_spec('gaussian:sigma=1')], integer_input=True)
    (False,)
    """
    steps = []
    integer = integer_input
    for kernel in kernels:
        weights, divisor = kernel.integer_form()
        exact = integer and bool(np.array_equal(weights, np.round(weights)))
        steps.append(exact)
        integer = exact and abs(divisor) == 1 and float(kernel.offset).is_integer()
    return tuple(steps)


def _check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageFailure(f"'{value}' is not one of {', '.join(choices)}", subject=option)


def pad_widths(kernel_shape: tuple[int, int], geometry: str) -> tuple[tuple[int, int], tuple[int, int]]:
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


def pad(planes: np.ndarray, kernel_shape: tuple[int, int], *, geometry: str, border: str) -> np.ndarray:
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
    wide = np.pad(planes, ((kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)), mode=mode)
    return wide[kh - 1 - top : wide.shape[0] - (kh - 1 - bottom), kw - 1 - left : wide.shape[1] - (kw - 1 - right)]


def output_shape(shape: tuple[int, int], kernel_shape: tuple[int, int], geometry: str) -> tuple[int, int]:
    """The H x W after one kernel step, as ``scipy.signal.convolve`` gives it."""
    (h, w), (kh, kw) = shape, kernel_shape
    if geometry == "full":
        return h + kh - 1, w + kw - 1
    if geometry == "valid":
        return h - kh + 1, w - kw + 1
    return h, w


def check_fits(shape: tuple[int, int], kernels: Sequence[Kernel], geometry: str, *, subject: str | None = None) -> None:
    """Refuse a ``valid`` run whose kernels do not fit inside the image."""
    current = shape
    for kernel in kernels:
        after = output_shape(current, kernel.shape, geometry)
        if after[0] < 1 or after[1] < 1:
            raise InputError(
                f"the image ({current[0]}x{current[1]}) is smaller than kernel '{kernel.name}' "
                f"({kernel.shape[0]}x{kernel.shape[1]}), so --geometry valid leaves nothing; "
                "use --geometry same or full",
                subject=subject,
            )
        current = after


def convolve(
    image: np.ndarray,
    kernels: Sequence[Kernel],
    *,
    geometry: str = "same",
    border: str = "zero",
    correlate: bool = False,
    backend: str = backends.AUTO,
) -> np.ndarray:
    """Apply ``kernels`` in order; float64 result, nothing rounded or clipped.

    ``image`` is H x W or H x W x C; each channel is filtered on its own with
    the same kernel.  Each kernel's own scale and offset apply at its step.

    >>> import numpy as np
    >>> from imgconv.kernels import parse_spec
    >>> impulse = np.zeros((3, 3)); impulse[1, 1] = 1
    >>> convolve(impulse, [parse_spec('1,2,3;4,5,6;7,8,9')]).astype(int).tolist()
    [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    >>> convolve(impulse, [parse_spec('1,2,3;4,5,6;7,8,9')], correlate=True).astype(int).tolist()
    [[9, 8, 7], [6, 5, 4], [3, 2, 1]]
    """
    options = FilterOptions(geometry=geometry, border=border, correlate=correlate, backend=backend)
    planes = np.asarray(image)
    flat = planes.ndim == 2
    if flat:
        planes = planes[:, :, np.newaxis]
    if planes.ndim != 3:
        raise UsageFailure(f"expected an H x W or H x W x C array, got shape {planes.shape}", subject="image")
    check_fits(planes.shape[:2], kernels, geometry)
    integer_input = np.issubdtype(planes.dtype, np.integer) or bool(np.array_equal(planes, np.floor(planes)))
    engine = backends.choose(backend, options.request(kernels, integer_input=integer_input))
    result = planes
    for kernel in kernels:
        oriented = kernel if correlate else kernel.flipped()
        weights, divisor = oriented.integer_form()
        padded = pad(result, kernel.shape, geometry=geometry, border=border)
        result = engine.correlate_valid(padded, weights)
        result = _scale_offset(result, divisor, kernel.offset)
    return result[:, :, 0] if flat else result


def _scale_offset(values: np.ndarray, divisor: float, offset: float) -> np.ndarray:
    """``values / divisor + offset``, in place when the array is ours."""
    divisor, offset = float(divisor), float(offset)
    values = np.asarray(values, dtype=np.float64)
    if divisor != 1.0:
        values = values / divisor
    if offset != 0.0:
        values = values + offset
    return values


def finish(
    values: np.ndarray,
    *,
    maxval: int | None,
    value_range: str = "clip",
    scale: float = 1.0,
    offset: float = 0.0,
    relu: bool = False,
) -> np.ndarray:
    """Scale, offset, ReLU, range, round half up and clip to ``0..maxval``.

    ``maxval`` is 255 or 65535 for 8- and 16-bit outputs.  With
    ``value_range='float'`` the float64 values come back unrounded.

    >>> import numpy as np
    >>> finish(np.array([-3.0, 0.5, 1.49, 254.5, 300.0]), maxval=255).tolist()
    [0, 1, 1, 255, 255]
    >>> finish(np.array([-3.0, 2.5]), maxval=255, value_range='abs').tolist()
    [3, 3]
    >>> finish(np.array([-1.0, 0.0, 1.0]), maxval=255, value_range='normalize').tolist()
    [0, 128, 255]
    """
    _check_choice("--range", value_range, RANGES)
    result = _scale_offset(values, scale, offset)
    if relu:
        result = np.maximum(result, 0.0)
    if value_range == "float":
        return result
    if maxval is None:
        raise UsageFailure("an integer output needs a maximum value", subject="--range")
    if value_range == "abs":
        result = np.abs(result)
    elif value_range == "normalize":
        low, high = (float(result.min()), float(result.max())) if result.size else (0.0, 0.0)
        if high == low:
            return np.zeros(result.shape, dtype=_dtype_for(maxval))
        result = (result - low) * (maxval / (high - low))
    rounded = np.floor(result + 0.5)
    np.clip(rounded, 0, maxval, out=rounded)
    return rounded.astype(_dtype_for(maxval))


def _dtype_for(maxval: int) -> np.dtype:
    return np.dtype(np.uint8) if maxval <= 255 else np.dtype(np.uint16) if maxval <= 65535 else np.dtype(np.uint32)


def align_alpha(alpha: np.ndarray, kernels: Sequence[Kernel], *, geometry: str, border: str) -> np.ndarray:
    """Carry an alpha plane through the geometry of each kernel step, unblurred.

    ``same`` leaves it as it is; ``full`` extends it by the border rule (zero
    border: transparent); ``valid`` cuts it to the pixels that remain.
    """
    for kernel in kernels:
        kh, kw = kernel.shape
        if geometry == "full":
            widths = (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
            alpha = np.pad(alpha, widths, mode=NUMPY_PAD_MODES[border])
        elif geometry == "valid":
            h, w = alpha.shape
            alpha = alpha[kh // 2 : kh // 2 + h - kh + 1, kw // 2 : kw // 2 + w - kw + 1]
    return alpha


#: Output elements per strip of the one-kernel fast path: small enough that
#: a strip's integer sums and temporaries stay in the CPU cache.
STRIP_ELEMENTS = 1 << 17


@dataclass(frozen=True)
class Finisher:
    """The last steps for one kernel's raw sums: ``S / divisor + kernel offset``,
    then ``finish`` with the run's scale, offset, ReLU and range.

    Integer sums take a pure-integer route when it provably gives the bytes
    the float64 formula gives: an integer divisor d and no offsets or extra
    scale, where ``floor(S / d + 0.5) == (2S + d) // 2d`` for every ``|S| <
    2**51`` (a tie is exact in both, and otherwise the float error is far
    below the 1/2d gap to the next integer).

    >>> import numpy as np
    >>> f = Finisher(divisor=9, kernel_offset=0, maxval=255)
    >>> sums = np.array([-5, 4, 5, 13, 2300, 2294])
    >>> f(sums).tolist() == f(sums.astype(float)).tolist() == [0, 0, 1, 1, 255, 255]
    True
    """

    divisor: float
    kernel_offset: float
    maxval: int | None
    value_range: str = "clip"
    scale: float = 1.0
    offset: float = 0.0
    relu: bool = False

    def integer_divisor(self) -> int | None:
        d = self.divisor
        plain = self.kernel_offset == 0 and self.scale == 1 and self.offset == 0
        if not plain or self.value_range not in ("clip", "abs") or float(d) != int(d) or d == 0:
            return None
        return int(d)

    @property
    def dtype(self) -> np.dtype:
        """What the finished values are: float64, or the output's integer type."""
        return np.dtype(np.float64) if self.value_range == "float" else _dtype_for(self.maxval)

    def __call__(self, sums: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Finish ``sums`` (which may be changed in place), into ``out`` if given."""
        divisor = self.integer_divisor()
        if sums.dtype.kind in "iu" and divisor is not None and self.maxval is not None:
            finished = self._integer(sums, divisor)
        else:
            values = _scale_offset(sums, self.divisor, self.kernel_offset)
            finished = finish(values, maxval=self.maxval, value_range=self.value_range, scale=self.scale,
                              offset=self.offset, relu=self.relu)
        if out is None:
            return finished.astype(self.dtype, copy=False)
        np.copyto(out, finished, casting="unsafe")  # values are already within the output's range
        return out

    def _integer(self, sums: np.ndarray, divisor: int) -> np.ndarray:
        if divisor == 1 and not self.relu and self.value_range == "clip" and self.maxval <= np.iinfo(sums.dtype).max:
            # The common case (sharpen, emboss): clip the sums where they are.
            return np.clip(sums, 0, self.maxval, out=sums)
        # Signed, with room for the rounding term (2S + d) and a 16-bit maxval.
        narrow = sums.dtype.itemsize <= 2 and abs(divisor) < 2**14
        wide = sums.astype(np.int32 if narrow else np.int64)
        if divisor < 0:  # S / -d == -S / d
            np.negative(wide, out=wide)
            divisor = -divisor
        if self.relu:
            np.maximum(wide, 0, out=wide)
        if self.value_range == "abs":
            np.abs(wide, out=wide)
        if divisor != 1:
            if divisor & (divisor - 1) == 0:  # a power of two: add half, shift (floors)
                wide += divisor >> 1
                wide >>= divisor.bit_length() - 1
            else:
                wide *= 2
                wide += divisor
                wide //= 2 * divisor
        return np.clip(wide, 0, self.maxval, out=wide)


def filter_planes(planes: np.ndarray, kernels: Sequence[Kernel], options: FilterOptions, *,
                  maxval: int | None, value_range: str) -> np.ndarray:
    """Convolve and finish H x W x C planes: ``finish(convolve(...))``, fused.

    One kernel on integer planes with an elementwise range runs row strip by
    row strip: each strip is padded, summed on the backend and finished
    while it is in the CPU cache, with no float64 copy of the image.  Every
    step is elementwise or local, so the bytes are those of the whole-image
    route, which chains and ``normalize`` take.
    """
    fused = len(kernels) == 1 and value_range != "normalize" and planes.dtype.kind in "iu"
    if not fused:
        values = convolve(planes, kernels, geometry=options.geometry, border=options.border,
                          correlate=options.correlate, backend=options.backend)
        return finish(values, maxval=maxval, value_range=value_range, scale=options.scale,
                      offset=options.offset, relu=options.relu)
    (kernel,) = kernels
    check_fits(planes.shape[:2], kernels, options.geometry)
    engine = backends.choose(options.backend, options.request(kernels, integer_input=True))
    oriented = kernel if options.correlate else kernel.flipped()
    weights, divisor = oriented.integer_form()
    finisher = Finisher(divisor=divisor, kernel_offset=kernel.offset, maxval=maxval, value_range=value_range,
                        scale=options.scale, offset=options.offset, relu=options.relu)
    kh, kw = kernel.shape
    row_map = pad_index(planes.shape[0], kh, geometry=options.geometry, border=options.border)
    column_map = pad_index(planes.shape[1], kw, geometry=options.geometry, border=options.border)
    height, width = len(row_map) - kh + 1, len(column_map) - kw + 1
    workers = thread_count()
    # Several threads want fewer, larger strips (less handing over per strip).
    elements = STRIP_ELEMENTS * (4 if workers > 1 else 1)
    rows = max(1, elements // max(1, width * planes.shape[2]), 2 * kh)
    column_run = _run(column_map)

    out = np.empty((height, width, planes.shape[2]), dtype=finisher.dtype)

    def fill(top: int) -> None:
        strip = gather(planes, row_map[top : top + rows + kh - 1], column_map, column_run)
        finisher(engine.correlate_valid(strip, weights), out=out[top : top + rows])

    tops = range(0, height, rows)
    workers = min(workers, len(tops))
    if workers > 1:
        # numpy releases the GIL inside its loops, so strips run on every core.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, tops))
    else:
        for top in tops:
            fill(top)
    return out


def thread_count() -> int:
    """Threads for the strips: ``IMGCONV_THREADS``, else the number of CPUs."""
    import os

    text = os.environ.get("IMGCONV_THREADS", "")
    return int(text) if text.isdigit() and int(text) > 0 else (os.cpu_count() or 1)


def filter_image(
    image: np.ndarray,
    kernels: Sequence[Kernel],
    *,
    maxval: int = 255,
    value_range: str = "clip",
    **options,
) -> np.ndarray:
    """``finish(apply_kernels(image, kernels, ...))`` as the command line runs it.

    ``image`` is H x W or H x W x C; the result is uint8 (``maxval`` 255) or
    uint16 (65535), or float64 with ``value_range='float'``.  Options are
    those of ``FilterOptions`` (geometry, border, correlate, backend, scale,
    offset, relu).  One kernel on integer pixels takes the fused strip route.

    >>> import numpy as np
    >>> from imgconv.kernels import parse_spec
    >>> filter_image(np.full((3, 3), 100, np.uint8), [parse_spec('sharpen')]).tolist()
    [[255, 200, 255], [200, 100, 200], [255, 200, 255]]
    """
    planes = np.asarray(image)
    flat = planes.ndim == 2
    result = filter_planes(planes[:, :, np.newaxis] if flat else planes, kernels, FilterOptions(**options),
                           maxval=maxval, value_range=value_range)
    return result[:, :, 0] if flat else result


def pad_index(length: int, k: int, *, geometry: str, border: str) -> np.ndarray:
    """Which image index each padded position reads (-1: a zero), along one axis.

    The same numbers ``pad`` produces, as indices: padding ``arange(length)``
    by the border rule and cutting the geometry's window, so a strip can be
    padded on its own, without a padded copy of the whole image.

    >>> pad_index(3, 3, geometry='full', border='reflect').tolist()
    [1, 0, 0, 1, 2, 2, 1]
    >>> pad_index(3, 3, geometry='same', border='zero').tolist()
    [-1, 0, 1, 2, -1]
    """
    before, after = pad_widths((k, 1), geometry)[0]
    mode = NUMPY_PAD_MODES[border]
    extra = {"constant_values": -1} if mode == "constant" else {}
    wide = np.pad(np.arange(length), (k - 1, k - 1), mode=mode, **extra)
    return wide[k - 1 - before : len(wide) - (k - 1 - after)]


def gather(
    planes: np.ndarray, row_map: np.ndarray, column_map: np.ndarray, column_run: tuple[int, int] | None = None
) -> np.ndarray:
    """The padded strip that ``row_map`` x ``column_map`` describe (-1 reads 0).

    The longest run of consecutive indices is copied as one slice (the
    image itself, between the pads); only the few pad positions are gathered.
    ``column_run`` (from ``_run(column_map)``) saves finding it per strip.
    """
    # Every border rule steps by at most +1, so rows whose ends are len - 1
    # apart are consecutive: the strip lies inside the image, a plain slice.
    if row_map[0] >= 0 and row_map[-1] - row_map[0] == len(row_map) - 1:
        source = planes[row_map[0] : row_map[0] + len(row_map)]
    else:
        source = planes.take(np.maximum(row_map, 0), axis=0)
        source[row_map < 0] = 0
    strip = np.empty((len(row_map), len(column_map), planes.shape[2]), dtype=planes.dtype)
    start, stop = column_run if column_run is not None else _run(column_map)
    strip[:, start:stop] = source[:, column_map[start] : column_map[start] + stop - start]
    for edge in (slice(0, start), slice(stop, len(column_map))):
        indices = column_map[edge]
        if indices.size:
            strip[:, edge] = source.take(np.maximum(indices, 0), axis=1)
            strip[:, edge][:, indices < 0] = 0
    return strip


def _run(indices: np.ndarray) -> tuple[int, int]:
    """Start and stop of the longest run of consecutive, valid indices."""
    breaks = np.flatnonzero((np.diff(indices) != 1) | (indices[1:] < 0) | (indices[:-1] < 0)) + 1
    bounds = np.concatenate(([0], breaks, [len(indices)]))
    longest = int(np.argmax(np.diff(bounds)))
    start, stop = int(bounds[longest]), int(bounds[longest + 1])
    if indices[start] < 0:
        return 0, 0
    return start, stop


def filter_picture(picture, kernels: Sequence[Kernel], options: FilterOptions, *, maxval: int | None, value_range: str):
    """Convolve a Picture's planes, carry its alpha, and finish the values.

    Returns a new Picture whose data is integer (``maxval`` 255 or 65535) or
    float64 (``value_range='float'``).
    """
    from imgconv.images import Picture

    divisor = depth_divisor(picture.maxval, maxval, value_range)
    if divisor != 1:
        # Levels keep their meaning across depths: out = (conv / scale + offset) / divisor.
        options = replace(options, scale=options.scale * divisor, offset=options.offset / divisor)
    data = filter_planes(picture.data, kernels, options, maxval=maxval, value_range=value_range)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise InputError("the result overflows float64 (values beyond 1.8e308); scale the input or the kernel down")
    alpha = picture.alpha
    if alpha is not None:
        alpha = align_alpha(alpha, kernels, geometry=options.geometry, border=options.border)
        if value_range != "float" and maxval is not None:
            alpha = _rescale_alpha(alpha, picture.maxval, maxval)
        else:
            alpha = alpha.astype(np.float64)
    return Picture(data, alpha, picture.format, None if value_range == "float" else maxval.bit_length())


def depth_divisor(source_max: int | None, maxval: int | None, value_range: str) -> float:
    """What divides input levels to give output levels: 1/257 from 8 to 16
    bits, 257 from 16 to 8, and 1 for matrices, float results or one depth.

    >>> depth_divisor(65535, 255, 'clip'), depth_divisor(None, 255, 'clip'), depth_divisor(255, 255, 'abs')
    (257.0, 1.0, 1.0)
    """
    if source_max is None or maxval is None or value_range == "float" or source_max == maxval:
        return 1.0
    return source_max / maxval


def _rescale_alpha(alpha: np.ndarray, source_max: int | None, maxval: int) -> np.ndarray:
    """Alpha keeps its meaning (opacity) when the output depth changes."""
    if source_max is None or source_max == maxval:
        return alpha.astype(_dtype_for(maxval))
    scaled = np.floor(alpha.astype(np.float64) * (maxval / source_max) + 0.5)
    return scaled.astype(_dtype_for(maxval))
