"""Every kind of input under a 2 GB address-space limit (``ulimit -v``).

Each case runs imgconv in a child process whose address space is capped
(RLIMIT_AS, what ``ulimit -v`` sets) and checks the Safety promise: a clean
exit (0, 1 or 2, never "internal error" or a traceback) within a time bound,
or an interruption by the check itself for the cases that read forever on
purpose.  The inputs are the bad-input corpus (tests/bad_inputs) plus the
hostile ones of issue 11: endless and huge sparse files, stdin from
/dev/zero, YAML alias bombs, a 20 MB CSV with one bad value, a .npy
declaring 10 x 10 x 10**9 values, a pooling window of 10**8, and large but
valid images near the limits.

    python tests/stress/memory_limit.py               # every case, about a minute
    python tests/stress/memory_limit.py --limit-mb 1024 --case zero

Prints one line per case (exit code, seconds, peak RSS, the message) and a
verdict; exits 1 if any case broke the promise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import IMGCONV, SAMPLES, environment, leftovers


@dataclass
class Case:
    name: str
    args: list[str]
    stdin: str | None = None  # a path to feed as stdin
    env: dict[str, str] = field(default_factory=dict)
    codes: tuple[int, ...] = (1, 2)  # the acceptable exit codes


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def build(folder: Path) -> list[Case]:
    """Write the inputs into ``folder`` and return the cases."""
    from bad_inputs.make_corpus import build as corpus
    from PIL import Image

    c = corpus(folder / "corpus")
    f = folder
    out = folder / "out"
    cases: list[Case] = []

    # The corpus: every file through apply, as an image and as its own kind.
    for path in sorted(c.iterdir()):
        if path.is_file():
            suffix = path.suffix if path.suffix in (".npy", ".csv", ".txt") else ".png"
            cases.append(
                Case(
                    f"corpus {path.name}",
                    ["apply", "-k", "sharpen", str(path), str(out / f"x{suffix}")],
                    codes=(0, 1, 2),
                )
            )
    for name in ("big-kernel.txt", "nan-kernel.yaml"):
        cases.append(Case(f"corpus kernel {name}", ["kernels", "show", f"@{c / name}"]))
    for name in ("invalid.yaml", "python-tag.yaml", "duplicate.yaml", "not-a-list.yaml"):
        cases.append(Case(f"corpus registry {name}", ["kernels", "list", "--registry", str(c / name)]))

    # Endless and huge inputs.
    for suffix in (".png", ".npy", ".csv", ".txt", ".jpg"):
        link = f / f"zero{suffix}"
        link.symlink_to("/dev/zero")
        cases.append(Case(f"/dev/zero as {suffix}", ["apply", "-k", "sharpen", str(link), str(out / f"z{suffix}")]))
        sparse = f / f"sparse{suffix}"
        with open(sparse, "wb") as stream:
            stream.truncate(5 * 10**9)
        cases.append(Case(f"5 GB sparse {suffix}", ["apply", "-k", "sharpen", str(sparse), str(out / f"s{suffix}")]))
    cases.append(
        Case("stdin from /dev/zero", ["apply", "-k", "sharpen", "-", str(out / "stdin.png")], stdin="/dev/zero")
    )
    cases.append(
        Case("stdin from /dev/urandom", ["apply", "-k", "sharpen", "-", str(out / "u.png")], stdin="/dev/urandom")
    )
    ones = f / "ones.csv"
    ones.write_text("1," * 10_000_000 + "1\n")  # 20 MB, one row of 10 million values
    cases.append(Case("20 MB one-row CSV", ["apply", "-k", "box:1", str(ones), str(out / "ones.npy")], codes=(0, 1)))
    bad_csv = f / "bad.csv"
    bad_csv.write_text("1," * 10_000_000 + "x" * 1000 + "\n")
    cases.append(Case("20 MB CSV with a bad value", ["apply", "-k", "box:1", str(bad_csv), str(out / "b.csv")]))
    long_token = f / "token.csv"
    long_token.write_text("9" * 20_000_000 + "\n")
    cases.append(Case("20 MB CSV token", ["apply", "-k", "box:1", str(long_token), str(out / "t.csv")], codes=(0, 1)))
    sparse_kernel = f / "sparse-kernel.txt"
    with open(sparse_kernel, "wb") as stream:
        stream.truncate(5 * 10**9)
    cases.append(Case("kernel @/dev/zero", ["kernels", "show", "@/dev/zero"]))
    cases.append(Case("kernel @5 GB sparse file", ["kernels", "show", f"@{sparse_kernel}"]))
    cases.append(Case("registry /dev/zero", ["kernels", "list", "--registry", "/dev/zero"]))
    cases.append(Case("registry 5 GB sparse", ["kernels", "list", "--registry", str(sparse_kernel)]))

    # Bombs.
    bomb = f / "bomb.png"
    bomb.write_bytes(png_header_only(100_000, 100_000))
    cases.append(Case("PNG bomb", ["apply", "-k", "sharpen", str(bomb), str(out / "b.png")]))
    cases.append(
        Case(
            "PNG bomb, limit raised",
            ["apply", "-k", "sharpen", "--max-pixels", "20000000000", str(bomb), str(out / "b.png")],
        )
    )
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (10, 10, 1000000000), }".ljust(117) + "\n"
    channels = f / "channels.npy"
    channels.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(64))
    cases.append(Case("npy of 10x10x10**9", ["apply", "-k", "sharpen", str(channels), str(out / "c.npy")]))
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        laughs.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    laughs.append("kernels: [{name: x, values: *i}]")
    alias = f / "laughs.yaml"
    alias.write_text("\n".join(laughs) + "\n")
    cases.append(Case("YAML alias bomb (registry)", ["kernels", "list", "--registry", str(alias)]))
    cases.append(Case("YAML alias bomb (@file)", ["kernels", "show", f"@{alias}"]))
    deep = f / "deep.yaml"
    deep.write_text("values: " + "[" * 50_000 + "]" * 50_000 + "\n")
    cases.append(Case("YAML nested 50,000 deep", ["kernels", "show", f"@{deep}"]))

    # Arithmetic, sizes and strictness at the edges.
    photo = f / "photo.png"
    Image.open(SAMPLES / "coffee.png").save(photo)
    tiny = f / "tiny.png"
    Image.new("L", (3, 2), 7).save(tiny)
    for spec in ("1e25,-1e25", "1e19", "1e308,1e308", "1e-17", "9" * 5000, "1" + "0" * 4000):
        for backend in ("auto", "pil", "scipy", "numpy"):
            cases.append(
                Case(
                    f"-k {spec[:12]} --backend {backend}",
                    ["apply", "-k", spec, "--backend", backend, str(photo), str(out / "a.png")],
                    codes=(0, 1, 2),
                )
            )
    cases.append(
        Case(
            "pool window 10**8",
            ["pool", "--size", "100000000", "--padding", "same", str(photo), str(out / "p.png")],
            codes=(0,),
        )
    )
    cases.append(
        Case("pool window of 4300 digits", ["pool", "--size", "9" * 4400, str(photo), str(out / "p.png")], codes=(2,))
    )
    cases.append(
        Case(
            "box:256 full on 3x2",
            ["apply", "-k", "box:256", "--geometry", "full", str(tiny), str(out / "f.png")],
            codes=(0,),
        )
    )
    random_kernel = f / "k256.txt"
    import random

    rng = random.Random(1)
    random_kernel.write_text(
        "\n".join(" ".join(str(rng.randint(-9, 9)) for _ in range(256)) for _ in range(256)) + "\n"
    )
    cases.append(
        Case(
            "non-separable 256x256, scipy",
            ["apply", "-k", f"@{random_kernel}", "--backend", "scipy", str(tiny), str(out / "g.png")],
            codes=(0,),
        )
    )
    cases.append(
        Case("template format spec", ["apply", "-k", "blur", str(photo), "-o", str(out / "{stem:>99999999999}.png")])
    )
    cases.append(Case("IMGCONV_MAX_KERNEL=abc", ["kernels", "show", "box:3"], env={"IMGCONV_MAX_KERNEL": "abc"}))

    # Valid but large: 8K RGB, and a 100-million-pixel gray PNG at the default limit.
    big = f / "8k.png"
    Image.open(SAMPLES / "coffee.png").resize((7680, 4320)).save(big, compress_level=1)
    for spec in ("sharpen", "gaussian:sigma=5"):
        cases.append(Case(f"8K RGB {spec}", ["apply", "-k", spec, str(big), str(out / "8k.png")], codes=(0, 1)))
    cases.append(
        Case(
            "8K RGB chain, float .npy",
            [
                "apply",
                "-k",
                "blur",
                "-k",
                "edge3",
                "--range",
                "float",
                "--color",
                "gray",
                str(big),
                str(out / "8k.npy"),
            ],
            codes=(0, 1),
        )
    )
    huge = f / "100mp.png"
    Image.new("L", (10_000, 10_000), 128).save(huge, compress_level=1)
    cases.append(Case("100 MP gray", ["apply", "-k", "sharpen", str(huge), str(out / "100mp.png")], codes=(0, 1)))
    photos = f / "batch"
    photos.mkdir()
    for i in range(4):
        (photos / f"{i}.png").write_bytes(big.read_bytes())
    cases.append(
        Case(
            "batch of 8K, --jobs 8",
            ["apply", "-k", "sharpen", f"{photos}/*.png", "-o", str(out / "batch") + "/", "--jobs", "8"],
            codes=(0, 1),
        )
    )
    return cases


def run(case: Case, limit: int, timeout: float) -> dict[str, object]:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**environment(), **case.env}
    started = time.perf_counter()
    with contextlib.ExitStack() as files:
        stdin = files.enter_context(open(case.stdin, "rb")) if case.stdin else subprocess.DEVNULL
        out, err = files.enter_context(tempfile.TemporaryFile()), files.enter_context(tempfile.TemporaryFile())
        process = subprocess.Popen([*IMGCONV, *case.args], stdin=stdin, stdout=out, stderr=err, env=env, preexec_fn=cap)
        deadline = started + timeout
        status = None
        while status is None:
            pid, code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status = code
                break
            if time.perf_counter() > deadline:
                process.kill()
                _, code, usage = os.wait4(process.pid, 0)
                status = None
                break
            time.sleep(0.01)
        process.returncode = 0  # reaped by wait4
        seconds = time.perf_counter() - started
        err.seek(0)
        message = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    problems = []
    if code is None:
        problems.append(f"still running after {timeout:.0f} s")
    elif code not in case.codes:
        problems.append(f"exit {code}, expected {case.codes}")
    if "Traceback" in message:
        problems.append("traceback")
    if "internal error" in message:
        problems.append("internal error")
    lines = message.strip().splitlines()
    if len(max(lines, key=len, default="")) > 1000:
        problems.append("a message line over 1,000 characters")
    return {
        "case": case.name,
        "code": code,
        "seconds": round(seconds, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "message": (lines[-1] if lines else "")[:150],
        "problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-mb", type=int, default=2048, help="address-space limit [2048]")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a case may take [300]")
    parser.add_argument("--case", action="append", default=[], help="only cases whose name contains this")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgconv-memory-") as folder:
        cases = build(Path(folder))
        if options.case:
            cases = [c for c in cases if any(part in c.name for part in options.case)]
        results = []
        for case in cases:
            result = run(case, options.limit_mb << 20, options.timeout)
            results.append(result)
            flag = "FAIL " + ", ".join(result["problems"]) if result["problems"] else "ok"  # type: ignore[arg-type]
            print(
                f"{flag:6} {result['code']!s:>4} {result['seconds']:7.2f} s {result['peak_mb']:6} MB  {case.name}: {result['message']}",
                flush=True,
            )
        left = leftovers(Path(folder) / "out") if (Path(folder) / "out").exists() else []
    failed = [r for r in results if r["problems"]]
    print(
        f"\n{len(results)} cases under a {options.limit_mb} MB address-space limit: {len(failed)} broke the promise; "
        f"peak RSS {max(r['peak_mb'] for r in results)} MB; leftover temporary files: {len(left)}"
    )
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
