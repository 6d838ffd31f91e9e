"""Key loading for trustedge: PEM, DER and COSE_Key files into ``cryptography`` keys.

:func:`load_public_key` / :func:`load_private_key` sniff the encoding (PEM
armour, DER SubjectPublicKeyInfo/PKCS#8, or a CBOR COSE_Key map) and return
key objects usable with :mod:`trustedge.cose`. Unreadable input raises
MalformedInputError; a key type trustedge does not sign with (RSA, DSA, X25519
...) raises UnsupportedAlgorithmError. Private keys are never written
unencrypted anywhere but the path the caller names.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError

__all__ = [
    "Signer",
    "Verifier",
    "load_private_key",
    "load_public_key",
    "private_key_to_pem",
    "public_key_to_pem",
]

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@runtime_checkable
class Signer(Protocol):
    """Anything that signs bytes (a software key, an HSM, a TPM key)."""

    def sign(self, data: bytes) -> bytes: ...


@runtime_checkable
class Verifier(Protocol):
    """Anything that checks a signature and raises on failure."""

    def verify(self, signature: bytes, data: bytes) -> None: ...


def _check_public(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise UnsupportedAlgorithmError(f"curve {key.curve.name} is not supported")
        return key
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key
    raise UnsupportedAlgorithmError(f"{type(key).__name__} keys are not supported")


def load_public_key(data: bytes) -> PublicKey:
    """Load a public key from PEM or DER SubjectPublicKeyInfo.

    A private key given here yields its public part. COSE_Key input is read
    by ``trustedge.cose.decode_key`` (same layer, kept separate).
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            if b"PRIVATE KEY" in data:
                return _check_public(load_private_key(data).public_key())
            return _check_public(serialization.load_pem_public_key(data))
        try:
            return _check_public(serialization.load_der_public_key(data))
        except ValueError:
            return _check_public(load_private_key(data).public_key())
    except (ValueError, TypeError) as exc:
        if isinstance(exc, MalformedInputError):
            raise
        raise MalformedInputError(f"not a PEM/DER public key: {exc}") from None


def load_private_key(data: bytes) -> PrivateKey:
    """Load an unencrypted private key from PEM or DER (PKCS#8 / SEC1)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedInputError(f"not a PEM/DER private key: {exc}") from None
    if isinstance(
        key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
    ):
        _check_public(key.public_key())
        return key
    raise UnsupportedAlgorithmError(f"{type(key).__name__} keys are not supported")


def public_key_to_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of ``key`` (keep it offline)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
