"""A compromised device lies about its quote: the PCR values, the nonce, the
selection, the bank and the time. The AK's signature covers only the quote
message (``TPMS_ATTEST``): everything beside it in the evidence is a claim.
Every case ends contraindicated with its reason, on the SoftwareTPM and on swtpm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cbor2
import pytest

from tests.adversarial.device import Device, assert_caught, golden_events, reasons
from trustedge.attestation.ear import TrustTier
from trustedge.attestation.evidence import Evidence

SHA256 = 0x000B
SHA1 = 0x0004


def _pcrs(ev: Evidence) -> dict[int, bytes]:
    return dict(ev.bank("sha256"))


def _raw_pcrs(ev: Evidence, values: dict[int, bytes]) -> bytes:
    """The evidence's CBOR with key 8 (PCR values) replaced, bypassing the
    ``Evidence`` constructor's checks, as a hostile device would send it."""
    doc = cbor2.loads(ev.encode())
    doc[8] = {SHA256: values}
    return bytes(cbor2.dumps(doc))


def resplit_0_and_1(device: Device) -> Evidence | bytes:
    """Issue 14 finding 4: PCR0||PCR1 as PCR0's value and nothing as PCR1's."""
    ev = device.evidence()
    values = _pcrs(ev)
    values[0], values[1] = values[0] + values[1], b""
    return _raw_pcrs(ev, values)


def resplit_20_44(device: Device) -> Evidence | bytes:
    ev = device.evidence()
    values = _pcrs(ev)
    joined = values[0] + values[1]
    values[0], values[1] = joined[:20], joined[20:]
    return _raw_pcrs(ev, values)


def swap_pcr4_and_5(device: Device) -> Evidence | bytes:
    ev = device.evidence()
    values = _pcrs(ev)
    values[4], values[5] = values[5], values[4]
    return replace(ev, pcrs={SHA256: values})


def golden_pcr4_claimed(device: Device) -> Evidence | bytes:
    """The reported PCR4 is a value computed from the golden log; the quote's digest differs."""
    ev = device.evidence()
    values = _pcrs(ev)
    values[4] = bytes(32)
    return replace(ev, pcrs={SHA256: values})


def drop_pcr4_from_the_quote(device: Device) -> Evidence | bytes:
    """The device quotes every PCR but 4 (where the bootkit is)."""
    return device.evidence(pcrs=[p for p in device.verifier.policy.pcrs if p != 4])


def sha1_bank_only(device: Device) -> Evidence | bytes:
    ev = device.evidence()
    return _raw_sha1(ev)


def _raw_sha1(ev: Evidence) -> bytes:
    doc = cbor2.loads(ev.encode())
    doc[8] = {SHA1: {i: bytes(20) for i in _pcrs(ev)}}
    return bytes(cbor2.dumps(doc))


def replayed_nonce(device: Device) -> Evidence | bytes:
    ev = device.evidence()
    assert device.appraise(ev).status is TrustTier.AFFIRMING
    return ev


def fresh_nonce_old_quote(device: Device) -> Evidence | bytes:
    """An old quote presented with a new, valid nonce (the quote's extraData differs)."""
    old = device.evidence()
    assert device.appraise(old).status is TrustTier.AFFIRMING
    new = device.verifier.challenge(old.device_id)
    return replace(old, nonce=new.nonce)


def stale_quote(device: Device) -> Evidence | bytes:
    """A quote held back for a still-valid nonce, sent after a newer one was accepted."""
    held = device.evidence()
    assert device.appraise().status is TrustTier.AFFIRMING
    return held


def expired_nonce(device: Device) -> Evidence | bytes:
    ev = device.evidence()
    device.clock[0] += device.verifier.policy.nonce_ttl + 1
    return ev


def another_ak(device: Device) -> Evidence | bytes:
    """A quote by an AK the device created later (not the enrolled one)."""
    from trustedge.attestation.attester import Attester

    other = device.backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    rogue = Attester(
        device.backend, ak=other, device_id=device.attester.device_id,
        eventlog_path=device.eventlog, ima_path=device.ima,
    )  # fmt: skip
    ch = device.verifier.challenge(device.attester.device_id)
    return rogue.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)


def signature_of_another_quote(device: Device) -> Evidence | bytes:
    first = device.evidence()
    second = device.evidence()
    return replace(second, signature=first.signature)


@dataclass(frozen=True)
class Case:
    name: str
    attack: Callable[[Device], Evidence | bytes]
    reason: str
    first: bool = False


CASES = [
    Case("pcr-values-resplit-64-0", resplit_0_and_1, "evidence-malformed"),
    Case("pcr-values-resplit-20-44", resplit_20_44, "evidence-malformed"),
    Case("pcr-values-swapped-4-and-5", swap_pcr4_and_5, "pcr-digest-mismatch"),
    Case("pcr4-value-claimed", golden_pcr4_claimed, "pcr-digest-mismatch"),
    Case("pcr4-left-out-of-the-quote", drop_pcr4_from_the_quote, "quote-invalid"),
    Case("sha1-bank-only", sha1_bank_only, "quote-invalid"),
    Case("nonce-replay", replayed_nonce, "nonce-rejected"),
    Case("old-quote-with-a-fresh-nonce", fresh_nonce_old_quote, "quote-invalid"),
    Case("stale-quote", stale_quote, "quote-rollback"),
    Case("expired-nonce", expired_nonce, "nonce-rejected"),
    Case("quote-by-another-ak", another_ak, "unknown-device"),
    Case("signature-of-another-quote", signature_of_another_quote, "quote-signature-invalid"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_quote_lie_is_caught(case: Case, device: Device) -> None:
    device.boot(golden_events())
    outcome = device.appraise(case.attack(device))
    assert_caught(outcome, case.reason, TrustTier.CONTRAINDICATED)
    assert "boot-approved" not in reasons(outcome) or case.reason in (
        "nonce-rejected",
        "quote-rollback",
    )


def test_values_for_unquoted_pcrs_are_never_used(device: Device) -> None:
    """A value for PCR 11, which the quote does not cover, is not verified and so
    reaches nothing: the verified quote holds only quoted PCRs."""
    from trustedge.attestation.quote import AttestationKey, verify_quote
    from trustedge.hazmat.tpm2 import Public

    device.boot(golden_events())
    ev = device.evidence()
    values = _pcrs(ev)
    values[11] = bytes(32)
    policy = device.verifier.policy
    quote = verify_quote(
        ev.quote,
        ev.signature,
        AttestationKey.from_public(Public.unmarshal_tpm2b(ev.ak_public)),
        nonce=ev.nonce,
        pcrs={"sha256": values},
        selection={"sha256": policy.pcrs},
    )
    assert 11 not in quote.pcrs["sha256"] and set(quote.pcrs["sha256"]) == set(policy.pcrs)
