"""SUIT manifests (draft-ietf-suit-manifest-37 subset): codec, authentication, processor."""

from trustedge.ota.suit.auth import AuthenticatedManifest, KeySet, authenticate
from trustedge.ota.suit.codec import (
    Command,
    Digest,
    Manifest,
    UnverifiedEnvelope,
    decode_envelope,
    decode_manifest,
    digest_of_member,
    encode_envelope,
    encode_manifest,
    encode_sequence,
)

__all__ = [
    "AuthenticatedManifest",
    "Command",
    "Digest",
    "KeySet",
    "Manifest",
    "UnverifiedEnvelope",
    "authenticate",
    "decode_envelope",
    "decode_manifest",
    "digest_of_member",
    "encode_envelope",
    "encode_manifest",
    "encode_sequence",
]
