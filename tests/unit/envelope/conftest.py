"""Fixtures of the envelope tests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustedge import _cbor
from trustedge.errors import VerificationError


class StandInSealer:
    """Stand-in until SoftwareTPM/Tpm2Backend are merged; the lead will replace
    this fixture with both real backends.

    Implements only the sealing part of ``TPMBackend`` (``seal``/``unseal``) plus
    ``pcr_extend``/``pcr_reset`` so PCR-policy failures can be tested: a blob is an AES-GCM
    encryption, under a key that never leaves this object, of the secret bound
    to the PCR values at sealing time and to the auth value.
    """

    def __init__(self) -> None:
        self._key = AESGCM.generate_key(256)
        self._pcrs: dict[str, dict[int, bytes]] = {"sha256": {i: bytes(32) for i in range(24)}}

    def pcr_extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        for bank, digest in digests.items():
            old = self._pcrs[bank][index]
            self._pcrs[bank][index] = hashlib.new(bank, old + digest).digest()

    def pcr_reset(self, index: int) -> None:
        for bank in self._pcrs.values():
            bank[index] = bytes(32)

    def _policy(self, pcrs: Mapping[str, Sequence[int]] | None, auth: bytes | None) -> bytes:
        sel = {b: sorted(ix) for b, ix in (pcrs or {}).items()}
        values = [[b, i, self._pcrs[b][i]] for b in sorted(sel) for i in sel[b]]
        return _cbor.encode([values, hashlib.sha256(auth or b"").digest()])

    def seal(
        self,
        secret: bytes,
        *,
        pcrs: Mapping[str, Sequence[int]] | None = None,
        auth: bytes | None = None,
    ) -> bytes:
        if len(secret) > 128:
            raise ValueError("at most 128 bytes")
        nonce = os.urandom(12)
        sel = _cbor.encode({b: sorted(ix) for b, ix in (pcrs or {}).items()})
        ct = AESGCM(self._key).encrypt(nonce, secret, self._policy(pcrs, auth))
        return _cbor.encode([sel, nonce, ct])

    def unseal(self, blob: bytes, *, auth: bytes | None = None) -> bytes:
        sel_bytes, nonce, ct = _cbor.decode(blob)
        sel = _cbor.decode(sel_bytes)
        try:
            return AESGCM(self._key).decrypt(nonce, ct, self._policy(sel, auth))
        except InvalidTag:
            raise VerificationError("PCR policy or auth value does not match") from None


@pytest.fixture
def tpm_backend() -> StandInSealer:
    """Stand-in until SoftwareTPM/Tpm2Backend are merged; the lead will replace
    this fixture with both real backends (parametrised)."""
    return StandInSealer()
