"""Container parsing: canonical CBOR, unknown fields, hostile parameters."""

from __future__ import annotations

import io
import json

import pytest

from trustedge import _cbor, envelope
from trustedge._cli._common import to_jsonable
from trustedge.envelope._format import PREAMBLE, Header, Slot, encode_prefix, read_prefix
from trustedge.errors import KeyNotFoundError, MalformedInputError, UnsupportedAlgorithmError

KEK = envelope.KEK(b"\x55" * 32)


def _with_header(header: bytes, body: bytes = b"") -> bytes:
    return (
        PREAMBLE + len(header).to_bytes(4, "big") + header + (1).to_bytes(4, "big") + b"\x80" + body
    )


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (_cbor.encode({1: 1, 2: {}, 4: -5}), MalformedInputError),  # negative size
        (_cbor.encode({1: 1, 2: {}, 9: 0}), MalformedInputError),  # unknown field
        (_cbor.encode({1: 7, 2: {}}), UnsupportedAlgorithmError),  # unknown suite
        (_cbor.encode({2: {}}), MalformedInputError),  # no suite
        (_cbor.encode({1: 1, 2: {"k": 1}}), MalformedInputError),  # context value type
        (_cbor.encode({1: 1, 2: {}, 3: b"x"}), MalformedInputError),  # content type
        (bytes.fromhex("a201180102a0"), MalformedInputError),  # non-canonical suite
        (_cbor.encode([1, 2]), MalformedInputError),  # not a map
    ],
)
def test_bad_headers(header: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_prefix(io.BytesIO(_with_header(header)).read)


def test_header_round_trip() -> None:
    h = Header(2, {"a": "b", "c": b"\x00"}, "text/plain", 5)
    assert Header.decode(h.encode()) == h


def test_bad_slots() -> None:
    header = Header().encode()
    for slots in ([[1, "x", {}, "not bytes"]], [[1, "x", {1: 2}, b""]], [[-1, "x", {}, b""]], {}):
        raw = _cbor.encode(slots)
        data = (
            PREAMBLE + len(header).to_bytes(4, "big") + header + len(raw).to_bytes(4, "big") + raw
        )
        with pytest.raises(MalformedInputError):
            read_prefix(io.BytesIO(data).read)


def test_inspect_hostile_params_is_json_safe() -> None:
    sealed = envelope.seal(b"x", [KEK])
    p = read_prefix(io.BytesIO(sealed).read)
    odd = Slot(9, "odd", {"t": _cbor.CBORTag(42, [b"\x01", 2.5])}, b"")
    forged = encode_prefix(p.header_bytes, [*p.slots, odd]) + sealed[p.body_offset :]
    info = envelope.inspect(forged)
    text = json.dumps(to_jsonable(info))
    assert '"tag": 42' in text and '"verified": false' in text
    assert envelope.open(forged, [KEK]) == b"x"  # unknown slot types are skipped


def test_non_ascii_key_ids_do_not_break_matching() -> None:
    sealed = envelope.seal(b"x", [KEK])
    p = read_prefix(io.BytesIO(sealed).read)
    odd = [Slot(s.type, "kék:" + s.kek_id, s.params, s.wrapped) for s in p.slots]
    forged = encode_prefix(p.header_bytes, odd) + sealed[p.body_offset :]
    hpke = envelope.HPKEIdentity.generate()
    box = envelope.SealedBoxIdentity.generate()
    with pytest.raises(KeyNotFoundError):
        envelope.open(forged, [KEK, hpke, box])
