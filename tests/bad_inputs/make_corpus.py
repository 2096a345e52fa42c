"""Build the corpus of bad (and odd but valid) inputs that tests/test_bad_inputs.py runs.

The files are generated rather than committed: some would be large (a
1001x1001 kernel is 2 MB of text), and building them from a few lines each
keeps every defect readable here, next to the bytes it produces.  The output
is deterministic (seeded noise, no timestamps).

    python tests/bad_inputs/make_corpus.py DIR     # to look at the files
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def noise(height: int, width: int, channels: int = 1, *, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, top, shape, dtype=dtype, endpoint=True)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(offset, kind, payload) of every chunk after the signature."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((offset, kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 8-bit gray pixels, with a
    few bytes of pixel data: what a decompression bomb looks like to a reader
    that checks sizes before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :]


def images(folder: Path) -> None:
    gray = Image.fromarray(noise(48, 64))
    png = encode(gray, "PNG")
    jpeg = encode(Image.fromarray(noise(48, 64, 3, seed=1)), "JPEG", quality=90)
    (folder / "good.png").write_bytes(png)
    (folder / "good-rgba.png").write_bytes(encode(Image.fromarray(noise(48, 64, 4, seed=2)), "PNG"))
    (folder / "small.png").write_bytes(encode(Image.fromarray(noise(4, 4, seed=3)), "PNG"))

    # Unreadable as images.
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(png[: len(png) * 6 // 10])
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "text.png").write_text("this is a text file, not a picture\n")
    (folder / "signature-only.png").write_bytes(PNG_SIGNATURE)
    (folder / "random.png").write_bytes(PNG_SIGNATURE + np.random.default_rng(4).bytes(300))
    ihdr_offset = png_chunks(png)[0][0]
    (folder / "bad-crc.png").write_bytes(flip_byte(png, ihdr_offset + 8 + 13))  # the IHDR CRC
    (folder / "zero-width.png").write_bytes(png_header_only(0, 5))
    # A flipped byte inside the compressed pixels, with the chunk CRC made
    # right again, so only zlib's own checksum can catch it.
    idat_offset, _, idat = next(c for c in png_chunks(png) if c[1] == b"IDAT")
    damaged = flip_byte(idat, len(idat) // 2)
    (folder / "damaged-pixels.png").write_bytes(
        png[:idat_offset] + png_chunk(b"IDAT", damaged) + png[idat_offset + 12 + len(idat) :]
    )

    # Decompression bombs: tiny files declaring huge images.
    (folder / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    bmp = bytearray(encode(Image.new("L", (1, 1)), "BMP"))
    bmp[18:26] = struct.pack("<ii", 20_000, 20_000)
    (folder / "bomb.bmp").write_bytes(bytes(bmp))
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"
    header = header.ljust(117) + "\n"
    (folder / "bomb.npy").write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(64)
    )

    # Bad matrices.
    (folder / "bad-header.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': zz}  \n")
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, None]], dtype=object), allow_pickle=True)
    (folder / "objects.npy").write_bytes(buffer.getvalue())
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 2), dtype=complex))
    (folder / "complex.npy").write_bytes(buffer.getvalue())
    for channels in (2, 5):  # plain planes, more than gray or RGB
        np.save(folder / f"planes{channels}.npy", np.zeros((4, 3, channels), np.uint8))
    (folder / "ragged.csv").write_text("1,2,3\n4,5\n")
    (folder / "nan.csv").write_text("1,2\nnan,4\n")
    (folder / "words.csv").write_text("1,2\n3,four\n")
    (folder / "underscore.csv").write_text("1_000,2\n3,4\n")  # Python's float() takes it; no matrix format writes it
    (folder / "other-digits.csv").write_text("1,2\n3,\u0661\n")  # an Arabic-Indic one
    (folder / "latin1.txt").write_bytes("1 2\n3 \xb5\n".encode("latin-1"))

    (folder / "folder.png").mkdir()

    # Odd but valid: each is read as the README says.
    frames = [Image.fromarray(noise(6, 8, seed=s)) for s in (5, 6)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    (folder / "animated.gif").write_bytes(buffer.getvalue())
    palette = Image.fromarray(noise(6, 8, seed=7) // 64).convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    (folder / "palette-alpha.png").write_bytes(encode(palette, "PNG", transparency=0))
    (folder / "cmyk.jpg").write_bytes(encode(Image.fromarray(noise(6, 8, 4, seed=8), "CMYK"), "JPEG"))
    (folder / "one-bit.png").write_bytes(encode(Image.fromarray(noise(6, 8, seed=9) > 127), "PNG"))
    (folder / "la.png").write_bytes(encode(Image.fromarray(noise(6, 8, 2, seed=10), "LA"), "PNG"))
    (folder / "gray16.png").write_bytes(encode(Image.fromarray(noise(6, 8, seed=11, dtype=np.uint16)), "PNG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    (folder / "exif-rotated.jpg").write_bytes(encode(Image.fromarray(noise(6, 8, seed=12)), "JPEG", exif=exif))
    # Pillow checks the CRC of the header chunks, not of the pixel data
    # (zlib's checksum covers that): this file decodes to correct pixels.
    (folder / "idat-crc.png").write_bytes(flip_byte(png, idat_offset + 8 + len(idat)))


def laughs(levels: int = 9) -> str:
    """A YAML "billion laughs": each level repeats the one before nine times."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for previous, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append(f"kernels: [{{name: x, values: *{names[levels - 1]}}}]")
    return "\n".join(lines) + "\n"


