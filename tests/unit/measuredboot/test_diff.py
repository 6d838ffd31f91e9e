"""Explain a mismatch: diff_event_logs and explain_mismatch on real logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustedge.measuredboot import (
    DivergenceKind,
    Event,
    EventLog,
    diff_event_logs,
    explain_mismatch,
    parse_event_log,
)
from trustedge.measuredboot.events import bank_hasher
from trustedge.measuredboot.replay import initial_pcr_value

K = DivergenceKind
UBUNTU = "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog"
COREOS = "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog"


def load(third_party: Path, rel: str) -> tuple[bytes, EventLog]:
    raw = (third_party / "eventlog" / rel).read_bytes()
    return raw, parse_event_log(raw)


def pcr_events(log: EventLog, pcr: int) -> list[Event]:
    return [e for e in log.unverified_events if e.pcr == pcr and e.event_type != 3]


def running(log: EventLog, pcr: int, digests: list[bytes], bank: str = "sha256") -> bytes:
    value = initial_pcr_value(bank, pcr, locality=log.pcr0_locality())
    for d in digests:
        value = bank_hasher(bank)(value + d).digest()
    return value


def test_a_log_is_the_same_as_itself(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    assert diff_event_logs(log, log) == ()
    assert explain_mismatch(log, log.replay()) == ()


def test_two_real_boots_differ_where_their_images_differ(third_party: Path) -> None:
    _, ubuntu = load(third_party, UBUNTU)
    _, coreos = load(third_party, COREOS)
    found = {d.pcr: d for d in diff_event_logs(ubuntu, coreos)}
    assert str(found[4]) == r"PCR4: event 23 \EFI\ubuntu\shimx64.efi sha256 digest differs"
    assert found[4].kind is K.DIGEST_DIFFERS and found[4].position == 2
    assert found[7].kind is K.MISSING_EVENT
    assert "MokListTrusted" in str(found[7])
    assert set(found) == {0, 1, 4, 5, 7, 8, 9, 14}
    # the other way round: the event coreos has and ubuntu lacks is "extra"
    back = {d.pcr: d for d in diff_event_logs(coreos, ubuntu)}
    assert back[7].kind is K.EXTRA_EVENT


def test_one_changed_digest_is_pinpointed(third_party: Path) -> None:
    raw, log = load(third_party, UBUNTU)
    shim = pcr_events(log, 4)[2]
    old = shim.digests["sha256"]
    at = raw.index(old, shim.offset)
    changed = parse_event_log(raw[:at] + bytes(32) + raw[at + 32 :])
    (only,) = diff_event_logs(changed, log)
    assert (only.pcr, only.kind, only.reference) == (4, K.DIGEST_DIFFERS, shim)
    assert only.event is not None and only.event.digests["sha256"] == bytes(32)
    assert only.to_json()["message"] == str(only)
    assert only.to_json()["event"] == 23


def test_same_digest_other_label_is_reported_as_unbound(third_party: Path) -> None:
    raw, log = load(third_party, UBUNTU)
    ev = pcr_events(log, 4)[0]  # EV_EFI_ACTION "Calling EFI Application from Boot Option"
    at = raw.index(b"Calling", ev.offset)
    changed = parse_event_log(raw[:at] + b"X" + raw[at + 1 :])
    (only,) = diff_event_logs(changed, log)
    assert only.kind is K.LABEL_DIFFERS and only.pcr == 4
    assert "not bound by the digest" in str(only)


def test_quote_behind_the_log_names_the_first_event_past_it(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    events = pcr_events(log, 4)
    pcrs = log.replay()
    pcrs["sha256"][4] = running(log, 4, [e.digests["sha256"] for e in events[:2]])
    (why,) = explain_mismatch(log, {"sha256": pcrs["sha256"]})
    assert (why.kind, why.event, why.count) == (K.NOT_IN_PCR, events[2], len(events) - 2)
    assert str(why).startswith(r"PCR4: event 23 \EFI\ubuntu\shimx64.efi and 1 later event(s)")


def test_an_event_logged_but_not_extended_is_named(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    events = pcr_events(log, 8)
    kept = [e.digests["sha256"] for i, e in enumerate(events) if i != 5]
    (why,) = explain_mismatch(log, {"sha256": {8: running(log, 8, kept)}})
    assert (why.kind, why.event) == (K.EVENT_NOT_EXTENDED, events[5])
    assert "logged but not in the sha256 PCR value" in str(why)


def test_swapped_neighbours_are_named(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    ds = [e.digests["sha256"] for e in pcr_events(log, 9)]
    ds[1], ds[2] = ds[2], ds[1]
    (why,) = explain_mismatch(log, {"sha256": {9: running(log, 9, ds)}})
    assert (why.kind, why.position) == (K.EVENTS_SWAPPED, 1)


def test_an_unexplained_value_says_so(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    (why,) = explain_mismatch(log, {"sha256": {4: b"\x11" * 32}, "sha1": {4: b"\x11" * 20}})
    assert why.kind is K.VALUE_DIFFERS and why.bank == "sha256"  # one bank per PCR
    assert "no prefix of the log's 4 event(s)" in str(why)


def test_pcrs_without_events_and_foreign_banks_are_not_explained(third_party: Path) -> None:
    _, log = load(third_party, UBUNTU)
    assert explain_mismatch(log, {"sha256": {16: b"\x11" * 32}}) == ()
    with pytest.raises(ValueError):
        explain_mismatch(log, {"sha256": {4: b"short"}})


def test_logs_without_a_common_bank_cannot_be_compared() -> None:
    from trustedge.measuredboot.build import LogEvent, build_event_log

    sha384 = parse_event_log(build_event_log([LogEvent(4, 4, bytes(4))], banks=("sha384",)))
    sha512 = parse_event_log(build_event_log([LogEvent(4, 4, bytes(4))], banks=("sha512",)))
    with pytest.raises(ValueError, match="no hash bank"):
        diff_event_logs(sha384, sha512)


def test_a_hostile_log_cannot_buy_cpu_with_the_search() -> None:
    """Many PCRs with thousands of events each: the quadratic search is skipped once
    its budget is spent, and every PCR is still explained."""
    import time

    from trustedge.measuredboot.build import LogEvent, build_event_log

    events = [LogEvent(p, 0x0D, i.to_bytes(4, "little")) for p in range(16) for i in range(2000)]
    log = parse_event_log(build_event_log(events))
    started = time.monotonic()
    found = explain_mismatch(log, {"sha256": {p: b"\x11" * 32 for p in range(16)}})
    assert time.monotonic() - started < 5
    assert [d.kind for d in found] == [K.VALUE_DIFFERS] * 16
