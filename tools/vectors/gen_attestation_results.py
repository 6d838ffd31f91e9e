#!/usr/bin/env python3
"""Generate vectors/attestation/evidence.json and vectors/attestation/ear.json.

Deterministic: fixed keys, Ed25519 (deterministic by design) and RFC 6979
deterministic ECDSA, fixed times. ``--check`` regenerates in memory and
exits 1 when a committed file differs.

* evidence.json -- evidence bundles to decode: valid ones with the decoded
  fields and the requirement to re-encode to the same bytes, invalid ones
  with the trustedge error class.
* ear.json -- signed EAR tokens (JWT text or CWT hex) with the verification
  key (SubjectPublicKeyInfo DER, hex): valid ones with the expected status
  and JSON claims, invalid ones with the error.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

from trustedge._cbor import CBORTag, encode  # noqa: E402
from trustedge.attestation.ear import (  # noqa: E402
    AttestationResult,
    VerifierId,
)
from trustedge.attestation.evidence import Evidence  # noqa: E402
from trustedge.attestation.findings import Finding, appraisal_from_findings  # noqa: E402

GENERATOR = "tools/vectors/gen_attestation_results.py"
OUT = ROOT / "vectors" / "attestation"
SHA256, SHA1 = 0x000B, 0x0004
NOW = 1_764_288_000

P256 = ec.derive_private_key(0x5EED_0001_0000_0000_0000_0000_0000_0000_0000_0000, ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_ED = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def header(algorithm: str, source: str, notes: dict[str, str], groups: list[Any]) -> dict[str, Any]:
    tc = 0
    for group in groups:
        for test in group["tests"]:
            tc += 1
            test["tcId"] = tc
            test.setdefault("flags", [])
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": algorithm,
        "source": source,
        "generator": GENERATOR,
        "notes": notes,
        "numberOfTests": tc,
        "testGroups": groups,
    }


# -- evidence ------------------------------------------------------------------------


def base_evidence() -> Evidence:
    return Evidence(
        device_id="edge-0042",
        nonce=bytes(range(32)),
        quote=bytes.fromhex("ff54434780180022000b") + bytes(20),
        signature=bytes.fromhex("0014000b0020") + bytes(32),
        ak_public=bytes.fromhex("00180023000b") + bytes(18),
        pcrs={SHA256: {0: bytes(32), 7: bytes([7]) * 32}, SHA1: {0: bytes(20)}},
        enrollment_ref="enr-0001",
        event_log=bytes(16),
        ima_log=b"10 " + b"0" * 40 + b" ima-ng sha256:" + b"1" * 64 + b" /init\n",
        ima_offset=7,
    )


def raw_map(ev: Evidence) -> dict[int, Any]:
    return {
        0: 1,
        1: ev.device_id,
        2: ev.nonce,
        3: ev.quote,
        4: ev.signature,
        5: ev.ak_public,
        8: {alg: dict(v) for alg, v in ev.pcrs.items()},
        11: ev.ima_offset,
    }


def evidence_file() -> dict[str, Any]:
    ev = base_evidence()
    minimal = raw_map(ev)
    valid = [
        ("full bundle", ev.encode(), ev),
        (
            "minimal bundle",
            encode(minimal),
            Evidence.decode(encode(minimal)),
        ),
    ]
    tests: list[dict[str, Any]] = []
    for comment, data, decoded in valid:
        view = decoded.to_json()
        tests.append(
            {
                "comment": comment,
                "input": data.hex(),
                "result": "valid",
                "device_id": view["device_id"],
                "nonce": view["nonce"],
                "ima_offset": view["ima_offset"],
                "pcrs": view["pcrs"],
                "flags": ["Reencodes"],
            }
        )
    longer_offset = ev.encode().replace(b"\x0b\x07", b"\x0b\x18\x07", 1)
    invalid: list[tuple[str, bytes, str, list[str]]] = [
        ("empty input", b"", "MalformedInputError", []),
        ("not a map", encode([1]), "MalformedInputError", []),
        ("trailing byte", ev.encode() + b"\x00", "MalformedInputError", []),
        ("truncated", ev.encode()[:-1], "MalformedInputError", []),
        ("non-preferred integer", longer_offset, "MalformedInputError", ["NonCanonical"]),
        ("unknown field 12", encode({**minimal, 12: 0}), "MalformedInputError", ["Strict"]),
        (
            "missing quote",
            encode({k: v for k, v in minimal.items() if k != 3}),
            "MalformedInputError",
            [],
        ),
        ("version 2", encode({**minimal, 0: 2}), "MalformedInputError", []),
        ("nonce of 15 bytes", encode({**minimal, 2: bytes(15)}), "MalformedInputError", []),
        (
            "sha256 PCR of 20 bytes",
            encode({**minimal, 8: {SHA256: {0: bytes(20)}}}),
            "MalformedInputError",
            [],
        ),
        (
            "PCR index 24",
            encode({**minimal, 8: {SHA256: {24: bytes(32)}}}),
            "MalformedInputError",
            [],
        ),
        (
            "unknown bank 0x0099",
            encode({**minimal, 8: {0x99: {0: bytes(32)}}}),
            "MalformedInputError",
            [],
        ),
        ("quote of 4097 bytes", encode({**minimal, 3: bytes(4097)}), "LimitExceededError", []),
        ("duplicate map key", b"\xa2\x00\x01\x00\x01", "MalformedInputError", []),
    ]
    for comment, data, error, flags in invalid:
        tests.append(
            {
                "comment": comment,
                "input": data.hex(),
                "result": "invalid",
                "error": error,
                "flags": flags,
            }
        )
    return header(
        "trustedge evidence bundle decoding (deterministic CBOR, version 1)",
        "hand-built bundles; see docs/attest-fleet.md for the CDDL",
        {
            "Reencodes": "decoding then encoding gives the input bytes",
            "NonCanonical": "valid CBOR that is not the deterministic encoding",
            "Strict": "unknown fields are rejected, not ignored",
        },
        [{"type": "EvidenceDecode", "tests": tests}],
    )


# -- EAR -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_sign(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jwt(key: Any, claims: dict[str, Any], alg: str | None = None) -> str:
    name = alg or ("EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256")
    head = b64url(json.dumps({"alg": name, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{head}.{body}"
    return signing_input + "." + b64url(raw_sign(key, signing_input.encode()))


def cwt(key: Any, claims: dict[int, Any], alg: int | None = None) -> bytes:
    number = alg if alg is not None else (-8 if isinstance(key, ed25519.Ed25519PrivateKey) else -7)
    protected = encode({1: number})
    payload = encode(claims)
    sig = raw_sign(key, encode(["Signature1", protected, b"", payload]))
    return encode(CBORTag(18, [protected, {}, payload, sig]))


def spki(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        .hex()
    )


def results() -> tuple[AttestationResult, AttestationResult]:
    vid = VerifierId(build="trustedge-vectors", developer="https://trustedge.invalid")
    good = AttestationResult(
        NOW,
        vid,
        {
            "edge-0042": appraisal_from_findings(
                [
                    Finding.AK_ENROLLED,
                    Finding.SOFTWARE_TPM,
                    Finding.BOOT_APPROVED,
                    Finding.RUNTIME_APPROVED,
                ],
                policy_id="fleet-v1",
            )
        },
        nonce=bytes(range(32)),
    )
    bad = AttestationResult(
        NOW,
        vid,
        {
            "edge-0043": appraisal_from_findings(
                [Finding.AK_ENROLLED, (Finding.BOOT_POLICY_VIOLATION, "PCR4: unexpected app")]
            )
        },
    )
    return good, bad


def ear_file() -> dict[str, Any]:
    good, bad = results()
    tests: list[dict[str, Any]] = []

    def valid(comment: str, key: Any, token: str | bytes, result: AttestationResult) -> None:
        tests.append(
            {
                "comment": comment,
                "key": spki(key),
                "format": "jwt" if isinstance(token, str) else "cwt",
                "token": token if isinstance(token, str) else token.hex(),
                "result": "valid",
                "status": result.status.value,
                "claims": result.to_json_claims(),
            }
        )

    def invalid(comment: str, key: Any, token: str | bytes, error: str) -> None:
        tests.append(
            {
                "comment": comment,
                "key": spki(key),
                "format": "jwt" if isinstance(token, str) else "cwt",
                "token": token if isinstance(token, str) else token.hex(),
                "result": "invalid",
                "error": error,
            }
        )

    valid("affirming, JWT EdDSA", ED, jwt(ED, good.to_json_claims()), good)
    valid("affirming, JWT ES256", P256, jwt(P256, good.to_json_claims()), good)
    valid("contraindicated, CWT EdDSA", ED, cwt(ED, bad.to_cbor_claims()), bad)
    valid("contraindicated, CWT ES256", P256, cwt(P256, bad.to_cbor_claims()), bad)
    valid("RFC 9864 name Ed25519 in JWT", ED, jwt(ED, good.to_json_claims(), "Ed25519"), good)
    valid("RFC 9864 COSE -19", ED, cwt(ED, bad.to_cbor_claims(), -19), bad)
    token = jwt(ED, good.to_json_claims())
    h, b, s = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))
    forged["iat"] = NOW + 1
    invalid(
        "JWT claims changed", ED, f"{h}.{b64url(json.dumps(forged).encode())}.{s}", "SignatureError"
    )
    invalid("JWT from another key", OTHER_ED, token, "SignatureError")
    invalid(
        "JWT claims ES256 for an Ed25519 key",
        ED,
        jwt(ED, good.to_json_claims(), "ES256"),
        "SignatureError",
    )
    none_header = b64url(b'{"alg":"none"}')
    invalid("JWT alg none", ED, f"{none_header}.{b}.", "SignatureError")
    invalid("CWT from another key", OTHER_ED, cwt(ED, bad.to_cbor_claims()), "SignatureError")
    invalid("CWT ES384 algorithm", P256, cwt(P256, bad.to_cbor_claims(), -35), "SignatureError")
    invalid("CWT untagged", ED, encode([b"", {}, b"", b""]), "MalformedInputError")
    wrong_profile = dict(bad.to_cbor_claims())
    wrong_profile[265] = "tag:example.invalid,2026:other"
    invalid("signed, but not the EAR profile", ED, cwt(ED, wrong_profile), "MalformedInputError")
    inconsistent = dict(bad.to_cbor_claims())
    inconsistent[266] = {"edge-0043": {1000: 2, 1001: {2: 96}}}
    invalid(
        "status affirming with a contraindicated claim",
        ED,
        cwt(ED, inconsistent),
        "MalformedInputError",
    )
    return header(
        "EAR (draft-ietf-rats-ear) tokens: JWT and CWT/COSE_Sign1, ES256 and EdDSA",
        "built from trustedge.attestation.findings; ECDSA with RFC 6979 deterministic nonces",
        {},
        [{"type": "EarVerify", "tests": tests}],
    )


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    args = parser.parse_args()
    files = {"evidence.json": evidence_file(), "ear.json": ear_file()}
    status = 0
    for name, data in files.items():
        path = OUT / name
        text = render(data)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} is out of date: run {GENERATOR}", file=sys.stderr)
                status = 1
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({data['numberOfTests']} tests)")
    return status


if __name__ == "__main__":
    sys.exit(main())
