"""Helpers the attest CLI builds on: key loading, token detection, views."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustedge.attestation import cli_support as cli
from trustedge.attestation.ear import (
    Appraisal,
    AttestationResult,
    TrustTier,
    TrustVector,
    VerifierId,
    sign_cwt,
    sign_jwt,
)
from trustedge.attestation.evidence import Evidence
from trustedge.errors import MalformedInputError, SignatureError, UnsupportedAlgorithmError

NOW = 1_700_000_000
RESULT = AttestationResult(
    NOW,
    VerifierId("b", "d"),
    {"edge-1": Appraisal(TrustTier.WARNING, TrustVector(file_system=32), reasons=("why",))},
)


def _pem_pub(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der_priv(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "make", [lambda: ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate]
)
def test_verify_from_files(make: object) -> None:
    key = make()  # type: ignore[operator]
    for token in (sign_jwt(RESULT, key).encode() + b"\n", sign_cwt(RESULT, key)):
        for keyfile in (_pem_pub(key), _der_priv(key)):
            assert cli.verify_result_bytes(token, keyfile).claims == RESULT
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError):
        cli.verify_result_bytes(sign_cwt(RESULT, key), _pem_pub(other))


def test_key_loading_errors() -> None:
    with pytest.raises(MalformedInputError):
        cli.load_public_key(b"not a key")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnsupportedAlgorithmError):
        cli.load_public_key(_pem_pub(rsa_key))  # type: ignore[arg-type]
    assert isinstance(
        cli.load_private_key(_der_priv(ed25519.Ed25519PrivateKey.generate())),
        ed25519.Ed25519PrivateKey,
    )


def test_views() -> None:
    view = cli.result_view(RESULT)
    assert view["status"] == "warning"
    assert view["claims"]["submods"]["edge-1"]["trustedge.reasons"] == ["why"]
    text = cli.render_result(RESULT)
    assert "WARNING" in text and "file-system" in text and "- why" in text
    ev = Evidence("d", bytes(16), b"q", b"s", b"a", {11: {0: bytes(32)}})
    assert cli.show_evidence(ev.encode())["device_id"] == "d"
