"""Result-signing algorithms: ES256 (ECDSA P-256/SHA-256) and EdDSA (Ed25519).

Signatures are in the JOSE/COSE raw form (``r || s`` for ECDSA, 64 bytes
for Ed25519). The algorithm is always derived from the *key* and then
compared with what a token claims, so a token can never pick a weaker
algorithm or a different key type (no ``alg`` confusion, no ``none``).
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from trustedge.errors import SignatureError, UnsupportedAlgorithmError

__all__ = [
    "COSE_ALGORITHMS",
    "PrivateKey",
    "PublicKey",
    "algorithm_for",
    "sign",
    "verify",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: JOSE name -> COSE algorithm number (RFC 9053: ES256 -7, EdDSA -8; RFC 9864's
#: fully-specified Ed25519 is -19 and ESP256 -9).
COSE_ALGORITHMS: Final = {"ES256": -7, "EdDSA": -8, "Ed25519": -19, "ESP256": -9}
#: Names a token may carry for what a key does: the polymorphic name and
#: RFC 9864's fully-specified one mean the same thing for these keys.
_ALIASES: Final = {"ES256": ("ES256", "ESP256"), "EdDSA": ("EdDSA", "Ed25519")}


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """The JOSE algorithm name a key signs with; raises for any other key."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "EdDSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if isinstance(key.curve, ec.SECP256R1):
            return "ES256"
        raise UnsupportedAlgorithmError(f"EC curve {key.curve.name} is not supported (P-256 only)")
    raise UnsupportedAlgorithmError(
        f"{type(key).__name__} keys cannot sign results (ES256 or EdDSA keys only)"
    )


def sign(key: PrivateKey, data: bytes) -> tuple[str, bytes]:
    """Sign ``data``; return ``(algorithm, raw signature)``."""
    alg = algorithm_for(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return alg, key.sign(data)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return alg, r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(key: PublicKey, claimed_alg: object, data: bytes, signature: bytes) -> None:
    """Verify a raw signature; raise :class:`SignatureError` on any mismatch.

    ``claimed_alg`` (what the token says) must name the key's algorithm
    (ES256/ESP256 for P-256, EdDSA/Ed25519 for Ed25519).
    """
    alg = algorithm_for(key)
    if not isinstance(claimed_alg, str) or claimed_alg not in _ALIASES[alg]:
        raise SignatureError(f"token algorithm {claimed_alg!r} does not match the key ({alg})")
    if len(signature) != 64:
        raise SignatureError(f"{alg} signature must be 64 bytes, got {len(signature)}")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("attestation result signature does not verify") from None
