"""The corpus of bad inputs: every one a clean error, with nothing lost.

Each case of CASES runs through the CLI and must give its exit code, a
message naming the file or option and the cause, no traceback, nothing on
stdout, no new file (not even a ``.part`` temporary) in the output folder,
and the corpus files unchanged.  The files come from bad_inputs/make_corpus.py.
ACCEPTED holds the odd inputs the README says are read, with what they give.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.make_corpus import build
from conftest import SAMPLES, pixels
from PIL import Image

from imgconv import limits, output


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(params=["unnamed", "named"])
def temp_scheme(request, monkeypatch) -> str:
    """Both kinds of temporary file: unnamed (O_TMPFILE, Linux) and the named, locked fallback."""
    if request.param == "unnamed" and not output.USE_TMPFILE:
        pytest.skip("this system has no unnamed temporary files")
    monkeypatch.setattr(output, "USE_TMPFILE", request.param == "unnamed")
    return request.param


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every path below ``folder`` (hidden ones too) with its content hash.

    Links are recorded as links (one leads to /dev/zero), and files larger
    than 64 MiB (the sparse ones) by size and time, not read.
    """

    def state(path: Path) -> str:
        if path.is_symlink():
            return f"link to {os.readlink(path)}"
        if path.is_dir():
            return "dir"
        info = path.stat()
        if info.st_size > 1 << 26:
            return f"{info.st_size} bytes, {info.st_mtime_ns}"
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {str(p.relative_to(folder)): state(p) for p in folder.rglob("*")}


@dataclass(frozen=True)
class Case:
    """``command`` is a shell-quoted line; {c} is the corpus folder, {o} the output folder."""

    id: str
    command: str
    code: int
    needles: tuple[str, ...]  # substrings of the message: the file or option, and the cause
    env: dict[str, str] = field(default_factory=dict)


def fill(text: str, corpus: Path, out: Path) -> str:
    return text.replace("{c}", str(corpus)).replace("{o}", str(out))


