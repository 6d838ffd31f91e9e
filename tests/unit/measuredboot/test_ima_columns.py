"""IMA entries stored by column (``ImaEntries``): the sequence behaves like the tuple of
``ImaEntry`` it replaced, views select the right entries, and memory stays small."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    ImaEntries,
    ImaEntry,
    ImaLog,
    ImaState,
    parse_ima_log,
    verify_ima_log,
)
from trustedge.measuredboot.build import build_ima_entry


def _ascii_line(pcr: int, path: str, digest: bytes) -> bytes:
    d_ng = b"sha256:\x00" + digest
    n_ng = path.encode() + b"\x00"
    template = b"".join(
        (len(d_ng).to_bytes(4, "little"), d_ng, len(n_ng).to_bytes(4, "little"), n_ng)
    )
    th = hashlib.sha1(template).hexdigest()
    return f"{pcr} {th} ima-ng sha256:{digest.hex()} {path}\n".encode()


def _mixed() -> list[tuple[int, str, bytes]]:
    return [
        (10 if i % 3 else 11, "boot_aggregate" if i == 0 else f"/bin/f{i}", bytes([i]) * 32)
        for i in range(12)
    ]


def test_sequence_behaves_like_the_tuple() -> None:
    rows = _mixed()
    log = parse_ima_log(b"".join(_ascii_line(*r) for r in rows))
    entries = log.unverified_entries
    assert isinstance(entries, ImaEntries)
    as_tuple = tuple(entries)
    assert len(entries) == len(rows) == len(as_tuple)
    assert entries == as_tuple and entries == list(as_tuple)
    assert entries[-1] == as_tuple[-1] and entries[3] == as_tuple[3]
    view = entries[2:9:3]
    assert isinstance(view, ImaEntries) and list(view) == list(as_tuple[2:9:3])
    assert [e.number for e in entries] == list(range(len(rows)))
    for e, (pcr, path, digest) in zip(entries, rows, strict=True):
        assert isinstance(e, ImaEntry)
        assert (e.pcr, e.decoded_path, e.decoded_digest) == (pcr, path, digest)
        assert e.fields().path == path and e.fields().digest_algorithm == "sha256"
    assert entries != as_tuple[:-1]


def test_binary_and_ascii_give_equal_entries() -> None:
    rows = _mixed()
    ascii_log = parse_ima_log(b"".join(_ascii_line(*r) for r in rows))
    binary_log = parse_ima_log(b"".join(build_ima_entry(p, d, pcr=c) for c, p, d in rows))
    for a, b in zip(ascii_log.unverified_entries, binary_log.unverified_entries, strict=True):
        assert a[2:] == b[2:]  # all but the offsets (line vs record positions)
        assert a.fields() == b.fields()


def test_verified_entries_are_only_the_pcr() -> None:
    rows = _mixed()
    log = parse_ima_log(b"".join(_ascii_line(*r) for r in rows))
    pcr10 = log.replay("sha1")
    verified = verify_ima_log(log, pcr10)
    want = [e for e in log.unverified_entries if e.pcr == 10]
    assert list(verified.entries) == want and len(verified.entries) == 8
    assert all(e.pcr == 10 for e in verified.entries)
    # A prefix: the quoted value after the 5th entry (number 4, PCR 10).
    prefix = parse_ima_log(b"".join(_ascii_line(*r) for r in rows[:5])).replay("sha1")
    verified = verify_ima_log(log, prefix)
    assert [e.number for e in verified.entries] == [1, 2, 4]
    assert verified.state.entries == 5
    assert verified.state.byte_offset == log.unverified_entries[5].offset


def test_log_from_entries_keeps_numbers_and_replays_the_same() -> None:
    rows = _mixed()
    log = parse_ima_log(b"".join(_ascii_line(*r) for r in rows))
    picked = [e for e in log.unverified_entries if e.number % 2 == 0]
    rebuilt = ImaLog(picked, fmt="ascii", consumed=0, trailing=0)
    assert [e.number for e in rebuilt.unverified_entries] == [e.number for e in picked]
    assert list(rebuilt.unverified_entries) == picked
    again = ImaLog(log.unverified_entries, fmt="ascii", consumed=0, trailing=0)
    assert again.replay("sha256", pcr=11) == log.replay("sha256", pcr=11)


def test_memory_per_entry_is_small() -> None:
    n = 20_000
    data = b"".join(_ascii_line(10, f"/usr/lib/x/file{i:07d}.so", bytes(32)) for i in range(n))
    gc.collect()
    tracemalloc.start()
    try:
        log = parse_ima_log(data)
        verified = verify_ima_log(log, log.replay("sha1"))
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(verified.entries) == n
    # Template hash and data (about 100 bytes here) plus 48 bytes of columns per entry; the
    # tuples of bytes and strings this replaced held about 500.
    assert held / n < 200, held / n
    assert peak / n < 260, peak / n


def _fields_of(name: str, data: bytes) -> object:
    """What ``fields()`` of an entry with this template name and data gives (or raises)."""
    entry = ImaEntry(0, 0, 10, bytes(20), name, data)  # decoded_path None: decoded on demand
    try:
        return tuple(entry.fields())
    except MalformedInputError:
        return None


_FIELD = st.one_of(
    st.just(b"sha256:\x00" + bytes(32)),
    st.binary(min_size=20, max_size=20),
    st.binary(max_size=12),
    st.just(b"/bin/sh\x00"),
    st.just(b"/with\x00nul\x00\x00"),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["ima-ng", "ima-sig", "ima-buf", "ima-modsig", "ima", "other"]),
    st.lists(_FIELD, max_size=6),
    st.binary(max_size=3),
)
def test_fields_decoded_on_read_match_fields(name: str, parts: list[bytes], junk: bytes) -> None:
    """The fields an entry carries when read from the columns are exactly what ``fields()``
    decodes from its template data, and an entry whose data does not decode has none."""
    data = b"".join(len(p).to_bytes(4, "little") + p for p in parts) + junk
    if name == "ima":
        data = parts[0] + junk if parts else junk
    log = ImaLog([ImaEntry(0, 0, 10, bytes(20), name, data)], fmt="binary", consumed=0, trailing=0)
    entry = log.unverified_entries[0]
    want = _fields_of(name, data)
    if want is None:
        assert entry.decoded_path is None
    else:
        assert tuple(entry.fields()) == want
        assert (entry.decoded_algorithm, entry.decoded_digest, entry.decoded_path) == want[:3]


def test_policy_from_the_columns_equals_policy_over_entries() -> None:
    """The allow-list fast path (``allow_list_rows``) finds exactly what the rules over
    built entries find, for allowed, unknown, wrong-digest, misplaced and violation entries."""
    from trustedge.measuredboot.ima import VerifiedImaLog
    from trustedge.measuredboot.policy import ImaRuntimePolicy

    rows = _mixed()
    lines = [_ascii_line(*r) for r in rows]
    lines.append(b"10 " + b"0" * 40 + b" ima-ng sha256:" + b"00" * 32 + b" /tmp/v\n")
    lines.append(_ascii_line(10, "boot_aggregate", bytes(32)))  # only valid as entry 0
    lines.append(f"10 {'11' * 20} ima-sig sha256:{'22' * 32} /usr/bin/x 0302\n".encode())
    log = parse_ima_log(b"".join(lines))
    digests = {p: frozenset({d}) for _, p, d in rows[:8]}
    digests["/bin/f9"] = frozenset({bytes(32)})  # wrong digest for /bin/f9
    policy = ImaRuntimePolicy(digests=digests)
    entries = log.unverified_entries
    state = ImaState(len(entries), 0, bytes(20))  # the policy reads only the entries
    columns = policy.violations(VerifiedImaLog(entries, state))
    built = policy.violations(VerifiedImaLog(tuple(entries), state))  # type: ignore[arg-type]
    assert columns == built
    assert {v.kind.name for v in columns} >= {
        "NOT_IN_POLICY", "DIGEST_NOT_ALLOWED", "MEASUREMENT_VIOLATION", "MISPLACED_BOOT_AGGREGATE"
    }  # fmt: skip
    for i, path, digest in entries.allow_list_rows():
        if path is not None:
            assert (path, digest) == (entries[i].fields().path, entries[i].fields().digest)
