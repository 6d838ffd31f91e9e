"""A compromised device lies in its IMA list and about where it resumes.

The device first passes one appraisal (the verifier then stores IMA position
3: boot_aggregate, sshd, agent). Then it runs a backdoored ``sshd`` (entry 3)
and tries to hide it: the IMA tail, its offset, the entries' template names
and data, boot_aggregate. Every case ends contraindicated with its reason,
on the SoftwareTPM and on swtpm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from tests.adversarial.device import (
    Device,
    assert_caught,
    digest,
    golden_events,
    reasons,
)
from trustedge.attestation.attester import ima_tail
from trustedge.attestation.ear import TrustTier
from trustedge.attestation.evidence import Evidence
from trustedge.measuredboot import parse_ima_log
from trustedge.measuredboot.build import build_ima_entry

MISMATCH = "ima-log-mismatch"
MODIFIED = "ima-file-modified"
AGGREGATE = "ima-boot-aggregate-mismatch"
BACKDOOR = digest(b"sshd 9.9 + backdoor")


def _records(device: Device) -> list[bytes]:
    data = device.ima.read_bytes()
    entries = parse_ima_log(data).unverified_entries
    ends = [e.offset for e in entries[1:]] + [len(data)]
    return [data[e.offset : end] for e, end in zip(entries, ends, strict=True)]


def _with_tail(ev: Evidence, records: list[bytes], start: int, claimed: int) -> Evidence:
    return replace(ev, ima_log=b"".join(records[start:]), ima_offset=claimed)


def _backdoor(device: Device) -> None:
    device.measure("/usr/sbin/sshd", BACKDOOR)  # entry 3, really extended


def overlap(device: Device) -> Evidence:
    """The tail starts one entry early but claims the stored offset."""
    _backdoor(device)
    return _with_tail(device.evidence(), _records(device), 2, 3)


def claims_earlier_offset(device: Device) -> Evidence:
    _backdoor(device)
    return _with_tail(device.evidence(), _records(device), 2, 2)


def skips_the_backdoor(device: Device) -> Evidence:
    """The tail leaves out entry 3 and claims to resume at the stored offset."""
    _backdoor(device)
    device.measure("/usr/bin/edge-agent", digest(b"agent 2.4"))
    return _with_tail(device.evidence(), _records(device), 4, 3)


def claims_later_offset(device: Device) -> Evidence:
    _backdoor(device)
    device.measure("/usr/bin/edge-agent", digest(b"agent 2.4"))
    return _with_tail(device.evidence(), _records(device), 4, 4)


def drops_the_backdoor(device: Device) -> Evidence:
    """The backdoor is extended but the tail sent is empty."""
    _backdoor(device)
    return _with_tail(device.evidence(), _records(device), 4, 3)


def restarts_the_list(device: Device) -> Evidence:
    """Claims the IMA list started afresh (offset 0) without a reboot."""
    _backdoor(device)
    records = _records(device)
    clean = [records[0], records[1], records[2]]
    return replace(device.evidence(), ima_log=b"".join(clean), ima_offset=0)


def _edited(record: bytes, path: str, file_digest: bytes, *, keep_hash: bool) -> bytes:
    new = build_ima_entry(path, file_digest, algo="sha256")
    if not keep_hash:
        return new
    # keep the original (SHA-1) template hash: only the template data is edited
    return new[:4] + record[4:24] + new[24:]


def template_data_edited(device: Device) -> Evidence:
    """The backdoor's digest replaced by the golden one; template hash left as logged."""
    _backdoor(device)
    records = _records(device)
    records[3] = _edited(records[3], "/usr/sbin/sshd", digest(b"sshd 9.9"), keep_hash=True)
    return _with_tail(device.evidence(), records, 3, 3)


def template_rebuilt(device: Device) -> Evidence:
    """The whole entry rebuilt with the golden digest (template hash recomputed)."""
    _backdoor(device)
    records = _records(device)
    records[3] = _edited(records[3], "/usr/sbin/sshd", digest(b"sshd 9.9"), keep_hash=False)
    return _with_tail(device.evidence(), records, 3, 3)


