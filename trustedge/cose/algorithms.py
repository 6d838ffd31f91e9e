"""COSE algorithm identifiers and the raw sign/verify/MAC primitives behind them.

Signatures are in COSE's wire form: ECDSA as raw ``r || s`` (each half the
curve's coordinate size, RFC 9053 §2.1), EdDSA as RFC 8032 bytes.

Which algorithm may be used with which key is decided here and nowhere else:

* ``ESP256`` (-9), ``ESP384`` (-51), ``ESP512`` (-52) and ``Ed25519`` (-19),
  ``Ed448`` (-53) are fully specified and bound to one curve;
* the older polymorphic ids ``ES256`` (-7), ``ES384`` (-35), ``ES512`` (-36)
  name only the hash and accept any supported EC curve (RFC 9053 §2.1 says
  "SHOULD" for the curve pairing; cose-wg's ES512-over-P-256 example relies on
  it), and ``EdDSA`` (-8) accepts Ed25519 and Ed448 keys.

A verifier given a key and an algorithm the key may not be used with fails
with :class:`~trustedge.errors.SignatureError`: an algorithm outside the key's
allow-list is a failed check, never a reason to try harder.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from trustedge.errors import SignatureError

__all__ = [
    "ALGORITHM_NAMES",
    "EDDSA",
    "ED25519",
    "ED448",
    "ES256",
    "ES384",
    "ES512",
    "ESP256",
    "ESP384",
    "ESP512",
    "HS256",
    "HS256_64",
    "HS384",
    "HS512",
    "PrivateKey",
    "PublicKey",
    "algorithm_for_key",
    "mac",
    "sign",
    "verify",
    "verify_mac",
]

ES256: Final = -7
ESP256: Final = -9
ES384: Final = -35
ESP384: Final = -51
ES512: Final = -36
ESP512: Final = -52
EDDSA: Final = -8
ED25519: Final = -19
ED448: Final = -53
HS256_64: Final = 4
HS256: Final = 5
HS384: Final = 6
HS512: Final = 7
AES_MAC_128_64: Final = 14
AES_MAC_256_64: Final = 15
AES_MAC_128_128: Final = 25
AES_MAC_256_128: Final = 26

#: Names used in diagnostics and JSON output.
ALGORITHM_NAMES: Final[dict[int, str]] = {
    ES256: "ES256",
    ESP256: "ESP256",
    ES384: "ES384",
    ESP384: "ESP384",
    ES512: "ES512",
    ESP512: "ESP512",
    EDDSA: "EdDSA",
    ED25519: "Ed25519",
    ED448: "Ed448",
    HS256_64: "HMAC 256/64",
    HS256: "HMAC 256/256",
    HS384: "HMAC 384/384",
    HS512: "HMAC 512/512",
    AES_MAC_128_64: "AES-MAC 128/64",
    AES_MAC_256_64: "AES-MAC 256/64",
    AES_MAC_128_128: "AES-MAC 128/128",
    AES_MAC_256_128: "AES-MAC 256/128",
}

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey

_ECDSA_HASH: Final[dict[int, hashes.HashAlgorithm]] = {
    ES256: hashes.SHA256(),
    ESP256: hashes.SHA256(),
    ES384: hashes.SHA384(),
    ESP384: hashes.SHA384(),
    ES512: hashes.SHA512(),
    ESP512: hashes.SHA512(),
}
_ECDSA_CURVE: Final[dict[int, str]] = {
    ESP256: "secp256r1",
    ESP384: "secp384r1",
    ESP512: "secp521r1",
}
_POLYMORPHIC_CURVES: Final = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def _check_alg(alg: object, key: PublicKey) -> None:
    """Raise SignatureError unless ``alg`` may be used with ``key``."""
    ok = False
    if isinstance(alg, int) and not isinstance(alg, bool):
        if isinstance(key, ec.EllipticCurvePublicKey) and alg in _ECDSA_HASH:
            curve = key.curve.name
            ok = _ECDSA_CURVE.get(alg, curve) == curve and curve in _POLYMORPHIC_CURVES
        elif isinstance(key, ed25519.Ed25519PublicKey):
            ok = alg in (EDDSA, ED25519)
        elif isinstance(key, ed448.Ed448PublicKey):
            ok = alg in (EDDSA, ED448)
    if not ok:
        raise SignatureError(f"algorithm {alg!r} is not allowed for a {_key_kind(key)} key")


def _key_kind(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name
    return "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"


def algorithm_for_key(key: PublicKey | PrivateKey) -> int:
    """The fully-specified-preferred default algorithm trustedge signs with for ``key``.

    P-256 -> ES256 (-7, what every SUIT tool reads today), P-384 -> ES384,
    P-521 -> ES512, Ed25519 -> EdDSA (-8), Ed448 -> EdDSA.
    """
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return {"secp256r1": ES256, "secp384r1": ES384, "secp521r1": ES512}[key.curve.name]
    return EDDSA


def _coord_size(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    return (key.curve.key_size + 7) // 8


def verify(alg: object, key: PublicKey, to_be_signed: bytes, signature: bytes) -> None:
    """Verify ``signature`` over ``to_be_signed``; raise SignatureError if it does not hold.

    ``alg`` must be one of the algorithms ``key`` may be used with (see the
    module docstring); otherwise SignatureError as well.
    """
    _check_alg(alg, key)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            size = _coord_size(key)
            if len(signature) != 2 * size:
                raise SignatureError(
                    f"ECDSA signature must be {2 * size} bytes (raw r||s), got {len(signature)}"
                )
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            assert isinstance(alg, int)
            key.verify(encode_dss_signature(r, s), to_be_signed, ec.ECDSA(_ECDSA_HASH[alg]))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            _verify_ed25519(key, to_be_signed, signature)
        else:
            key.verify(signature, to_be_signed)
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None


def _verify_ed25519(key: ed25519.Ed25519PublicKey, message: bytes, signature: bytes) -> None:
    """RFC 8032 verification through libsodium (pynacl, a runtime dependency already).

    libsodium's ``crypto_sign_open`` verifies in about half the time OpenSSL's
    Ed25519 takes on this project's machines, and it is stricter: besides
    ``S < L`` (which OpenSSL checks too) it rejects small-order and non-canonical
    public keys and small-order ``R`` -- signatures no honest signer produces --
    so every signature it accepts, OpenSSL accepts as well (fail closed).
    docs/adr/0016-ota-verification.md records the choice.
    """
    import nacl.bindings
    import nacl.exceptions

    if len(signature) != 64:
        raise SignatureError(f"Ed25519 signature must be 64 bytes, got {len(signature)}")
    try:
        nacl.bindings.crypto_sign_open(signature + message, key.public_bytes_raw())
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise SignatureError("signature does not verify") from None


def sign(alg: int, key: PrivateKey, to_be_signed: bytes) -> bytes:
    """Sign ``to_be_signed`` with ``key`` under ``alg``; ECDSA output is raw r||s.

    Raises ``ValueError`` when ``alg`` may not be used with ``key`` (misuse).
    """
    try:
        _check_alg(alg, key.public_key())
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.sign(to_be_signed, ec.ECDSA(_ECDSA_HASH[alg]))
        r, s = decode_dss_signature(der)
        size = _coord_size(key)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(to_be_signed)


_HMAC: Final[dict[int, tuple[str, int]]] = {
    HS256_64: ("sha256", 8),
    HS256: ("sha256", 32),
    HS384: ("sha384", 48),
    HS512: ("sha512", 64),
}
_AES_MAC: Final[dict[int, tuple[int, int]]] = {
    AES_MAC_128_64: (16, 8),
    AES_MAC_256_64: (32, 8),
    AES_MAC_128_128: (16, 16),
    AES_MAC_256_128: (32, 16),
}


def mac(alg: int, key: bytes, to_be_maced: bytes) -> bytes:
    """Compute the COSE MAC tag of ``to_be_maced`` (HMAC or AES-CBC-MAC, RFC 9053 §3).

    Raises SignatureError when ``alg`` is not a MAC algorithm usable with ``key``.
    """
    if alg in _HMAC:
        name, size = _HMAC[alg]
        return hmac.new(key, to_be_maced, getattr(hashlib, name)).digest()[:size]
    if alg in _AES_MAC and len(key) == _AES_MAC[alg][0]:
        # CBC-MAC with a zero IV over the zero-padded input (RFC 9053 §3.2).
        padded = to_be_maced + b"\x00" * (-len(to_be_maced) % 16)
        enc = Cipher(algorithms.AES(key), modes.CBC(b"\x00" * 16)).encryptor()
        last = (enc.update(padded) + enc.finalize())[-16:]
        return last[: _AES_MAC[alg][1]]
    raise SignatureError(f"algorithm {alg!r} is not an allowed MAC algorithm for this key")


def verify_mac(alg: object, key: bytes, to_be_maced: bytes, tag: bytes) -> None:
    """Constant-time check of a COSE MAC tag; raise SignatureError on mismatch."""
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise SignatureError(f"algorithm {alg!r} is not an allowed MAC algorithm")
    if not hmac.compare_digest(mac(alg, key, to_be_maced), tag):
        raise SignatureError("MAC tag does not verify")
