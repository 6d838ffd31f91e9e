"""Signed policy documents: a policy is read only after its signature, version and expiry hold.

A signed policy is a COSE_Sign1 (``trustedge.cose``) over a deterministic-CBOR map::

    {"type": "trustedge-policy", "kind": "appraisal" | "boot" | "runtime",
     "version": uint, "expires": uint (POSIX seconds), "policy": bytes (the JSON document)}

:func:`verify_signed_policy` checks the signature against the caller's keys, that
the document has not expired at ``now`` and that its version is not below
``min_version`` (a verifier passes the last version it accepted, so an older
signed policy cannot be replayed); only then is the JSON handed back, as a
:class:`VerifiedPolicy` — a different type from the unverified bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from trustedge import _cbor
from trustedge.cose import (
    PrivateKey,
    PublicKey,
    create_sign1,
    key_id,
    sign1_from_item,
    verify_sign1,
)
from trustedge.errors import MalformedInputError, PolicyError, SignatureError

__all__ = [
    "POLICY_KINDS",
    "VerifiedPolicy",
    "load_appraisal_policy_document",
    "sign_policy",
    "verify_signed_policy",
]

_TYPE: Final = "trustedge-policy"
POLICY_KINDS: Final = ("appraisal", "boot", "runtime")
_MAX: Final = 64 << 20
#: The outer COSE_Sign1 and the inner map: a few items, one large byte string.
_LIMITS: Final = _cbor.DecodeLimits(max_size=_MAX, max_depth=4, max_items=64)


@dataclass(frozen=True)
class VerifiedPolicy:
    """A policy document whose signature, expiry and version were checked."""

    document: bytes
    kind: str
    version: int
    expires: int
    signer: bytes  # key id (SHA-256 of the COSE_Key) of the key that verified it


def sign_policy(
    document: bytes, key: PrivateKey, *, kind: str, version: int, expires: int
) -> bytes:
    """Sign a JSON policy ``document`` (COSE_Sign1, the key id in the unprotected header)."""
    if kind not in POLICY_KINDS:
        raise MalformedInputError(f"policy kind must be one of {', '.join(POLICY_KINDS)}")
    for name, value in (("version", version), ("expires", expires)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
            raise MalformedInputError(f"policy {name} must be an unsigned integer")
    payload = _cbor.encode({"type": _TYPE, "kind": kind, "version": version,
                            "expires": expires, "policy": bytes(document)})  # fmt: skip
    return create_sign1(payload, key, unprotected={4: key_id(key)})


def verify_signed_policy(
    signed: bytes,
    keys: Sequence[PublicKey],
    *,
    now: int,
    min_version: int = 0,
    kind: str | None = None,
) -> VerifiedPolicy:
    """Verify a signed policy; raises SignatureError, PolicyError (expired, older than
    ``min_version``, another kind) or MalformedInputError."""
    if not keys:
        raise SignatureError("no key to verify the signed policy with")
    if len(signed) > _MAX:
        raise MalformedInputError(f"signed policy larger than {_MAX} bytes")
    message = sign1_from_item(_cbor.decode(signed, limits=_LIMITS))
    payload: bytes | None = None
    signer = b""
    for key in keys:
        try:
            payload = verify_sign1(message, key)
        except SignatureError:
            continue
        signer = key_id(key)
        break
    if payload is None:
        raise SignatureError("the policy signature does not verify with any given key")
    doc = _cbor.decode(payload, limits=_LIMITS, canonical=True)
    if not isinstance(doc, dict) or doc.get("type") != _TYPE:
        raise MalformedInputError("not a trustedge signed policy")
    if set(doc) != {"type", "kind", "version", "expires", "policy"}:
        raise MalformedInputError(
            "signed policy fields must be type, kind, version, expires, policy"
        )
    got_kind, version, expires, document = (
        doc["kind"],
        doc["version"],
        doc["expires"],
        doc["policy"],
    )
    if got_kind not in POLICY_KINDS or not isinstance(document, bytes):
        raise MalformedInputError("signed policy kind or document malformed")
    for name, value in (("version", version), ("expires", expires)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MalformedInputError(f"signed policy {name} must be an unsigned integer")
    if kind is not None and got_kind != kind:
        raise PolicyError(f"signed policy is a {got_kind} policy, not a {kind} policy")
    if now >= expires:
        raise PolicyError(f"signed policy version {version} expired at {expires}")
    if version < min_version:
        raise PolicyError(f"signed policy version {version} is older than {min_version}")
    return VerifiedPolicy(document, got_kind, version, expires, signer)


def load_appraisal_policy_document(
    data: bytes, *, keys: Sequence[PublicKey] = (), now: int, min_version: int = 0
) -> Any:
    """An :class:`~trustedge.attestation.verifier.AppraisalPolicy` from a JSON document or,
    when ``keys`` are given, only from a signed one (kind ``appraisal``) that verifies.

    A verifier that requires signed policies passes its policy keys: then an unsigned
    document is refused, so nobody who can only write the policy file can change policy.
    """
    from trustedge.attestation.verifier import load_appraisal_policy

    if keys:
        verified = verify_signed_policy(
            data, keys, now=now, min_version=min_version, kind="appraisal"
        )
        return load_appraisal_policy(verified.document)
    if data[:1] == b"\xd2":  # a COSE_Sign1 (tag 18)
        raise SignatureError("a signed policy needs the policy key to verify it with")
    return load_appraisal_policy(data)
