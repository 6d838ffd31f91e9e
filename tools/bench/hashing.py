#!/usr/bin/env python3
"""Benchmark trustedge.hashing against its peers on one large file, warm cache.

    tools/bench/hashing.py --size 4G [--dir /var/tmp] [--runs 3]
        [--peer-python /tmp/ms-venv/bin/python]   # a venv with model_signing / blake3

Every method runs as its own process (whole-process wall time, CPU time and
peak RSS from wait4), ``--runs`` times after a warm-up read of the file; the
median wall time is reported. Peers: ``openssl dgst -sha256``, coreutils
``sha256sum``, Python ``hashlib.file_digest``, ``b3sum`` (all threads) or
blake3-py, and ``model_signing`` hashing when ``--peer-python`` has it.
Ratios and the issue's targets are printed at the end, with the load average
(the machine is shared: rerun on a quiet box for publishable numbers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    name: str
    wall: float
    cpu: float
    rss_mib: float


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def make_file(path: Path, size: int) -> None:
    """Random bytes from a child process, so this process stays small (a child
    forked from a big parent would report the parent's peak RSS)."""
    if path.exists() and path.stat().st_size == size:
        return
    with open(path, "wb") as fh:
        subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=fh, check=True)


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Whole-process wall, CPU seconds and peak RSS (MiB) of one run of argv."""
    timed = ["/usr/bin/time", "-f", "%e %U %S %M"] if os.path.exists("/usr/bin/time") else []
    start = time.perf_counter()
    proc = subprocess.run(
        [*timed, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with {proc.returncode}: {proc.stderr[-500:]}")
    if not timed:
        return wall, float("nan"), float("nan")
    _, user, system, rss_kib = proc.stderr.split()[-4:]
    return wall, float(user) + float(system), int(rss_kib) / 1024


def measure(name: str, argv: list[str], runs: int, env: dict[str, str] | None = None) -> Result:
    samples = [run_once(argv, env) for _ in range(runs)]
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    rss = max(s[2] for s in samples)
    print(f"  {name:<44} {wall:7.2f} s", file=sys.stderr, flush=True)
    return Result(name, wall, cpu, rss)


def py(code: str, python: str = sys.executable) -> list[str]:
    return [python, "-c", code]


def has_module(python: str, module: str) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="4G", help="file size (default 4G)")
    ap.add_argument("--dir", default=None, help="where to put the file (default: a temp dir)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the test file")
    ap.add_argument(
        "--peer-python", default=None, help="python of a venv with model_signing and/or blake3"
    )
    ap.add_argument("--quick", action="store_true", help="only trustedge and openssl")
    args = ap.parse_args()

    size = parse_size(args.size)
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="trustedge-bench-"))
    blob = workdir / f"bench-{size}.bin"
    print(f"load before: {os.getloadavg()}", file=sys.stderr)
    make_file(blob, size)
    subprocess.run(["cat", str(blob)], stdout=subprocess.DEVNULL, check=True)  # warm the cache

    sys.path.insert(0, str(ROOT))
    import trustedge.hashing as th

    f = repr(str(blob))
    results: list[Result] = []
    te = "from trustedge import hashing as h; "
    results.append(
        measure("trustedge tree_digest (C, default)", py(te + f"h.tree_digest({f})"), args.runs)
    )
    results.append(measure("trustedge sha256_file (C)", py(te + f"h.sha256_file({f})"), args.runs))
    results.append(
        measure("trustedge hash_file: both digests (C)", py(te + f"h.hash_file({f})"), args.runs)
    )
    results.append(
        measure(
            "trustedge hash_file, threads=1 (one core)",
            py(te + f"h.hash_file({f}, threads=1)"),
            args.runs,
        )
    )
    for simd in th.available_simd_paths()[1:]:
        if simd == "portable" and size > (1 << 30):
            continue  # minutes at 4 GiB; the portable path exists for other CPUs
        results.append(
            measure(
                f"trustedge tree_digest simd={simd}",
                py(te + f"h.tree_digest({f}, simd={simd!r})"),
                args.runs,
            )
        )
    native = dict(os.environ, TRUSTEDGE_HASHING="native")
    results.append(
        measure(
            "trustedge tree_digest (hashlib twin)",
            py(te + f"h.tree_digest({f})"),
            args.runs,
            native,
        )
    )
    results.append(
        measure("openssl dgst -sha256", ["openssl", "dgst", "-sha256", str(blob)], args.runs)
    )
    if not args.quick:
        results.append(measure("sha256sum", ["sha256sum", str(blob)], args.runs))
        results.append(
            measure(
                "python hashlib.file_digest",
                py(f"import hashlib; hashlib.file_digest(open({f}, 'rb'), 'sha256')"),
                args.runs,
            )
        )
        if shutil.which("b3sum"):
            results.append(measure("b3sum (mmap, all threads)", ["b3sum", str(blob)], args.runs))
        peer = args.peer_python
        if peer and has_module(peer, "blake3"):
            code = f"import blake3; blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap({f})"
            results.append(measure("blake3-py update_mmap AUTO threads", py(code, peer), args.runs))
        if peer and has_module(peer, "model_signing"):
            code = f"import model_signing.hashing as m; m.hash({f})"
            results.append(
                measure("model_signing hashing.hash (files, sha256)", py(code, peer), args.runs)
            )

    print(f"load after: {os.getloadavg()}", file=sys.stderr)
    by = {r.name: r for r in results}
    print(
        f"\n{size / 2**30:.1f} GiB file, warm page cache, {os.cpu_count()} CPUs, "
        f"median of {args.runs} runs, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"implementation {th.IMPLEMENTATION}, SIMD path {th.SIMD_PATH}\n")
    print(f"| {'method':<44} | wall s | GB/s  | CPU s | peak RSS MiB |")
    print(f"|{'-' * 46}|-------:|------:|------:|-------------:|")
    for r in results:
        print(
            f"| {r.name:<44} | {r.wall:6.2f} | {size / r.wall / 1e9:5.2f} "
            f"| {r.cpu:5.2f} | {r.rss_mib:12.1f} |"
        )

    tree = by["trustedge tree_digest (C, default)"]
    sha = by["trustedge sha256_file (C)"]
    both = by["trustedge hash_file: both digests (C)"]
    ossl = by["openssl dgst -sha256"]
    print("\nratios (speed, higher is better) and the issue's targets (on wall time):")
    print(f"  {'':<52} {'wall':>5}  {'CPU-s':>6}   (CPU-s ratios: less disturbed by other load)")

    def ratio(a: Result, b: Result, label: str, target: float | None) -> None:
        value = b.wall / a.wall
        verdict = (
            "" if target is None else ("  ok" if value >= target else f"  BELOW target {target}")
        )
        print(f"  {label:<52} {value:5.2f}x {b.cpu / a.cpu:6.2f}x{verdict}")

    ratio(tree, ossl, "tree_digest vs openssl dgst -sha256", 4.5)
    ratio(sha, ossl, "sha256_file vs openssl dgst -sha256", 0.95)
    ratio(both, sha, "hash_file (both) vs sha256_file", 0.95)
    for peer_name in ("b3sum (mmap, all threads)", "blake3-py update_mmap AUTO threads"):
        if peer_name in by:
            ratio(tree, by[peer_name], f"tree_digest vs {peer_name}", 0.7)
    for peer_name in (
        "sha256sum",
        "python hashlib.file_digest",
        "model_signing hashing.hash (files, sha256)",
    ):
        if peer_name in by:
            ratio(tree, by[peer_name], f"tree_digest vs {peer_name}", None)
    gbps = size / tree.wall / 1e9
    print(
        f"  {'tree_digest throughput':<52} {gbps:5.2f} GB/s"
        + ("  ok" if gbps >= 8 else "  BELOW target 8 GB/s")
    )
    one_core = by["trustedge hash_file, threads=1 (one core)"]
    ratio(one_core, sha, "hash_file threads=1 (one core) vs sha256_file", None)
    for r in (tree, sha, both, one_core, ossl):
        print(f"  {r.name + ' per CPU-second':<52} {size / r.cpu / 1e9:5.2f} GB/s")
    worst = max(r.rss_mib for r in (tree, sha, both))
    print(
        f"  {'trustedge peak RSS':<52} {worst:5.1f} MiB"
        + ("  ok" if worst < 128 else "  ABOVE 128 MiB")
    )

    if not args.keep and args.dir is None:
        shutil.rmtree(workdir)
    elif not args.keep:
        blob.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
