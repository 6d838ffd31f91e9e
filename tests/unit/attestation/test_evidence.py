"""Evidence bundle: deterministic CBOR round trip, strict decoding, JSON view."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge._cbor import encode
from trustedge.attestation.evidence import Evidence
from trustedge.errors import LimitExceededError, MalformedInputError, TrustedgeError

SHA256 = 0x000B
SHA1 = 0x0004


def sample(**changes: object) -> Evidence:
    fields: dict[str, object] = {
        "device_id": "dev-1",
        "nonce": bytes(range(32)),
        "quote": b"\xff\x54\x43\x47\x80\x18" + bytes(10),
        "signature": b"\x00\x14\x00\x0b" + bytes(8),
        "ak_public": b"\x00\x10" + bytes(16),
        "pcrs": {SHA256: {0: bytes(32), 7: b"\x07" * 32}, SHA1: {0: bytes(20)}},
        "enrollment_ref": "enr-42",
        "event_log": b"\x00" * 40,
        "ima_log": b"10 " + b"a" * 40 + b" ima-ng sha256:" + b"b" * 64 + b" /init\n",
        "ima_offset": 12,
    }
    fields.update(changes)
    return Evidence(**fields)  # type: ignore[arg-type]


def raw(ev: Evidence) -> dict[int, object]:
    obj: dict[int, object] = {
        0: 1,
        1: ev.device_id,
        2: ev.nonce,
        3: ev.quote,
        4: ev.signature,
        5: ev.ak_public,
        8: {alg: dict(v) for alg, v in ev.pcrs.items()},
        11: ev.ima_offset,
    }
    return obj


def test_roundtrip_is_byte_exact() -> None:
    ev = sample()
    data = ev.encode()
    back = Evidence.decode(data)
    assert back == ev
    assert back.encode() == data
    assert back.bank("sha256")[7] == b"\x07" * 32


def test_minimal_bundle() -> None:
    ev = Evidence(
        device_id="d",
        nonce=bytes(16),
        quote=b"q",
        signature=b"s",
        ak_public=b"a",
        pcrs={SHA256: {0: bytes(32)}},
    )
    assert Evidence.decode(ev.encode()) == ev


def test_known_encoding() -> None:
    # Pins the wire format: a change here breaks every deployed device agent.
    ev = Evidence(
        device_id="d",
        nonce=bytes(16),
        quote=b"q",
        signature=b"s",
        ak_public=b"a",
        pcrs={SHA256: {0: bytes(32)}},
    )
    expected = (
        "a8"  # map of 8
        "0001"  # 0: version 1
        "016164"  # 1: "d"
        "0250" + "00" * 16 + "034171"  # 2: nonce; 3: quote b"q"
        "044173"  # 4: signature b"s"
        "054161"  # 5: ak-public b"a"
        "08a10ba1005820" + "00" * 32 + "0b00"  # 8: {11: {0: zeros}}; 11: ima-offset 0
    )
    assert ev.encode() == bytes.fromhex(expected)


def test_json_view() -> None:
    view = sample().to_json()
    assert view["device_id"] == "dev-1"
    assert view["pcrs"]["sha256"]["7"] == "07" * 32
    assert view["pcrs"]["sha1"]["0"] == "00" * 20
    assert view["ima_offset"] == 12 and view["ak_certificate"] is None
    import json

    json.dumps(view)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param([], "map", id="not-a-map"),
        pytest.param({**raw(sample()), 15: 0}, "unknown", id="unknown-field"),
        pytest.param({**raw(sample()), 12: 0}, "byte string", id="model-log-not-bytes"),
        pytest.param({**raw(sample()), "x": 0}, "unknown", id="unknown-text-field"),
        pytest.param({k: v for k, v in raw(sample()).items() if k != 3}, "lacks", id="no-quote"),
        pytest.param({**raw(sample()), 0: 2}, "version", id="version-2"),
        pytest.param({**raw(sample()), 0: True}, "version", id="version-bool"),
        pytest.param({**raw(sample()), 1: ""}, "device-id", id="empty-id"),
        pytest.param({**raw(sample()), 1: "a\nb"}, "printable", id="id-newline"),
        pytest.param({**raw(sample()), 1: b"dev"}, "text", id="id-bytes"),
        pytest.param({**raw(sample()), 2: bytes(15)}, "nonce", id="short-nonce"),
        pytest.param({**raw(sample()), 2: bytes(65)}, "nonce", id="long-nonce"),
        pytest.param({**raw(sample()), 3: b""}, "quote", id="empty-quote"),
        pytest.param({**raw(sample()), 3: "q"}, "quote", id="quote-text"),
        pytest.param({**raw(sample()), 8: {}}, "pcrs", id="no-banks"),
        pytest.param({**raw(sample()), 8: {99: {0: bytes(32)}}}, "bank", id="unknown-bank"),
        pytest.param({**raw(sample()), 8: {SHA256: {}}}, "non-empty", id="empty-bank"),
        pytest.param({**raw(sample()), 8: {SHA256: {24: bytes(32)}}}, "index", id="pcr-24"),
        pytest.param({**raw(sample()), 8: {SHA256: {-1: bytes(32)}}}, "index", id="pcr-neg"),
        pytest.param({**raw(sample()), 8: {SHA256: {0: bytes(20)}}}, "32-byte", id="pcr-size"),
        pytest.param({**raw(sample()), 8: {SHA256: [bytes(32)]}}, "bank", id="bank-list"),
        pytest.param({**raw(sample()), 11: -1}, "ima-offset", id="neg-offset"),
        pytest.param({**raw(sample()), 11: 2**32}, "ima-offset", id="big-offset"),
        pytest.param({**raw(sample()), 7: 5}, "enrollment-ref", id="ref-int"),
        pytest.param({**raw(sample()), 9: "log"}, "event log", id="log-text"),
    ],
)
def test_rejects(obj: object, message: str) -> None:
    with pytest.raises(MalformedInputError, match=message):
        Evidence.decode(encode(obj))


def test_rejects_non_deterministic_encoding() -> None:
    data = sample().encode()
    # Same map with the integer 0 value re-encoded in a longer form (0x18 0x00).
    longer = data.replace(b"\x0c", b"\x18\x0c", 1)  # ima_offset 12 -> non-preferred form
    assert longer != data
    with pytest.raises(MalformedInputError):
        Evidence.decode(longer)


def test_rejects_trailing_and_truncated() -> None:
    data = sample().encode()
    with pytest.raises(MalformedInputError):
        Evidence.decode(data + b"\x00")
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(MalformedInputError):
            Evidence.decode(data[:cut])


def test_size_limits() -> None:
    with pytest.raises(LimitExceededError):
        Evidence.decode(encode({**raw(sample()), 3: bytes(4097)}))
    with pytest.raises(LimitExceededError):
        Evidence.decode(b"\x00" * (60 * 1024 * 1024))  # above three 16 MiB logs


def test_constructor_checks_too() -> None:
    with pytest.raises(MalformedInputError):
        sample(nonce=b"short")
    with pytest.raises(MalformedInputError):
        sample(pcrs={SHA256: {0: b"x"}})


@given(st.binary(max_size=400))
@settings(max_examples=400, deadline=None)
def test_hostile_bytes_raise_only_trustedge_errors(data: bytes) -> None:
    try:
        Evidence.decode(data)
    except TrustedgeError:
        pass


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_bundles_raise_only_trustedge_errors(data: st.DataObject) -> None:
    buf = bytearray(sample().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    try:
        ev = Evidence.decode(bytes(buf))
    except TrustedgeError:
        return
    assert ev.encode() == bytes(buf)


@given(
    device=st.text(st.characters(whitelist_categories=("L", "N", "P")), min_size=1, max_size=40),
    nonce=st.binary(min_size=16, max_size=64),
    pcrs=st.dictionaries(st.integers(0, 23), st.binary(min_size=32, max_size=32), min_size=1),
    offset=st.integers(0, 2**32 - 1),
    log=st.none() | st.binary(max_size=64),
)
@settings(max_examples=150, deadline=None)
def test_any_valid_bundle_roundtrips(
    device: str, nonce: bytes, pcrs: dict[int, bytes], offset: int, log: bytes | None
) -> None:
    ev = Evidence(
        device_id=device,
        nonce=nonce,
        quote=b"q",
        signature=b"s",
        ak_public=b"a",
        pcrs={SHA256: pcrs},
        ima_log=log,
        ima_offset=offset,
    )
    assert Evidence.decode(ev.encode()) == ev


def test_fuzz_entry_point_smoke() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_attestation_evidence.py"
    spec = importlib.util.spec_from_file_location("fuzz_attestation_evidence", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = sample().encode()
    for blob in (b"", data, data[:-1], data + b"\x00", b"eyJhbGciOiJFUzI1NiJ9.e30.AA", b"\xd2\x84"):
        module.TestOneInput(blob)
