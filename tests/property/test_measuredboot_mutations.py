"""Mutated shared logs and IMA lists raise only MalformedInputError (or parse)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.vectors import third_party_dir
from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    EventLogLimits,
    check_events,
    decode_event,
    parse_event_log,
    parse_ima_log,
)

_BASE = third_party_dir()


def _read(rel: str) -> bytes:
    return (_BASE / "eventlog" / rel).read_bytes()


LOGS = [
    _read("tpm2-tools/logs/event-bootorder.bin"),
    _read("tpm2-tools/logs/event-uefi-sha1-log.bin"),
    _read("tpm2-tss/binary_measurements_hcrtm.bin"),
    _read("go-attestation/option_rom_eventlog"),
    _read("go-attestation/sb_cert_eventlog"),
]
IMA = [
    _read("tpm2-tss/ima/sml-ima-sig-sha256.bin"),
    _read("tpm2-tss/ima/sml-ima-sha1.bin"),
    _read("keylime/ima/test_ima_verification/signatures.ascii"),
    _read("keylime/ima/test_ima_verification/keyrings.ascii"),
]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "set", "cut", "dup", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos : pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00" * 4, b"\x7f"]))
        elif kind == "cut":
            del data[pos:]
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _exercise_log(data: bytes) -> None:
    try:
        log = parse_event_log(data, limits=EventLogLimits(max_event_size=1 << 16))
    except MalformedInputError:
        return
    for bank, values in log.replay().items():
        assert all(len(v) for v in values.values()), bank
    uintn = log.spec_id.uintn_size if log.spec_id else 2
    for ev in log.unverified_events:
        decode_event(ev, uintn_size=uintn)
        assert len(ev.data) <= 1 << 16
    for bank in log.banks:
        check_events(log.unverified_events, bank)


@SETTINGS
@given(mutated(LOGS))
def test_mutated_event_logs(third_party: Path, data: bytes) -> None:
    _exercise_log(data)


@SETTINGS
@given(mutated(IMA))
def test_mutated_ima_lists(third_party: Path, data: bytes) -> None:
    for partial in (False, True):
        try:
            log = parse_ima_log(data, allow_partial_tail=partial)
        except MalformedInputError:
            continue
        log.replay("sha1")
        log.replay("sha256")
        for entry in log.unverified_entries:
            try:
                entry.fields()
            except MalformedInputError:
                pass


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _exercise_log(data)
    try:
        parse_ima_log(data, allow_partial_tail=True)
    except MalformedInputError:
        pass


def test_size_limits_are_enforced() -> None:
    huge_event = (
        (0).to_bytes(4, "little")
        + (8).to_bytes(4, "little")
        + bytes(20)
        + (0xFFFFFFF0).to_bytes(4, "little")
    )
    try:
        parse_event_log(huge_event)
    except MalformedInputError as exc:
        assert exc.offset == 28
    else:  # pragma: no cover
        raise AssertionError("oversized event accepted")


def test_fuzz_entry_point_runs_on_the_corpus() -> None:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "fuzz" / "fuzz_measuredboot_parsers.py"
    spec = importlib.util.spec_from_file_location("fuzz_measuredboot_parsers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for data in [*LOGS, *IMA, b"", b"\xff" * 64]:
        module.TestOneInput(data)