def npy_header_only(shape: tuple[int, ...]) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(64)


def hostile(folder: Path) -> None:
    """Issue 11: endless, huge and sparse inputs, bombs, and inputs that would make huge messages."""
    if os.path.exists("/dev/zero"):
        for suffix in (".png", ".npy", ".csv"):
            (folder / f"zero{suffix}").symlink_to("/dev/zero")
    for name in ("sparse.png", "sparse-kernel.txt"):
        with open(folder / name, "wb") as stream:
            stream.truncate(5 * 10**9)  # 5 GB that take no disk space
    (folder / "channels.npy").write_bytes(npy_header_only((10, 10, 1_000_000_000)))
    (folder / "long-token.csv").write_text("1,2\n3," + "x" * 1_000_000 + "\n")
    (folder / "laughs.yaml").write_text(laughs())
    (folder / "deep.yaml").write_text("values: " + "[" * 40 + "1" + "]" * 40 + "\n")
    (folder / "br[ack]et.png").write_bytes(encode(Image.fromarray(noise(4, 4, seed=13)), "PNG"))


def kernels(folder: Path) -> None:
    side = 1001
    (folder / "big-kernel.txt").write_text(("0 " * (side - 1) + "1\n") * side)
    (folder / "nan-kernel.yaml").write_text("values: [[1, .nan], [1, 1]]\n")


REGISTRIES = {
    "invalid.yaml": "kernels:\n  - name: a\n    values: [[1, 2]\n  - name: b\n",
    "python-tag.yaml": "kernels:\n  - name: evil\n    values: !!python/object/apply:os.system ['echo owned']\n",
    "duplicate.yaml": "kernels:\n  - name: twin\n    values: [[1]]\n  - name: twin\n    values: [[2]]\n",
    "missing-values.yaml": "kernels:\n  - name: ok\n    values: [[1]]\n  - name: empty\n    description: no values\n",
    "missing-name.yaml": "kernels:\n  - values: [[1, 2, 1]]\n",
    "text-value.yaml": "kernels:\n  - name: wordy\n    values: [[1, two, 1]]\n",
    "list-scale.yaml": "kernels:\n  - name: scaled\n    values: [[1, 2, 1]]\n    scale: [4]\n",
    "unknown-field.yaml": "kernels:\n  - name: typo\n    valeus: [[1]]\n",
    "not-a-list.yaml": "kernels: 5\n",
    "duplicate-key.yaml": "kernels:\n  - name: a\n    values: [[1]]\n    values: [[2]]\n",
    "two-kernels-keys.yaml": "kernels:\n  - name: a\n    values: [[1]]\nkernels:\n  - name: b\n    values: [[2]]\n",
    "bare-list.yaml": "- name: a\n  values: [[1]]\n",
    "top-level-typo.yaml": "kernels: []\nkernel: []\n",
    "quoted-values.yaml": "kernels:\n  - name: q\n    values: [['1', '2']]\n",
    "quoted-scale.yaml": "kernels:\n  - name: q\n    values: [[1, 2]]\n    scale: '3'\n",
}


def registries(folder: Path) -> None:
    for name, text in REGISTRIES.items():
        (folder / name).write_text(text)


def build(folder: Path) -> Path:
    """Write every corpus file into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    images(folder)
    kernels(folder)
    registries(folder)
    hostile(folder)
    (folder / "blocker").write_text("a regular file where an output folder would go\n")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_corpus.py DIR")
    print(build(Path(sys.argv[1])))
