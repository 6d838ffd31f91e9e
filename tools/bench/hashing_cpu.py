#!/usr/bin/env python3
"""CPU seconds per GiB of trustedge.hashing's C paths and of the peers' SHA-256, warm cache.

    tools/bench/hashing_cpu.py [--size 1G] [--threads 1] [--dir /var/tmp] [--pairs 5]
                               [--report FILE]

CPU time (user + system) changes much less than wall time when other processes compete for
the cores, so on a shared machine it is the figure that bounds what two idle cores can do.
One random file of ``--size`` bytes is made in a temporary directory under ``--dir`` (removed
at the end, also on failure) and read once to warm the page cache. Each row is measured with
``tools/bench/_harness.py``'s ``repeat`` (one untimed warm-up, then ``--pairs`` runs, median
(min-max), load before and after) and appended to ``--report``:

* trustedge in this process (``RUSAGE_SELF``): the tree with each leaf SIMD path, the
  whole-file SHA-256 (one SHA-NI stream), two halves of the file as two ranges in one call
  (two SHA-NI streams interleaved on one worker: what ``hash DIR`` and ``model sign`` do per
  pair of files), both digests in one pass, and the read path alone (``os.preadv`` into one
  reused 256 KiB buffer: the page-cache copy every path pays);
* the peers' SHA-256: ``hashlib.file_digest`` (OpenSSL, what model_signing calls per file),
  ``model_signing.hashing.hash`` in this process when it is installed, and ``openssl dgst
  -sha256`` as a child process (``RUSAGE_CHILDREN``).

Pair with ``tools/bench/sha256_kernels_micro.c`` for the kernels alone (no I/O).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from _harness import Reporter, add_arguments, repeat  # noqa: E402

from trustedge import hashing  # noqa: E402

GIB = 1 << 30


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def per_gib(fn: Callable[[], object], size: int, clock: Callable[[], float] = cpu_self) -> float:
    c0 = clock()
    fn()
    return (clock() - c0) * GIB / size


def read_only(path: Path) -> None:
    buf = bytearray(256 << 10)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        off = 0
        while n := os.preadv(fd, [view], off):
            off += n
    finally:
        os.close(fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--threads", type=int, default=1, help="threads for the tree rows (1)")
    ap.add_argument("--dir", default=None, help="where the temporary file goes (a disk)")
    add_arguments(ap)
    args = ap.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = args.size
    size = int(float(s[:-1]) * units[s[-1].upper()]) if s[-1:].upper() in units else int(s)
    report = Reporter("hashing_cpu", args.report)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hashcpu-", dir=args.dir))
    try:
        path = tmp / "blob.bin"
        with open(path, "wb") as fh:
            subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=fh, check=True)
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        print(
            f"{hashing.IMPLEMENTATION}: {size / GIB:.2f} GiB, threads={args.threads}, "
            f"SIMD paths {hashing.available_simd_paths()}",
            file=sys.stderr,
        )
        half = size // 2

        def row(name: str, fn: Callable[[], object], clock: Callable[[], float] = cpu_self) -> None:
            report(
                repeat(
                    name,
                    lambda: per_gib(fn, size, clock),
                    unit="CPU-s per GiB",
                    runs=args.pairs,
                    higher_is_better=False,
                )
            )

        for simd in hashing.available_simd_paths():
            if simd == "portable":
                continue
            row(
                f"trustedge tree_digest simd={simd} threads={args.threads}",
                lambda simd=simd: hashing.tree_digest(path, threads=args.threads, simd=simd),
            )
        row("trustedge sha256_file (one SHA-NI stream)", lambda: hashing.sha256_file(path))
        row(
            "trustedge sha256_ranges, two halves (two SHA-NI streams, one worker)",
            lambda: hashing.sha256_ranges([(path, 0, half), (path, half, size)], threads=1),
        )
        row(
            "trustedge hash_file threads=1 (both digests, one pass)",
            lambda: hashing.hash_file(path, threads=1),
        )
        row("read path alone (os.preadv, reused 256 KiB buffer)", lambda: read_only(path))

        def file_digest() -> None:
            with open(path, "rb") as fh:
                hashlib.file_digest(fh, "sha256")

        row("hashlib.file_digest sha256 (OpenSSL, model_signing's per-file hash)", file_digest)
        try:
            import model_signing.hashing as ms_hashing
        except ImportError:
            print("model_signing is not installed: its row is skipped", file=sys.stderr)
        else:
            row("model_signing.hashing.hash (files, sha256)", lambda: ms_hashing.hash(path))
        row(
            "openssl dgst -sha256 (child process)",
            lambda: subprocess.run(
                ["openssl", "dgst", "-sha256", str(path)], check=True, stdout=subprocess.DEVNULL
            ),
            cpu_children,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
