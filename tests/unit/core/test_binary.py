from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge._binary import Reader, Writer
from trustedge.errors import LimitExceededError, MalformedInputError


def test_integers_both_endians_round_trip() -> None:
    w = Writer().u8(1).u16le(0x0203).u32le(0x04050607).u64le(2**64 - 1)
    w.u16be(0x0203).u32be(0x04050607).u64be(7).i32le(-5)
    r = Reader(w.getvalue())
    assert r.u8() == 1
    assert r.u16le() == 0x0203
    assert r.u32le() == 0x04050607
    assert r.u64le() == 2**64 - 1
    assert r.u16be() == 0x0203
    assert r.u32be() == 0x04050607
    assert r.u64be() == 7
    assert r.i32le() == -5
    r.expect_end()


def test_length_prefixed_round_trip() -> None:
    w = Writer().bytes_u8(b"a").bytes_u16be(b"bc").bytes_u16le(b"").bytes_u32le(b"d" * 300)
    w.bytes_u32be(b"e")
    r = Reader(w.getvalue())
    assert [r.bytes_u8(), r.bytes_u16be(), r.bytes_u16le(), r.bytes_u32le(), r.bytes_u32be()] == [
        b"a", b"bc", b"", b"d" * 300, b"e",
    ]  # fmt: skip
    assert r.at_end()


def test_short_read_names_offset_and_expectation() -> None:
    r = Reader(b"\x01\x02\x03", base_offset=100)
    r.u8()
    with pytest.raises(MalformedInputError) as info:
        r.u32le("event size")
    assert info.value.offset == 101
    assert info.value.expected == "event size"
    assert "offset 101" in str(info.value)


def test_lying_length_is_rejected_before_allocation() -> None:
    r = Reader(Writer().u32le(0xFFFFFFFF).getvalue())
    with pytest.raises(MalformedInputError):
        r.bytes_u32le()


def test_max_len_and_max_size_and_count() -> None:
    with pytest.raises(LimitExceededError):
        Reader(b"\x05hello").bytes_u8(max_len=4)
    with pytest.raises(LimitExceededError):
        Reader(b"x" * 11, max_size=10)
    with pytest.raises(LimitExceededError):
        Reader(b"").count(5, 4)
    assert Reader(b"").count(4, 4) == 4


def test_expect_end_rejects_trailing_bytes() -> None:
    r = Reader(b"\x00\x01")
    r.u8()
    with pytest.raises(MalformedInputError, match="1 trailing bytes"):
        r.expect_end()


def test_sub_reader_offsets_are_absolute() -> None:
    r = Reader(b"\x00\x00\x01\x02")
    r.skip(2)
    sub = r.sub(2, "inner")
    assert sub.offset == 2
    sub.u8()
    with pytest.raises(MalformedInputError) as info:
        sub.u16be()
    assert info.value.offset == 3
    assert r.at_end()


def test_peek_does_not_consume_and_negative_length_rejected() -> None:
    r = Reader(b"abc")
    assert r.peek(2) == b"ab"
    assert r.read(3) == b"abc"
    with pytest.raises(MalformedInputError):
        r.read(-1)


def test_writer_range_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Writer().u8(256)
    with pytest.raises(ValueError):
        Writer().u16be(-1)
    with pytest.raises(ValueError):
        Writer().bytes_u8(b"x" * 256)


# -- runs of records ------------------------------------------------------------
def _reference_records(
    data: bytes, head: int, max_first: int, max_second: int, max_count: int, split: dict[bytes, int]
) -> tuple[list[tuple[int, bytes, bytes, bytes, tuple[bytes, ...] | None]], int]:
    """u32le_pair_records spelled out with single Reader reads (the contract)."""
    r = Reader(data, base_offset=7)
    out: list[tuple[int, bytes, bytes, bytes, tuple[bytes, ...] | None]] = []
    while not r.at_end() and len(out) < max_count:
        start = r.offset
        trial = Reader(data[start - 7 :], base_offset=start)
        try:
            h = trial.read(head)
            first = trial.bytes_u32le(max_len=max_first)
            if first not in split:
                break
            second = trial.bytes_u32le(max_len=max_second)
        except MalformedInputError:
            break
        inner = Reader(second)
        parts: tuple[bytes, ...] | None
        try:
            parts = tuple(inner.bytes_u32le() for _ in range(split[first]))
            inner.expect_end()
        except MalformedInputError:
            parts = None
        out.append((start, h, first, second, parts))
        r.skip(trial.offset - start)
    return out, r.offset


