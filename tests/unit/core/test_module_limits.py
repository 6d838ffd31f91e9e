"""Resource limits of the module parsers, measured on worst-case inputs.

Same method as ``test_limits.py`` (whose ``measure_call`` runs each case in a fresh
interpreter and reports wall time and peak-RSS growth): each case builds the
largest input a module's default limits still admit, or the first one they
reject, and asserts generous bounds. The figures are in ``docs/threat-model.md``
(resource limits table).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import struct
import sys
from pathlib import Path

import pytest

from trustedge import _cbor, envelope
from trustedge.attestation.evidence import MAX_LOG_BYTES, Evidence
from trustedge.cose._headers import LIMITS as COSE_LIMITS
from trustedge.envelope._format import MAX_SLOTS
from trustedge.errors import LimitExceededError
from trustedge.measuredboot import EventLogLimits, ImaLimits, parse_ima_log
from trustedge.measuredboot.build import build_event_log, build_ima_entry
from trustedge.ota.suit.codec import DEFAULT_MAX_ENVELOPE

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent.parent
_spec = importlib.util.spec_from_file_location("trustedge_test_limits", _HERE / "test_limits.py")
assert _spec is not None and _spec.loader is not None
_limits = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("trustedge_test_limits", _limits)
_spec.loader.exec_module(_limits)
measure_call = _limits.measure_call

MiB = 1024 * 1024
MAX_SIGNATURES = 64  # decode_sign(max_signatures=64)


def _event_log(events: int) -> bytes:
    """A SHA-256 event log of ``events`` minimal EV_ACTION records (51 bytes each)."""
    header = build_event_log([])
    data = b"x"
    record = struct.pack("<IIIH", 4, 5, 1, 0x000B) + hashlib.sha256(data).digest()
    record += struct.pack("<I", len(data)) + data
    return header + record * events


@pytest.mark.slow
def test_event_log_of_maximal_event_count_is_bounded(tmp_path: Path) -> None:
    most = EventLogLimits().max_events - 1  # the Spec ID header counts as a record
    m = measure_call(tmp_path, "trustedge.measuredboot:parse_event_log", _event_log(most))
    assert m["outcome"] == "ok", m
    assert float(m["seconds"]) < 30, m  # ~1.5 s here
    assert float(m["rss_mib"]) < 600, m  # ~150 MiB
    m = measure_call(tmp_path, "trustedge.measuredboot:parse_event_log", _event_log(most + 1))
    assert m["outcome"] == "LimitExceededError", m


def test_event_log_size_cap_is_checked_before_parsing(tmp_path: Path) -> None:
    too_big = _event_log(1) + bytes(EventLogLimits().max_log_size)
    m = measure_call(tmp_path, "trustedge.measuredboot:parse_event_log", too_big)
    assert m["outcome"] == "LimitExceededError", m
    assert float(m["seconds"]) < 1, m


_IMA_ENTRIES = 200_000


@pytest.mark.slow
@pytest.mark.parametrize("form", ["binary", "ascii"])
def test_large_ima_list_is_linear_and_bounded(tmp_path: Path, form: str) -> None:
    if form == "binary":
        data = build_ima_entry("/usr/bin/" + "x" * 40, bytes(32)) * _IMA_ENTRIES
    else:
        line = f"10 {'ab' * 20} ima-ng sha256:{'cd' * 32} /usr/bin/{'x' * 40}\n"
        data = line.encode() * _IMA_ENTRIES
    m = measure_call(tmp_path, "trustedge.measuredboot:parse_ima_log", data)
    assert m["outcome"] == "ok", m
    assert float(m["seconds"]) < 30, m  # ~1 s here
    assert float(m["rss_mib"]) < 800, m


def test_ima_entry_cap_rejects_one_more() -> None:
    entry = build_ima_entry("/x", bytes(32))
    assert len(parse_ima_log(entry * 100, limits=ImaLimits(max_entries=100)).unverified_entries)
    with pytest.raises(LimitExceededError):
        parse_ima_log(entry * 101, limits=ImaLimits(max_entries=100))


def _suit(size: int) -> bytes:
    """A SUIT envelope (tag 107) whose manifest is one byte string, ``size`` bytes in all."""

    def build(n: int) -> bytes:
        return _cbor.encode(_cbor.CBORTag(107, {2: _cbor.encode([b""]), 3: bytes(n)}))

    n = size - (len(build(size)) - size)
    out = build(n)
    assert len(out) == size, (len(out), size)
    return out


@pytest.mark.parametrize("extra", [0, 1], ids=["maximal", "one-more"])
def test_suit_envelope_size_is_bounded(tmp_path: Path, extra: int) -> None:
    data = _suit(DEFAULT_MAX_ENVELOPE + extra)
    m = measure_call(tmp_path, "trustedge.ota:decode_envelope", data)
    if extra:
        assert m["outcome"] == "LimitExceededError", m
    else:
        assert m["outcome"] in ("ok", "MalformedInputError"), m
    assert float(m["seconds"]) < 5, m
    assert float(m["rss_mib"]) < 100, m


def _cose_sign(signatures: int, payload: int) -> bytes:
    sig = [_cbor.encode({1: -8}), {4: b"kid"}, bytes(64)]
    body = [_cbor.encode({}), {}, bytes(payload), [sig] * signatures]
    return _cbor.encode(_cbor.CBORTag(98, body))


def test_cose_sign_with_most_signatures_and_largest_payload_is_bounded(tmp_path: Path) -> None:
    data = _cose_sign(MAX_SIGNATURES, COSE_LIMITS.max_size - 64 * 90 - 64)
    assert len(data) <= COSE_LIMITS.max_size
    m = measure_call(tmp_path, "trustedge.cose:decode_sign", data)
    assert m["outcome"] == "ok", m
    assert float(m["seconds"]) < 5, m
    assert float(m["rss_mib"]) < 100, m
    m = measure_call(tmp_path, "trustedge.cose:decode_sign", _cose_sign(MAX_SIGNATURES + 1, 8))
    assert m["outcome"] == "MalformedInputError", m
    m = measure_call(tmp_path, "trustedge.cose:decode_sign", _cose_sign(1, COSE_LIMITS.max_size))
    assert m["outcome"] == "LimitExceededError", m


def test_envelope_with_most_slots_is_bounded(tmp_path: Path) -> None:
    keks = [envelope.KEK(bytes([i]) * 32) for i in range(MAX_SLOTS)]
    data = envelope.seal(b"payload", keks)
    m = measure_call(tmp_path, "trustedge.envelope:inspect", data)
    assert m["outcome"] == "ok", m
    assert float(m["seconds"]) < 5, m
    assert float(m["rss_mib"]) < 50, m


@pytest.mark.slow
def test_evidence_bundle_of_maximal_size_is_bounded(tmp_path: Path) -> None:
    doc = json.loads((_ROOT / "vectors/attestation/evidence.json").read_text(encoding="utf-8"))
    valid = next(t for g in doc["testGroups"] for t in g["tests"] if t["result"] == "valid")
    base = Evidence.decode(bytes.fromhex(valid["input"]))
    big = dataclasses.replace(base, event_log=bytes(MAX_LOG_BYTES), ima_log=bytes(MAX_LOG_BYTES))
    data = big.encode()
    m = measure_call(tmp_path, "trustedge.attestation.evidence:Evidence.decode", data)
    assert m["outcome"] == "ok", m
    assert float(m["seconds"]) < 10, m  # ~0.1 s here
    assert float(m["rss_mib"]) < 400, m  # ~100 MiB (copies of two 16 MiB logs)
    raw = _cbor.decode(data, limits=_cbor.DecodeLimits(max_size=len(data)))
    over = _cbor.encode({k: bytes(MAX_LOG_BYTES + 1) if v == bytes(MAX_LOG_BYTES) else v
                         for k, v in raw.items()})  # fmt: skip
    m = measure_call(tmp_path, "trustedge.attestation.evidence:Evidence.decode", over)
    assert m["outcome"] in ("LimitExceededError", "MalformedInputError"), m
