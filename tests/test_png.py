"""imgconv's PNG codec (imgconv/png.py): its reader against Pillow's route on
many generated PNGs, its parallel pieces, what it leaves to Pillow, and the
writer's levels.

The PNGs are built here by a small independent encoder (any bit depth,
colour type, row filter, interlacing, chunk and IDAT split), so the reader is
tested on files no single library writes.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from imgconv import png, png_read, png_vips, reading
from imgconv.errors import InputError
from imgconv.picture import Picture


def _read_image(data: bytes, subject: str, *, color: str, max_pixels: int) -> Picture:
    """A still image's reading, as a file job gets it (from a stream within the byte limit)."""
    from imgconv.limits import Limit, input_byte_limit

    limit = Limit(input_byte_limit(max_pixels), subject=subject, error=InputError, hint="raise it with --max-pixels")
    frames = reading._open_image(io.BytesIO(data), limit, subject, color=color, max_pixels=max_pixels, frames="first")
    return next(iter(frames))


images = SimpleNamespace(
    DEFAULT_MAX_PIXELS=reading.DEFAULT_MAX_PIXELS,
    Picture=Picture,
    InputError=InputError,
    _read_image=_read_image,
    Path=Path,
)

needs_isal = pytest.mark.skipif(png.isal_zlib is None, reason="isal is not installed on this platform")

#: libvips (the ``vips`` extra) takes what numpy cannot: Paeth and Average rows, interlacing.
VIPS = png_vips.pyvips_module() is not None


def expect_taken(kind, filters_used, color, *, interlaced=False, transparency=False) -> bool:
    """Whether imgconv's reader should take a file (not leave it to Pillow)."""
    bits, color_type = kind
    if color == "gray" and (color_type in (2, 3, 6) or kind == (16, 4)):
        return False  # a colour source: Pillow's luma conversion
    if not interlaced and filters_used <= {NONE, SUB, UP}:
        return True
    return VIPS and bits >= 8 and color_type != 3 and not transparency


#: (bit depth, colour type) -> channels: every combination PNG allows.
KINDS = {
    (1, 0): 1, (2, 0): 1, (4, 0): 1, (8, 0): 1, (16, 0): 1,
    (8, 2): 3, (16, 2): 3,
    (1, 3): 1, (2, 3): 1, (4, 3): 1, (8, 3): 1,
    (8, 4): 2, (16, 4): 2,
    (8, 6): 4, (16, 6): 4,
}  # fmt: skip

NONE, SUB, UP, AVERAGE, PAETH = range(5)


