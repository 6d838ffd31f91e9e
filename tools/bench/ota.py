#!/usr/bin/env python3
"""OTA benchmark: SUIT verification against python-tuf, and an end-to-end apply against
``sha256sum``, on the one harness (``tools/bench/_harness.py``).

    python tools/bench/ota.py [--pairs 5] [--report FILE] [--size-mib 256] [--dir DIR]

Verification rows (in-process, ``timed_calls``): Ed25519 1-of-1, ES256 1-of-1 and Ed25519 3-of-5,
the same private keys on both sides, one component / one target file.

* trustedge: ``verify_envelope(envelope, trust_root, now=...)`` -- size cap, decode, trust-root
  freshness, digest, every signature, role thresholds, manifest decode: what ``Updater.apply``
  does before it looks at rollback state;
* python-tuf 7: what ``TrustedMetadataSet`` does per Targets file (``_load_from_metadata``):
  ``Metadata[Targets].from_bytes``, the type check, ``Root.verify_delegate("targets", ...)``,
  then ``is_expired`` (the snapshot hash check it also does is left out: less work for the peer).

Apply row (per process, ``timed_process``): ``trustedge update apply`` of an envelope whose
payload is a ``--size-mib`` file (stream, hash, write to the inactive slot, fsync, re-read for
``condition-image-match``, state saved) against ``sha256sum`` of the same file (hash only).
Before each trustedge run the device and state directories are removed (untimed), so every run
is a first install. Every temporary file is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    Reporter,
    Run,
    add_arguments,
    alternate,
    timed_calls,
    timed_process,
)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from securesystemslib.signer import CryptoSigner  # noqa: E402
from tuf.api.metadata import Metadata, Role, Root, TargetFile, Targets  # noqa: E402

from trustedge.keys import public_key_to_pem  # noqa: E402
from trustedge.ota import TrustRoot, build_trust_root  # noqa: E402
from trustedge.ota.release import create_envelope, sign_envelope  # noqa: E402
from trustedge.ota.updater import verify_envelope  # noqa: E402

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
NOW = int(time.time())
TARGET = 1.2
#: Wall time one timed run should take (calls are calibrated to it).
RUN_SECONDS = 0.25

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


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


def trust_root(keys: list[PrivateKey], threshold: int) -> TrustRoot:
    root_key = ed25519.Ed25519PrivateKey.generate()
    return TrustRoot.load(
        build_trust_root(
            version=1,
            expires=NOW + 86_400,
            root_keys=[root_key.public_key()],
            root_threshold=1,
            firmware_keys=[k.public_key() for k in keys],
            firmware_threshold=threshold,
            signers=[root_key],
        )
    )


def trustedge_verify(keys: list[PrivateKey], threshold: int) -> Callable[[], object]:
    root = trust_root(keys, threshold)
    firmware = b"firmware image " * 64
    env = create_envelope(spec(1, hashlib.sha256(firmware).digest(), len(firmware), "#fw"))
    signed = sign_envelope(env, keys[:threshold])

    def verify() -> object:
        return verify_envelope(signed, root, now=NOW)

    verify()  # authentic, or the comparison is meaningless
    return verify


def tuf_verify(keys: list[PrivateKey], threshold: int) -> Callable[[], object]:
    signers = [CryptoSigner(k) for k in keys]
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    root = Root(expires=expires)
    for s in signers:
        root.add_key(s.public_key, Targets.type)
    root.roles[Targets.type] = Role([s.public_key.keyid for s in signers], threshold)
    firmware = b"firmware image " * 64
    targets = Targets(expires=expires)
    targets.targets["fw.bin"] = TargetFile.from_data("fw.bin", firmware, ["sha256"])
    md = Metadata(targets)
    for s in signers[:threshold]:
        md.sign(s, append=True)
    data = md.to_bytes()
    reference = datetime.now(UTC)

    def verify() -> object:
        # tuf.ngclient's TrustedMetadataSet._load_from_metadata + update_targets' expiry check
        new = Metadata[Targets].from_bytes(data)
        if new.signed.type != Targets.type:
            raise RuntimeError("not targets")
        root.verify_delegate(Targets.type, new.signed_bytes, new.signatures)
        if new.signed.is_expired(reference):
            raise RuntimeError("expired")
        return new.signed

    verify()
    return verify


def calibrate(fn: Callable[[], object]) -> int:
    """Calls per run so that one run takes about RUN_SECONDS."""
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.1:
        fn()
        calls += 1
    return max(1, int(calls * RUN_SECONDS / (time.perf_counter() - start)))


def bench_verify(report: Reporter, pairs: int) -> None:
    cases: list[tuple[str, list[PrivateKey], int]] = [
        ("Ed25519 1-of-1", [ed25519.Ed25519PrivateKey.generate()], 1),
        ("ES256 1-of-1", [ec.generate_private_key(ec.SECP256R1())], 1),
        ("Ed25519 3-of-5", [ed25519.Ed25519PrivateKey.generate() for _ in range(5)], 3),
    ]
    for name, keys, threshold in cases:
        ours, peer = trustedge_verify(keys, threshold), tuf_verify(keys, threshold)
        calls = calibrate(peer)
        result = alternate(
            f"ota verify {name}",
            ("trustedge verify_envelope", timed_calls(ours, calls)),
            ("python-tuf Targets", timed_calls(peer, calls)),
            work=f"{calls} verifications",
            pairs=pairs,
            target=TARGET,
        )
        sa, sb = result.seconds_a, result.seconds_b
        result.notes["per_second_a"] = calls * len(sa) / sum(sa)
        result.notes["per_second_b"] = calls * len(sb) / sum(sb)
        report(result)


def bench_apply(report: Reporter, pairs: int, size_mib: int, workdir: Path) -> None:
    payload = workdir / "payload.bin"
    chunk = os.urandom(1 << 20)
    h = hashlib.sha256()
    with open(payload, "wb") as fh:
        for _ in range(size_mib):
            fh.write(chunk)
            h.update(chunk)
    size = size_mib << 20
    key = ed25519.Ed25519PrivateKey.generate()
    manifest = workdir / "fw.suit"
    manifest.write_bytes(
        sign_envelope(create_envelope(spec(1, h.digest(), size, "file:payload")), [key])
    )
    pub = workdir / "fw.pub"
    pub.write_bytes(public_key_to_pem(key.public_key()))
    state, device = workdir / "state", workdir / "device"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    apply = timed_process(
        [
            sys.executable, "-m", "trustedge", "update", "apply", manifest, "--key", pub,
            "--state", state, "--device", device, "--vendor-id", VENDOR, "--class-id", CLASS,
            "--payload", payload, "--now", str(NOW),
        ],
        env=env,
    )  # fmt: skip

    def first_install() -> float:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(device, ignore_errors=True)
        return apply()

    ours: Run = first_install
    result = alternate(
        f"ota apply {size_mib} MiB",
        ("trustedge update apply", ours),
        ("sha256sum", timed_process(["sha256sum", payload])),
        work=f"one process on {size_mib} MiB",
        pairs=pairs,
        target=TARGET,
    )
    report(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    parser.add_argument("--size-mib", type=int, default=256, help="payload of the apply row")
    parser.add_argument("--dir", default=None, help="where the apply row's files go")
    parser.add_argument("--skip-apply", action="store_true", help="verification rows only")
    args = parser.parse_args()
    report = Reporter("ota", args.report)
    bench_verify(report, args.pairs)
    if not args.skip_apply:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="trustedge-bench-ota-") as tmp:
            bench_apply(report, args.pairs, args.size_mib, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
