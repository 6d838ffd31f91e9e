#!/usr/bin/env python3
"""Benchmark ``trustedge model sign/verify`` against ``model_signing``, and the
verify-on-load reader against a plain read, warm page cache.

    tools/bench/models.py [--size 1G] [--files 4] [--pairs 5] [--dir /var/tmp]
                          [--section all|sign|load] [--shard-size 1M]

Section 1 (``sign``): a model directory of ``--files`` random files of
``--size`` bytes each is created in a temporary directory (removed at the
end). ``trustedge model sign`` and ``model_signing sign key`` (EC P-256 key,
offline), then ``trustedge model verify`` and ``model_signing verify key``,
run as whole processes, alternated A B A B for ``--pairs`` pairs after one
untimed warm-up each. Per pair the ratio is model_signing's wall time over
trustedge's; the median (min-max) ratio is reported (target >= 2x).

Section 2 (``load``): one file of the model, signed with ``--shard-size``
shards, is read sequentially in 1 MiB ``readinto`` calls (A) through
``open_verified`` (every byte returned only after its shard matched) and (B)
with plain ``readinto`` hashing each shard and checking all digests at the
end. Alternated, ``--pairs`` pairs, each in a fresh process; the overhead is
A/B - 1 (target <= 10%).

The load average is printed before and after: the machine may be shared, so
rerun on a quiet one for publishable figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def parse_size(text: str) -> int:
    t = text.upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if t[-1:] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def make_model(root: Path, files: int, size: int) -> None:
    root.mkdir(parents=True)
    for i in range(files):
        with open(root / f"model-{i + 1:05d}-of-{files:05d}.safetensors", "wb") as fh:
            subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=fh, check=True)
    (root / "config.json").write_text('{"architectures": ["Bench"]}\n')


def warm(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                while fh.read(1 << 24):
                    pass


# Both tools run as installed packages do: with byte-code caches (pip compiles
# site-packages at install; the editable trustedge would otherwise be compiled
# from source on every start when PYTHONDONTWRITEBYTECODE is set).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


#: CPU seconds (user + system) of the last run() child.
LAST_CPU = [0.0]


def run(argv: list[str | Path]) -> float:
    cpu0 = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(
        [str(a) for a in argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    wall = time.perf_counter() - start
    LAST_CPU[0] = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return wall


def alternate(
    name: str, a: list[str | Path], b: list[str | Path], pairs: int
) -> tuple[list[float], list[float]]:
    """Run A B A B ... (one untimed warm-up each); returns the B/A ratios of
    wall time and of CPU time."""
    run(a)
    run(b)
    ta, tb, ratios, cpu = [], [], [], []
    for i in range(pairs):
        x = run(a)
        cx = LAST_CPU[0]
        y = run(b)
        cy = LAST_CPU[0]
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
        cpu.append(cy / cx)
        print(
            f"    pair {i + 1}: A {x:6.3f} s ({cx:5.2f} CPU-s)  B {y:6.3f} s ({cy:5.2f} CPU-s)  "
            f"B/A {y / x:5.2f}  load {os.getloadavg()[0]:.2f}",
            file=sys.stderr,
        )
    print(
        f"  {name}: A median {statistics.median(ta):.3f} s, B median {statistics.median(tb):.3f} s",
        file=sys.stderr,
    )
    return ratios, cpu


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


_LOAD = r"""
import hashlib, hmac, os, sys, time
from cryptography.hazmat.primitives.asymmetric import ec
from trustedge import models
mode, path, sig, pub = sys.argv[1:5]
from trustedge.keys import load_public_key
key = load_public_key(open(pub, "rb").read())
st = models.verify_bundle(open(sig, "rb").read(), public_key=key)
name = os.path.basename(path)
units = st.expected_files()[name]
size = os.path.getsize(path)
entry = models.VerifiedFile(name, size, st.serialization.hash_type, tuple(units))
buf = bytearray(1 << 20)
view = memoryview(buf)
start = time.perf_counter()
if mode == "verified":
    with models.open_verified(path, entry) as fh:
        while fh.readinto(buf):
            pass
