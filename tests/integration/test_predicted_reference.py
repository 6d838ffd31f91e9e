"""Verifier side: a pending update's prediction becomes the device's reference values.

The verifier stores the predicted next-boot reference per device (in its
store, SQLite here); the device then boots the predicted chain (affirming),
a chain with a component nobody predicted (contraindicated, the diverging
event named) or, before confirm, the old chain (affirming, a fallback), which
after confirm is contraindicated too. Both backends.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_attestation_e2e import (
    DEVICE,
    World,
    findings,
    golden_policy,
)
from tests.integration.test_attestation_e2e import world as world
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation.ear import TrustTier
from trustedge.attestation.simulate import boot_from_event_log
from trustedge.measuredboot import EventLogPolicy, EventType, RequireSecureBoot, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import bank_hash
from trustedge.measuredboot.predict import BootMeasurement, BootReference, predict_next_boot


def _rewrite(last_app: dict[str, bytes]) -> bytes:
    """EVENT_LOG with its last PCR4 boot application measuring ``last_app``."""
    log = parse_event_log(EVENT_LOG)
    apps = [
        ev.number
        for ev in log.unverified_events
        if ev.pcr == 4 and ev.event_type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    ]
    events = [
        LogEvent(ev.pcr, ev.event_type, ev.data, last_app if ev.number == apps[-1] else ev.digests)
        for ev in log.unverified_events[1:]
    ]
    return build_event_log(events, banks=log.banks)


def _reboot(world: World, log: bytes) -> None:
    tpm: Any = world.backend
    tpm.reboot()  # the software TPM: PCRs back to their reset values
    (world.dir / "eventlog.bin").write_bytes(log)
    boot_from_event_log(world.backend, log)


@pytest.mark.parametrize("world", ["software"], indirect=True)
def test_prediction_is_the_next_reference(world: World) -> None:
    # reference values replace golden lists of boot applications for the update window
    # (IMA is appraised elsewhere: this test is about the firmware log)
    world.verifier.policy = golden_policy(
        boot=EventLogPolicy((RequireSecureBoot(),)), runtime=None, pcrs=(1, 2, 3, 4, 5, 6, 7, 8)
    )
    log = parse_event_log(EVENT_LOG)
    banks = log.banks
    new_kernel = {b: bank_hash(b, b"kernel 6.12 authenticode") for b in banks}
    prediction = predict_next_boot(
        log.verify(log.replay()), [BootMeasurement("kernel", new_kernel)]
    )
    reference = BootReference.from_prediction(prediction)
    assert BootReference.decode(reference.encode()) == reference
    world.verifier.expect_boot(DEVICE, reference)

    _reboot(world, _rewrite(new_kernel))
    assert world.appraise().status is TrustTier.AFFIRMING

    evil = {b: bank_hash(b, b"unapproved kernel") for b in banks}
    _reboot(world, _rewrite(evil))
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "boot-policy-violation" in findings(outcome)
    text = " ".join(outcome.appraisal.reasons)
    assert "next-boot reference: PCR4 event" in text and evil["sha256"].hex() in text

    _reboot(world, EVENT_LOG)  # fallback to the old chain before confirm
    assert world.appraise().status is TrustTier.AFFIRMING
    world.verifier.expect_boot(DEVICE, reference.confirmed())
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "next-boot reference: PCR4" in " ".join(outcome.appraisal.reasons)

    world.verifier.expect_boot(DEVICE, None)  # dropped: the boot policy alone decides again
    assert world.appraise().status is TrustTier.AFFIRMING


def test_reference_rejects_malformed_documents() -> None:
    from trustedge import _cbor
    from trustedge.errors import MalformedInputError

    for doc in (
        {"bank": "md5", "pcrs": {}},
        {"bank": "sha256", "pcrs": {4: [[b"short"]]}},
        {"bank": "sha256", "pcrs": {99: [[bytes(32)]]}},
        {"bank": "sha256", "pcrs": {4: []}},
        {"bank": "sha256"},
    ):
        with pytest.raises(MalformedInputError):
            BootReference.decode(_cbor.encode(doc))
