#!/usr/bin/env python3
"""Benchmark ``trustedge model sign/verify`` against ``model_signing``, and the
verify-on-load reader against a plain read, warm page cache.

    tools/bench/models.py [--size 256M] [--files 4] [--pairs 5] [--dir /var/tmp]
                          [--section all|sign|load] [--shard-size 1M] [--report FILE]

All figures through ``tools/bench/_harness.py``: A B A B ... after one untimed
warm-up each, ``--pairs`` pairs (at least 5), median (min-max) of the pairwise
ratio B/A, the load average before and after, ``--report`` JSON lines.

Section 1 (``sign``): a model directory of ``--files`` random files of
``--size`` bytes each is created in a temporary directory under ``--dir``
(removed at the end). ``trustedge model sign`` (A) and ``model_signing sign
key`` (B, EC P-256 key, offline), then ``trustedge model verify`` and
``model_signing verify key``, run as whole processes (per-process peers
compared per process); the ratio is model_signing's time over trustedge's
(target >= 2x).

Section 2 (``load``): one file of the model, signed with ``--shard-size``
shards, is read sequentially in 1 MiB ``readinto`` calls with plain
``readinto`` hashing each shard and checking all digests at the end (A) and
through ``open_verified`` (B: every byte returned only after its shard
matched), each in a fresh process timing only the read; the overhead is
B/A - 1 (target <= 10%).

The machine may be shared: quote the ratios with the load printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Reporter, add_arguments, alternate, timed_process

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
    p.add_argument("--size", type=parse_size, default=256 << 20, help="bytes per file (256M)")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--dir", default=None, help="where the temporary model goes (a disk)")
    p.add_argument("--section", choices=("all", "sign", "load"), default="all")
    p.add_argument("--shard-size", type=parse_size, default=1 << 20, help="load section (1M)")
    add_arguments(p)
    args = p.parse_args()
    report = Reporter("models", args.report)
    ms = BIN / "model_signing"
    te = BIN / "trustedge"
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-", dir=args.dir))
    try:
        model = tmp / "model"
        print(
            f"model: {args.files} x {args.size / (1 << 20):g} MiB in {model}; "
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
        work = f"a model of {args.files} x {args.size / (1 << 20):g} MiB (files, sha256)"
        if args.section in ("all", "sign"):
            te_sign = [te, "model", "sign", model, "--key", key, "-o", te_sig, "--no-progress"]
            ms_sign = [ms, "sign", "key", model, "--private_key", key, "--signature", ms_sig]
            report(
                alternate(
                    "model sign vs model_signing sign key",
                    ("trustedge model sign", timed_process(te_sign, env=ENV)),
                    ("model_signing sign key", timed_process(ms_sign, env=ENV)),
                    work=work,
                    pairs=args.pairs,
                    target=2.0,
                )
            )
            te_verify = [te, "model", "verify", model, "--signature", te_sig, "--key", pub,
                         "--no-progress"]  # fmt: skip
            ms_verify = [ms, "verify", "key", model, "--signature", ms_sig, "--public_key", pub]
            report(
                alternate(
                    "model verify vs model_signing verify key",
                    ("trustedge model verify", timed_process(te_verify, env=ENV)),
                    ("model_signing verify key", timed_process(ms_verify, env=ENV)),
                    work=work,
                    pairs=args.pairs,
                    target=2.0,
                )
            )
        if args.section in ("all", "load"):
            shard_sig = tmp / "shards.sig"
            subprocess.run(
                [te, "model", "sign", model, "--key", key, "-o", shard_sig, "--no-progress",
                 "--shard-size", str(args.shard_size)],
                check=True, env=ENV, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            target = sorted(model.glob("*.safetensors"))[0]
            # A: plain read + verify at the end (the baseline), B: open_verified; the ratio
            # B/A - 1 is open_verified's overhead (target <= 10%, i.e. ratio <= 1.10).
            result = alternate(
                "open_verified sequential read vs plain read verified at the end",
                ("plain read + verify", lambda: timed_load("plain", target, shard_sig, pub)),
                ("open_verified", lambda: timed_load("verified", target, shard_sig, pub)),
                work=f"one {args.size / (1 << 20):g} MiB file, "
                f"{args.shard_size / (1 << 20):g} MiB shards, 1 MiB readinto",
                pairs=args.pairs,
            )
            result.notes["overhead_percent_median"] = 100 * (result.median - 1)
            result.notes["target"] = "open_verified/plain - 1 <= 10 %"
            report(result)
            print(f"  open_verified overhead: {100 * (result.median - 1):.1f} % (target <= 10 %)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
