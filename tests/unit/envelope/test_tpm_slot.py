"""TPM-sealed KEK slots, through the ``tpm_backend`` fixture only (see conftest)."""

from __future__ import annotations

from typing import Any

import pytest

from trustedge import envelope
from trustedge.errors import AccessDeniedError, KeyNotFoundError


def test_tpm_sealed_kek_round_trip(tpm_backend: Any) -> None:
    kek = envelope.TPMSealedKEK.create(tpm_backend, pcrs={"sha256": [16]}, auth=b"pin")
    sealed = envelope.seal(b"model cache", [kek])
    # A fresh object knows only the blob: the KEK comes from unsealing.
    again = envelope.TPMSealedKEK(tpm_backend, kek.sealed, auth=b"pin")
    assert again.kek_id == kek.kek_id
    assert envelope.open(sealed, [again]) == b"model cache"


def test_tpm_policy_failure_is_access_denied(tpm_backend: Any) -> None:
    # PCR 16 is the resettable debug PCR: real TPMs let the test put it back.
    tpm_backend.pcr_reset(16)
    kek = envelope.TPMSealedKEK.create(tpm_backend, pcrs={"sha256": [16]})
    sealed = envelope.seal(b"x", [kek])
    try:
        tpm_backend.pcr_extend(16, {"sha256": b"\x01" * 32})
        with pytest.raises(AccessDeniedError):
            envelope.open(sealed, [envelope.TPMSealedKEK(tpm_backend, kek.sealed)])
    finally:
        tpm_backend.pcr_reset(16)


def test_tpm_wrong_auth_is_access_denied(tpm_backend: Any) -> None:
    kek = envelope.TPMSealedKEK.create(tpm_backend, auth=b"right")
    sealed = envelope.seal(b"x", [kek])
    with pytest.raises(AccessDeniedError):
        envelope.open(sealed, [envelope.TPMSealedKEK(tpm_backend, kek.sealed, auth=b"wrong")])


def test_tpm_and_software_slots_together(tpm_backend: Any) -> None:
    tpm = envelope.TPMSealedKEK.create(tpm_backend)
    soft = envelope.KEK.generate()
    sealed = envelope.seal(b"x", [tpm, soft])
    assert envelope.open(sealed, [soft]) == b"x"
    other = envelope.TPMSealedKEK.create(tpm_backend)
    with pytest.raises(KeyNotFoundError):
        envelope.open(sealed, [other])


def test_authorized_kek_needs_a_signed_policy(tpm_backend: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge.hazmat.tpm2.policy import PCRPolicy, authority_public, sign_policy

    key = ec.derive_private_key(0xA11CE, ec.SECP256R1())
    authority = authority_public(key.public_key()).marshal_tpm2b()
    kek = envelope.TPMSealedKEK.create_authorized(tpm_backend, authority=authority)
    sealed = envelope.seal(b"x", [kek])
    with pytest.raises(AccessDeniedError, match="no signed PCR policy"):
        envelope.open(sealed, [envelope.TPMSealedKEK(tpm_backend, kek.sealed, authority=authority)])
    values = tpm_backend.pcr_read({"sha256": [16]})
    policy = sign_policy(PCRPolicy.from_values(values, {"sha256": [16]}), key).encode()
    again = envelope.TPMSealedKEK(tpm_backend, kek.sealed, authority=authority, policies=[policy])
    assert envelope.open(sealed, [again]) == b"x"
