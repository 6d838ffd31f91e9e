"""Authenticate a SUIT envelope against a set of trusted keys with a threshold.

Order (SUIT THREAT.IMG.NON_AUTH): zero authentication blocks -> reject; the
claimed SUIT_Digest must equal SHA-256 over the bstr-wrapped manifest
(constant-time); then each COSE_Sign1 block is checked with the trusted keys,
detached payload = the bstr-wrapped SUIT_Digest; at least ``threshold``
*distinct* keys (by key id, never by ``kid``) must verify. Only then is the
manifest parsed. Failure raises :class:`~trustedge.errors.SignatureError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trustedge.cose import PublicKey, Sign1Message, key_id, verify_sign1
from trustedge.errors import MalformedInputError, SignatureError
from trustedge.ota.suit.codec import Manifest, UnverifiedEnvelope, decode_manifest

__all__ = [
    "AuthenticatedManifest",
    "KeySet",
    "authenticate",
    "check_threshold",
    "decode_verified",
    "verified_signers",
]


@dataclass(frozen=True)
class KeySet:
    """Trusted public keys by key id, and how many distinct ones must sign."""

    keys: Mapping[bytes, PublicKey]
    threshold: int = 1

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold must be at least 1")

    @classmethod
    def of(cls, keys: Iterable[PublicKey], threshold: int = 1) -> KeySet:
        """Key set from key objects; ids are computed (SHA-256 of the COSE_Key)."""
        return cls({key_id(k): k for k in keys}, threshold)


@dataclass(frozen=True)
class AuthenticatedManifest:
    """A manifest whose digest and signatures were verified.

    ``signers`` are the key ids that verified; ``digest`` the manifest digest.
    """

    manifest: Manifest
    envelope: UnverifiedEnvelope
    signers: frozenset[bytes]
    digest: bytes


def verified_signers(
    envelope: UnverifiedEnvelope, keys: Mapping[bytes, PublicKey]
) -> tuple[frozenset[bytes], bytes]:
    """Check the digest, then verify each COSE_Sign1 block once.

    Returns the ids of the keys in ``keys`` (id -> key) whose signature over
    the SUIT_Digest verified -- each key at most once, however many blocks it
    signed -- and the manifest digest as computed. No threshold is applied
    here: callers map the verified ids to roles. Raises SignatureError (no
    blocks, digest mismatch); a block that verifies with none of ``keys`` is
    not an error (it counts for nobody).
    """
    if not envelope.auth_blocks:
        raise SignatureError("envelope is unauthenticated: no authentication blocks")
    computed = envelope.manifest_digest
    if not envelope.digest.matches(computed):
        raise SignatureError("manifest does not match the authenticated SUIT_Digest")
    verified: set[bytes] = set()
    payload = envelope.digest_raw
    for block in envelope.auth_blocks:
        # A kid header only orders the attempts (the matching key first); it
        # never selects or excludes a key, so a lying kid costs time, not trust.
        hint = block.unprotected.get(4)
        if isinstance(hint, bytes) and hint in keys and hint not in verified:
            if _verifies(block, keys[hint], payload):
                verified.add(hint)
                continue
        for kid, key in keys.items():
            if kid in verified or kid == hint:
                continue  # each key counts once; the hinted key was tried above
            if _verifies(block, key, payload):
                verified.add(kid)
                break
    return frozenset(verified), computed


def _verifies(block: Sign1Message, key: PublicKey, payload: bytes) -> bool:
    try:
        verify_sign1(block, key, detached_payload=payload)
    except (SignatureError, MalformedInputError):
        return False
    return True


def authenticate(envelope: UnverifiedEnvelope, keys: KeySet) -> AuthenticatedManifest:
    """Check digest and signatures, then parse the manifest.

    Raises SignatureError (no blocks, digest mismatch, fewer than
    ``keys.threshold`` distinct trusted keys verified) or MalformedInputError
    (manifest content not understood, after authentication).
    """
    verified, computed = verified_signers(envelope, keys.keys)
    check_threshold(verified, keys)
    return AuthenticatedManifest(decode_verified(envelope), envelope, verified, computed)


def check_threshold(verified: frozenset[bytes], keys: KeySet) -> frozenset[bytes]:
    """The ids of ``keys`` among ``verified``; SignatureError unless they reach its threshold."""
    mine = verified & keys.keys.keys()
    if len(mine) < keys.threshold:
        raise SignatureError(
            f"{len(mine)} of the required {keys.threshold} trusted signatures verified"
        )
    return mine


def decode_verified(envelope: UnverifiedEnvelope) -> Manifest:
    """Parse the manifest of ``envelope``: call only after its signatures verified."""
    return decode_manifest(
        envelope.manifest_raw, envelope.members, legacy_install=envelope.legacy_install
    )
