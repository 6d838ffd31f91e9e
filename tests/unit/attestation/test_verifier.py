"""Verifier: policy documents, revoked devices, hostile evidence, result formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.test_attestation_e2e import DEVICE, golden_policy, make_world
from trustedge.attestation import (
    AppraisalPolicy,
    TrustAnchors,
    TrustTier,
    Verifier,
    load_appraisal_policy,
    verify_result,
)
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.store import SQLiteStore
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError, VerificationError
from trustedge.measuredboot import UnsafeNoPolicy

GOOD = {
    "version": 1,
    "policy_id": "p1",
    "pcrs": [0, 7, 10],
    "secure_boot": False,
    "nonce_ttl": 30,
    "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
    "runtime": {"digests": {"/bin/x": ["ab" * 32]}},
}


def test_policy_document_loads() -> None:
    policy = load_appraisal_policy(json.dumps(GOOD))
    assert policy.policy_id == "p1" and policy.pcrs == (0, 7, 10) and policy.nonce_ttl == 30
    assert policy.runtime is not None and not policy.secure_boot
    unsafe = load_appraisal_policy(
        json.dumps({**GOOD, "boot": "unsafe-no-policy", "runtime": None})
    )
    assert isinstance(unsafe.boot, UnsafeNoPolicy) and unsafe.runtime is None


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"boot": None},
        {"boot": 3},
        {"runtime": []},
        {"pcrs": []},
        {"pcrs": [24]},
        {"pcrs": [True]},
        {"pcrs": [0, 7]},  # runtime policy without PCR 10
        {"bank": "sha1"},
        {"nonce_ttl": 0},
        {"secure_boot": "yes"},
        {"extra": 1},
    ],
)
def test_bad_policy_documents(change: dict[str, object]) -> None:
    with pytest.raises(MalformedInputError):
        load_appraisal_policy(json.dumps({**GOOD, **change}))


def test_unknown_rule_and_non_json() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        load_appraisal_policy(
            json.dumps({**GOOD, "boot": {"version": 1, "rules": [{"rule": "x"}]}})
        )
    with pytest.raises(MalformedInputError):
        load_appraisal_policy(b"\xff")


def test_policy_object_validation() -> None:
    with pytest.raises(TypeError):
        AppraisalPolicy(boot=None, runtime=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AppraisalPolicy(boot=UnsafeNoPolicy(), runtime=None, pcrs=(30,))


@pytest.fixture
def world_parts(tmp_path: Path) -> tuple[SoftwareTPM, TrustAnchors]:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(
        signing_key=ed25519.Ed25519PrivateKey.generate(),
        software_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
        result_format="cwt",
    )
    return tpm, anchors


def test_revoked_device_is_contraindicated(
    world_parts: tuple[SoftwareTPM, TrustAnchors], tmp_path: Path
) -> None:
    world = make_world(world_parts[0], tmp_path, world_parts[1])
    evidence = world.evidence()
    world.verifier.store.revoke_device(DEVICE, world.clock[0])
    outcome = world.appraise(evidence)
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert outcome.appraisal.reasons[-1].startswith("device-revoked")
    assert isinstance(outcome.token, bytes)  # CWT


def test_unknown_device_and_uncertified_ek(
    world_parts: tuple[SoftwareTPM, TrustAnchors], tmp_path: Path
) -> None:
    tpm, anchors = world_parts
    verifier = Verifier(SQLiteStore(tmp_path / "v.db"), golden_policy(), anchors)
    with pytest.raises(VerificationError):
        verifier.challenge("nobody")
    ak = tpm.create_ak()
    with pytest.raises(VerificationError):  # no certificate, and not allowed without one
        verifier.enrollment.enroll("d", ek_public=tpm.ek_public(), ak_public=ak.public)
    with pytest.raises(MalformedInputError):
        verifier.enrollment.enroll("d", ek_public=b"\x00\x01", ak_public=ak.public)


def test_enrolling_a_device_id_with_another_ek_is_refused(
    world_parts: tuple[SoftwareTPM, TrustAnchors], tmp_path: Path
) -> None:
    tpm, anchors = world_parts
    world = make_world(tpm, tmp_path, anchors)
    other = SoftwareTPM(tmp_path / "other")
    lax = TrustAnchors(signing_key=anchors.signing_key, allow_uncertified_ek=True)
    verifier = Verifier(world.verifier.store, golden_policy(), lax)
    with pytest.raises(ValueError):
        verifier.enrollment.enroll(
            DEVICE, ek_public=other.ek_public(), ak_public=other.create_ak().public
        )


_KEY = ec.generate_private_key(ec.SECP256R1())


@given(st.binary(max_size=300))
@settings(max_examples=60, deadline=None)
def test_hostile_evidence_bytes_always_give_a_signed_result(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "v.db", durable=False)
        verifier = Verifier(
            store, golden_policy(), TrustAnchors(signing_key=_KEY), now=lambda: 1_700_000_000
        )
        outcome = verifier.appraise(data)
        store.close()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert verify_result(outcome.token, _KEY.public_key()).claims == outcome.result


def test_keep_result_stores_the_signed_result_with_its_commit(
    world_parts: tuple[SoftwareTPM, TrustAnchors], tmp_path: Path
) -> None:
    world = make_world(world_parts[0], tmp_path, world_parts[1])
    store = world.verifier.store
    evidence = world.evidence()
    outcome = world.verifier.appraise(evidence, keep_result=True)
    assert outcome.status is TrustTier.AFFIRMING, outcome.appraisal.reasons
    stored = store.get_result(DEVICE)
    assert stored is not None and stored.token == outcome.token
    assert (stored.media_type, stored.status) == ("application/eat+cwt", "affirming")
    # the same evidence again: refused (nonce used), and that signed refusal is the latest
    again = world.verifier.appraise(evidence, keep_result=True)
    assert again.status is TrustTier.CONTRAINDICATED
    latest = store.get_result(DEVICE)
    assert latest is not None and latest.token == again.token and latest.status == "contraindicated"
    # a fresh push: the firmware-log verdict computed for the first is reused
    hits = world.verifier.boot_cache.hits
    third = world.verifier.appraise(world.evidence(), keep_result=True)
    assert third.status is TrustTier.AFFIRMING and world.verifier.boot_cache.hits == hits + 1
    assert store.get_result(DEVICE).token == third.token  # type: ignore[union-attr]
