"""KDFa/KDFe against tpm2-pytss's implementations; MakeCredential round trips."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge.errors import MalformedInputError, VerificationError
from trustedge.hazmat.tpm2 import (
    EK_TEMPLATES,
    Credential,
    TPMAlg,
    kdfa,
    kdfe,
    make_credential,
    pcr_composite_digest,
    recover_credential,
    with_key,
)


@pytest.mark.parametrize("bits", [8, 96, 128, 256, 512, 1000])
def test_kdfa_kdfe_match_tpm2_pytss(bits: int) -> None:
    from tpm2_pytss.constants import TPM2_ALG
    from tpm2_pytss.internal import crypto

    key, u, v = b"k" * 32, b"context-u", b"context-v"
    assert kdfa(int(TPMAlg.SHA256), key, b"STORAGE", u, v, bits) == crypto._kdfa(
        TPM2_ALG.SHA256, key, b"STORAGE", u, v, bits
    )
    assert kdfe(int(TPMAlg.SHA256), key, b"IDENTITY", u, v, bits) == crypto.kdfe(
        TPM2_ALG.SHA256, key, b"IDENTITY\x00", u, v, bits
    )


def test_kdf_label_terminator_and_truncation() -> None:
    a = kdfa(int(TPMAlg.SHA256), b"k", b"LABEL", b"", b"", 12)
    assert a == kdfa(int(TPMAlg.SHA256), b"k", b"LABEL\x00", b"", b"", 12)
    assert len(a) == 2 and a[0] < 16
    with pytest.raises(ValueError):
        kdfe(int(TPMAlg.SHA256), b"z", b"L", b"", b"", 0)


def test_pcr_composite_digest() -> None:
    import hashlib

    assert pcr_composite_digest(int(TPMAlg.SHA256), [b"a", b"b"]) == hashlib.sha256(b"ab").digest()


def _ek(kind: str) -> tuple[object, object]:
    priv: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa2048":
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ecc-p256":
        priv = ec.generate_private_key(ec.SECP256R1())
    else:
        priv = ec.generate_private_key(ec.SECP384R1())
    return with_key(EK_TEMPLATES[kind], priv.public_key()), priv


@pytest.mark.parametrize("kind", ["rsa2048", "ecc-p256", "ecc-p384"])
def test_make_and_recover_credential(kind: str) -> None:
    ek, priv = _ek(kind)
    name = b"\x00\x0b" + b"\x07" * 32
    cred = make_credential(ek, b"secret", name)  # type: ignore[arg-type]
    assert (
        recover_credential(ek, priv, cred.credential_blob, cred.encrypted_secret, name) == b"secret"
    )  # type: ignore[arg-type]
    with pytest.raises(VerificationError):
        recover_credential(
            ek, priv, cred.credential_blob, cred.encrypted_secret, name[:-1] + b"\x00"
        )  # type: ignore[arg-type]
    tampered = bytearray(cred.credential_blob)
    tampered[-1] ^= 1
    with pytest.raises(VerificationError):
        recover_credential(ek, priv, bytes(tampered), cred.encrypted_secret, name)  # type: ignore[arg-type]
    round_trip = Credential.from_tpm2_tools(cred.to_tpm2_tools())
    assert round_trip == cred


def test_credential_file_and_secret_checks() -> None:
    ek, _ = _ek("ecc-p256")
    with pytest.raises(ValueError):
        make_credential(ek, b"x" * 33, b"\x00\x0b" + bytes(32))  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        Credential.from_tpm2_tools(b"\xba\xdc\xc0\xde\x00\x00\x00\x02")
    with pytest.raises(MalformedInputError):
        Credential.from_tpm2_tools(b"\x00" * 12)
