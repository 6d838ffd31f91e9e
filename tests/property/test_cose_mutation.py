"""Mutated cose-wg messages raise only MalformedInputError or a
VerificationError from decode + verify, and never verify altered signed bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import third_party_dir
from tests.vectors.test_cose_wg import jwk_public
from trustedge import cose
from trustedge.errors import MalformedInputError, VerificationError

ROOT = third_party_dir()


def _seeds() -> list[tuple[str, bytes, Any]]:
    out = []
    for d in ("sign1-tests", "sign-tests", "mac0-tests", "eddsa-examples", "ecdsa-examples"):
        for f in sorted((ROOT / "cose/cose-wg-examples" / d).glob("*.json")):
            doc = json.loads(f.read_text())
            inp = doc["input"]
            if "sign0" in inp:
                out.append(
                    ("sign1", bytes.fromhex(doc["output"]["cbor"]), jwk_public(inp["sign0"]["key"]))
                )
            elif "sign" in inp:
                out.append(
                    (
                        "sign",
                        bytes.fromhex(doc["output"]["cbor"]),
                        jwk_public(inp["sign"]["signers"][0]["key"]),
                    )
                )
            elif "mac0" in inp:
                out.append(
                    (
                        "mac0",
                        bytes.fromhex(doc["output"]["cbor"]),
                        jwk_public(inp["mac0"]["recipients"][0]["key"]),
                    )
                )
    return out


SEEDS = _seeds()


def _verify(kind: str, data: bytes, key: Any) -> bytes:
    if kind == "sign1":
        return cose.verify_sign1(cose.decode_sign1(data), key)
    if kind == "sign":
        msg = cose.decode_sign(data)
        return cose.verify_sign(msg, msg.signatures[0], key)
    return cose.verify_mac(cose.decode_mac0(data), key)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_cose(data: st.DataObject) -> None:
    kind, seed, key = data.draw(st.sampled_from(SEEDS))
    buf = bytearray(seed)
    pos = data.draw(st.integers(0, len(buf) - 1))
    op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
    if op == "flip":
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif op == "insert":
        buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    else:
        del buf[pos : pos + data.draw(st.integers(1, 4))]
    try:
        payload = _verify(kind, bytes(buf), key)
    except (MalformedInputError, VerificationError):
        return
    assert payload == b"This is the content."
    # whatever changed was outside the signed bytes (e.g. the unprotected kid)
    original = cose.decode_sign1(seed) if kind == "sign1" else None
    if original is not None:
        again = cose.decode_sign1(bytes(buf))
        assert (again.protected_raw, again.signature) == (
            original.protected_raw,
            original.signature,
        )