APPLY = "apply -k sharpen"
IMAGES = [
    Case("zero-byte file", f"{APPLY} {{c}}/empty.png {{o}}/x.png", 1, ("{c}/empty.png", "the file is empty")),
    Case("truncated PNG", f"{APPLY} {{c}}/truncated.png {{o}}/x.png", 1, ("{c}/truncated.png", "truncated")),
    Case("truncated JPEG", f"{APPLY} {{c}}/truncated.jpg {{o}}/x.png", 1, ("{c}/truncated.jpg", "truncated")),
    Case("text named .png", f"{APPLY} {{c}}/text.png {{o}}/x.png", 1, ("{c}/text.png", "not an image file")),
    Case(
        "PNG signature only",
        f"{APPLY} {{c}}/signature-only.png {{o}}/x.png",
        1,
        ("{c}/signature-only.png", "not an image file"),
    ),
    Case(
        "random bytes after a PNG signature",
        f"{APPLY} {{c}}/random.png {{o}}/x.png",
        1,
        ("{c}/random.png", "not an image file"),
    ),
    Case(
        "PNG with a bad header CRC",
        f"{APPLY} {{c}}/bad-crc.png {{o}}/x.png",
        1,
        ("{c}/bad-crc.png", "not an image file"),
    ),
    Case(
        "PNG with damaged pixel data",
        f"{APPLY} {{c}}/damaged-pixels.png {{o}}/x.png",
        1,
        ("{c}/damaged-pixels.png", "cannot decode the image"),
    ),
    Case(
        "PNG zero pixels wide", f"{APPLY} {{c}}/zero-width.png {{o}}/x.png", 1, ("{c}/zero-width.png", "not an image")
    ),
    Case(
        "PNG decompression bomb",
        f"{APPLY} {{c}}/bomb.png {{o}}/x.png",
        1,
        ("{c}/bomb.png", "100000x100000 is 10,000,000,000 pixels, over the limit of 100,000,000", "--max-pixels"),
    ),
    Case(
        "PNG bomb with the limit raised still fails cleanly",
        f"{APPLY} --max-pixels 20000000000 {{c}}/bomb.png {{o}}/x.png",
        1,
        ("{c}/bomb.png", "cannot decode the image"),
    ),
    Case(
        "BMP decompression bomb",
        f"{APPLY} {{c}}/bomb.bmp {{o}}/x.png",
        1,
        ("{c}/bomb.bmp", "20000x20000", "over the limit", "--max-pixels"),
    ),
    Case(
        "npy declaring 100000x100000 values",
        f"{APPLY} {{c}}/bomb.npy {{o}}/x.npy",
        1,
        (
            "{c}/bomb.npy",
            "declares 100000x100000 = 10,000,000,000 values, over the limit of 100,000,000",
            "--max-pixels",
        ),
    ),
    Case(
        "over a lowered --max-pixels",
        f"{APPLY} --max-pixels 1000 {{c}}/good.png {{o}}/x.png",
        1,
        ("{c}/good.png", "64x48 is 3,072 pixels, over the limit of 1,000", "--max-pixels"),
    ),
    Case("directory as input", f"{APPLY} {{c}}/folder.png {{o}}/x.png", 1, ("{c}/folder.png", "is a directory")),
    Case("missing file", f"{APPLY} {{c}}/no-such.png {{o}}/x.png", 1, ("{c}/no-such.png", "no such file")),
    # A message stays one line whatever a name holds.
    Case("newline in a name", f"{APPLY} '{{c}}/no\nsuch.png' {{o}}/x.png", 1, ("{c}/no\\nsuch.png: no such file",)),
    Case("glob matching nothing", f"{APPLY} '{{c}}/*.nothing' -o {{o}}/", 2, ("{c}/*.nothing", "no file matches")),
    Case(
        "npy with a malformed header",
        f"{APPLY} {{c}}/bad-header.npy {{o}}/x.npy",
        1,
        ("{c}/bad-header.npy", "not a valid .npy matrix"),
    ),
    Case(
        "npy of Python objects (pickles refused)",
        f"{APPLY} {{c}}/objects.npy {{o}}/x.npy",
        1,
        ("{c}/objects.npy", "not a valid .npy matrix", "allow_pickle=False"),
    ),
    Case("npy of complex numbers", f"{APPLY} {{c}}/complex.npy {{o}}/x.npy", 1, ("{c}/complex.npy", "complex128")),
    Case(
        "CSV with ragged rows",
        f"{APPLY} {{c}}/ragged.csv {{o}}/x.csv",
        1,
        ("{c}/ragged.csv", "line 2: 2 values, the first row has 3"),
    ),
    Case("CSV holding NaN", f"{APPLY} {{c}}/nan.csv {{o}}/x.csv", 1, ("{c}/nan.csv", "NaN")),
    Case(
        "CSV holding a word",
        f"{APPLY} {{c}}/words.csv {{o}}/x.csv",
        1,
        ("{c}/words.csv", "line 2: 'four' is not a number"),
    ),
    Case(
        "CSV with 1_000",
        f"{APPLY} {{c}}/underscore.csv {{o}}/x.csv",
        1,
        ("{c}/underscore.csv", "'1_000' is not a number"),
    ),
    Case(
        "CSV with other digits", f"{APPLY} {{c}}/other-digits.csv {{o}}/x.csv", 1, ("{c}/other-digits.csv", "line 2:")
    ),
    Case("text matrix not in UTF-8", f"{APPLY} {{c}}/latin1.txt {{o}}/x.txt", 1, ("{c}/latin1.txt", "not UTF-8")),
]

