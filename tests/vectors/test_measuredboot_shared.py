"""Every firmware event log in ``../shared/vectors/eventlog`` against its ``expected.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import shared_vectors_dir
from trustedge.errors import MalformedInputError, ReplayMismatchError
from trustedge.measuredboot import Workaround, parse_event_log

FOLDERS = [
    "go-attestation",
    "go-eventlog",
    "ima-evm-utils",
    "keylime",
    "tcglog-parser",
    "tpm2-tools",
    "tpm2-tss",
]


def _log_cases() -> list[tuple[str, str]]:
    base = shared_vectors_dir()
    if base is None:
        return [("missing", "missing")]
    cases = []
    for folder in FOLDERS:
        expected = json.loads((base / "eventlog" / folder / "expected.json").read_text())
        for name in expected["logs"]:
            if (base / "eventlog" / folder / name).is_file():
                cases.append((folder, name))
    return cases


CASES = _log_cases()


def _expected(shared: Path, folder: str, name: str) -> dict[str, Any]:
    data = json.loads((shared / "eventlog" / folder / "expected.json").read_text())
    entry: dict[str, Any] = data["logs"][name]
    return entry


def _hexed(pcrs: dict[str, dict[int, bytes]]) -> dict[str, dict[str, str]]:
    return {bank: {str(k): v.hex() for k, v in vals.items()} for bank, vals in pcrs.items() if vals}


def _unhex(pcrs: dict[str, dict[str, str]]) -> dict[str, dict[int, bytes]]:
    return {
        bank: {int(k): bytes.fromhex(v) for k, v in vals.items()} for bank, vals in pcrs.items()
    }


def _is_event_log(exp: dict[str, Any]) -> bool:
    return "n_records_total" in exp


def test_every_shared_log_is_covered(shared_vectors: Path) -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("folder", "name"), CASES, ids=[f"{f}/{n}" for f, n in CASES])
def test_shared_log(shared_vectors: Path, folder: str, name: str) -> None:
    exp = _expected(shared_vectors, folder, name)
    data = (shared_vectors / "eventlog" / folder / name).read_bytes()
    if not _is_event_log(exp):
        # bogus/empty inputs and the ACPI CCEL tables (not event logs) are rejected.
        with pytest.raises(MalformedInputError) as info:
            parse_event_log(data)
        assert info.value.offset is not None
        return
    workarounds: set[Workaround] = set()
    if "vendor" in str(exp.get("notes", "")) and "OUTSIDE" in str(exp.get("notes", "")):
        with pytest.raises(MalformedInputError) as info:
            parse_event_log(data)
        assert info.value.offset is not None
        workarounds.add(Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT)
    log = parse_event_log(data, workarounds=workarounds)
    events = log.unverified_events
    assert len(events) == exp["n_records_total"]
    assert sum(1 for e in events if e.type_name == "EV_NO_ACTION") == exp["n_no_action"]
    counts: dict[str, int] = {}
    for ev in events:
        counts[ev.type_name] = counts.get(ev.type_name, 0) + 1
    assert counts == exp["event_type_counts"]
    per_pcr: dict[str, int] = {}
    for ev in events:
        if ev.type_name != "EV_NO_ACTION":
            per_pcr[str(ev.pcr)] = per_pcr.get(str(ev.pcr), 0) + 1
    assert per_pcr == exp["events_per_pcr"]
    assert log.startup_locality == exp["startup_locality"]
    assert log.hcrtm is exp["hcrtm_event"]
    spec = exp["spec_id_event"]
    if spec is None:
        assert log.format == "sha1"
    else:
        assert log.format == "crypto-agile"
        assert log.spec_id is not None
        assert log.spec_id.algorithms == spec["algorithms"]
        assert log.spec_id.uintn_size == spec["uintn_size"]
        assert len(log.spec_id.vendor_info) == spec["vendor_info_size"]

    replayed = log.replay()
    if "rtmrs_replayed" in exp or "rtmrs" in exp.get("expected_from_source", {}):
        rtmrs = exp.get("rtmrs_replayed") or exp["expected_from_source"]["rtmrs"]
        # CCEL: the PCRIndex field is an MR index, 1..4 -> RTMR0..3.
        want = {"sha384": {str(int(k) + 1): v for k, v in rtmrs.items()}}
    else:
        want = exp["pcrs_replayed"]
    assert _hexed(replayed) == {b: v for b, v in want.items() if v}

    if want and any(want.values()):
        verified = log.verify(_unhex(want))
        assert verified.verified_pcrs == {int(k) for vals in want.values() for k in vals}
        assert all(ev.type_name != "EV_NO_ACTION" for ev in verified.events)


def test_hcrtm_pcr0_matches_tpm2_tss(shared_vectors: Path) -> None:
    data = (shared_vectors / "eventlog/tpm2-tss/binary_measurements_hcrtm.bin").read_bytes()
    log = parse_event_log(data)
    assert log.pcr0_locality() == 4
    assert log.replay()["sha1"][0].hex() == "15f4e6ca457d1af6bc49511a93ba3500ad69acc5"


def test_ebs_workaround_is_opt_in(shared_vectors: Path) -> None:
    base = shared_vectors / "eventlog/go-attestation"
    exp = _expected(shared_vectors, "go-attestation", "ebs_event_missing_eventlog")
    quoted = exp["expected_from_source"]["quoted_pcr5 (TestEBSVerifyWorkaround)"]
    log = parse_event_log((base / "ebs_event_missing_eventlog").read_bytes())
    sha1_only = {"sha1": {5: bytes.fromhex(quoted["sha1"]["5"])}}
    with pytest.raises(ReplayMismatchError) as info:
        log.verify(sha1_only)
    assert info.value.mismatches == [("sha1", 5)]
    verified = log.verify(sha1_only, workarounds={Workaround.MISSING_EXIT_BOOT_SERVICES})
    assert verified.verified_pcrs == {5}
    assert [ev.data for ev in verified.synthetic_events] == [
        b"Exit Boot Services Invocation",
        b"Exit Boot Services Returned with Success",
    ]


def test_quoted_pcrs_of_sources(shared_vectors: Path) -> None:
    """Upstream quoted PCR sets (incl. PCRs the log never touches) verify."""
    checked = 0
    for folder, name in CASES:
        exp = _expected(shared_vectors, folder, name)
        for key, value in exp.get("expected_from_source", {}).items():
            if not (key.startswith("pcrs") or key.startswith("quoted_pcrs")):
                continue
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                continue
            log = parse_event_log((shared_vectors / "eventlog" / folder / name).read_bytes())
            log.verify(_unhex(value))
            checked += 1
    assert checked >= 3
