"""The signed model digest: the one place model signatures are made and checked.

Model delivery (``trustedge.ota``) and model attestation
(:mod:`trustedge.attestation.modellog`) need one thing from a model
signature: *which digest a trusted signer vouched for*. Everything that
asks goes through :func:`verify_signed_model` (signature only, what a
remote verifier can check) or :func:`load_verified_model` (signature and
then every file of the directory), so moving to OpenSSF Model Signing
(``trustedge.models``) changes these two functions, not their callers.

Interim format, until ``trustedge.models`` lands: a tagged COSE_Sign1
(``trustedge.cose``) whose attached payload is the deterministic CBOR of
the directory's :class:`~trustedge.hashing.manifest.ModelManifest` (every
file's path, size, SHA-256 and tree digest). The *signed model digest* is
SHA-256 over that payload (:meth:`ModelManifest.digest`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from trustedge.cose import PrivateKey, PublicKey, create_sign1, decode_sign1, key_id, verify_sign1
from trustedge.errors import MalformedInputError, SignatureError, VerificationError
from trustedge.hashing.manifest import ModelManifest, hash_model, verify_model

__all__ = [
    "MAX_SIGNATURE",
    "SIGNATURE_FORMAT",
    "VerifiedModelSignature",
    "load_verified_model",
    "sign_model",
    "verify_signed_model",
]

#: What the model-load log records as the signature's format.
SIGNATURE_FORMAT: Final = "trustedge-cose-manifest-v1"
#: Largest signature file accepted (a manifest lists 32 bytes per 4 MiB leaf).
MAX_SIGNATURE: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedModelSignature:
    """A model signature that verified with ``signer`` (a key id, SHA-256 of its COSE_Key).

    ``digest`` is the signed model digest; ``manifest`` the signed file list.
    """

    digest: bytes
    manifest: ModelManifest
    signer: bytes


def sign_model(
    directory: str | os.PathLike[str], key: PrivateKey, *, ignore: Iterable[str] = ()
) -> bytes:
    """Hash every file under ``directory`` and sign the manifest; returns the
    signature file's bytes (keep it beside the directory, e.g. ``DIR.sig``)."""
    manifest = hash_model(directory, ignore=ignore)
    return create_sign1(manifest.to_cbor(), key, unprotected={4: key_id(key.public_key())})


def verify_signed_model(signature: bytes, keys: Sequence[PublicKey]) -> VerifiedModelSignature:
    """Check ``signature`` with the trusted ``keys`` (no file is read).

    Returns the signed digest and manifest, or raises ``SignatureError``
    (no key verifies) / ``MalformedInputError`` (not a model signature).
    """
    if len(signature) > MAX_SIGNATURE:
        raise MalformedInputError(f"model signature larger than {MAX_SIGNATURE} bytes")
    message = decode_sign1(signature)
    for key in keys:
        try:
            payload = verify_sign1(message, key)
        except SignatureError:
            continue
        manifest = ModelManifest.from_cbor(payload)
        return VerifiedModelSignature(hashlib.sha256(payload).digest(), manifest, key_id(key))
    raise SignatureError("the model signature does not verify with any trusted key")


def load_verified_model(
    directory: str | os.PathLike[str], signature: bytes, keys: Sequence[PublicKey]
) -> VerifiedModelSignature:
    """:func:`verify_signed_model`, then every file of ``directory`` against the
    signed manifest (exact file set, both digests). Raises ``SignatureError`` or
    ``VerificationError`` (a file differs, is missing or was added)."""
    verified = verify_signed_model(signature, keys)
    try:
        verify_model(directory, verified.manifest)
    except OSError as exc:
        raise VerificationError(f"model directory unreadable: {exc}") from exc
    return verified
