"""Replay rules and verify() semantics on built logs."""

from __future__ import annotations

import hashlib

import pytest

from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    ReplayMismatchError,
    UnsupportedAlgorithmError,
)
from trustedge.measuredboot import (
    EventLogLimits,
    EventType,
    initial_pcr_value,
    parse_event_log,
)
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import bank_hash, event_type_name

T = EventType


def _extend(value: bytes, *digests: bytes) -> bytes:
    for d in digests:
        value = hashlib.sha256(value + d).digest()
    return value


def test_coreboot_style_startup_locality_record() -> None:
    """A StartupLocality record longer than 17 bytes still sets PCR0's start."""
    data = build_event_log(
        [
            LogEvent(0, T.EV_NO_ACTION, b"StartupLocality\x00\x03" + bytes(15)),
            LogEvent(0, T.EV_S_CRTM_VERSION, b"v"),
        ]
    )
    log = parse_event_log(data)
    assert log.startup_locality == 3
    want = _extend(bytes(31) + b"\x03", hashlib.sha256(b"v").digest())
    assert log.replay()["sha256"][0] == want


def test_drtm_pcrs_start_at_all_ones_and_no_action_is_skipped() -> None:
    data = build_event_log(
        [
            LogEvent(17, T.EV_EVENT_TAG, b"x"),
            LogEvent(17, T.EV_NO_ACTION, b"ignored"),
        ]
    )
    log = parse_event_log(data)
    assert log.replay()["sha256"][17] == _extend(b"\xff" * 32, hashlib.sha256(b"x").digest())
    assert initial_pcr_value("sha1", 20) == b"\xff" * 20


def test_missing_bank_digest_makes_pcr_unreplayable() -> None:
    data = build_event_log(
        [LogEvent(3, T.EV_SEPARATOR, bytes(4), {"sha256": bank_hash("sha256", bytes(4))})],
        banks=("sha1", "sha256"),
    )
    log = parse_event_log(data)
    assert 3 not in log.replay()["sha1"]
    assert log.unreplayable == {("sha1", 3)}
    with pytest.raises(ReplayMismatchError) as info:
        log.verify({"sha1": {3: bytes(20)}})
    assert info.value.mismatches == [("sha1", 3)]
    assert log.verify({"sha256": log.replay()["sha256"]}).verified_pcrs == {3}


def test_verify_semantics() -> None:
    data = build_event_log([LogEvent(4, T.EV_SEPARATOR, bytes(4))])
    log = parse_event_log(data)
    good = log.replay()["sha256"][4]
    # PCR10 (IMA) is not in the log: a non-reset value is ignored, reset verifies empty.
    verified = log.verify({"sha256": {4: good, 10: b"\x01" * 32, 11: bytes(32)}})
    assert verified.verified_pcrs == {4, 11}
    assert verified.events_for(11) == ()
    # Banks the log does not carry are ignored, but something must be checked.
    with pytest.raises(ReplayMismatchError):
        log.verify({"sha1": {4: bytes(20)}, "sha256": {10: b"\x01" * 32}})
    with pytest.raises(ValueError):
        log.verify({"sha256": {4: b"short"}})
    with pytest.raises(ValueError):
        log.verify({"md5": {4: bytes(16)}})


def test_limits() -> None:
    data = build_event_log([LogEvent(1, T.EV_SEPARATOR, bytes(4))] * 5)
    with pytest.raises(LimitExceededError):
        parse_event_log(data, limits=EventLogLimits(max_events=3))
    with pytest.raises(LimitExceededError):
        parse_event_log(data, limits=EventLogLimits(max_log_size=100))
    with pytest.raises(LimitExceededError):
        parse_event_log(data, limits=EventLogLimits(max_event_size=2))
    with pytest.raises(TypeError):
        parse_event_log("not bytes")  # type: ignore[arg-type]


def test_spec_id_checks() -> None:
    data = bytearray(build_event_log([]))
    data[8] = 1  # non-zero digest on the Spec ID record
    with pytest.raises(MalformedInputError):
        parse_event_log(bytes(data))


def test_names_and_unknown_bank() -> None:
    assert event_type_name(0x80000001) == "EV_EFI_VARIABLE_DRIVER_CONFIG"
    assert event_type_name(0x1234) == "0x00001234"
    with pytest.raises(UnsupportedAlgorithmError):
        bank_hash("md5", b"")
