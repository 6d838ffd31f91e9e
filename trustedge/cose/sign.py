"""COSE_Sign1 (tag 18) and COSE_Sign (tag 98): decode, verify, create.

Decoding gives *unverified* messages (:class:`Sign1Message`,
:class:`SignMessage`); nothing in them is trusted until a ``verify_*``
function returns. Verification rules:

* the CBOR tag must be the one of the expected structure (18 / 98); untagged
  input is accepted only when the caller says ``tagged=False`` explicitly;
* ``alg`` comes only from the protected bucket and must be allowed for the
  key (:mod:`trustedge.cose.algorithms`); the signature is checked over the
  exact protected bytes received (no re-encoding, so ``h'A0'`` is *not*
  treated as ``h''``);
* detached payloads (``nil``) must be supplied by the caller, attached ones
  must not be.

Verification raises :class:`~trustedge.errors.SignatureError`; malformed
structures raise :class:`~trustedge.errors.MalformedInputError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from trustedge import _cbor
from trustedge.cose import algorithms
from trustedge.cose._headers import ALG, LIMITS, check_buckets, decode_protected
from trustedge.errors import MalformedInputError, SignatureError

__all__ = [
    "SIGN1_TAG",
    "SIGN_TAG",
    "Sign1Message",
    "SignMessage",
    "Signature",
    "create_sign",
    "create_sign1",
    "decode_sign",
    "decode_sign1",
    "sign1_from_item",
    "verify_sign",
    "verify_sign1",
]

SIGN1_TAG: Final = 18
SIGN_TAG: Final = 98


def _untag(item: object, tag: int, tagged: bool, what: str) -> object:
    if isinstance(item, _cbor.CBORTag):
        if item.tag != tag:  # not secret: CBOR tag numbers are public structure
            raise MalformedInputError(f"{what} must carry CBOR tag {tag}, found tag {item.tag}")
        return item.value
    if tagged:
        raise MalformedInputError(f"{what} must be tagged with CBOR tag {tag}")
    return item


def _payload(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    raise MalformedInputError("payload must be a byte string or nil")


def _resolve_payload(attached: bytes | None, detached: bytes | None) -> bytes:
    if attached is None and detached is None:
        raise MalformedInputError("payload is detached; supply it to verify")
    if attached is not None and detached is not None:
        raise MalformedInputError("payload is attached; a detached payload was also given")
    return attached if attached is not None else detached  # type: ignore[return-value]


@dataclass(frozen=True)
class Sign1Message:
    """An unverified COSE_Sign1. ``protected_raw`` are the exact signed bytes."""

    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes | None
    signature: bytes

    @property
    def alg(self) -> object:
        """The algorithm from the protected bucket (None when absent)."""
        return self.protected.get(ALG)


def sign1_from_item(item: object, *, tagged: bool = True) -> Sign1Message:
    """Build a :class:`Sign1Message` from an already decoded CBOR item."""
    body = _untag(item, SIGN1_TAG, tagged, "COSE_Sign1")
    if not isinstance(body, list) or len(body) != 4:
        raise MalformedInputError("COSE_Sign1 must be an array of 4 elements")
    prot_raw, unprot, payload, signature = body
    protected = decode_protected(prot_raw)
    unprotected = check_buckets(protected, unprot)
    if not isinstance(signature, bytes):
        raise MalformedInputError("COSE_Sign1 signature must be a byte string")
    return Sign1Message(prot_raw, protected, unprotected, _payload(payload), signature)


def decode_sign1(data: bytes, *, tagged: bool = True) -> Sign1Message:
    """Decode a COSE_Sign1 from hostile bytes (unverified)."""
    return sign1_from_item(_cbor.decode(data, limits=LIMITS), tagged=tagged)


def verify_sign1(
    message: Sign1Message,
    key: algorithms.PublicKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
) -> bytes:
    """Verify ``message`` with ``key``; return the payload that was signed.

    Raises SignatureError when ``alg`` is missing or not allowed for ``key``
    or the signature does not verify; MalformedInputError for a missing or
    doubly given payload.
    """
    payload = _resolve_payload(message.payload, detached_payload)
    if message.alg is None:
        raise SignatureError("no alg in the protected header")
    tbs = _cbor.encode(["Signature1", message.protected_raw, external_aad, payload])
    algorithms.verify(message.alg, key, tbs, message.signature)
    return payload


def _protected_bytes(protected: Mapping[Any, Any]) -> bytes:
    return _cbor.encode(dict(protected)) if protected else b""


def create_sign1(
    payload: bytes,
    key: algorithms.PrivateKey,
    *,
    alg: int | None = None,
    unprotected: Mapping[Any, Any] | None = None,
    external_aad: bytes = b"",
    detached: bool = False,
    protected: Mapping[Any, Any] | None = None,
) -> bytes:
    """Create a tagged COSE_Sign1 over ``payload`` (``nil`` payload when ``detached``).

    ``protected`` adds header parameters beside ``alg`` (e.g. a content type); it
    may not set ``alg`` itself.
    """
    alg = algorithms.algorithm_for_key(key) if alg is None else alg
    extra = dict(protected or {})
    if ALG in extra:
        raise ValueError("alg is set by create_sign1, not in protected")
    prot = _protected_bytes({ALG: alg, **extra})
    tbs = _cbor.encode(["Signature1", prot, external_aad, payload])
    sig = algorithms.sign(alg, key, tbs)
    body = [prot, dict(unprotected or {}), None if detached else payload, sig]
    return _cbor.encode(_cbor.CBORTag(SIGN1_TAG, body))


@dataclass(frozen=True)
class Signature:
    """One COSE_Signature of a COSE_Sign (unverified)."""

    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    signature: bytes

    @property
    def alg(self) -> object:
        return self.protected.get(ALG)


@dataclass(frozen=True)
class SignMessage:
    """An unverified COSE_Sign with one or more signatures."""

    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes | None
    signatures: tuple[Signature, ...]


def decode_sign(data: bytes, *, tagged: bool = True, max_signatures: int = 64) -> SignMessage:
    """Decode a COSE_Sign from hostile bytes (unverified)."""
    body = _untag(_cbor.decode(data, limits=LIMITS), SIGN_TAG, tagged, "COSE_Sign")
    if not isinstance(body, list) or len(body) != 4:
        raise MalformedInputError("COSE_Sign must be an array of 4 elements")
    prot_raw, unprot, payload, sigs = body
    protected = decode_protected(prot_raw)
    unprotected = check_buckets(protected, unprot)
    if not isinstance(sigs, list) or not sigs:
        raise MalformedInputError("COSE_Sign needs a non-empty array of signatures")
    if len(sigs) > max_signatures:
        raise MalformedInputError(f"more than {max_signatures} signatures")
    parsed = []
    for entry in sigs:
        if not isinstance(entry, list) or len(entry) != 3:
            raise MalformedInputError("COSE_Signature must be an array of 3 elements")
        s_prot = decode_protected(entry[0])
        s_unprot = check_buckets(s_prot, entry[1])
        if not isinstance(entry[2], bytes):
            raise MalformedInputError("COSE_Signature signature must be a byte string")
        parsed.append(Signature(entry[0], s_prot, s_unprot, entry[2]))
    return SignMessage(prot_raw, protected, unprotected, _payload(payload), tuple(parsed))


def verify_sign(
    message: SignMessage,
    signature: Signature,
    key: algorithms.PublicKey,
    *,
    external_aad: bytes = b"",
    detached_payload: bytes | None = None,
) -> bytes:
    """Verify one ``signature`` of ``message`` with ``key``; return the payload.

    Threshold rules (k of n distinct keys) live with the caller, e.g.
    :mod:`trustedge.ota.trustroot`. Raises SignatureError like :func:`verify_sign1`.
    """
    payload = _resolve_payload(message.payload, detached_payload)
    if signature.alg is None:
        raise SignatureError("no alg in the signer's protected header")
    tbs = _cbor.encode(
        ["Signature", message.protected_raw, signature.protected_raw, external_aad, payload]
    )
    algorithms.verify(signature.alg, key, tbs, signature.signature)
    return payload


def create_sign(
    payload: bytes,
    signers: Sequence[algorithms.PrivateKey],
    *,
    external_aad: bytes = b"",
) -> bytes:
    """Create a tagged COSE_Sign over ``payload`` with one signature per key."""
    if not signers:
        raise ValueError("at least one signer is needed")
    out = []
    for key in signers:
        alg = algorithms.algorithm_for_key(key)
        prot = _protected_bytes({ALG: alg})
        tbs = _cbor.encode(["Signature", b"", prot, external_aad, payload])
        out.append([prot, {}, algorithms.sign(alg, key, tbs)])
    return _cbor.encode(_cbor.CBORTag(SIGN_TAG, [b"", {}, payload, out]))
