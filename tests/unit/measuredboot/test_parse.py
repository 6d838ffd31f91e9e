"""The crypto-agile record reader: fixed-layout fast path and general path agree.

Records that list one digest per declared algorithm in Spec ID order take the
fast path; every other record (fewer or reordered digests, PCR 0xFFFFFFFF,
limits, truncation, fill) goes through the general code. These cases mix both
and check the records and the errors (class, offset, message) they give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from trustedge._binary import Writer
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.measuredboot import EventLogLimits, EventType, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import BANK_SIZES, BANKS, bank_hash

T = EventType
_ALG = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D, "sm3_256": 0x0012}
_UNKNOWN = 0x0099  # not a bank trustedge knows; 20-byte digests


def _log(
    algs: Sequence[tuple[int, int]], records: Sequence[tuple[int, int, list[int], bytes]]
) -> bytes:
    """A crypto-agile log from raw parts: (alg id, size) pairs and (pcr, type, alg ids, data)."""
    spec = Writer().write(b"Spec ID Event03\x00").u32le(0).u8(0).u8(2).u8(0).u8(2)
    spec.u32le(len(algs))
    for alg, size in algs:
        spec.u16le(alg).u16le(size)
    spec.u8(0)
    w = Writer().u32le(0).u32le(T.EV_NO_ACTION).write(bytes(20)).bytes_u32le(spec.getvalue())
    sizes = dict(algs)
    for pcr, etype, ids, data in records:
        w.u32le(pcr).u32le(etype).u32le(len(ids))
        for alg in ids:
            w.u16le(alg).write(bytes([alg & 0xFF]) * sizes[alg])
        w.bytes_u32le(data)
    return w.getvalue()


def _mixed(banks: Sequence[str]) -> list[LogEvent]:
    full = [LogEvent(i % 8, T.EV_IPL, bytes([i]) * i) for i in range(6)]
    first, *rest = banks
    fewer = {first: bank_hash(first, b"fewer")}
    reordered = {bank: bank_hash(bank, b"reordered") for bank in reversed(banks)}
    return [
        *full[:3],
        LogEvent(4, T.EV_SEPARATOR, b"fewer", fewer if rest else {}),
        LogEvent(5, T.EV_SEPARATOR, b"reordered", reordered),
        LogEvent(0xFFFFFFFF, T.EV_NO_ACTION, b"windows"),
        LogEvent(23, T.EV_NO_ACTION, b""),
        *full[3:],
    ]


@pytest.mark.parametrize("n_banks", range(1, len(BANKS) + 1))
def test_fast_and_general_records_mixed(n_banks: int) -> None:
    banks = BANKS[:n_banks]
    events = _mixed(banks)
    data = build_event_log(events, banks=banks) + b"\xff" * 7
    log = parse_event_log(data)
    got = log.unverified_events[1:]
    assert [(ev.number, ev.pcr, ev.event_type, ev.data) for ev in got] == [
        (i + 1, ev.pcr, ev.event_type, ev.data) for i, ev in enumerate(events)
    ]
    for ev, want in zip(got, events, strict=True):
        if want.digests is not None:
            assert ev.digests == want.digests
        elif want.event_type == T.EV_NO_ACTION:
            assert ev.digests == {bank: bytes(BANK_SIZES[bank]) for bank in banks}
        else:
            assert ev.digests == {bank: bank_hash(bank, want.data) for bank in banks}
        assert list(ev.digests) == [b for b in (want.digests or banks) if b in ev.digests]
    offsets = [ev.offset for ev in log.unverified_events]
    assert offsets == sorted(offsets)
    assert offsets[-1] + len(got[-1].data) < len(data) - 7


@pytest.mark.parametrize(
    ("algs", "known"),
    [
        ([(_UNKNOWN, 20)], []),
        ([(_UNKNOWN, 20), (_ALG["sha256"], 32)], ["sha256"]),
        (
            [(_ALG["sha1"], 20), (_UNKNOWN, 20), (_ALG["sha256"], 32), (0x0100, 48)],
            ["sha1", "sha256"],
        ),
        ([(_ALG[b], BANK_SIZES[b]) for b in BANKS[:4]] + [(_UNKNOWN, 20)], list(BANKS[:4])),
    ],
)
def test_unknown_algorithms_are_read_and_dropped(
    algs: list[tuple[int, int]], known: list[str]
) -> None:
    ids = [alg for alg, _ in algs]
    records = [
        (1, T.EV_IPL, ids, b"fast"),
        (0xFFFFFFFF, T.EV_NO_ACTION, ids, b"general, full layout"),
        (2, T.EV_IPL, ids[::-1], b"general, reordered"),
        (3, T.EV_IPL, ids, b"fast again"),
    ]
    log = parse_event_log(_log(algs, records))
    assert [ev.data for ev in log.unverified_events[1:]] == [r[3] for r in records]
    want = {bank: bytes([_ALG[bank] & 0xFF]) * BANK_SIZES[bank] for bank in known}
    for ev in log.unverified_events[1:]:
        assert ev.digests == want


def _at(data: bytes, number: int) -> int:
    """Byte offset of record ``number`` of a log that parses."""
    return parse_event_log(data).unverified_events[number].offset


_FIVE = build_event_log(
    [LogEvent(i, T.EV_IPL, b"x" * 40) for i in range(5)], banks=("sha1", "sha256")
)
_HEAD = 12 + (2 + 20) + (2 + 32) + 4  # pcr, type, count, two digests, EventSize


def _set_u32(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + value.to_bytes(4, "little") + data[at + 4 :]


#: (name, input, limits, error class, offset, message)
ERRORS: list[
    tuple[str, Callable[[], bytes], EventLogLimits, type[Exception], Callable[[], int], str]
] = [
    (
        "event-size-over-limit",
        lambda: _FIVE,
        EventLogLimits(max_event_size=39),
        LimitExceededError,
        lambda: _at(_FIVE, 1) + _HEAD - 4,
        "record 1: EventSize 40 exceeds the limit of 39",
    ),
    (
        "truncated-event-data",
        lambda: _FIVE[:-3],
        EventLogLimits(),
        MalformedInputError,
        lambda: _at(_FIVE, 5),
        f"record 5: need {_HEAD + 40} bytes, {_HEAD + 37} left, expected event data",
    ),
    (
        "truncated-event-size",
        lambda: _FIVE[: _at(_FIVE, 5) + _HEAD - 1],
        EventLogLimits(),
        MalformedInputError,
        lambda: _at(_FIVE, 5) + _HEAD - 4,
        "record 5: need 4 bytes, 3 left, expected EventSize",
    ),
    (
        "truncated-digest",
        lambda: _FIVE[: _at(_FIVE, 5) + 50],
        EventLogLimits(),
        MalformedInputError,
        lambda: _at(_FIVE, 5) + 36,
        "record 5: need 32 bytes, 14 left, expected digest",
    ),
    (
        "too-many-records",
        lambda: _FIVE,
        EventLogLimits(max_events=4),
        LimitExceededError,
        lambda: _at(_FIVE, 4),
        "record 4: more than 4 records",
    ),
    (
        "pcr-24",
        lambda: _set_u32(_FIVE, _at(_FIVE, 3), 24),
        EventLogLimits(),
        MalformedInputError,
        lambda: _at(_FIVE, 3),
        "record 3: PCR index 24 out of range",
    ),
    (
        "pcr-ffffffff-measured",
        lambda: _set_u32(_FIVE, _at(_FIVE, 3), 0xFFFFFFFF),
        EventLogLimits(),
        MalformedInputError,
        lambda: _at(_FIVE, 3),
        "record 3: PCR index 4294967295 out of range",
    ),
    (
        "trailing-garbage",
        lambda: _FIVE + b"\xff" * 20 + b"\x01",
        EventLogLimits(),
        MalformedInputError,
        lambda: len(_FIVE) + 8,
        "record 6: DigestCount 4294967295 exceeds the 2 declared algorithms",
    ),
]


@pytest.mark.parametrize(
    ("data", "limits", "error", "offset", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in ERRORS],
)
def test_errors_name_record_and_offset(
    data: Callable[[], bytes],
    limits: EventLogLimits,
    error: type[Exception],
    offset: Callable[[], int],
    message: str,
) -> None:
    with pytest.raises(error) as info:
        parse_event_log(data(), limits=limits)
    assert type(info.value) is error
    assert isinstance(info.value, MalformedInputError)
    assert info.value.offset == offset()
    assert str(info.value).startswith(message + ",")


@pytest.mark.parametrize("fill", [b"\x00", b"\xff"])
def test_fill_and_exact_limits_after_fast_records(fill: bytes) -> None:
    exact = EventLogLimits(max_events=6, max_event_size=40, max_log_size=len(_FIVE) + 100)
    for n in (1, 7, 15, 16, 100):
        log = parse_event_log(_FIVE + fill * n, limits=exact)
        assert len(log.unverified_events) == 6


_SPEC_FIELDS = [
    (16, "Spec ID signature"),
    (4, "platformClass"),
    (1, "specVersionMinor"),
    (1, "specVersionMajor"),
    (1, "specErrata"),
    (1, "uintnSize"),
    (4, "numberOfAlgorithms"),
]


@pytest.mark.parametrize("cut", range(16, 28))
def test_short_spec_id_event_names_the_cut_field(cut: int) -> None:
    spec = _log([(_ALG["sha256"], 32)], [])[32:]
    data = Writer().u32le(0).u32le(T.EV_NO_ACTION).write(bytes(20)).bytes_u32le(spec[:cut])
    starts = [sum(size for size, _ in _SPEC_FIELDS[:i]) for i in range(len(_SPEC_FIELDS))]
    at, (size, what) = next(
        (at, field) for at, field in zip(starts, _SPEC_FIELDS, strict=True) if at + field[0] > cut
    )
    with pytest.raises(MalformedInputError) as info:
        parse_event_log(data.getvalue())
    assert info.value.offset == 32 + at
    assert str(info.value).startswith(
        f"record 0: need {size} bytes, {cut - at} left, expected {what},"
    )
