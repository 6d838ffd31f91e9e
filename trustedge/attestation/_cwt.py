"""Minimal COSE_Sign1 (RFC 9052) for signed attestation results (CWT).

Private stand-in until ``trustedge.cose`` lands: the lead switches EAR
signing to it after merging. Produces a tagged COSE_Sign1 (tag 18) with the
algorithm in the protected header, an optional ``kid`` in the unprotected
header, and an empty external AAD. Verification decodes with the bounded
codec, requires tag 18 (optionally inside the CWT tag 61), takes the
algorithm only from the protected header and refuses ``crit`` and
unprotected ``alg``.
"""

from __future__ import annotations

from typing import Any, Final

from trustedge._cbor import CBORTag, DecodeLimits, decode, encode
from trustedge.attestation import _signing
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError

__all__ = ["sign1", "verify_sign1"]

_TAG_SIGN1: Final = 18
_TAG_CWT: Final = 61
_ALG: Final = 1
_CRIT: Final = 2
_KID: Final = 4
_LIMITS: Final = DecodeLimits(max_size=1 << 20, max_depth=16, max_items=100_000)
_NAMES: Final = {v: k for k, v in _signing.COSE_ALGORITHMS.items()}


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    return encode(["Signature1", protected, b"", payload])


def sign1(payload: bytes, key: _signing.PrivateKey, *, kid: bytes | None = None) -> bytes:
    """COSE_Sign1 over ``payload`` (tag 18), signed with ``key`` (ES256 or EdDSA)."""
    alg = _signing.algorithm_for(key)
    protected = encode({_ALG: _signing.COSE_ALGORITHMS[alg]})
    _, signature = _signing.sign(key, _sig_structure(protected, payload))
    unprotected: dict[int, Any] = {} if kid is None else {_KID: kid}
    return encode(CBORTag(_TAG_SIGN1, [protected, unprotected, payload, signature]))


def verify_sign1(token: bytes, key: _signing.PublicKey) -> bytes:
    """Verify a COSE_Sign1 with ``key``; return the payload.

    Raises :class:`~trustedge.errors.MalformedInputError` for bytes that are
    not a COSE_Sign1, :class:`~trustedge.errors.UnsupportedAlgorithmError` for
    critical headers, and :class:`~trustedge.errors.SignatureError` when the
    algorithm does not match the key or the signature fails.
    """
    obj = decode(token, limits=_LIMITS)
    if isinstance(obj, CBORTag) and obj.tag == _TAG_CWT:
        obj = obj.value
    if not isinstance(obj, CBORTag) or obj.tag != _TAG_SIGN1:
        raise MalformedInputError("not a tagged COSE_Sign1 (tag 18)")
    msg = obj.value
    if not isinstance(msg, list) or len(msg) != 4:
        raise MalformedInputError("COSE_Sign1 must be an array of 4 items")
    protected, unprotected, payload, signature = msg
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise MalformedInputError("COSE_Sign1 headers malformed")
    if not isinstance(payload, bytes):
        raise MalformedInputError("COSE_Sign1 payload must be an attached byte string")
    if not isinstance(signature, bytes):
        raise MalformedInputError("COSE_Sign1 signature must be a byte string")
    headers = decode(protected, limits=_LIMITS) if protected else {}
    if not isinstance(headers, dict):
        raise MalformedInputError("COSE protected header must be a map")
    if _CRIT in headers or _CRIT in unprotected:
        raise UnsupportedAlgorithmError("critical COSE headers are not supported")
    if _ALG in unprotected:
        raise MalformedInputError("COSE algorithm must be in the protected header")
    alg = headers.get(_ALG)
    claimed = _NAMES.get(alg) if isinstance(alg, int) and not isinstance(alg, bool) else None
    _signing.verify(key, claimed or repr(alg), _sig_structure(protected, payload), signature)
    return payload
