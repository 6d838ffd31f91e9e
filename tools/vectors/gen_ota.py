#!/usr/bin/env python3
"""Generate vectors/ota/scenarios.json: ordered OTA update scenarios.

Each test group is one scenario on a fresh device (trust anchor, device ids,
limits); its tests are steps run in order (``apply``, ``confirm``, ``revert``,
``adopt_root``), each ``valid`` or ``invalid`` with the expected error class.
Keys are Ed25519 from fixed seeds, so every byte is deterministic.

    python tools/vectors/gen_ota.py            # write the file
    python tools/vectors/gen_ota.py --check    # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trustedge import _cbor  # noqa: E402
from trustedge.cose import encode_key  # noqa: E402
from trustedge.ota import build_trust_root, component_key  # noqa: E402
from trustedge.ota.release import compile_spec, create_envelope, sign_envelope  # noqa: E402
from trustedge.ota.suit import numbers as n  # noqa: E402
from trustedge.ota.suit.codec import Command, encode_envelope, encode_manifest  # noqa: E402

OUT = ROOT / "vectors" / "ota" / "scenarios.json"
VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
NOW = 1_800_000_000
COMP = (b"\x00",)


def key(name: str) -> ed25519.Ed25519PrivateKey:
    seed = hashlib.sha256(b"trustedge-ota-vector-" + name.encode()).digest()
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


FW = [key(f"fw{i}") for i in range(5)]
RK = [key(f"root{i}") for i in range(6)]


def payload(seq: int, tag: bytes = b"") -> bytes:
    return b"firmware %d %s|" % (seq % 1000, tag) * 16


def spec(seq: int, data: bytes, **extra: Any) -> dict[str, Any]:
    comp = {
        "install-id": ["00"],
        "vendor-id": VENDOR,
        "class-id": CLASS,
        "install-digest": {"algorithm-id": "sha256", "digest-bytes": hashlib.sha256(data).hexdigest()},
        "install-size": len(data),
        "uri": "#fw",
        "bootable": True,
        **extra,
    }
    return {"manifest-version": 1, "manifest-sequence-number": seq, "components": [comp]}


def release(seq: int, signers: list[Any] | None = None, *, data: bytes | None = None,
            integrated: bytes | None = None, **extra: Any) -> bytes:
    data = payload(seq) if data is None else data
    env = create_envelope(spec(seq, data, **extra), payloads={"#fw": data if integrated is None else integrated})
    return sign_envelope(env, FW[:1] if signers is None else signers)


def root(version: int, *, root_keys: list[int], signers: list[int], fw: list[int],
         fw_threshold: int = 1, expires: int = NOW + 86400, floor_reset: dict[bytes, int] | None = None) -> bytes:
    return build_trust_root(
        version=version, expires=expires,
        root_keys=[RK[i].public_key() for i in root_keys], root_threshold=2,
        firmware_keys=[FW[i].public_key() for i in fw], firmware_threshold=fw_threshold,
        signers=[RK[i] for i in signers], floor_reset=floor_reset,
    )


def apply(env: bytes, comment: str, error: str | None = None, *, now: int = NOW,
          floor: int | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"comment": comment, "action": "apply", "envelope": env.hex(), "now": now}
    return _result(step, error, floor)


def confirm(floor: int) -> dict[str, Any]:
    return {"comment": "new image booted: confirm", "action": "confirm", "result": "valid",
            "expectFloor": floor}


def revert() -> dict[str, Any]:
    return {"comment": "new image failed: revert", "action": "revert", "result": "valid"}


def adopt(doc: bytes, comment: str, error: str | None = None, floor: int | None = None) -> dict[str, Any]:
    return _result({"comment": comment, "action": "adopt_root", "root": doc.hex(), "now": NOW}, error, floor)


def _result(step: dict[str, Any], error: str | None, floor: int | None) -> dict[str, Any]:
    step["result"] = "invalid" if error else "valid"
    if error:
        step["error"] = error
    if floor is not None:
        step["expectFloor"] = floor
    return step


def keys_trust(idx: list[int], threshold: int = 1) -> dict[str, Any]:
    return {"type": "keys", "keys": [encode_key(FW[i].public_key()).hex() for i in idx], "threshold": threshold}


def root_trust(doc: bytes) -> dict[str, Any]:
    return {"type": "trust-root", "root": doc.hex()}


def scenarios() -> list[dict[str, Any]]:
    k0 = keys_trust([0])
    v1 = root(1, root_keys=[0, 1], signers=[0, 1], fw=[0, 1])
    groups: list[dict[str, Any]] = []

    def group(name: str, trust: dict[str, Any], steps: list[dict[str, Any]], **extra: Any) -> None:
        groups.append({"type": "OtaScenario", "scenario": name, "trust": trust, **extra, "tests": steps})

    group("genuine-update", k0, [apply(release(1), "signed, newer, matching device"), confirm(1)])
    group("arbitrary-software", k0, [
        apply(release(1, []), "no authentication block", "SignatureError"),
        apply(release(1, [key("attacker")]), "signed by an untrusted key", "SignatureError"),
    ])
    group("rollback", k0, [
        apply(release(3), "sequence 3"), confirm(3),
        apply(release(2), "older sequence 2", "RollbackError"),
        apply(release(4), "newer sequence 4"), confirm(4),
    ])
    group("equal-sequence-reinstall", k0, [
        apply(release(3), "sequence 3"), confirm(3),
        apply(release(3), "the same manifest again (repair)"), confirm(3),
        apply(release(3, data=payload(3, b"evil")), "different manifest reusing sequence 3",
              "RollbackError"),
    ])
    short = root(1, root_keys=[0, 1], signers=[0, 1], fw=[0], expires=NOW + 10)
    group("indefinite-freeze", root_trust(short), [
        apply(release(1), "root still valid"), revert(),
        apply(release(2), "root expired at now", "ExpiredError", now=NOW + 10),
    ])
    m = compile_spec(spec(1, payload(1)))
    late = replace(m, shared_sequence=(Command(n.DIR_OVERRIDE_PARAMETERS, {n.P_USE_BEFORE: NOW - 1}),
                                       *m.shared_sequence))
    raw, _ = encode_manifest(late)
    group("use-before-expired", k0, [
        apply(sign_envelope(encode_envelope(raw, payloads={"#fw": payload(1)}), FW[:1]),
              "use-before in the past", "ExpiredError"),
    ])
    group("endless-data", k0, [
        apply(release(1, data=b"x" * 5000), "envelope larger than maxEnvelope", "LimitExceededError"),
    ], maxEnvelope=4096)
    a, b = _cbor.decode(release(1)), _cbor.decode(release(2))
    a.value[3] = b.value[3]
    group("mix-and-match", k0, [
        apply(_cbor.encode(a), "manifest 2 inside the signed wrapper of 1", "SignatureError"),
    ])
    group("wrong-device", k0, [
        apply(release(1, **{"class-id": "00000000-0000-5000-8000-000000000000"}), "other class id",
              "PolicyError"),
        apply(release(1, **{"vendor-id": "00000000-0000-5000-8000-000000000000"}), "other vendor id",
              "PolicyError"),
    ])
    three = root(1, root_keys=[0, 1], signers=[0, 1], fw=[0, 1, 2, 3, 4], fw_threshold=3)
    dup = _cbor.decode(release(1, FW[:1]))
    wrapper = _cbor.decode(dup.value[2])
    dup.value[2] = _cbor.encode([wrapper[0], wrapper[1], wrapper[1], wrapper[1]])
    group("threshold", root_trust(three), [
        apply(release(1, FW[:2]), "2 of the required 3", "SignatureError"),
        apply(_cbor.encode(dup), "one key signing three times counts once", "SignatureError"),
        apply(release(1, FW[2:5]), "3 distinct firmware keys"),
    ])
    v2_revoke = root(2, root_keys=[0, 1], signers=[0, 1], fw=[0])
    group("revoked-key", root_trust(v1), [
        apply(release(1, FW[1:2]), "firmware key 1 is trusted in root v1"), confirm(1),
        adopt(v2_revoke, "root v2 drops firmware key 1"),
        apply(release(2, FW[1:2]), "signed by the revoked key", "SignatureError"),
        apply(release(2, FW[0:1]), "signed by a key still trusted"),
    ])
    v2 = root(2, root_keys=[2, 3], signers=[0, 1, 2, 3], fw=[2])
    v3 = root(3, root_keys=[4, 5], signers=[2, 3, 4, 5], fw=[3])
    group("rotated-root-chain", root_trust(v1), [
        adopt(root(3, root_keys=[4, 5], signers=[0, 1, 4, 5], fw=[3]), "skips version 2",
              "RollbackError"),
        adopt(root(2, root_keys=[2, 3], signers=[2, 3], fw=[2]), "v2 not signed by v1's root keys",
              "SignatureError"),
        adopt(v2, "v2 signed by v1 and v2 root keys"),
        adopt(v3, "v3 signed by v2 and v3 root keys"),
        apply(release(1, FW[2:3]), "v2's firmware key is gone in v3", "SignatureError"),
        apply(release(1, FW[3:4]), "v3's firmware key"),
    ])
    reset = root(2, root_keys=[0, 1], signers=[0, 1], fw=[0], floor_reset={component_key(COMP): 0})
    forged = root(2, root_keys=[0, 1], signers=[0], fw=[0], floor_reset={component_key(COMP): 0})
    group("fast-forward-floor-reset", root_trust(v1), [
        apply(release(2**64 - 1, FW[1:2]), "key 1 (later revoked) signs uint64 max"),
        confirm(2**64 - 1),
        apply(release(5), "everything is now below the floor", "RollbackError"),
        adopt(forged, "floor reset with one root signature", "SignatureError"),
        adopt(reset, "root v2: revoke key 1, reset the floor to 0", floor=0),
        apply(release(5), "normal releases install again"), confirm(5),
    ])
    evil = bytearray(payload(1))
    evil[0] ^= 1
    group("substituted-payload", k0, [
        apply(release(1, integrated=bytes(evil)), "payload differs from the image digest",
              "VerificationError"),
    ])
    group("oversized-payload", k0, [
        apply(release(1, integrated=payload(1) + b"more"), "payload longer than image-size",
              "VerificationError"),
    ])
    group("max-seq-jump", k0, [
        apply(release(1000), "jump beyond the policy's limit", "PolicyError"),
        apply(release(50), "within the limit"),
    ], maxSeqJump=100)
    return groups


def build() -> dict[str, Any]:
    groups = scenarios()
    tc = 0
    for g in groups:
        g["device"] = {"vendor-id": VENDOR, "class-id": CLASS}
        for t in g["tests"]:
            tc += 1
            t["tcId"] = tc
            t["flags"] = [g["scenario"]]
        g["tests"] = [{"tcId": t.pop("tcId"), **t} for t in g["tests"]]
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": "SUIT OTA update scenarios (draft-ietf-suit-manifest-37 subset, trustedge rollback and trust-root rules)",
        "source": "tools/vectors/gen_ota.py: Ed25519 keys from fixed seeds, integrated payloads",
        "generator": "tools/vectors/gen_ota.py",
        "notes": {
            "steps": "each group is one scenario on a fresh device; run its tests in order. "
            "apply = verify + install (uri '#fw' is integrated); confirm/revert act on the pending "
            "install; adopt_root = verify rotation from the current root and apply floor resets",
            "trust": "keys: pinned COSE_Keys with a threshold; trust-root: a signed trustedge trust root (v1)",
            "now": "unix seconds passed to the verifier",
            "expectFloor": "the component [h'00'] floor after the step",
        },
        "numberOfTests": tc,
        "testGroups": groups,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