def _renamed_template(record: bytes, name: bytes) -> bytes:
    old_len = int.from_bytes(record[24:28], "little")
    return record[:24] + len(name).to_bytes(4, "little") + name + record[28 + old_len :]


def template_name_relabelled(name: bytes) -> Callable[[Device], Evidence]:
    """The template name is not covered by the template hash: relabel the entry."""

    def attack(device: Device) -> Evidence:
        _backdoor(device)
        records = _records(device)
        records[3] = _renamed_template(records[3], name)
        return _with_tail(device.evidence(), records, 3, 3)

    return attack


def entry_moved_to_pcr11(device: Device) -> Evidence:
    """The backdoor's entry claims PCR 11 (IMA may measure elsewhere by policy)."""
    _backdoor(device)
    records = _records(device)
    records[3] = (11).to_bytes(4, "little") + records[3][4:]
    return _with_tail(device.evidence(), records, 3, 3)


def backdoor_named_boot_aggregate(device: Device) -> Evidence:
    """A second boot_aggregate: the backdoor logged under that name (issue 14 finding 2)."""
    device.ima_record(build_ima_entry("boot_aggregate", BACKDOOR, algo="sha256"))
    return device.evidence()


def modified_program(device: Device) -> Evidence:
    _backdoor(device)
    return device.evidence()


@dataclass(frozen=True)
class Case:
    name: str
    attack: Callable[[Device], Evidence]
    reason: str
    tier: TrustTier = TrustTier.CONTRAINDICATED


