"""IMA list details: per-bank lists, violations, templates, limits."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError, ReplayMismatchError
from trustedge.measuredboot import ImaLimits, ImaState, parse_ima_log, verify_ima_log
from trustedge.measuredboot.build import build_ima_entry


def _sha256_column(record: bytes) -> bytes:
    """Rewrite a classic record into a per-bank (SHA-256 template hash) record."""
    pcr, rest = record[:4], record[24:]
    name_len = int.from_bytes(rest[:4], "little")
    template = rest[4 + name_len + 4 :]
    return pcr + hashlib.sha256(template).digest() + rest


def test_per_bank_binary_list() -> None:
    records = [build_ima_entry(p, bytes(32)) for p in ("boot_aggregate", "/bin/a", "/bin/b")]
    data = b"".join(_sha256_column(r) for r in records)
    log = parse_ima_log(data, template_hash_size=32)
    assert len(log.unverified_entries) == 3
    pcr = log.replay("sha256")
    assert len(verify_ima_log(log, pcr, bank="sha256").entries) == 3
    with pytest.raises(ReplayMismatchError):
        verify_ima_log(log, bytes(20), bank="sha1")
    with pytest.raises(ValueError):
        parse_ima_log(data, template_hash_size=7)


def test_violation_extends_all_ones() -> None:
    line = b"10 " + b"0" * 40 + b" ima-ng sha1:" + b"0" * 40 + b" /tmp/x\n"
    log = parse_ima_log(line)
    assert log.unverified_entries[0].is_violation
    want = hashlib.sha1(bytes(20) + b"\xff" * 20).digest()
    assert log.replay("sha1") == want
    want256 = hashlib.sha256(bytes(32) + b"\xff" * 32).digest()
    assert log.replay("sha256") == want256
    verify_ima_log(log, want)


def test_templates_from_ascii() -> None:
    sig = "030204aabbccdd0002beef"
    lines = [
        f"10 {'11' * 20} ima-sig sha256:{'22' * 32} /usr/bin/x {sig}",
        f"10 {'11' * 20} ima-sig sha256:{'22' * 32} /usr/bin/unsigned ",
        f"10 {'11' * 20} ima-buf sha256:{'33' * 32} .ima 3082",
        f"10 {'11' * 20} ima {'44' * 20} /old/style",
        f"10 {'11' * 20} ima-modsig sha256:{'55' * 32} /lib/m.ko {sig} sha256:{'66' * 32} 00",
    ]
    log = parse_ima_log(("\n".join(lines) + "\n").encode())
    fields = [e.fields() for e in log.unverified_entries]
    assert fields[0].signature.hex() == sig
    assert fields[1].signature == b"" and fields[1].path == "/usr/bin/unsigned"
    assert fields[2].buffer == bytes.fromhex("3082")
    assert fields[3].digest_algorithm == "sha1" and fields[3].path == "/old/style"
    assert fields[4].path == "/lib/m.ko"
    with pytest.raises(ReplayMismatchError):
        verify_ima_log(log, bytes(20))  # template hashes are placeholders


@pytest.mark.parametrize(
    "data",
    [
        b"10 zz ima-ng sha1:00 /x\n",
        b"99 " + b"0" * 40 + b" ima-ng sha1:00 /x\n",
        b"10 " + b"0" * 40 + b" ima-unknown foo\n",
        b"10 " + b"0" * 40 + b" ima-ng nocolon /x\n",
        b"10 " + b"0" * 40 + b" ima-ng sha1:00 /x",
    ],
)
def test_bad_ascii(data: bytes) -> None:
    with pytest.raises(MalformedInputError) as info:
        parse_ima_log(data)
    assert info.value.offset == 0


def test_limits_and_state_checks() -> None:
    data = b"".join(build_ima_entry(f"/f{i}", bytes(32)) for i in range(5))
    with pytest.raises(LimitExceededError):
        parse_ima_log(data, limits=ImaLimits(max_entries=2))
    with pytest.raises(LimitExceededError):
        parse_ima_log(data, limits=ImaLimits(max_list_size=10))
    log = parse_ima_log(data)
    with pytest.raises(ValueError):
        verify_ima_log(log, bytes(20), state=ImaState(0, 99, bytes(20)))
    with pytest.raises(ValueError):
        verify_ima_log(log, bytes(32))
    with pytest.raises(TypeError):
        parse_ima_log("text")  # type: ignore[arg-type]


# -- the binary fast path gives what the field-by-field path gives ----------------
def _legacy_ima_record(path: bytes) -> bytes:
    digest = hashlib.sha1(path).digest()
    name_field = len(path).to_bytes(4, "little") + path
    data = digest + path.ljust(256, b"\x00")
    return (
        (10).to_bytes(4, "little")
        + hashlib.sha1(data).digest()
        + (3).to_bytes(4, "little")
        + b"ima"
        + digest
        + name_field
    )


def _ng_record(template: bytes, fields: list[bytes]) -> bytes:
    data = b"".join(len(f).to_bytes(4, "little") + f for f in fields)
    return (
        (10).to_bytes(4, "little")
        + hashlib.sha1(data).digest()
        + len(template).to_bytes(4, "little")
        + template
        + len(data).to_bytes(4, "little")
        + data
    )


_RECORDS = st.one_of(
    st.builds(
        lambda p, d: build_ima_entry(p, d),
        st.text(max_size=12),
        st.binary(min_size=32, max_size=32),
    ),
    st.builds(_legacy_ima_record, st.binary(max_size=10)),
    st.builds(
        _ng_record,
        st.sampled_from([b"ima-ng", b"ima-sig", b"ima-buf", b"ima-modsig", b"ima-xx", b"\xffng"]),
        st.lists(
            st.one_of(
                st.just(b"sha256:\x00" + bytes(32)),
                st.binary(min_size=20, max_size=20),  # SHA-1 digest without "algo:"
                st.binary(max_size=24),
                st.just(b"/bin/sh\x00"),
            ),
            max_size=6,
        ),
    ),
)


def _outcome(data: bytes, **kwargs: object) -> object:
    try:
        log = parse_ima_log(data, **kwargs)  # type: ignore[arg-type]
    except MalformedInputError as exc:
        return (type(exc), str(exc), exc.offset)
    rows = []
    for e in log.unverified_entries:
        try:
            fields: object = tuple(e.fields())
        except MalformedInputError as exc:
            fields = (type(exc), str(exc))
        rows.append((tuple(e[:6]), fields, e.is_violation))
    return rows, log.consumed, log.trailing_bytes


@settings(max_examples=250, deadline=None)
@given(
    st.lists(_RECORDS, max_size=6),
    st.integers(0, 2000),
    st.integers(0, 10_000),
    st.booleans(),
    st.integers(1, 8),
)
def test_binary_fast_path_matches_field_by_field(
    records: list[bytes], cut: int, flip: int, partial: bool, max_entries: int
) -> None:
    data = bytearray(b"".join(records))
    data = data[: max(cut, 1)] if cut < len(data) else data
    if data and flip % 3 == 0:
        data[flip % len(data)] ^= 0x5A
    if not data or data[:1].isdigit():
        data[:0] = b"\x0a\x00\x00\x00"  # keep it binary (ASCII lists start with a digit)
    limits = ImaLimits(max_entries=max_entries, max_name=40, max_template_data=200)
    kwargs = {"allow_partial_tail": partial, "limits": limits, "base_offset": 5}
    fast = _outcome(bytes(data), **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Reader, "u32le_pair_records", lambda self, *a, **k: [])
        slow = _outcome(bytes(data), **kwargs)
    assert fast == slow


def _reference_replay(entries: list[tuple[int, bytes, bytes]], bank: str) -> bytes:
    size = hashlib.new(bank).digest_size
    value = bytes(size)
    for pcr, template_hash, data in entries:
        if pcr != 10:
            continue
        if not any(template_hash):
            step = b"\xff" * size
        elif bank == "sha1":
            step = template_hash
        else:
            step = hashlib.new(bank, data).digest()
        value = hashlib.new(bank, value + step).digest()
    return value


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([10, 10, 10, 11]), st.booleans(), st.text(max_size=8))),
    st.sampled_from(["sha1", "sha256", "sha384"]),
)
def test_replay_matches_reference(rows: list[tuple[int, bool, str]], bank: str) -> None:
    records = []
    for pcr, violation, path in rows:
        record = bytearray(build_ima_entry(path, bytes(32), pcr=pcr))
        if violation:
            record[4:24] = bytes(20)
        records.append(bytes(record))
    log = parse_ima_log(b"".join(records)) if records else parse_ima_log(b"")
    plain = [(e.pcr, e.template_hash, e.template_data) for e in log.unverified_entries]
    expected = _reference_replay(plain, bank)
    assert log.replay(bank) == expected
    if any(pcr == 10 for pcr, _, _ in plain):
        verified = verify_ima_log(log, expected, bank=bank)
        assert verified.state.pcr_value == expected
