"""The AR4SI mapping: findings -> trustworthiness vector, status and reasons."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from trustedge.attestation import ear
from trustedge.attestation.ear import TrustTier, TrustVector
from trustedge.attestation.findings import EFFECTS, Finding, appraisal_from_findings

F = Finding
GOOD_BOOT = [F.AK_ENROLLED, F.BOOT_APPROVED, F.SECURE_BOOT_APPROVED, F.RUNTIME_APPROVED]


def test_table_covers_every_finding_with_real_claims() -> None:
    assert set(EFFECTS) == set(Finding)
    names = {f.name for f in fields(TrustVector)}
    for effect in EFFECTS.values():
        assert effect.reason
        for claim, value in effect.claims:
            assert claim in names and -128 <= value <= 127


def test_hardware_device_affirming() -> None:
    appraisal = appraisal_from_findings([*GOOD_BOOT, F.HARDWARE_TPM], policy_id="p1")
    assert appraisal.status is TrustTier.AFFIRMING
    assert appraisal.trust_vector == TrustVector(
        instance_identity=ear.TRUSTWORTHY_INSTANCE,
        configuration=ear.APPROVED_CONFIG,
        executables=ear.APPROVED_RUNTIME,  # beats APPROVED_BOOT within the tier
        file_system=ear.APPROVED_FILES,
        hardware=ear.GENUINE_HARDWARE,
    )
    assert appraisal.policy_id == "p1"
    assert appraisal.reasons[0].startswith("ak-enrolled: ")


def test_software_tpm_never_claims_hardware() -> None:
    appraisal = appraisal_from_findings([*GOOD_BOOT, F.SOFTWARE_TPM])
    assert appraisal.status is TrustTier.AFFIRMING
    assert appraisal.trust_vector.hardware == ear.NO_CLAIM
    assert any(r.startswith("software-tpm:") for r in appraisal.reasons)


@pytest.mark.parametrize(
    ("finding", "claim", "value"),
    [
        (F.BOOT_POLICY_VIOLATION, "executables", ear.CONTRAINDICATED_RUNTIME),
        (F.FIRMWARE_LOG_MISMATCH, "executables", ear.CONTRAINDICATED_RUNTIME),
        (F.IMA_FILE_MODIFIED, "file_system", ear.CONTRAINDICATED_FILES),
        (F.IMA_LOG_MISMATCH, "file_system", ear.CONTRAINDICATED_FILES),
        (F.SECURE_BOOT_VIOLATION, "configuration", ear.UNSUPPORTABLE_CONFIG),
        (F.QUOTE_SIGNATURE_INVALID, "instance_identity", ear.CRYPTO_VALIDATION_FAILED),
        (F.PCR_DIGEST_MISMATCH, "instance_identity", ear.CRYPTO_VALIDATION_FAILED),
        (F.DEVICE_REVOKED, "instance_identity", ear.UNTRUSTWORTHY_INSTANCE),
        (F.UNKNOWN_DEVICE, "instance_identity", ear.UNRECOGNIZED_INSTANCE),
        (F.EK_CERT_INVALID, "hardware", ear.UNRECOGNIZED_HARDWARE),
    ],
)
def test_tampering_is_contraindicated(finding: Finding, claim: str, value: int) -> None:
    appraisal = appraisal_from_findings([*GOOD_BOOT, F.HARDWARE_TPM, (finding, "detail here")])
    assert appraisal.status is TrustTier.CONTRAINDICATED
    assert getattr(appraisal.trust_vector, claim) == value
    assert f"{finding.value}: detail here" in appraisal.reasons


@pytest.mark.parametrize("finding", [F.NONCE_REJECTED, F.QUOTE_ROLLBACK, F.EVIDENCE_MALFORMED])
def test_freshness_failures_force_contraindicated(finding: Finding) -> None:
    appraisal = appraisal_from_findings([finding])
    assert appraisal.status is TrustTier.CONTRAINDICATED
    # Even next to otherwise perfect findings.
    assert appraisal_from_findings([*GOOD_BOOT, finding]).status is TrustTier.CONTRAINDICATED


@pytest.mark.parametrize("finding", [F.CLOCK_UNSAFE, F.IMA_FILE_UNKNOWN])
def test_warnings(finding: Finding) -> None:
    assert appraisal_from_findings([*GOOD_BOOT, finding]).status is TrustTier.WARNING


def test_no_findings_is_none() -> None:
    appraisal = appraisal_from_findings([])
    assert appraisal.status is TrustTier.NONE and appraisal.reasons == ()


def test_docs_table_matches_code() -> None:
    page = Path(__file__).resolve().parents[3] / "docs" / "attest-fleet.md"
    text = page.read_text(encoding="utf-8")
    for finding, effect in EFFECTS.items():
        row = re.search(rf"^\| `{re.escape(finding.value)}` \|(.*)$", text, re.MULTILINE)
        assert row is not None, f"{finding.value} missing from the EAR mapping table"
        for claim, value in effect.claims:
            assert f"{claim.replace('_', '-')} = {value}" in row.group(1), finding
        if effect.min_status is not TrustTier.NONE:
            assert f"status ≥ {effect.min_status.value}" in row.group(1), finding
