"""Signed policy documents: signature, kind, expiry and version checked before use."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import _cbor
from trustedge.attestation.signedpolicy import sign_policy, verify_signed_policy
from trustedge.cose import create_sign1
from trustedge.errors import MalformedInputError, PolicyError, SignatureError

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
DOC = b'{"version": 1, "rules": [{"rule": "secure_boot"}]}'


def test_round_trip_and_every_refusal() -> None:
    signed = sign_policy(DOC, KEY, kind="boot", version=3, expires=2000)
    got = verify_signed_policy(signed, [KEY.public_key()], now=1000, min_version=3, kind="boot")
    assert (got.document, got.version, got.kind) == (DOC, 3, "boot")
    other = ec.derive_private_key(9, ec.SECP256R1())
    with pytest.raises(SignatureError):
        verify_signed_policy(signed, [other.public_key()], now=1000)
    with pytest.raises(SignatureError):
        verify_signed_policy(signed, [], now=1000)
    with pytest.raises(PolicyError, match="expired"):
        verify_signed_policy(signed, [KEY.public_key()], now=2000)
    with pytest.raises(PolicyError, match="older"):
        verify_signed_policy(signed, [KEY.public_key()], now=1000, min_version=4)
    with pytest.raises(PolicyError, match="not a runtime"):
        verify_signed_policy(signed, [KEY.public_key()], now=1000, kind="runtime")
    tampered = bytearray(signed)
    tampered[-70] ^= 1
    with pytest.raises((SignatureError, MalformedInputError)):
        verify_signed_policy(bytes(tampered), [KEY.public_key()], now=1000)


def test_hostile_signed_payloads() -> None:
    pub = [KEY.public_key()]
    for payload in (
        _cbor.encode({"type": "other"}),
        _cbor.encode({"type": "trustedge-policy", "kind": "boot", "version": 1, "expires": 9}),
        _cbor.encode(
            {"type": "trustedge-policy", "kind": "x", "version": 1, "expires": 9, "policy": b""}
        ),
        _cbor.encode(
            {"type": "trustedge-policy", "kind": "boot", "version": -1, "expires": 9, "policy": b""}
        ),
        _cbor.encode([1, 2]),
    ):
        with pytest.raises(MalformedInputError):
            verify_signed_policy(create_sign1(payload, KEY), pub, now=0)
    for garbage in (b"", b"\xff", b"\xd2\x84" + b"\x00" * 8):
        with pytest.raises(MalformedInputError):
            verify_signed_policy(garbage, pub, now=0)
    with pytest.raises(MalformedInputError):
        sign_policy(DOC, KEY, kind="boot", version=True, expires=1)