def _record(head: bytes, first: bytes, parts: list[bytes]) -> bytes:
    second = b"".join(Writer().bytes_u32le(p).getvalue() for p in parts)
    return head + Writer().bytes_u32le(first).bytes_u32le(second).getvalue()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=3, max_size=3),
            st.sampled_from([b"ab", b"abc", b"zz", b""]),
            st.lists(st.binary(max_size=12), max_size=3),
        ),
        max_size=6,
    ),
    st.integers(0, 400),
    st.binary(max_size=4),
    st.integers(0, 255),
    st.integers(0, 8),
)
def test_pair_records_match_single_reads(
    records: list[tuple[bytes, bytes, list[bytes]]],
    cut: int,
    junk: bytes,
    flip: int,
    max_count: int,
) -> None:
    data = bytearray(b"".join(_record(*rec) for rec in records)[:cut] + junk)
    if data:
        data[flip % len(data)] ^= 0x41  # one corrupted byte anywhere
    split = {b"ab": 2, b"abc": 1, b"": 0}
    for max_second in (4, 64):
        r = Reader(bytes(data), base_offset=7)
        got = r.u32le_pair_records(3, 3, max_second, max_count=max_count, split_second=split)
        want, offset = _reference_records(bytes(data), 3, 3, max_second, max_count, split)
        assert got == want
        assert r.offset == offset


def test_struct_reads_check_the_whole_size_first() -> None:
    st = struct.Struct("<IH")
    r = Reader(b"\x01\x00\x00\x00\x02\x00\x03", base_offset=10)
    assert r.peek_struct(st) == (1, 2)
    assert r.offset == 10
    assert r.read_struct(st, "pair") == (1, 2)
    assert r.offset == 16
    with pytest.raises(MalformedInputError) as info:
        r.peek_struct(st, "pair")
    assert (str(info.value), info.value.offset) == (
        "need 6 bytes, 1 left, expected pair, at offset 16",
        16,
    )
    with pytest.raises(MalformedInputError, match="need 6 bytes, 1 left"):
        r.read_struct(st)
    assert r.remaining == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.read(3, "x"), "need 3 bytes, 2 left"),
        (lambda r: r.peek(3, "x"), "need 3 bytes, 2 left"),
        (lambda r: r.skip(3, "x"), "need 3 bytes, 2 left"),
        (lambda r: r.skip(-1, "x"), "negative length"),
        (lambda r: r.peek(-1, "x"), "negative length"),
        (lambda r: r.u32le("x"), "need 4 bytes, 2 left"),
        (lambda r: r.u64be("x"), "need 8 bytes, 2 left"),
    ],
)
def test_failed_reads_do_not_move(call: Callable[[Reader], object], message: str) -> None:
    r = Reader(b"\x00\x01\x02")
    r.u8()
    with pytest.raises(MalformedInputError, match=message) as info:
        call(r)
    assert (info.value.offset, info.value.expected, r.offset) == (1, "x", 1)


def test_u8_at_end() -> None:
    r = Reader(b"\x07", base_offset=4)
    assert r.u8() == 7
    with pytest.raises(
        MalformedInputError, match="need 1 bytes, 0 left, expected flag, at offset 5"
    ):
        r.u8("flag")


def test_pair_records_split_counts_exactly() -> None:
    # Two fields wanted: an empty second field, one field, three fields and a
    # lying inner length do not split (None); exactly two do.
    split = {b"ab": 2}
    two = _record(b"h00", b"ab", [b"x", b"yz"])
    cases = [
        (_record(b"h01", b"ab", []), None),
        (_record(b"h02", b"ab", [b"x"]), None),
        (_record(b"h03", b"ab", [b"x", b"y", b"z"]), None),
        (two[:-3] + b"\x09" + two[-2:], None),  # second field's length runs past the end
        (two, (b"x", b"yz")),
    ]
    for record, parts in cases:
        got = Reader(record).u32le_pair_records(3, 3, 64, max_count=9, split_second=split)
        assert [row[4] for row in got] == [parts], record