IMAGE_ARGS = "{c}/good.png {o}/x.png"
KERNELS = [
    Case("NaN value", f"apply -k 'nan,1;1,1' {IMAGE_ARGS}", 2, ("kernel 'nan,1;1,1'", "non-finite value 'nan'")),
    Case("infinite value", f"apply -k '1,-inf' {IMAGE_ARGS}", 2, ("kernel '1,-inf'", "non-finite value '-inf'")),
    Case("text in the values", f"apply -k 'a,b;c,d' {IMAGE_ARGS}", 2, ("kernel 'a,b;c,d'", "'a' is not a number")),
    Case("ragged rows", f"apply -k '1,2;3' {IMAGE_ARGS}", 2, ("kernel '1,2;3'", "row 2 has 1 values, row 1 has 2")),
    Case("empty spec", f"apply -k '' {IMAGE_ARGS}", 2, ("kernel ''", "the spec is empty")),
    Case("no values", f"apply -k ';' {IMAGE_ARGS}", 2, ("kernel ';'", "no values")),
    Case("zero side", f"apply -k '0x3:' {IMAGE_ARGS}", 2, ("kernel '0x3:'", "a kernel side cannot be 0")),
    Case(
        "too few values for the shape",
        f"apply -k '3x3:1,2' {IMAGE_ARGS}",
        2,
        ("kernel '3x3:1,2'", "needs 9 values, got 2"),
    ),
    Case("division by zero", f"apply -k '1/0,1' {IMAGE_ARGS}", 2, ("kernel '1/0,1'", "division by zero")),
    Case(
        "value past float's range",
        f"apply -k '1e400,1;1,1' {IMAGE_ARGS}",
        2,
        ("kernel '1e400,1;1,1'", "'1e400' is out of float64's range"),
    ),
    Case(
        "value below float's range",
        f"apply -k '1e-400' {IMAGE_ARGS}",
        2,
        ("kernel '1e-400'", "'1e-400' is out of float64's range"),
    ),
    Case(
        "value with a ten-million-digit exponent",
        f"apply -k '1,1e-9999999' {IMAGE_ARGS}",
        2,
        ("kernel '1,1e-9999999'", "out of range"),
    ),
    Case(
        "1001x1001 from a file",
        f"apply -k @{{c}}/big-kernel.txt {IMAGE_ARGS}",
        2,
        ("kernel file {c}/big-kernel.txt", "1001x1001 is larger than the limit of 256x256", "IMGCONV_MAX_KERNEL"),
    ),
    Case("1001x1001 box", f"apply -k box:1001 {IMAGE_ARGS}", 2, ("kernel 'box:1001'", "larger than the limit")),
    Case(
        "Gaussian above the limit",
        f"apply -k gaussian:sigma=200 {IMAGE_ARGS}",
        2,
        ("kernel 'gaussian:sigma=200'", "1201x1201 is larger than the limit"),
    ),
    Case(
        "a raised limit is still a limit",
        f"apply -k box:300 {IMAGE_ARGS}",
        2,
        ("kernel 'box:300'", "limit of 299x299"),
        env={"IMGCONV_MAX_KERNEL": "299"},
    ),
    Case(
        "Gaussian with a huge sigma",
        f"apply -k gaussian:sigma=1e308 {IMAGE_ARGS}",
        2,
        ("kernel 'gaussian:sigma=1e308'", "larger than the limit"),
    ),
    Case(
        "NaN in a kernel file",
        f"apply -k @{{c}}/nan-kernel.yaml {IMAGE_ARGS}",
        2,
        ("kernel file {c}/nan-kernel.yaml, line 1", "non-finite value nan"),
    ),
    Case(
        "missing kernel file",
        f"apply -k @{{c}}/no-such.yaml {IMAGE_ARGS}",
        2,
        ("kernel file {c}/no-such.yaml", "no such file"),
    ),
    Case(
        "kernel file path with a NUL byte",
        "kernels show '@bad\0name.txt'",
        2,
        ("kernel file bad", "embedded null byte"),
    ),
    Case("unknown name", f"apply -k sharpn {IMAGE_ARGS}", 2, ("unknown kernel 'sharpn'", "did you mean 'sharpen'")),
    Case(
        "kernel larger than the image in valid geometry",
        "apply -k box:5 --geometry valid {c}/small.png {o}/x.png",
        1,
        ("{c}/small.png", "smaller than kernel 'box:5'", "--geometry same or full"),
    ),
]

REGISTRY = "apply -k sharpen --registry {c}/%s " + IMAGE_ARGS
REGISTRIES = [
    Case("invalid YAML", REGISTRY % "invalid.yaml", 2, ("{c}/invalid.yaml, line 4", "did not find expected")),
    Case(
        "Python object tag",
        REGISTRY % "python-tag.yaml",
        2,
        ("{c}/python-tag.yaml, line 3", "python/object/apply", "tags are not allowed"),
    ),
    Case("duplicate names", REGISTRY % "duplicate.yaml", 2, ("{c}/duplicate.yaml, line 4", "'twin' is defined twice")),
    Case(
        "missing values",
        REGISTRY % "missing-values.yaml",
        2,
        ("{c}/missing-values.yaml, line 4", "kernel 'empty'", "'values' is missing"),
    ),
    Case("missing name", REGISTRY % "missing-name.yaml", 2, ("{c}/missing-name.yaml, line 2", "'name' is missing")),
    Case(
        "text where a number goes",
        REGISTRY % "text-value.yaml",
        2,
        ("{c}/text-value.yaml, line 2", "'two' is not a number"),
    ),
    Case(
        "a list for the scale",
        REGISTRY % "list-scale.yaml",
        2,
        ("{c}/list-scale.yaml, line 2", "'scale' must be a number, got list"),
    ),
    Case(
        "unknown field",
        REGISTRY % "unknown-field.yaml",
        2,
        ("{c}/unknown-field.yaml, line 2", "unknown field(s) valeus"),
    ),
    Case("kernels not a list", REGISTRY % "not-a-list.yaml", 2, ("{c}/not-a-list.yaml", "expected a list of kernels")),
    Case(
        "registry path that does not exist", REGISTRY % "no-such.yaml", 2, ("registry {c}/no-such.yaml", "no such file")
    ),
    Case("registry path that is a folder", REGISTRY % "folder.png", 2, ("'--registry'", "is a directory")),
    Case(
        "bad registry from IMGCONV_KERNELS",
        f"apply -k sharpen {IMAGE_ARGS}",
        2,
        ("{c}/duplicate.yaml, line 4", "defined twice"),
        env={"IMGCONV_KERNELS": "{c}/duplicate.yaml"},
    ),
]