# --------------------------------------------------------------------------
# an independent PNG encoder for the tests


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def packed_rows(samples: np.ndarray, bits: int) -> np.ndarray:
    """H x (W*C) samples -> H x stride bytes, big-endian, sub-byte samples packed high bits first."""
    if bits == 16:
        return samples.astype(">u2").view(np.uint8).reshape(samples.shape[0], -1)
    if bits == 8:
        return samples.astype(np.uint8)
    per_byte = 8 // bits
    height, count = samples.shape
    padded = np.zeros((height, -(-count // per_byte) * per_byte), dtype=np.uint8)
    padded[:, :count] = samples
    groups = padded.reshape(height, -1, per_byte).astype(np.uint16)
    shifts = np.arange(8 - bits, -1, -bits)
    return (groups << shifts).sum(axis=2).astype(np.uint8)


def filter_row(kind: int, row: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """PNG's five filters, written from the specification."""
    x = row.astype(np.int32)
    b = above.astype(np.int32)
    a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
    if kind == NONE:
        predictor = np.zeros_like(x)
    elif kind == SUB:
        predictor = a
    elif kind == UP:
        predictor = b
    elif kind == AVERAGE:
        predictor = (a + b) // 2
    else:
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        predictor = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return ((x - predictor) % 256).astype(np.uint8)


def filtered_stream(rows: np.ndarray, bpp: int, kinds) -> bytes:
    out = bytearray()
    above = np.zeros(rows.shape[1], np.uint8)
    for index, row in enumerate(rows):
        kind = kinds[index % len(kinds)]
        out.append(kind)
        out += filter_row(kind, row, above, bpp).tobytes()
        above = row
    return bytes(out)


#: Adam7's passes: (first column, first row, column step, row step).
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def make_png(
    samples: np.ndarray,
    bits: int,
    color_type: int,
    *,
    filters=(NONE,),
    interlace: bool = False,
    palette: bytes | None = None,
    transparency: bytes | None = None,
    before_idat: list[bytes] = (),
    after_idat: list[bytes] = (),
    idat_sizes: int | None = None,
    level: int = 6,
) -> bytes:
    """A PNG of ``samples`` (H x W x C integers): every chunk and choice explicit."""
    height, width, channels = samples.shape
    bpp = max(1, bits * channels // 8)

    def stream(image: np.ndarray) -> bytes:
        if image.shape[0] == 0 or image.shape[1] == 0:
            return b""
        rows = packed_rows(image.reshape(image.shape[0], -1), bits)
        return filtered_stream(rows, bpp, filters)

    if interlace:
        raw = b"".join(stream(samples[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7)
    else:
        raw = stream(samples)
    data = zlib.compress(raw, level)
    size = idat_sizes or len(data)
    idats = [chunk(b"IDAT", data[i : i + size]) for i in range(0, len(data), size)]
    header = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, int(interlace))
    parts = [png.SIGNATURE, chunk(b"IHDR", header), *before_idat]
    if palette is not None:
        parts.append(chunk(b"PLTE", palette))
    if transparency is not None:
        parts.append(chunk(b"tRNS", transparency))
    return b"".join([*parts, *idats, *after_idat, chunk(b"IEND", b"")])


def random_samples(bits: int, color_type: int, shape: tuple[int, int], rng, palette_size: int = 0) -> np.ndarray:
    channels = KINDS[(bits, color_type)]
    top = palette_size if color_type == 3 else 1 << bits
    return rng.integers(0, top, (*shape, channels))


# --------------------------------------------------------------------------
# the comparison


def pillow_route(data: bytes, color: str, monkeypatch, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> images.Picture:
    with monkeypatch.context() as patch:
        patch.setattr(png_read, "read_png", lambda *args, **kwargs: None)
        return images._read_image(data, "test.png", color=color, max_pixels=max_pixels)


def assert_same_picture(data: bytes, color: str, monkeypatch) -> bool:
    """The reading with imgconv's decoder equals Pillow's; returns whether the decoder took the file."""
    taken = png_read.read_png(data, color=color) is not None
    fast = images._read_image(data, "test.png", color=color, max_pixels=images.DEFAULT_MAX_PIXELS)
    slow = pillow_route(data, color, monkeypatch)
    assert (fast.format, fast.depth) == (slow.format, slow.depth)
    assert fast.data.dtype == slow.data.dtype and fast.data.shape == slow.data.shape
    assert np.array_equal(fast.data, slow.data), "planes differ"
    assert (fast.alpha is None) == (slow.alpha is None)
    if slow.alpha is not None:
        assert fast.alpha.dtype == slow.alpha.dtype and np.array_equal(fast.alpha, slow.alpha), "alpha differs"
    assert fast.metadata == slow.metadata, "metadata differs"
    return taken


FILTER_SETS = {
    "none": (NONE,),
    "sub": (SUB,),
    "up": (UP,),
    "mixed": (UP, SUB, SUB, NONE, UP, UP),
    "average": (AVERAGE,),
    "paeth": (PAETH,),
    "all five": (NONE, SUB, UP, AVERAGE, PAETH),
}


@needs_isal
@pytest.mark.parametrize("filters", list(FILTER_SETS))
@pytest.mark.parametrize("kind", list(KINDS), ids=[f"{b}bit-type{t}" for b, t in KINDS])
def test_every_kind_and_filter_reads_as_pillow_reads_it(kind, filters, monkeypatch):
    bits, color_type = kind
    rng = np.random.default_rng(bits * 10 + color_type)
    for shape in [(1, 1), (5, 7), (13, 29)]:  # odd widths exercise sub-byte packing and padding
        options = {}
        palette_size = 0
        if color_type == 3:
            palette_size = int(rng.integers(1, (1 << bits) + 1))
            options["palette"] = rng.integers(0, 256, palette_size * 3).astype(np.uint8).tobytes()
        samples = random_samples(bits, color_type, shape, rng, palette_size)
        data = make_png(samples, bits, color_type, filters=FILTER_SETS[filters], **options)
        for color in ("auto", "gray", "rgb"):
            taken = assert_same_picture(data, color, monkeypatch)
            used = {FILTER_SETS[filters][row % len(FILTER_SETS[filters])] for row in range(shape[0])}
            assert taken == expect_taken(kind, used, color)


@needs_isal
@pytest.mark.parametrize(
    "transparency",
    [b"", b"\x00", b"\xff\x00\xff", b"\x80\x00\x10", b"\xff\xff", bytes(range(0, 256, 16))],
    ids=["empty", "first-clear", "one-clear", "partial", "all-opaque", "sixteen"],
)
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_palette_transparency_reads_as_pillow_reads_it(bits, transparency, monkeypatch):
    rng = np.random.default_rng(bits)
    entries = 1 << bits
    transparency = transparency[:entries]
    palette = rng.integers(0, 256, entries * 3).astype(np.uint8).tobytes()
    samples = random_samples(bits, 3, (9, 11), rng, entries)
    data = make_png(samples, bits, 3, filters=(UP, SUB), palette=palette, transparency=transparency)
    for color in ("auto", "rgb"):
        assert assert_same_picture(data, color, monkeypatch)


@needs_isal
@pytest.mark.parametrize("kind", [(1, 0), (8, 0), (16, 0), (8, 2), (16, 2)])
def test_gray_and_rgb_transparency_is_ignored_as_before(kind, monkeypatch):
    bits, color_type = kind
    samples = random_samples(bits, color_type, (6, 6), np.random.default_rng(1))
    transparency = b"\x00\x01" if color_type == 0 else b"\x00\x01\x00\x02\x00\x03"
    for filters in ((UP,), (PAETH,)):
        data = make_png(samples, bits, color_type, filters=filters, transparency=transparency)
        expected = expect_taken(kind, set(filters), "auto", transparency=True)
        assert assert_same_picture(data, "auto", monkeypatch) == expected
    short = make_png(samples, bits, color_type, filters=(UP,), transparency=b"\x00")
    assert png_read.read_png(short) is None  # Pillow refuses a truncated tRNS: its error stays its own


@needs_isal
@pytest.mark.parametrize("kind", [(1, 0), (4, 3), (8, 2), (16, 0), (16, 6)])
def test_interlaced_files_read_as_pillow_reads_them(kind, monkeypatch):
    bits, color_type = kind
    rng = np.random.default_rng(7)
    options = {"palette": bytes(range(48))} if color_type == 3 else {}
    samples = random_samples(bits, color_type, (11, 10), rng, 16)
    data = make_png(samples, bits, color_type, filters=(SUB, UP, PAETH), interlace=True, **options)
    assert assert_same_picture(data, "auto", monkeypatch) == expect_taken(kind, {SUB}, "auto", interlaced=True)


PILLOW_MODES = ["1", "L", "LA", "RGB", "RGBA", "P", "I;16"]


@needs_isal
@pytest.mark.parametrize("mode", PILLOW_MODES)
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_files_pillow_writes_read_the_same(mode, level, monkeypatch):
    photo = Image.open(images.Path(__file__).parent.parent / "sample_images" / "coffee.png").crop((100, 80, 163, 121))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257)
    elif mode == "P":
        image = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=37)
        image.info["transparency"] = 5
    else:
        image = photo.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=level, **({"transparency": 5} if mode == "P" else {}))
    for color in ("auto", "gray", "rgb"):
        assert_same_picture(buffer.getvalue(), color, monkeypatch)


# --------------------------------------------------------------------------
# what is left to Pillow


def exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()


@needs_isal
@pytest.mark.parametrize(
    "extra",
    [
        chunk(b"eXIf", exif_with_orientation(6)),
        chunk(b"tEXt", b"Raw profile type exif\0\nexif\n      26\n" + b"00" * 26),
        chunk(b"tEXt", b'XML:com.adobe.xmp\0<x tiff:Orientation="3"/>'),
        chunk(b"iTXt", b'XML:com.adobe.xmp\0\0\0\0\0<x tiff:Orientation="8"/>'),
        chunk(b"acTL", struct.pack(">II", 1, 0)),
        chunk(b"ABCD", b"unknown critical chunk"),
        chunk(b"gAMA", b"\x00\x01"),  # too short: Pillow raises
    ],
    ids=["eXIf", "raw-profile", "xmp-text", "xmp-itxt", "apng", "critical", "short-gama"],
)
def test_chunks_that_may_change_the_reading_are_left_to_pillow(extra, monkeypatch):
    samples = random_samples(8, 2, (6, 4), np.random.default_rng(3))
    data = make_png(samples, 8, 2, filters=(UP,), before_idat=[extra])
    assert png_read.read_png(data) is None
    try:
        slow = pillow_route(data, "auto", monkeypatch)
    except images.InputError:
        return  # Pillow refuses it, and the reading still does
    fast = images._read_image(data, "test.png", color="auto", max_pixels=images.DEFAULT_MAX_PIXELS)
    assert np.array_equal(fast.data, slow.data)


@needs_isal
@pytest.mark.parametrize("profile", [bytes(16) + b"RGB " + bytes(108), b"not a real profile, just bytes"])
def test_an_icc_profile_comes_along_as_pillow_reads_it(profile, monkeypatch):
    """The fast route carries the iCCP profile exactly as Pillow's route reads it."""
    samples = random_samples(8, 2, (6, 4), np.random.default_rng(4))
    body = b"photo\0\0" + zlib.compress(profile)
    data = make_png(samples, 8, 2, filters=(UP,), before_idat=[chunk(b"iCCP", body)])
    decoded = png_read.read_png(data)
    assert decoded is not None and decoded.icc == profile
    assert assert_same_picture(data, "auto", monkeypatch)  # pixels and metadata equal Pillow's


@needs_isal
def test_a_broken_icc_profile_is_dropped_as_pillow_drops_it(monkeypatch):
    samples = random_samples(8, 2, (6, 4), np.random.default_rng(5))
    data = make_png(samples, 8, 2, filters=(UP,), before_idat=[chunk(b"iCCP", b"photo\0\0not zlib data")])
    decoded = png_read.read_png(data)
    assert decoded is not None and decoded.icc is None
    assert assert_same_picture(data, "auto", monkeypatch)


@needs_isal
def test_harmless_chunks_and_a_photo_profile_are_read():
    samples = random_samples(8, 6, (5, 5), np.random.default_rng(4))
    profile = b"sRGB\0\0" + zlib.compress(b"icc" * 100)
    extras = [
        chunk(b"gAMA", struct.pack(">I", 45455)),
        chunk(b"sRGB", b"\0"),
        chunk(b"pHYs", bytes(9)),
        chunk(b"iCCP", profile),
        chunk(b"tEXt", b"Software\0imgconv"),
        chunk(b"prVt", b"private"),
    ]
    data = make_png(samples, 8, 6, filters=(SUB,), before_idat=extras, after_idat=[chunk(b"tIME", bytes(7))])
    planes, alpha, depth, _ = png_read.read_png(data)
    assert np.array_equal(planes, samples[:, :, :3]) and np.array_equal(alpha, samples[:, :, 3]) and depth == 8


@needs_isal
def test_damaged_files_are_left_to_pillow_and_its_errors(monkeypatch):
    samples = random_samples(8, 0, (8, 8), np.random.default_rng(5))
    good = make_png(samples, 8, 0, filters=(UP,))
    assert png_read.read_png(good) is not None
    bad_header_crc = good[:29] + bytes([good[29] ^ 1]) + good[30:]
    truncated = good[:-20]
    extra_pixels = make_png(np.zeros((9, 8, 1), int), 8, 0)[:33] + good[33:]  # claims 9 rows, holds 8
    for data in (bad_header_crc, truncated, extra_pixels, good.replace(b"IEND", b"IENX")):
        assert png_read.read_png(data) is None
        with_decoder = outcome(lambda data=data: images._read_image(data, "test.png", color="auto", max_pixels=10**6))
        assert with_decoder == outcome(lambda data=data: pillow_route(data, "auto", monkeypatch, 10**6))


@needs_isal
def test_many_runs_of_alternating_filters_are_left_to_libvips_or_pillow(monkeypatch):
    samples = random_samples(8, 2, (12, 3), np.random.default_rng(6))
    data = make_png(samples, 8, 2, filters=(SUB, UP))
    assert png_read.read_png(data) is not None
    monkeypatch.setattr(png_read, "_MAX_RUNS", 4)  # 12 rows make 12 runs
    assert assert_same_picture(data, "auto", monkeypatch) == VIPS


def outcome(read) -> bytes | str:
    """The pixels a reading gives, or its error message."""
    try:
        return read().data.tobytes()
    except images.InputError as exc:
        return str(exc)


@needs_isal
@pytest.mark.parametrize("filters", [(UP,), (PAETH, AVERAGE)], ids=["numpy", "libvips"])
def test_damaged_pixel_data_gives_pillows_outcome(filters, monkeypatch):
    """Whichever decoder sees a damaged stream first, the user gets Pillow's result or error."""
    samples = random_samples(8, 2, (30, 40), np.random.default_rng(13))
    compressed = zlib.compress(filtered_stream(packed_rows(samples.reshape(30, -1), 8), 3, filters))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0))
    flipped = bytearray(compressed)
    flipped[len(flipped) // 2] ^= 0x10
    streams = {
        "flipped bit": bytes(flipped),
        "cut short": compressed[: len(compressed) * 2 // 3],
        "no checksum": compressed[:-4],
        "trailing bytes": compressed + b"junk",
    }
    files = {
        name: png.SIGNATURE + header + chunk(b"IDAT", stream) + chunk(b"IEND", b"") for name, stream in streams.items()
    }
    intact = png.SIGNATURE + header + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")
    crc_at = len(png.SIGNATURE + header) + 8 + len(compressed)
    files["bad IDAT checksum"] = intact[:crc_at] + bytes([intact[crc_at] ^ 1]) + intact[crc_at + 1 :]
    for name, data in files.items():
        ours = outcome(lambda data=data: images._read_image(data, "test.png", color="auto", max_pixels=10**6))
        assert ours == outcome(lambda data=data: pillow_route(data, "auto", monkeypatch, 10**6)), name
    assert isinstance(
        outcome(lambda: images._read_image(files["bad IDAT checksum"], "t.png", color="auto", max_pixels=10**6)), bytes
    )  # read, as before


@pytest.mark.skipif(not VIPS, reason="pyvips is not installed")
def test_libvips_does_not_call_into_python_while_it_decodes():
    """A signal handled inside pyvips' log callback has its exception swallowed
    by cffi (a batch worker told to stop carried on); libvips reports every
    finished thread pool, so only warnings may come through."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("pyvips")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        data = make_png(random_samples(8, 2, (40, 30), np.random.default_rng(15)), 8, 2, filters=(PAETH,))
        assert png_read.read_png(data) is not None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [message for message in records if message.startswith("VIPS:")]


def test_without_libvips_paeth_files_go_to_pillow(monkeypatch):
    monkeypatch.setattr(png_vips, "_PYVIPS", None)
    samples = random_samples(8, 6, (9, 9), np.random.default_rng(14))
    data = make_png(samples, 8, 6, filters=(PAETH,))
    assert png_read.read_png(data) is None
    assert not assert_same_picture(data, "auto", monkeypatch)


@needs_isal
def test_the_pixel_limit_leaves_the_refusal_to_the_usual_check():
    data = make_png(np.zeros((20, 30, 1), int), 8, 0)
    assert png_read.read_png(data, max_pixels=599) is None
    with pytest.raises(images.InputError, match="over the limit of 599"):
        images._read_image(data, "big.png", color="auto", max_pixels=599)


def test_without_isal_pillow_reads_everything(monkeypatch):
    monkeypatch.setattr(png_read, "isal_zlib", None)
    data = make_png(np.ones((4, 4, 3), int), 8, 2, filters=(UP,))
    assert png_read.read_png(data) is None
    assert images._read_image(data, "x.png", color="auto", max_pixels=100).data.shape == (4, 4, 3)


# --------------------------------------------------------------------------
# parallel pieces


@needs_isal
def test_writer_pieces_are_inflated_independently_and_exactly(monkeypatch):
    monkeypatch.setattr(png, "PIECE", 4000)
    monkeypatch.setattr(png_read, "_PARALLEL_MIN", 100)
    calls = []
    original = png_read._inflate_pieces
    monkeypatch.setattr(png_read, "_inflate_pieces", lambda *a: calls.append(original(*a)) or calls[-1])
    pixels = np.random.default_rng(8).integers(0, 256, (70, 90, 3)).astype(np.uint8)
    pixels[30:] = pixels[:40]  # repeats reach back beyond a piece: each piece must not need them
    buffer = io.BytesIO()
    png.write_png(pixels, buffer)
    assert buffer.getvalue().count(b"IDAT") > 4
    planes, _alpha, _depth, _ = png_read.read_png(buffer.getvalue())
    assert calls and calls[0] is not None, "the parallel route took the writer's pieces"
    assert np.array_equal(planes, pixels)


@needs_isal
def test_a_piece_is_independent_only_when_it_ends_on_a_block_boundary():
    """The probe behind the parallel route, on pieces cut a few bytes off the
    writer's boundaries: each of them inflates without error on its own, so
    only the boundary check can refuse them."""
    raw = np.random.default_rng(12).integers(0, 30, 200_000).astype(np.uint8).tobytes()
    pieces = [raw[i : i + 50_000] for i in range(0, len(raw), 50_000)]
    bodies = []
    for _index, piece in enumerate(pieces):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        bodies.append(compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH))
    whole = png_read._inflate_piece(bodies[0], len(raw), last=False)
    assert whole == pieces[0]
    for cut in (1, 2, 3, 4, 5, 9, 50):  # short of the flush marker, or into the middle of a block
        assert png_read._inflate_piece(bodies[0][:-cut], len(raw), last=False) is None, cut
    for extra in (1, 2, 3, 7, 30):  # past the boundary, into the next piece's first block
        assert png_read._inflate_piece(bodies[0] + bodies[1][:extra], len(raw), last=False) is None, extra


def dependent_pieces(raw: bytes, cuts: list[int], flush: int) -> bytes:
    """One compressor over ``raw`` with a flush at each cut: the pieces may refer back to earlier ones."""
    compressor = zlib.compressobj(6)
    pieces, start = [], 0
    for cut in [*cuts, len(raw)]:
        body = compressor.compress(raw[start:cut])
        body += compressor.flush(zlib.Z_FINISH if cut == len(raw) else flush)
        pieces.append(body)
        start = cut
    return pieces


@needs_isal
@pytest.mark.parametrize("flush", [zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_NO_FLUSH])
def test_pieces_that_depend_on_each_other_are_inflated_in_order(flush, monkeypatch):
    """IDAT chunks cut anywhere (mid-block, or at flushes that keep the history)
    must never be taken as independent pieces: the parallel route must either
    prove a cut is a clean boundary or give way to the serial one."""
    monkeypatch.setattr(png_read, "_PARALLEL_MIN", 1)
    rng = np.random.default_rng(9)
    tile = rng.integers(0, 256, (8, 40, 3)).astype(np.uint8)
    pixels = np.tile(tile, (12, 1, 1))  # rows repeat: matches reach across every cut
    raw = filtered_stream(pixels.reshape(96, -1), 3, (UP, NONE, SUB))
    for trial in range(40):
        cuts = sorted(rng.choice(np.arange(1, len(raw)), size=int(rng.integers(1, 6)), replace=False).tolist())
        pieces = dependent_pieces(raw, cuts, flush)
        header = struct.pack(">IIBBBBB", 40, 96, 8, 2, 0, 0, 0)
        data = b"".join(
            [png.SIGNATURE, chunk(b"IHDR", header), *(chunk(b"IDAT", p) for p in pieces if p), chunk(b"IEND", b"")]
        )
        planes, _, _, _ = png_read.read_png(data)
        assert np.array_equal(planes, pixels), f"trial {trial}, cuts {cuts}"


@needs_isal
def test_random_idat_splits_never_change_the_pixels(monkeypatch):
    monkeypatch.setattr(png_read, "_PARALLEL_MIN", 1)
    rng = np.random.default_rng(10)
    samples = rng.integers(0, 6, (40, 50, 4))  # few values: long matches, many blocks
    for size in [1, 2, 3, 5, 17, 64, 333, 1000]:
        data = make_png(samples, 8, 6, filters=(UP, SUB, NONE), idat_sizes=size, level=int(rng.integers(1, 10)))
        planes, alpha, _, _ = png_read.read_png(data)
        assert np.array_equal(planes, samples[:, :, :3]) and np.array_equal(alpha, samples[:, :, 3])


# --------------------------------------------------------------------------
# the writer


@pytest.mark.parametrize("level", range(10))
def test_every_level_writes_a_valid_png(level):
    pixels = np.random.default_rng(level).integers(0, 256, (33, 41, 4)).astype(np.uint8)
    buffer = io.BytesIO()
    png.write_png(pixels, buffer, level=level)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), pixels)


def test_level_zero_stores_and_higher_levels_deflate():
    gradient = np.tile(np.arange(200, dtype=np.uint8), (120, 1))[:, :, None]
    sizes = {}
    for level in (0, 1, 9):
        buffer = io.BytesIO()
        png.write_png(gradient, buffer, level=level)
        sizes[level] = len(buffer.getvalue())
    assert sizes[0] > 120 * 201 > 10 * sizes[1] and sizes[9] <= sizes[1]


@needs_isal
def test_output_bytes_do_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(png, "PIECE", 5000)
    pixels = np.random.default_rng(11).integers(0, 40, (90, 120, 3)).astype(np.uint8)
    outputs = set()
    for threads in ("1", "2", "7"):
        monkeypatch.setenv("IMGCONV_THREADS", threads)
        buffer = io.BytesIO()
        png.write_png(pixels, buffer)
        outputs.add(buffer.getvalue())
    assert len(outputs) == 1


def test_without_isal_zlib_writes_every_level(monkeypatch):
    monkeypatch.setattr(png, "isal_zlib", None)
    pixels = np.random.default_rng(12).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    for level in (0, 1, 3, 9):
        buffer = io.BytesIO()
        png.write_png(pixels, buffer, level=level)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), pixels)


@needs_isal
@pytest.mark.parametrize("writer", ["imgconv", "Pillow"])
def test_png_to_png_through_the_cli_equals_pillows_reading(writer, run, samples, tmp_path, monkeypatch):
    """The user's view: the same output bytes whether imgconv or Pillow decoded the input."""
    source = tmp_path / "in.png"
    photo = Image.open(samples / "coffee.png")
    if writer == "imgconv":  # the route a chain of runs takes: ISA-L and numpy
        with open(source, "wb") as handle:
            png.write_png(np.asarray(photo), handle)
    else:  # Paeth rows: libvips when installed
        photo.save(source)
    assert (png_read.read_png(source.read_bytes()) is not None) == (writer == "imgconv" or VIPS)
    assert run("apply", "-k", "sharpen", source, tmp_path / "fast.png").exit_code == 0
    monkeypatch.setattr(png_read, "read_png", lambda *args, **kwargs: None)
    assert run("apply", "-k", "sharpen", source, tmp_path / "pillow.png").exit_code == 0
    assert (tmp_path / "fast.png").read_bytes() == (tmp_path / "pillow.png").read_bytes()


@pytest.mark.parametrize("level", ["0", "3", "9"])
def test_png_level_through_the_cli(run, small_rgb, tmp_path, level):
    target = tmp_path / f"l{level}.png"
    assert run("apply", "-k", "identity", "--png-level", level, small_rgb, target).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(target)), np.asarray(Image.open(small_rgb)))


def test_the_server_parent_never_decodes_through_libvips():
    """libvips starts threads once it decodes; the server's parent forks every call."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from imgconv.server.warm import warm_up\n"
        "failures = warm_up()\n"
        "from imgconv import png_vips\n"
        "print(failures, png_vips.ENABLED, 'pyvips' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] False False"
