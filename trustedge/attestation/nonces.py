"""Single-use attestation nonces with an expiry.

The verifier hands each device a fresh random nonce (``challenge``); the
device puts it in its quote's ``extraData``; the appraisal ``consume``\\s it.
A nonce is accepted once, only for the device it was issued to, and only
before it expires -- enforced atomically by the
:class:`~trustedge.attestation.store.VerifierStore`, so two appraisals racing
with the same evidence (in threads, processes or on other hosts sharing the
database) cannot both pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from trustedge.attestation.store import NonceRecord, VerifierStore
from trustedge.errors import NonceError

__all__ = ["Challenge", "NonceIssuer"]


@dataclass(frozen=True)
class Challenge:
    """A nonce issued to ``device_id``, usable while ``now < expires_at``."""

    device_id: str
    nonce: bytes
    expires_at: int


class NonceIssuer:
    """Issues and consumes nonces through a store.

    ``ttl`` is the lifetime in seconds, ``size`` the nonce length in bytes
    (16..64; 32 fits the ``extraData`` of every TPM quote with a SHA-256 or
    stronger name algorithm), ``random`` the randomness source (``os.urandom``
    unless a test passes a deterministic one).
    """

    def __init__(
        self,
        store: VerifierStore,
        *,
        ttl: int = 60,
        size: int = 32,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if not 16 <= size <= 64:
            raise ValueError("nonce size must be 16 to 64 bytes")
        self._store = store
        self._ttl = ttl
        self._size = size
        self._random = random

    def challenge(self, device_id: str, now: int) -> Challenge:
        """Issue a fresh nonce for ``device_id``, valid for ``ttl`` seconds from ``now``."""
        record = self._record(device_id, now)
        self._store.issue_nonce(record)
        return Challenge(device_id=device_id, nonce=record.nonce, expires_at=record.expires_at)

    def challenge_enrolled(self, device_id: str, now: int) -> tuple[Challenge, int] | None:
        """:meth:`challenge` for an enrolled device only, checked in the same store
        transaction (:meth:`VerifierStore.issue_challenge_nonce`): the challenge and the
        device's IMA position, or ``None`` (no nonce issued) when it is not enrolled."""
        record = self._record(device_id, now)
        position = self._store.issue_challenge_nonce(record)
        if position is None:
            return None
        challenge = Challenge(device_id=device_id, nonce=record.nonce, expires_at=record.expires_at)
        return challenge, position

    def _record(self, device_id: str, now: int) -> NonceRecord:
        nonce = self._random(self._size)
        if len(nonce) != self._size:
            raise ValueError("randomness source returned the wrong number of bytes")
        return NonceRecord(nonce=nonce, device_id=device_id, expires_at=now + self._ttl)

    def consume(self, nonce: bytes, device_id: str, now: int) -> Challenge:
        """Use up ``nonce`` for ``device_id`` at time ``now``, exactly once.

        Raises :class:`~trustedge.errors.NonceError` when the nonce has the
        wrong size, is unknown, belongs to another device, was already used
        or has expired. The lookup is by a digest of the nonce (see
        :func:`~trustedge.attestation.store.nonce_key`), so no comparison of
        nonce bytes happens outside constant time.
        """
        if not isinstance(nonce, (bytes, bytearray, memoryview)):
            raise TypeError("nonce must be bytes")
        if not 16 <= len(nonce) <= 64:
            raise NonceError("nonce has an impossible length")
        record = self._store.consume_nonce(bytes(nonce), device_id, now)
        return Challenge(
            device_id=record.device_id, nonce=record.nonce, expires_at=record.expires_at
        )

    def purge(self, now: int) -> int:
        """Forget expired nonces and enrollment challenges; return how many."""
        return self._store.purge_expired(now)