LONG_NAME = "0" * 300  # more than the 255 bytes a file name may have

OUTPUTS = [
    Case("a file name too long", f"{APPLY} {{c}}/good.png {{o}}/{LONG_NAME}.png", 1, ("File name too long",)),
    Case(
        "a folder name too long",
        f"{APPLY} {{c}}/good.png {{o}}/{LONG_NAME}/x.png",
        1,
        (f"{{o}}/{LONG_NAME}/x.png: cannot create folder", "File name too long"),
    ),
    Case(
        "folder under a regular file",
        f"{APPLY} {{c}}/good.png {{c}}/blocker/x.png",
        1,
        ("{c}/blocker/x.png", "cannot create folder {c}/blocker"),
    ),
    Case(
        "unknown extension", f"{APPLY} {{c}}/good.png {{o}}/x.xyz", 2, ("{o}/x.xyz", "unknown output extension '.xyz'")
    ),
    Case("no extension", f"{APPLY} {{c}}/good.png {{o}}/x", 2, ("{o}/x", "unknown output extension '(none)'")),
    # An empty path is no file, not the current folder.
    Case("empty input path", f"{APPLY} '' {{o}}/x.png", 2, ("'': an empty path names no file",)),
    Case("empty output path", f"{APPLY} {{c}}/good.png ''", 2, ("'': an empty path names no file",)),
    Case("empty --output", f"{APPLY} {{c}}/good.png -o ''", 2, ("'': an empty path names no file",)),
    Case("empty --registry", f"{APPLY} --registry '' {IMAGE_ARGS}", 2, ("registry '': an empty path names no file",)),
    Case("empty kernel file", f"apply -k @ {IMAGE_ARGS}", 2, ("kernel '@'", "takes a file name")),
    Case("empty features input", "features '' -o {o}/x.png -k edge1", 2, ("'': an empty path names no file",)),
    # Plain planes go only where that many channels fit.
    Case("2 planes as PPM", f"{APPLY} {{c}}/planes2.npy {{o}}/x.ppm", 2, ("{o}/x.ppm", "this result has 2 channels")),
    Case("2 planes as JPEG", f"{APPLY} {{c}}/planes2.npy {{o}}/x.jpg", 2, ("{o}/x.jpg", "this result has 2 channels")),
    Case("5 planes as PNG", f"{APPLY} {{c}}/planes5.npy {{o}}/x.png", 2, ("{o}/x.png", "this result has 5 channels")),
    Case("5 planes as GIF", f"{APPLY} {{c}}/planes5.npy {{o}}/x.gif", 2, ("{o}/x.gif", "write .tif or .npy")),
    Case("unknown --format", f"{APPLY} --format jxl {{c}}/good.png -", 2, ("--format", "unknown format 'jxl'")),
    Case(
        "output equal to input",
        f"{APPLY} {{c}}/good.png {{c}}/good.png",
        2,
        ("{c}/good.png", "refusing to overwrite it", "--in-place"),
    ),
    Case(
        "output equal to input, spelt differently",
        f"{APPLY} {{c}}/good.png {{c}}/./good.png",
        2,
        ("good.png", "refusing to overwrite it"),
    ),
    Case(
        "unknown template field",
        f"{APPLY} {{c}}/good.png -o '{{o}}/{{nope}}.png'",
        2,
        ("--output", "unknown template field '{nope}'"),
    ),
    Case(
        "alpha into JPEG", f"{APPLY} {{c}}/good-rgba.png {{o}}/x.jpg", 2, ("{o}/x.jpg", "cannot hold the alpha channel")
    ),
    Case("16-bit into JPEG", f"{APPLY} {{c}}/gray16.png {{o}}/x.jpg", 2, ("{o}/x.jpg", "cannot hold 16-bit values")),
    Case(
        "floats into PNG",
        f"{APPLY} --range float {{c}}/good.png {{o}}/x.png",
        2,
        ("{o}/x.png", "cannot hold --range float"),
    ),
    Case("--max-pixels 0", f"{APPLY} --max-pixels 0 {IMAGE_ARGS}", 2, ("'--max-pixels'", "0 is not in the range")),
    Case("--scale 0", f"{APPLY} --scale 0 {IMAGE_ARGS}", 2, ("--scale", "finite non-zero")),
]

