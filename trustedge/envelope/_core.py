"""Shared steps of opening: required-context check, slot selection and unwrap,
key-commitment check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trustedge.envelope import _cobblestone as cb
from trustedge.envelope._format import ContextValue, Prefix, binding
from trustedge.envelope.slots import Identity
from trustedge.errors import (
    AccessDeniedError,
    ContextMismatchError,
    KeyNotFoundError,
    KeyProviderError,
    MalformedInputError,
    TruncationError,
    UnsupportedAlgorithmError,
    VerificationError,
)

__all__ = ["check_context", "unwrap"]


def check_context(prefix: Prefix, required: Mapping[str, ContextValue] | None) -> None:
    """Every ``required`` key must be stored with exactly that value (extra stored
    keys are allowed). Raises :class:`ContextMismatchError`. This runs before
    any unwrap; the stored context is authenticated later by the commitment."""
    if not required:
        return
    stored = prefix.header.context
    wrong = [k for k, v in required.items() if k not in stored or stored[k] != v]
    if wrong:
        raise ContextMismatchError(f"context differs for {sorted(wrong)}")


def unwrap(
    prefix: Prefix, chunk_header: bytes, identities: Sequence[Identity]
) -> tuple[bytes, cb.ChunkCipher]:
    """Find a slot one of ``identities`` opens, unwrap the file key and verify it
    against the body's commitment. Returns ``(file_key, chunk cipher)``.

    Raises :class:`~trustedge.errors.TruncationError` (short body header),
    :class:`~trustedge.errors.CommitmentError` as soon as an unwrapped key does not
    match the commitment (wrong header or a slot holding another key),
    :class:`AccessDeniedError` or :class:`KeyProviderError` when the only
    matching slots were refused by (or failed in) their TPM/KMS,
    else :class:`KeyNotFoundError` listing what was tried.
    """
    if not identities:
        raise ValueError("give at least one identity")
    if len(chunk_header) < cb.HEADER_SIZE:
        raise TruncationError("the body ends inside its 56-byte header")
    bind = binding(prefix.header_bytes)
    tried: list[str] = []
    provider_errors: list[AccessDeniedError | KeyProviderError] = []
    for i, slot in enumerate(prefix.slots):
        for ident in identities:
            if not ident.matches(slot):
                continue
            try:
                file_key = ident.unwrap(slot, bind)
            except (AccessDeniedError, KeyProviderError) as exc:
                provider_errors.append(exc)
                continue
            except (VerificationError, MalformedInputError, UnsupportedAlgorithmError) as exc:
                tried.append(f"slot {i} ({slot.kek_id}): {exc}")
                continue
            cipher = cb.open_header(
                prefix.header.aead, file_key, chunk_header[: cb.HEADER_SIZE], prefix.context
            )
            return file_key, cipher
    if provider_errors and not tried:
        raise provider_errors[0]
    ids = ", ".join(s.kek_id for s in prefix.slots) or "none"
    detail = "; ".join(tried) if tried else f"no slot matches the given keys (slots: {ids})"
    raise KeyNotFoundError(detail)