else:
    bounds = [(s, e) for s, e, _ in units]
    got = []
    with open(path, "rb", buffering=0) as fh:
        pos = 0
        for s, e in bounds:
            h = hashlib.sha256()
            while pos < e:
                n = fh.readinto(view[: min(len(buf), e - pos)])
                h.update(view[:n])
                pos += n
            got.append(h.digest())
    if not all(hmac.compare_digest(g, u[2]) for g, u in zip(got, units)):
        sys.exit("digest mismatch")
print(time.perf_counter() - start)
"""


def timed_load(mode: str, path: Path, sig: Path, pub: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _LOAD, mode, str(path), str(sig), str(pub)],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=parse_size, default=1 << 30, help="bytes per file (1G)")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--dir", default=None, help="where the temporary model goes")
    p.add_argument("--section", choices=("all", "sign", "load"), default="all")
    p.add_argument("--shard-size", type=parse_size, default=1 << 20, help="load section (1M)")
    args = p.parse_args()
    if args.pairs < 5:
        print("note: fewer than 5 pairs is not a publishable figure", file=sys.stderr)
    ms = BIN / "model_signing"
    te = BIN / "trustedge"
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-", dir=args.dir))
    try:
        model = tmp / "model"
        print(
            f"model: {args.files} x {args.size / (1 << 20):.0f} MiB in {model}; "
            f"load before: {os.getloadavg()}",
            file=sys.stderr,
        )
        make_model(model, args.files, args.size)
        warm(model)
        key, pub = tmp / "key.pem", tmp / "key.pub"
        subprocess.run(
            ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
            check=True,
        )
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True)
        te_sig, ms_sig = tmp / "te.sig", tmp / "ms.sig"
        lines = []
        if args.section in ("all", "sign"):
            sign = alternate(
                "sign (A trustedge, B model_signing)",
                [te, "model", "sign", model, "--key", key, "-o", te_sig, "--no-progress"],
                [ms, "sign", "key", model, "--private_key", key, "--signature", ms_sig],
                args.pairs,
            )
            verify = alternate(
                "verify (A trustedge, B model_signing)",
                [te, "model", "verify", model, "--signature", te_sig, "--key", pub,
                 "--no-progress"],
                [ms, "verify", "key", model, "--signature", ms_sig, "--public_key", pub],
                args.pairs,
            )  # fmt: skip
            lines.append(
                f"sign:   model_signing/trustedge wall = {summary(sign[0])}x  (target >= 2x); "
                f"CPU = {summary(sign[1])}x"
            )
            lines.append(
                f"verify: model_signing/trustedge wall = {summary(verify[0])}x  (target >= 2x); "
                f"CPU = {summary(verify[1])}x"
            )
        if args.section in ("all", "load"):
            shard_sig = tmp / "shards.sig"
            run([te, "model", "sign", model, "--key", key, "-o", shard_sig, "--no-progress",
                 "--shard-size", str(args.shard_size)])  # fmt: skip
            target = sorted(model.glob("*.safetensors"))[0]
            timed_load("verified", target, shard_sig, pub)
            timed_load("plain", target, shard_sig, pub)
            ratios = []
            for i in range(args.pairs):
                a = timed_load("verified", target, shard_sig, pub)
                b = timed_load("plain", target, shard_sig, pub)
                ratios.append(a / b)
                print(f"    pair {i + 1}: verified {a:6.3f} s  plain+verify {b:6.3f} s",
                      file=sys.stderr)  # fmt: skip
            over = [100 * (r - 1) for r in ratios]
            lines.append(
                f"load:   open_verified sequential read overhead = {summary(over)} %  "
                f"({args.shard_size >> 20} MiB shards, target <= 10%)"
            )
        print(f"load after: {os.getloadavg()}", file=sys.stderr)
        print(f"# {args.files} x {args.size / (1 << 30):g} GiB, {args.pairs} pairs, alternated; "
              f"median (min-max); load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        for line in lines:
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