# Issue 11: every read bounded, every message short, every spec strict.
BOUNDED = [
    Case("/dev/zero named .png", f"{APPLY} {{c}}/zero.png {{o}}/x.png", 1, ("{c}/zero.png", "not an image file")),
    Case(
        "/dev/zero named .npy",
        f"{APPLY} {{c}}/zero.npy {{o}}/x.npy",
        1,
        ("{c}/zero.npy", "not a valid .npy matrix", "magic"),
    ),
    Case("/dev/zero named .csv", f"{APPLY} {{c}}/zero.csv {{o}}/x.csv", 1, ("{c}/zero.csv", "NUL bytes")),
    Case(
        "5 GB sparse image",
        f"{APPLY} {{c}}/sparse.png {{o}}/x.png",
        1,
        ("{c}/sparse.png", "the file is 5.0 GB, over the limit of 3.2 GB", "--max-pixels"),
    ),
    Case(
        "a lowered --max-pixels lowers the byte limit",
        f"{APPLY} --max-pixels 100 {{c}}/sparse.png {{o}}/x.png",
        1,
        ("{c}/sparse.png", "over the limit of 16.8 MB", "--max-pixels"),
    ),
    Case(
        "kernel file /dev/zero",
        f"apply -k @/dev/zero {IMAGE_ARGS}",
        2,
        ("kernel file /dev/zero", "binary data"),
    ),
    Case(
        "5 GB sparse kernel file",
        f"apply -k @{{c}}/sparse-kernel.txt {IMAGE_ARGS}",
        2,
        ("kernel file {c}/sparse-kernel.txt", "over the limit of 4.3 MB", "IMGCONV_MAX_KERNEL"),
    ),
    Case(
        "registry /dev/zero",
        f"apply -k sharpen --registry /dev/zero {IMAGE_ARGS}",
        2,
        ("registry /dev/zero", "binary data"),
    ),
    Case(
        "5 GB sparse registry",
        f"apply -k sharpen --registry {{c}}/sparse-kernel.txt {IMAGE_ARGS}",
        2,
        ("registry {c}/sparse-kernel.txt", "over the limit of 17.0 MB"),
    ),
    Case(
        "npy declaring 10x10x10**9 values (channels count)",
        f"{APPLY} {{c}}/channels.npy {{o}}/x.npy",
        1,
        ("{c}/channels.npy", "10x10x1000000000 = 100,000,000,000 values, over the limit of 400,000,000"),
    ),
    Case(
        "a million-character bad value in a CSV",
        f"{APPLY} {{c}}/long-token.csv {{o}}/x.csv",
        1,
        ("{c}/long-token.csv", "line 2: 'xxxxx", "…", "(1,000,000 characters) is not a number"),
    ),
    Case(
        "YAML alias bomb as a registry",
        "apply -k sharpen --registry {c}/laughs.yaml " + IMAGE_ARGS,
        2,
        ("{c}/laughs.yaml, line 2", "aliases (*name) are not allowed"),
    ),
    Case(
        "YAML alias bomb as a kernel file",
        f"apply -k @{{c}}/laughs.yaml {IMAGE_ARGS}",
        2,
        ("{c}/laughs.yaml, line 2", "aliases (*name) are not allowed"),
    ),
    Case(
        "YAML nested 40 deep",
        f"apply -k @{{c}}/deep.yaml {IMAGE_ARGS}",
        2,
        ("{c}/deep.yaml, line 1", "nested more than 16 levels deep"),
    ),
    Case(
        "a 100,000-character inline kernel",
        f"apply -k '{'1,' * 50_000}x' {IMAGE_ARGS}",
        2,
        ("kernel '1,1,1,", "(100,001 characters)", "larger than the limit"),
    ),
    Case(
        "a 5,000-digit value",
        f"apply -k '{'9' * 5000}' {IMAGE_ARGS}",
        2,
        ("(5,000 characters)", "too many digits"),
    ),
    Case(
        "a 5,000-digit box size",
        f"apply -k 'box:{'9' * 5000}' {IMAGE_ARGS}",
        2,
        ("kernel 'box:999", "box takes a size N or RxC"),
    ),
    Case(
        "a 5,000-digit pooling window",
        f"maxpool --size {'9' * 5000} {IMAGE_ARGS}",
        2,
        ("'--size'", "(5,000 characters) is not a window"),
    ),
]

