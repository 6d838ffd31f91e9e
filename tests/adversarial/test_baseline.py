"""The control: the golden boot affirms on both backends, with boot_aggregate checked."""

from __future__ import annotations

from tests.adversarial.device import Device, golden_events, reasons
from trustedge.attestation.ear import TrustTier


def test_golden_boot_affirms_with_every_check(device: Device) -> None:
    device.boot(golden_events())
    outcome = device.appraise()
    assert outcome.status is TrustTier.AFFIRMING, outcome.appraisal.reasons
    found = reasons(outcome)
    assert found[0] == "ak-enrolled"
    assert {"boot-approved", "secure-boot-approved", "runtime-approved"} <= set(found)
    # PCR0-9 are quoted: boot_aggregate is checked (and matched), never "unchecked"
    assert "ima-boot-aggregate-unchecked" not in found
    assert "ima-boot-aggregate-mismatch" not in found
