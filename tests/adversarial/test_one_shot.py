"""The one-shot recipe (``verify_evidence``: a pinned AK, no store, no signing) refuses
the same lies as the Verifier, on both backends."""

from __future__ import annotations

import os

import pytest

from tests.adversarial import test_event_log_lies as logs
from tests.adversarial.device import Device, golden_events
from trustedge.attestation import EvidenceRejectedError, verify_evidence
from trustedge.attestation.ear import TrustTier
from trustedge.attestation.evidence import Evidence

SAMPLE = [c for c in logs.CASES if c.name in {
    "bootkit-relabelled-as-efi-action",
    "secure-boot-off-data-says-on",
    "kernel-cmdline-pcr12-relabelled-as-event-tag",
    "grub-tags-swapped-to-hide-the-command-line",
    "events-reordered-within-pcr4",
}]  # fmt: skip


def _evidence(device: Device, nonce: bytes) -> Evidence:
    policy = device.verifier.policy
    return device.attester.evidence(nonce, pcrs=policy.pcrs)


def test_the_golden_boot_passes_the_one_shot_check(device: Device) -> None:
    device.boot(golden_events())
    nonce = os.urandom(32)
    appraisal = verify_evidence(
        _evidence(device, nonce),
        ak_public=device.attester.ak.public,
        policy=device.verifier.policy,
        nonce=nonce,
        now=device.clock[0],
    )
    assert appraisal.status is TrustTier.AFFIRMING


@pytest.mark.parametrize("case", SAMPLE, ids=lambda c: c.name)
def test_the_one_shot_check_refuses_the_lie(case: logs.Case, device: Device) -> None:
    truth, story = case.attack()
    device.boot(truth, story)
    nonce = os.urandom(32)
    with pytest.raises(EvidenceRejectedError) as caught:
        verify_evidence(
            _evidence(device, nonce),
            ak_public=device.attester.ak.public,
            policy=device.verifier.policy,
            nonce=nonce,
            now=device.clock[0],
        )
    appraisal = caught.value.appraisal
    assert appraisal.status is TrustTier.CONTRAINDICATED
    reasons = appraisal.result.reasons
    assert any(r.startswith(case.reason) for r in reasons), reasons