STRICT = [
    Case("an empty value", f"apply -k '1,,1' {IMAGE_ARGS}", 2, ("kernel '1,,1'", "value 2 is empty")),
    Case("a comma ending a row", f"apply -k '1,2,' {IMAGE_ARGS}", 2, ("kernel '1,2,'", "value 3 is empty")),
    Case("an empty row", f"apply -k '1;;1' {IMAGE_ARGS}", 2, ("kernel '1;;1'", "row 2 is empty")),
    Case("a row of only ';'", f"apply -k ';;' {IMAGE_ARGS}", 2, ("kernel ';;'", "no values")),
    Case(
        "a repeated parametric key",
        f"apply -k 'gaussian:sigma=1,sigma=2' {IMAGE_ARGS}",
        2,
        ("kernel 'gaussian:sigma=1,sigma=2'", "sigma is given twice"),
    ),
    Case(
        "an empty parametric argument",
        f"apply -k 'gaussian:sigma=1,,size=3' {IMAGE_ARGS}",
        2,
        ("kernel 'gaussian:sigma=1,,size=3'", "an argument is empty"),
    ),
    Case("non-ASCII digits", f"apply -k '١,٢' {IMAGE_ARGS}", 2, ("'١' is not a number",)),
    Case(
        "a key twice in one YAML mapping",
        REGISTRY % "duplicate-key.yaml",
        2,
        ("{c}/duplicate-key.yaml, line 4", "the key 'values' is given twice"),
    ),
    Case(
        "two 'kernels:' keys",
        REGISTRY % "two-kernels-keys.yaml",
        2,
        ("{c}/two-kernels-keys.yaml, line 4", "the key 'kernels' is given twice"),
    ),
    Case(
        "a registry that is a bare list",
        REGISTRY % "bare-list.yaml",
        2,
        ("{c}/bare-list.yaml", "expected a mapping with 'kernels:'"),
    ),
    Case(
        "a top-level key besides 'kernels'",
        REGISTRY % "top-level-typo.yaml",
        2,
        ("{c}/top-level-typo.yaml", "unknown top-level key(s) 'kernel'"),
    ),
    Case(
        "quoted numbers in values",
        REGISTRY % "quoted-values.yaml",
        2,
        ("{c}/quoted-values.yaml, line 2", "'1' is quoted text"),
    ),
    Case(
        "a quoted scale",
        REGISTRY % "quoted-scale.yaml",
        2,
        ("{c}/quoted-scale.yaml, line 2", "'scale' is quoted text"),
    ),
    Case(
        "IMGCONV_MAX_KERNEL that is not a number",
        f"{APPLY} {IMAGE_ARGS}",
        2,
        ("IMGCONV_MAX_KERNEL", "'abc' is not a whole number"),
        env={"IMGCONV_MAX_KERNEL": "abc"},
    ),
    Case(  # checked for every file, not only for one that streams (good.png does not)
        "IMGCONV_MEMORY that is not a size",
        f"{APPLY} {IMAGE_ARGS}",
        2,
        ("IMGCONV_MEMORY", "'abc' is not a size"),
        env={"IMGCONV_MEMORY": "abc"},
    ),
    Case(
        "IMGCONV_THREADS of 0",
        f"{APPLY} {IMAGE_ARGS}",
        2,
        ("IMGCONV_THREADS", "'0' is not a whole number of at least 1"),
        env={"IMGCONV_THREADS": "0"},
    ),
    Case(
        "a format spec in a template",
        f"{APPLY} {{c}}/good.png -o '{{o}}/{{stem:>99999999999}}.png'",
        2,
        ("--output", "'{stem:>99999999999}': templates take plain fields only"),
    ),
    Case(
        "a conversion in a template",
        f"{APPLY} {{c}}/good.png -o '{{o}}/{{stem!r}}.png'",
        2,
        ("--output", "'{stem!r}': templates take plain fields only"),
    ),
    Case(
        "an attribute in a template",
        f"{APPLY} {{c}}/good.png -o '{{o}}/{{stem.upper}}.png'",
        2,
        ("--output", "unknown template field '{stem.upper}'"),
    ),
    Case(
        "a lone brace in a template",
        f"{APPLY} {{c}}/good.png -o '{{o}}/{{stem.png'",
        2,
        ("--output", "expected '}' before end of string"),
    ),
    Case(
        "the pil backend with weights too large to sum exactly",
        f"apply -k '1e25,-1e25' --backend pil {IMAGE_ARGS}",
        2,
        ("--backend", "integer weights too large to sum exactly", "--backend scipy"),
    ),
]

CASES = IMAGES + KERNELS + REGISTRIES + OUTPUTS + BOUNDED + STRICT


def run_and_check(run, case: Case, corpus: Path, out: Path):
    """Run ``case`` and assert the promise: its code, its message, nothing written or changed."""
    before = snapshot(corpus), snapshot(out)
    args = [fill(token, corpus, out) for token in shlex.split(case.command)]
    env = {key: fill(value, corpus, out) for key, value in case.env.items()}
    result = run(*args, env=env)
    message = result.stderr
    assert result.exit_code == case.code, message
    assert "Traceback" not in result.output and "internal error" not in message
    assert result.stdout == ""
    assert message.strip().splitlines()[-1].startswith("Error: ")
    assert max(len(line) for line in message.splitlines()) <= limits.MESSAGE_CHARS + len("Error: ")
    for needle in case.needles:
        assert fill(needle, corpus, out) in message
    assert (snapshot(corpus), snapshot(out)) == before
    return result


