"""The ``KeyProvider`` protocol for cloud KMS / HSM plug-ins, and a local example.

A key provider wraps and unwraps the 32-byte file key of an envelope under a
key it holds (AWS KMS ``Encrypt``/``Decrypt``, GCP KMS, Azure Key Vault, Vault
Transit, a PKCS#11 HSM, ...). The envelope passes ``aad``: bytes that bind the
wrapped key to one envelope and one slot. A provider whose service takes
associated data / an encryption context must pass ``aad`` there; one whose
service does not must bind it some other way (the example below appends a
digest of ``aad`` to the wrapped plaintext and checks it on unwrap).

Contract of ``unwrap_key``: return the exact bytes given to ``wrap_key`` for the
same ``aad``, or raise :class:`~trustedge.errors.VerificationError` when the
wrapped key or ``aad`` does not authenticate, or
:class:`~trustedge.errors.KeyProviderError` when the service is unavailable or
refuses (permissions, policy, attestation). Those two must stay distinct:
only the first can mean tampering.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from trustedge.errors import KeyProviderError, VerificationError

__all__ = ["KeyProvider", "LocalKeyFileProvider"]

_AAD_TAG_SIZE = 16


@runtime_checkable
class KeyProvider(Protocol):
    """What a KMS plug-in implements. ``provider_id`` names the provider kind
    (``"aws-kms"``), ``key_id`` the key within it (an ARN, a resource name)."""

    @property
    def provider_id(self) -> str: ...

    @property
    def key_id(self) -> str: ...

    def wrap_key(self, key: bytes, *, aad: bytes) -> bytes:
        """Wrap ``key``, bound to ``aad``. Raises ``KeyProviderError``."""
        ...

    def unwrap_key(self, wrapped: bytes, *, aad: bytes) -> bytes:
        """Unwrap; raises ``VerificationError`` (bad data) or ``KeyProviderError``."""
        ...


class LocalKeyFileProvider:
    """Example provider over a local 32-byte key file, using AES key wrap with
    padding (RFC 5649, the format HSM/KMS key-import APIs use).

    The wrapped plaintext is ``key || SHA-256(aad)[:16]`` because AES-KWP has no
    associated data: the digest is checked (constant time) on unwrap. Real KMS
    plug-ins follow the same shape, calling their service instead.
    """

    provider_id = "local-file"

    def __init__(self, key: bytes, *, key_id: str | None = None) -> None:
        if len(key) != 32:
            raise ValueError("the local provider's key must be 32 bytes")
        self._key = key
        self._key_id = (
            key_id or hashlib.sha256(b"trustedge/local-kms/v1\x00" + key).hexdigest()[:16]
        )

    @property
    def key_id(self) -> str:
        return self._key_id

    @classmethod
    def generate(cls, rng: Callable[[int], bytes] = os.urandom) -> LocalKeyFileProvider:
        return cls(rng(32))

    @classmethod
    def from_file(cls, path: str | Path, *, key_id: str | None = None) -> LocalKeyFileProvider:
        """Load the key file; a missing or unreadable file is a ``KeyProviderError``."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyProviderError(f"cannot read key file {path}: {exc.strerror}") from exc
        if len(data) != 32:
            raise KeyProviderError(f"key file {path} does not hold a 32-byte key")
        return cls(data, key_id=key_id)

    def wrap_key(self, key: bytes, *, aad: bytes) -> bytes:
        tag = hashlib.sha256(aad).digest()[:_AAD_TAG_SIZE]
        return aes_key_wrap_with_padding(self._key, key + tag)

    def unwrap_key(self, wrapped: bytes, *, aad: bytes) -> bytes:
        try:
            plain = aes_key_unwrap_with_padding(self._key, wrapped)
        except (InvalidUnwrap, ValueError):
            raise VerificationError("wrapped key does not unwrap under this key") from None
        if len(plain) <= _AAD_TAG_SIZE:
            raise VerificationError("wrapped key is too short")
        key, tag = plain[:-_AAD_TAG_SIZE], plain[-_AAD_TAG_SIZE:]
        if not hmac.compare_digest(tag, hashlib.sha256(aad).digest()[:_AAD_TAG_SIZE]):
            raise VerificationError("wrapped key is bound to a different envelope or slot")
        return key
