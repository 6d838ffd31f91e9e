"""COSE_Key (RFC 9052 §7) encode/decode and key ids.

Supported key types: OKP (Ed25519, Ed448), EC2 (P-256, P-384, P-521, with the
``y`` coordinate as bytes; compressed points are refused) and Symmetric.
Decoding takes hostile bytes and raises only MalformedInputError /
LimitExceededError; a key type or curve trustedge does not do raises
UnsupportedAlgorithmError.

:func:`key_id` is the one way trustedge names a public key: SHA-256 over the
deterministic CBOR of the key's *public* COSE_Key (only kty, crv, x, y), so an
attacker-chosen ``kid`` header can never select a key.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from trustedge import _cbor
from trustedge.cose.algorithms import PrivateKey, PublicKey
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError

__all__ = [
    "KTY_EC2",
    "KTY_OKP",
    "KTY_SYMMETRIC",
    "decode_key",
    "encode_key",
    "key_from_map",
    "key_id",
    "key_to_map",
]

KTY_OKP: Final = 1
KTY_EC2: Final = 2
KTY_SYMMETRIC: Final = 4

_EC_CURVES: Final[dict[int, ec.EllipticCurve]] = {
    1: ec.SECP256R1(),
    2: ec.SECP384R1(),
    3: ec.SECP521R1(),
}
_EC_IDS: Final[dict[str, int]] = {"secp256r1": 1, "secp384r1": 2, "secp521r1": 3}
_OKP_ED25519: Final = 6
_OKP_ED448: Final = 7
_KEY_LIMITS: Final = _cbor.DecodeLimits(max_size=4096, max_depth=4, max_items=64)

AnyKey = PublicKey | PrivateKey | bytes


def _raw(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_to_map(key: AnyKey, *, include_private: bool = False) -> dict[int, Any]:
    """The COSE_Key map of ``key`` (public part only unless ``include_private``)."""
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, bytes):
        if not include_private:
            raise ValueError("a symmetric key has no public part")
        return {1: KTY_SYMMETRIC, -1: key}
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
        if pub.curve.name not in _EC_IDS:
            raise UnsupportedAlgorithmError(f"curve {pub.curve.name} is not supported")
        size = (pub.curve.key_size + 7) // 8
        nums = pub.public_numbers()
        out: dict[int, Any] = {
            1: KTY_EC2,
            -1: _EC_IDS[pub.curve.name],
            -2: nums.x.to_bytes(size, "big"),
            -3: nums.y.to_bytes(size, "big"),
        }
        if include_private and isinstance(key, ec.EllipticCurvePrivateKey):
            out[-4] = key.private_numbers().private_value.to_bytes(size, "big")
        return out
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        out = key_to_map(key.public_key())
        if include_private:
            out[-4] = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        return out
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {1: KTY_OKP, -1: _OKP_ED25519, -2: _raw(key)}
    if isinstance(key, ed448.Ed448PublicKey):
        return {1: KTY_OKP, -1: _OKP_ED448, -2: _raw(key)}
    raise TypeError(f"unsupported key object {type(key).__name__}")


def encode_key(key: AnyKey, *, include_private: bool = False) -> bytes:
    """Deterministic CBOR of the COSE_Key of ``key``."""
    return _cbor.encode(key_to_map(key, include_private=include_private))


def key_id(key: PublicKey | PrivateKey) -> bytes:
    """SHA-256 over the deterministic CBOR of the *public* COSE_Key of ``key``."""
    return hashlib.sha256(encode_key(key)).digest()


def _bstr(m: dict[Any, Any], label: int, what: str) -> bytes:
    value = m.get(label)
    if not isinstance(value, bytes):
        raise MalformedInputError(f"COSE_Key {what} (label {label}) must be a byte string")
    return value


def key_from_map(m: object) -> AnyKey:
    """Build a key object from a decoded COSE_Key map (private when ``d`` is present).

    Raises MalformedInputError for a map that is not a well-formed key and
    UnsupportedAlgorithmError for a key type or curve trustedge does not do.
    """
    if not isinstance(m, dict):
        raise MalformedInputError("COSE_Key must be a map")
    kty = m.get(1)
    try:
        if kty == KTY_EC2:
            curve = _EC_CURVES.get(m.get(-1))  # type: ignore[arg-type]
            if curve is None:
                raise UnsupportedAlgorithmError(f"EC2 curve {m.get(-1)!r} is not supported")
            size = (curve.key_size + 7) // 8
            x, y = _bstr(m, -2, "x"), _bstr(m, -3, "y")
            if len(x) != size or len(y) != size:
                raise MalformedInputError("EC2 coordinates have the wrong length")
            pub = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            )
            if -4 in m:
                d = _bstr(m, -4, "d")
                priv = ec.EllipticCurvePrivateNumbers(int.from_bytes(d, "big"), pub)
                return priv.private_key()
            return pub.public_key()
        if kty == KTY_OKP:
            crv = m.get(-1)
            x = _bstr(m, -2, "x")
            if crv == _OKP_ED25519:
                if -4 in m:
                    return ed25519.Ed25519PrivateKey.from_private_bytes(_bstr(m, -4, "d"))
                return ed25519.Ed25519PublicKey.from_public_bytes(x)
            if crv == _OKP_ED448:
                if -4 in m:
                    return ed448.Ed448PrivateKey.from_private_bytes(_bstr(m, -4, "d"))
                return ed448.Ed448PublicKey.from_public_bytes(x)
            raise UnsupportedAlgorithmError(f"OKP curve {crv!r} is not supported")
        if kty == KTY_SYMMETRIC:
            return _bstr(m, -1, "k")
    except ValueError as exc:
        if isinstance(exc, MalformedInputError):
            raise
        raise MalformedInputError(f"invalid COSE_Key: {exc}") from None
    raise UnsupportedAlgorithmError(f"COSE key type {kty!r} is not supported")


def decode_key(data: bytes) -> AnyKey:
    """Decode a COSE_Key from (hostile) bytes; see :func:`key_from_map`."""
    return key_from_map(_cbor.decode(data, limits=_KEY_LIMITS))
