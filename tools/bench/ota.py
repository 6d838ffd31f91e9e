#!/usr/bin/env python3
"""OTA benchmark: manifest verifications per second (ES256, Ed25519, 3-of-5
threshold) and end-to-end apply of a large payload vs. ``sha256sum`` of it.

    python tools/bench/ota.py [--size-mib 1024] [--seconds 2] [--dir /tmp]

Figures are absolute and as ratios against the peer measured in the same run.
The machine is shared: report ``uptime`` load with the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge.ota import FileStateStore, FileSystemDevice, KeySet, Updater
from trustedge.ota.release import create_envelope, sign_envelope
from trustedge.ota.suit import authenticate, decode_envelope

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"


def spec(seq: int, digest: bytes, size: int, uri: str) -> dict[str, Any]:
    return {
        "manifest-version": 1,
        "manifest-sequence-number": seq,
        "components": [
            {
                "install-id": ["00"],
                "vendor-id": VENDOR,
                "class-id": CLASS,
                "install-digest": {"algorithm-id": "sha256", "digest-bytes": digest.hex()},
                "install-size": size,
                "uri": uri,
                "bootable": True,
            }
        ],
    }


def rate(fn: Any, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def bench_verify(seconds: float) -> None:
    env = create_envelope(spec(1, b"\x11" * 32, 1000, "http://example.com/fw"))
    es = ec.generate_private_key(ec.SECP256R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    five = [ed25519.Ed25519PrivateKey.generate() for _ in range(5)]
    cases = {
        "ES256 1-of-1": (sign_envelope(env, [es]), KeySet.of([es.public_key()])),
        "Ed25519 1-of-1": (sign_envelope(env, [ed]), KeySet.of([ed.public_key()])),
        "Ed25519 3-of-5": (
            sign_envelope(env, five[:3]),
            KeySet.of([k.public_key() for k in five], threshold=3),
        ),
    }
    base = None
    for name, (signed, keys) in cases.items():
        r = rate(lambda s=signed, k=keys: authenticate(decode_envelope(s), k), seconds)
        base = base or r
        print(f"verify {name:16s} {r:10.0f} manifests/s  ({r / base:.2f}x ES256)")


def bench_apply(size_mib: int, workdir: Path) -> None:
    payload = workdir / "payload.bin"
    chunk = os.urandom(1 << 20)
    h = hashlib.sha256()
    with open(payload, "wb") as fh:
        for _ in range(size_mib):
            fh.write(chunk)
            h.update(chunk)
    size = size_mib << 20
    key = ed25519.Ed25519PrivateKey.generate()
    env = sign_envelope(create_envelope(spec(1, h.digest(), size, "file:payload")), [key])

    def fetch(uri: str) -> Any:
        with open(payload, "rb") as f:
            while data := f.read(1 << 20):
                yield data

    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", str(payload)], check=True, capture_output=True)  # warm cache
        t = time.perf_counter()
        subprocess.run(["sha256sum", str(payload)], check=True, capture_output=True)
        t_sum = time.perf_counter() - t
    else:
        t_sum = float("nan")
    device = FileSystemDevice(
        workdir / "dev",
        vendor_id=uuid.UUID(VENDOR).bytes,
        class_id=uuid.UUID(CLASS).bytes,
        fetcher=fetch,
    )
    up = Updater(KeySet.of([key.public_key()]), FileStateStore(workdir / "state"), device)
    t = time.perf_counter()
    up.apply(env, now=int(time.time()))
    t_apply = time.perf_counter() - t
    mib = size / (1 << 20)
    print(f"sha256sum {mib:.0f} MiB           {t_sum:7.2f} s  ({mib / t_sum:7.0f} MiB/s)")
    print(
        f"update apply {mib:.0f} MiB        {t_apply:7.2f} s  ({mib / t_apply:7.0f} MiB/s)"
        f"  = {t_apply / t_sum:.2f}x sha256sum (stream+hash+write+fsync, then image-match re-read)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    print("load:", os.getloadavg())
    bench_verify(args.seconds)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_apply(args.size_mib, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