def test_the_corpus_has_enough_cases():
    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_clean_error(run, corpus, out, case):
    run_and_check(run, case, corpus, out)


# --------------------------------------------------------------------------
# Odd inputs that are read, as the README says


def identity(run, corpus: Path, out: Path, name: str, *options: str) -> np.ndarray:
    result = run("apply", "-k", "identity", *options, corpus / name, out / "x.png")
    assert result.exit_code == 0, result.stderr
    return pixels(out / "x.png")


def test_animated_gif_gives_every_frame_or_the_first(run, corpus, out):
    source = Image.open(corpus / "animated.gif")
    frames = []
    for index in range(source.n_frames):
        source.seek(index)
        frames.append(np.asarray(source.convert("RGB")))
    assert np.array_equal(identity(run, corpus, out, "animated.gif", "--frames", "first"), frames[0])
    identity(run, corpus, out, "animated.gif")
    written = Image.open(out / "x.png")
    assert written.n_frames == len(frames) == 2
    for index, frame in enumerate(frames):
        written.seek(index)
        assert np.array_equal(np.asarray(written.convert("RGB")), frame)


def test_palette_transparency_becomes_alpha(run, corpus, out):
    source = Image.open(corpus / "palette-alpha.png")
    result = identity(run, corpus, out, "palette-alpha.png")
    assert result.shape[2] == 4
    assert np.array_equal(result[:, :, 3], np.where(np.asarray(source) == 0, 0, 255))


def test_cmyk_jpeg_becomes_rgb(run, corpus, out):
    expected = np.asarray(Image.open(corpus / "cmyk.jpg").convert("RGB"))
    assert np.array_equal(identity(run, corpus, out, "cmyk.jpg"), expected)


def test_one_bit_becomes_gray(run, corpus, out):
    result = identity(run, corpus, out, "one-bit.png")
    assert result.ndim == 2 and set(np.unique(result)) <= {0, 255}
    assert np.array_equal(result, np.asarray(Image.open(corpus / "one-bit.png").convert("L")))


def test_gray_with_alpha_keeps_its_alpha(run, corpus, out):
    result = identity(run, corpus, out, "la.png")
    assert np.array_equal(result, np.asarray(Image.open(corpus / "la.png")))


def test_sixteen_bit_stays_sixteen_bit(run, corpus, out):
    identity(run, corpus, out, "gray16.png")
    assert Image.open(out / "x.png").mode == "I;16"
    assert np.array_equal(pixels(out / "x.png"), pixels(corpus / "gray16.png"))


def test_exif_rotation_is_applied(run, corpus, out):
    assert pixels(corpus / "exif-rotated.jpg").shape == (6, 8)
    assert identity(run, corpus, out, "exif-rotated.jpg").shape == (8, 6)


def test_bad_crc_on_pixel_data_alone_is_read(run, corpus, out):
    # Pillow checks header CRCs only; zlib's checksum guards the pixels
    # (damaged-pixels.png in CASES), so the pixels read here are right.
    assert np.array_equal(identity(run, corpus, out, "idat-crc.png"), pixels(corpus / "good.png"))


@pytest.mark.parametrize(("geometry", "shape"), [("same", (4, 4)), ("full", (10, 10))])
def test_kernel_larger_than_the_image(run, corpus, out, geometry, shape):
    result = run("apply", "-k", "box:7", "--geometry", geometry, corpus / "small.png", out / "x.png")
    assert result.exit_code == 0, result.stderr
    assert pixels(out / "x.png").shape == shape


def test_raising_max_pixels_changes_the_outcome(run, corpus, out):
    refused = run("apply", "-k", "sharpen", "--max-pixels", "3071", corpus / "good.png", out / "x.png")
    assert refused.exit_code == 1 and "over the limit of 3,071" in refused.stderr
    assert not (out / "x.png").exists()
    assert run("apply", "-k", "sharpen", "--max-pixels", "3072", corpus / "good.png", out / "x.png").exit_code == 0
    assert (out / "x.png").exists()


def test_raising_the_kernel_limit_changes_the_outcome(run):
    assert run("kernels", "show", "box:300").exit_code == 2
    assert run("kernels", "show", "box:300", env={"IMGCONV_MAX_KERNEL": "300"}).exit_code == 0


