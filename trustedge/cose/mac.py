"""COSE_Mac0 (tag 17) and COSE_Mac with direct-key recipients (tag 97): verify.

Same rules as :mod:`trustedge.cose.sign`: tag checked, ``alg`` only from the
protected bucket, tag compared in constant time over the exact protected
bytes received. Raises SignatureError on a failed check and
MalformedInputError on malformed structures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from trustedge import _cbor
from trustedge.cose import algorithms
from trustedge.cose._headers import ALG, LIMITS, check_buckets, decode_protected
from trustedge.errors import MalformedInputError, SignatureError

__all__ = [
    "MAC0_TAG",
    "MAC_TAG",
    "MacMessage",
    "create_mac0",
    "decode_mac",
    "decode_mac0",
    "verify_mac",
]

MAC0_TAG: Final = 17
MAC_TAG: Final = 97


@dataclass(frozen=True)
class MacMessage:
    """An unverified COSE_Mac0 or COSE_Mac (``recipients`` empty for Mac0)."""

    context: str
    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes | None
    tag: bytes
    recipients: tuple[Any, ...] = ()


def _decode(data: bytes, tag: int, size: int, context: str, tagged: bool) -> list[Any]:
    item = _cbor.decode(data, limits=LIMITS)
    if isinstance(item, _cbor.CBORTag):
        if item.tag != tag:  # not secret: CBOR tag numbers are public structure
            raise MalformedInputError(f"{context} must carry CBOR tag {tag}, found {item.tag}")
        item = item.value
    elif tagged:
        raise MalformedInputError(f"{context} must be tagged with CBOR tag {tag}")
    if not isinstance(item, list) or len(item) != size:
        raise MalformedInputError(f"{context} must be an array of {size} elements")
    return item


def _message(body: list[Any], context: str) -> MacMessage:
    protected = decode_protected(body[0])
    unprotected = check_buckets(protected, body[1])
    payload, tag = body[2], body[3]
    if payload is not None and not isinstance(payload, bytes):
        raise MalformedInputError("payload must be a byte string or nil")
    if not isinstance(tag, bytes):
        raise MalformedInputError("MAC tag must be a byte string")
    recipients = tuple(body[4]) if len(body) == 5 and isinstance(body[4], list) else ()
    return MacMessage(context, body[0], protected, unprotected, payload, tag, recipients)


def decode_mac0(data: bytes, *, tagged: bool = True) -> MacMessage:
    """Decode a COSE_Mac0 from hostile bytes (unverified)."""
    return _message(_decode(data, MAC0_TAG, 4, "COSE_Mac0", tagged), "MAC0")


def decode_mac(data: bytes, *, tagged: bool = True) -> MacMessage:
    """Decode a COSE_Mac from hostile bytes (unverified); recipients must be
    ``direct`` (alg -6) with no further recipients."""
    body = _decode(data, MAC_TAG, 5, "COSE_Mac", tagged)
    if not isinstance(body[4], list) or not body[4]:
        raise MalformedInputError("COSE_Mac needs a non-empty recipients array")
    for rec in body[4]:
        if not isinstance(rec, list) or len(rec) != 3:
            raise MalformedInputError("COSE_recipient must be an array of 3 elements")
        r_prot = decode_protected(rec[0])
        if not isinstance(rec[1], dict):
            raise MalformedInputError("recipient unprotected header must be a map")
        # A recipient's alg may sit in either bucket (RFC 9052 §5.1); only
        # "direct" (-6) is accepted, so nothing here can select a weaker key path.
        if r_prot.get(ALG, rec[1].get(ALG)) != -6:
            raise MalformedInputError("only direct-key recipients are supported")
        if rec[2] != b"":
            raise MalformedInputError("a direct recipient carries no ciphertext")
    return _message(body, "MAC")


def verify_mac(
    message: MacMessage,
    key: bytes,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
) -> bytes:
    """Verify the MAC tag with the shared ``key``; return the payload.

    Raises SignatureError when ``alg`` is missing, not a MAC algorithm for the
    key, or the tag does not match (constant-time compare).
    """
    payload = message.payload if message.payload is not None else detached_payload
    if payload is None or (message.payload is not None and detached_payload is not None):
        raise MalformedInputError("supply the payload exactly once (attached or detached)")
    alg = message.protected.get(ALG)
    if alg is None:
        raise SignatureError("no alg in the protected header")
    tbm = _cbor.encode([message.context, message.protected_raw, external_aad, payload])
    algorithms.verify_mac(alg, key, tbm, message.tag)
    return payload


def create_mac0(payload: bytes, key: bytes, *, alg: int = algorithms.HS256) -> bytes:
    """Create a tagged COSE_Mac0 over ``payload`` (HMAC by default)."""
    prot = _cbor.encode({ALG: alg})
    tag = algorithms.mac(alg, key, _cbor.encode(["MAC0", prot, b"", payload]))
    return _cbor.encode(_cbor.CBORTag(MAC0_TAG, [prot, {}, payload, tag]))