CASES = [
    Case("ima-tail-overlaps-the-stored-offset", overlap, MISMATCH),
    Case("ima-tail-claims-an-earlier-offset", claims_earlier_offset, MISMATCH),
    Case("ima-tail-skips-the-backdoor", skips_the_backdoor, MISMATCH),
    Case("ima-tail-claims-a-later-offset", claims_later_offset, MISMATCH),
    Case("ima-tail-drops-the-backdoor", drops_the_backdoor, MISMATCH),
    Case("ima-list-restarted-without-a-reboot", restarts_the_list, MISMATCH),
    Case("ima-template-data-edited", template_data_edited, MISMATCH),
    Case("ima-entry-rebuilt-with-the-golden-digest", template_rebuilt, MISMATCH),
    Case("ima-template-relabelled-ima-buf", template_name_relabelled(b"ima-buf"), MODIFIED),
    Case("ima-template-relabelled-ima-sig", template_name_relabelled(b"ima-sig"), MODIFIED),
    Case("ima-template-relabelled-ima", template_name_relabelled(b"ima"), MISMATCH),
    Case("ima-template-relabelled-unknown", template_name_relabelled(b"evil-ng"), MODIFIED),
    Case("ima-entry-moved-to-pcr11", entry_moved_to_pcr11, MISMATCH),
    Case("ima-second-boot-aggregate", backdoor_named_boot_aggregate, AGGREGATE),
    Case("ima-modified-program", modified_program, MODIFIED),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_ima_lie_is_caught(case: Case, device: Device) -> None:
    device.boot(golden_events())
    first = device.appraise()
    assert first.status is TrustTier.AFFIRMING, first.appraisal.reasons
    assert_caught(device.appraise(case.attack(device)), case.reason, case.tier)


def test_unknown_program_is_a_warning(device: Device) -> None:
    """The policy says an unknown file is a warning, not a contraindication."""
    device.boot(golden_events())
    device.measure("/tmp/dropper", digest(b"dropper"))
    assert_caught(device.appraise(), "ima-file-unknown", TrustTier.WARNING)


@pytest.mark.parametrize(
    "name,aggregate",
    [
        ("all-zero", bytes(32)),
        ("of-another-boot", digest(b"PCR0..9 of a clean boot")),
    ],
)
def test_wrong_boot_aggregate_is_caught(name: str, aggregate: bytes, device: Device) -> None:
    """Entry 0 names boot_aggregate but its value is not H(quoted PCR0..9) (finding 3)."""
    _boot_forged(device, aggregate)
    outcome = device.appraise()
    assert_caught(outcome, AGGREGATE, TrustTier.CONTRAINDICATED)


def test_missing_boot_aggregate_is_caught(device: Device) -> None:
    """Entry 0 is a file: the list does not start at this boot."""
    _boot_forged(device, None)
    assert_caught(device.appraise(), AGGREGATE, TrustTier.CONTRAINDICATED)


def _boot_forged(device: Device, aggregate: bytes | None) -> None:
    """The golden firmware boot with IMA's entry 0 chosen by the attacker."""
    from tests.adversarial.device import PROGRAMS

    events = golden_events()
    have = set(device.backend.info().banks)
    for e in events:
        if e.pcr <= 16 and e.digests is not None:
            device.backend.pcr_extend(e.pcr, {b: d for b, d in e.digests.items() if b in have})
    device.present(events)
    device.ima.write_bytes(b"")
    if aggregate is not None:
        device.boot_aggregate(aggregate)
    for path, content in PROGRAMS.items():
        device.measure(path, digest(content))


def test_after_a_reboot_the_tail_must_start_at_zero(device: Device) -> None:
    """After a reboot the device sends its list from the stored offset, hiding the
    new boot's first entries (boot_aggregate included): not accepted."""
    device.boot(golden_events())
    assert device.appraise().status is TrustTier.AFFIRMING
    device.reboot()
    device.boot(golden_events())
    _backdoor(device)  # entry 3 of the new boot
    ev = device.evidence()
    records = _records(device)
    lie = _with_tail(ev, records, 3, 3)
    outcome = device.appraise(lie)
    assert_caught(outcome, MISMATCH, TrustTier.CONTRAINDICATED)
    assert "expects 0" in " ".join(outcome.appraisal.reasons)


def test_after_a_reboot_the_whole_new_list_is_appraised(device: Device) -> None:
    """The honest counterpart: after a reboot the full new list (from 0) is checked,
    boot_aggregate included, and the backdoor is found."""
    device.boot(golden_events())
    assert device.appraise().status is TrustTier.AFFIRMING
    device.reboot()
    device.boot(golden_events())
    _backdoor(device)
    ev = device.evidence()
    honest = replace(ev, ima_log=device.ima.read_bytes(), ima_offset=0)
    outcome = device.appraise(honest)
    assert_caught(outcome, MODIFIED, TrustTier.CONTRAINDICATED)
    assert AGGREGATE not in reasons(outcome)


def test_ima_tail_helper_agrees_with_the_cases() -> None:
    """Sanity: the records the cases cut are the ones ima_tail would send."""
    data = b"".join(build_ima_entry(f"/f{i}", digest(bytes([i]))) for i in range(4))
    tail, offset = ima_tail(data, 2)
    assert offset == 2 and parse_ima_log(tail).unverified_entries[0].fields().path == "/f2"


def test_an_honest_device_recovers_after_a_reboot(device: Device) -> None:
    """The challenge after a reboot still carries the previous boot's IMA position
    (the verifier learns of the reboot only from the next quote). An honest device
    whose new list is longer than that position sends a tail of the wrong boot: that
    appraisal fails, but the signed resetCount proves the reboot, so the stored
    position restarts and the next appraisal reads the new list from entry 0."""
    device.boot(golden_events())
    assert device.appraise().status is TrustTier.AFFIRMING  # stored position: 3
    device.reboot()
    device.boot(golden_events())
    device.measure("/usr/bin/edge-agent", digest(b"agent 2.4"))  # 4 entries now
    stale = device.appraise()
    assert_caught(stale, MISMATCH, TrustTier.CONTRAINDICATED)
    assert "expects 0" in " ".join(stale.appraisal.reasons)
    assert device.verifier.challenge(device.attester.device_id).ima_offset == 0
    again = device.appraise()
    # swtpm's restart is not an orderly shutdown: its clock is then "unsafe" (a warning)
    unsafe = "clock-unsafe" in reasons(again)
    assert again.status is (TrustTier.WARNING if unsafe else TrustTier.AFFIRMING)
    assert "runtime-approved" in reasons(again), again.appraisal.reasons
    state = device.verifier.store.get_ima_state(device.attester.device_id)
    assert state is not None and state.entries == 4