def test_zero_sum_kernel_is_mostly_black_unless_offset(run, tmp_path):
    # The README's explanation: half the results of a zero-sum kernel are
    # negative and the rest small, so the default clip range is mostly black.
    photo = tmp_path / "photo.png"
    Image.open(SAMPLES / "camera.png").crop((200, 100, 264, 164)).save(photo)
    assert run("apply", "-k", "laplacian", photo, tmp_path / "clip.png").exit_code == 0
    assert (pixels(tmp_path / "clip.png") < 16).mean() > 0.75
    assert run("apply", "-k", "laplacian", "--offset", "128", photo, tmp_path / "centred.png").exit_code == 0
    assert abs(pixels(tmp_path / "centred.png").mean() - 128) < 16
    readme = (SAMPLES.parent / "README.md").read_text()
    assert "A zero-sum kernel" in readme and "--range abs" in readme


# --------------------------------------------------------------------------
# Failures a test cannot cause for real everywhere: simulated, and named so


def test_unreadable_input(run, corpus, out, tmp_path):
    locked = tmp_path / "locked.png"
    locked.write_bytes((corpus / "good.png").read_bytes())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reads (see the simulated test)")
        case = Case("unreadable", f"{APPLY} {locked} {{o}}/x.png", 1, (str(locked), "permission denied"))
        run_and_check(run, case, corpus, out)
    finally:
        locked.chmod(0o644)


def test_unreadable_input_simulated(run, corpus, out, monkeypatch):
    real = os.open

    def denied(path, *args, **kwargs):
        if str(path).endswith("good.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(limits.os, "open", denied)
    run_and_check(
        run, Case("unreadable", f"{APPLY} {IMAGE_ARGS}", 1, ("{c}/good.png", "permission denied")), corpus, out
    )


def test_read_only_folder(run, corpus, out):
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: a read-only folder does not stop writes (see the simulated test)")
        run_and_check(
            run, Case("read-only", f"{APPLY} {IMAGE_ARGS}", 1, ("{o}/x.png", "Permission denied")), corpus, out
        )
    finally:
        out.chmod(0o755)


def test_read_only_folder_simulated(run, corpus, out, monkeypatch, temp_scheme):
    real = os.open

    def denied(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR):  # creating the temporary file
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(output.os, "open", denied)
    run_and_check(run, Case("read-only", f"{APPLY} {IMAGE_ARGS}", 1, ("{o}/x.png", "Permission denied")), corpus, out)


class HalfWriter:
    """A file object that writes half of what it is given, then finds the disk full."""

    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stream.close()

    def write(self, payload: bytes) -> int:
        self.stream.write(payload[: len(payload) // 2])
        self.stream.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_simulated(run, corpus, out, monkeypatch, temp_scheme):
    real = os.fdopen
    monkeypatch.setattr(output.os, "fdopen", lambda fd, mode, **kw: HalfWriter(real(fd, mode, **kw)))
    case = Case("disk full", f"{APPLY} {IMAGE_ARGS}", 1, ("{o}/x.png", os.strerror(errno.ENOSPC)))
    run_and_check(run, case, corpus, out)


def test_full_disk_over_an_existing_output_keeps_it(run, corpus, out, monkeypatch, temp_scheme):
    (out / "x.png").write_bytes(b"the previous result")
    real = os.fdopen
    monkeypatch.setattr(output.os, "fdopen", lambda fd, mode, **kw: HalfWriter(real(fd, mode, **kw)))
    case = Case("disk full", f"{APPLY} {IMAGE_ARGS}", 1, ("{o}/x.png", os.strerror(errno.ENOSPC)))
    run_and_check(run, case, corpus, out)
    assert (out / "x.png").read_bytes() == b"the previous result"


@pytest.mark.parametrize("existing", [False, True], ids=["new output", "replaced output"])
def test_failed_rename_simulated(run, corpus, out, monkeypatch, temp_scheme, existing):
    if existing:
        (out / "x.png").write_bytes(b"the previous result")

    def read_only_filesystem(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output.os, "replace", read_only_filesystem)
    monkeypatch.setattr(output.os, "link", read_only_filesystem)
    case = Case("read-only file system", f"{APPLY} {IMAGE_ARGS}", 1, ("{o}/x.png", os.strerror(errno.EROFS)))
    run_and_check(run, case, corpus, out)


# --------------------------------------------------------------------------
# Batch


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_writes_the_good_and_lists_the_bad(run, corpus, tmp_path, jobs):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("good.png", "small.png", "empty.png", "truncated.png", "text.png"):
        (photos / name).write_bytes((corpus / name).read_bytes())
    before = snapshot(photos)
    result = run("apply", "-k", "sharpen", "--jobs", jobs, f"{photos}/*.png", "-o", f"{tmp_path}/out/")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert sorted(errors) == [
        f"Error: {photos}/empty.png: the file is empty",
        f"Error: {photos}/text.png: not an image file (or a format imgconv cannot read)",
        f"Error: {photos}/truncated.png: cannot decode the image (image file is truncated)",
    ]
    assert "2 written, 3 failed" in result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["good.png", "small.png"]
    assert snapshot(photos) == before
