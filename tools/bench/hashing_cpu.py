#!/usr/bin/env python3
"""CPU cost per byte of trustedge.hashing's C paths, for a loaded, shared machine.

    tools/bench/hashing_cpu.py [--size 1G] [--threads 1] [--dir /var/tmp]

Hashes one warm file through the extension with each leaf SIMD path (and the
whole-file stream) and prints user+system CPU seconds of this process and the
throughput per CPU-second (bytes / CPU-s): that figure does not change when
other processes compete for the cores, unlike wall time. Pair with
tools/bench/sha256_kernels_micro.c for the kernel alone (no I/O).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trustedge import hashing  # noqa: E402


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed(label: str, size: int, fn: object) -> None:
    best = None
    for _ in range(3):
        c0, w0 = cpu_seconds(), time.perf_counter()
        fn()  # type: ignore[operator]
        c, w = cpu_seconds() - c0, time.perf_counter() - w0
        if best is None or c < best[0]:
            best = (c, w)
    assert best is not None
    c, w = best
    print(f"  {label:<34} {c:6.3f} CPU-s  {size / c / 1e9:5.2f} GB/s per CPU-s  ({w:.3f} s wall)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = args.size
    size = int(float(s[:-1]) * units[s[-1].upper()]) if s[-1:].upper() in units else int(s)
    workdir = Path(args.dir or tempfile.gettempdir())
    path = workdir / f"trustedge-hashcpu-{size}.bin"
    if not (path.exists() and path.stat().st_size == size):
        with open(path, "wb") as fh:
            for _ in range(size // (1 << 20)):
                fh.write(os.urandom(1 << 20))
            fh.write(os.urandom(size % (1 << 20)))
    with open(path, "rb") as fh:  # warm the page cache
        while fh.read(1 << 24):
            pass
    print(f"{hashing.IMPLEMENTATION}: {size / (1 << 30):.2f} GiB, threads={args.threads}")
    for simd in hashing.available_simd_paths():
        if simd == "portable":
            continue
        timed(
            f"tree_digest simd={simd}",
            size,
            lambda simd=simd: hashing.tree_digest(path, threads=args.threads, simd=simd),
        )
    timed("sha256_file", size, lambda: hashing.sha256_file(path))
    timed("hash_file (both digests)", size, lambda: hashing.hash_file(path, threads=args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
