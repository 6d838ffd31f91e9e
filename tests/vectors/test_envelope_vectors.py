"""trustedge's own envelope vectors (vectors/envelope/envelope.json)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from tests.vectors import VectorCase, error_class, iter_cases, vector_cases
from trustedge import envelope

FILE = "envelope/envelope.json"


def _identity(case: VectorCase) -> envelope.Identity:
    key = case.hex("key")
    kind = case["keyType"]
    if kind == "kek":
        return envelope.KEK(key)
    if kind == "hpke-x25519":
        return envelope.HPKEIdentity(x25519.X25519PrivateKey.from_private_bytes(key))
    assert kind == "sealed-box"
    return envelope.SealedBoxIdentity(key)


@vector_cases(FILE)
def test_envelope_vector(case: VectorCase) -> None:
    env = case.hex("envelope")
    ctx = case.get("requiredContext")
    if case.result == "valid":
        msg = envelope.open(env, [_identity(case)], context=ctx)
        assert len(msg) == case["msgLength"]
        assert hashlib.sha256(msg).hexdigest() == case["msgSha256"]
        if "msg" in case.test:
            assert msg == case.hex("msg")
        return
    assert case.error is not None
    with pytest.raises(error_class(case.error)):
        envelope.open(env, [_identity(case)], context=ctx)


def test_every_tamper_class_is_covered() -> None:
    flags = {f for c in iter_cases(FILE) for f in c.flags}
    assert {"ModifiedHeader", "ModifiedSlot", "ModifiedBody", "ChunkReordering", "Truncation",
            "TrailingData", "WrongContext", "WrongKey", "Salamander"} <= flags
