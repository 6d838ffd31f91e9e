"""Every firmware event log in ``tests/data/third_party/eventlog`` against its ``expected.json``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import third_party_dir
from trustedge.errors import MalformedInputError, ReplayMismatchError, VerificationError
from trustedge.measuredboot import Workaround, parse_event_log
from trustedge.measuredboot.secureboot import secure_boot_state
from trustedge.measuredboot.consistency import DataCheck, check_event_data
from trustedge.measuredboot.ima import (
    boot_aggregate_candidates,
    check_boot_aggregate,
    parse_ima_log,
    verify_ima_log,
)

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
    base = third_party_dir()
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


def test_every_shared_log_is_covered(third_party: Path) -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("folder", "name"), CASES, ids=[f"{f}/{n}" for f, n in CASES])
def test_shared_log(third_party: Path, folder: str, name: str) -> None:
    exp = _expected(third_party, folder, name)
    data = (third_party / "eventlog" / folder / name).read_bytes()
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
        sb_var = exp["secureboot_variable"]
        if sb_var is not None and 7 in verified.verified_pcrs:
            if not any(ev.pcr == 7 and ev.event_type == 4 for ev in verified.events):
                # A fragment (tpm2-tools' event-uefivar.bin is one variable): without the
                # PCR7 separator nothing tells firmware configuration from later extends.
                with pytest.raises(VerificationError, match="no separator"):
                    secure_boot_state(verified)
                return
            state = secure_boot_state(
                verified, workarounds={Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY}
            )
            assert state.enabled is sb_var.startswith("01")


def test_hcrtm_pcr0_matches_tpm2_tss(third_party: Path) -> None:
    data = (third_party / "eventlog/tpm2-tss/binary_measurements_hcrtm.bin").read_bytes()
    log = parse_event_log(data)
    assert log.pcr0_locality() == 4
    assert log.replay()["sha1"][0].hex() == "15f4e6ca457d1af6bc49511a93ba3500ad69acc5"


def test_ebs_workaround_is_opt_in(third_party: Path) -> None:
    base = third_party / "eventlog/go-attestation"
    exp = _expected(third_party, "go-attestation", "ebs_event_missing_eventlog")
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


def test_quoted_pcrs_of_sources(third_party: Path) -> None:
    """Upstream quoted PCR sets (incl. PCRs the log never touches) verify."""
    checked = 0
    for folder, name in CASES:
        exp = _expected(third_party, folder, name)
        for key, value in exp.get("expected_from_source", {}).items():
            if not (key.startswith("pcrs") or key.startswith("quoted_pcrs")):
                continue
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                continue
            log = parse_event_log((third_party / "eventlog" / folder / name).read_bytes())
            log.verify(_unhex(value))
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize(("folder", "name"), CASES, ids=[f"{f}/{n}" for f, n in CASES])
def test_digest_vs_data(third_party: Path, folder: str, name: str) -> None:
    """Mismatches (EV_IPL aside) and EV_EFI_VARIABLE_BOOT digest styles match expected.json."""
    exp = _expected(third_party, folder, name)
    if "digest_check_bank" not in exp:
        return
    data = (third_party / "eventlog" / folder / name).read_bytes()
    log = parse_event_log(data, workarounds={Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT})
    bank = exp["digest_check_bank"]
    mismatches: dict[str, list[int]] = {}
    styles = {"full_UEFI_VARIABLE_DATA": 0, "VariableData_only": 0, "neither": 0}
    for ev in log.unverified_events:
        result = check_event_data(ev, bank)
        if ev.type_name == "EV_EFI_VARIABLE_BOOT":
            key = {
                DataCheck.MATCH: "full_UEFI_VARIABLE_DATA",
                DataCheck.MATCH_VARIABLE_DATA_ONLY: "VariableData_only",
            }.get(result, "neither")
            styles[key] += 1
        elif ev.type_name != "EV_IPL" and result in (
            DataCheck.MISMATCH,
            DataCheck.MATCH_VARIABLE_DATA_ONLY,
        ):
            mismatches.setdefault(ev.type_name, []).append(ev.number)
    assert mismatches == exp["data_digest_mismatch_event_indices"]
    if exp.get("ev_efi_variable_boot_digest_style") is not None:
        assert styles == exp["ev_efi_variable_boot_digest_style"]


IMA_FOLDERS = ["keylime", "tpm2-tss", "ima-evm-utils"]


def _ima_cases() -> list[tuple[str, str]]:
    base = third_party_dir()
    out = []
    for folder in IMA_FOLDERS:
        expected = json.loads((base / "eventlog" / folder / "expected.json").read_text())
        out.extend((folder, name) for name in expected["ima"])
    return out


IMA_CASES = _ima_cases()


@pytest.mark.parametrize(("folder", "name"), IMA_CASES, ids=[f"{f}/{n}" for f, n in IMA_CASES])
def test_shared_ima_list(third_party: Path, folder: str, name: str) -> None:
    exp = json.loads((third_party / "eventlog" / folder / "expected.json").read_text())["ima"][
        name
    ]
    data = (third_party / "eventlog" / folder / name).read_bytes()
    trailing = exp.get("trailing_bytes", 0)
    if trailing:
        with pytest.raises(MalformedInputError) as info:
            parse_ima_log(data)
        assert info.value.offset is not None
        log = parse_ima_log(data, allow_partial_tail=True)
        assert log.trailing_bytes == trailing
    else:
        log = parse_ima_log(data)
    assert log.format == ("ascii" if exp["format"].startswith("ascii") else "binary")
    entries = log.unverified_entries
    assert len(entries) == exp.get("n_entries", exp.get("n_complete_entries"))
    assert sorted({e.template_name for e in entries}) == sorted(exp["templates"])
    for entry, want in zip(entries, exp.get("entries", []), strict=True):
        assert entry.template_hash.hex() == want["template_hash"]
        fields = entry.fields()
        path = want.get("path", want.get("fields", {}).get("name"))
        assert fields.path == path
        if "template_hash_matches_sha1_of_template_data" in want:
            same = hashlib.sha1(entry.template_data).digest() == entry.template_hash
            assert same is want["template_hash_matches_sha1_of_template_data"]
        if "fields" in want:
            digest = want["fields"]["digest"]
            expected_digest = digest.split(":", 1)[-1]
            assert fields.digest.hex() == expected_digest
    pcr10 = exp.get("pcr10_sha1_replay_from_zero", exp.get("pcr_sha1_replay_from_zero"))
    if pcr10 is not None:
        pcr = exp.get("pcr_indices", [10])[0] if exp.get("pcr_indices") else 10
        assert log.replay("sha1", pcr=pcr).hex() == pcr10
        mismatching = any(
            any(e.template_hash) and hashlib.sha1(e.template_data).digest() != e.template_hash
            for e in entries
        )
        if entries and not mismatching and pcr == 10:
            verified = verify_ima_log(log, bytes.fromhex(pcr10))
            assert len(verified.entries) == len(entries)
        elif mismatching:
            with pytest.raises(ReplayMismatchError):
                verify_ima_log(log, bytes.fromhex(pcr10))


def test_ima_iterative_prefix_and_incremental(third_party: Path) -> None:
    """Every running PCR10 value verifies a prefix; resuming from the state works."""
    base = third_party / "eventlog/keylime/ima/test_ima_verification"
    data = (base / "measurements.ascii").read_bytes()
    log = parse_ima_log(data)
    running = list(log.unverified_entries)
    values = []
    for i in range(len(running)):
        part = parse_ima_log(b"".join(data.splitlines(keepends=True)[: i + 1]))
        values.append(part.replay("sha1"))
    for i, value in enumerate(values):
        verified = verify_ima_log(log, value)
        assert len(verified.entries) == i + 1
    first = verify_ima_log(log, values[0])
    rest = data[first.state.byte_offset :]
    cont = parse_ima_log(rest, base_offset=first.state.byte_offset, first_number=1)
    second = verify_ima_log(cont, values[-1], state=first.state)
    assert second.state.entries == len(running)
    assert second.state.byte_offset == len(data)


@pytest.mark.parametrize(
    "name", ["sample-binary_bios_measurements-pcrs-8-9", "test_binary_bios_measurements"]
)
def test_boot_aggregate(third_party: Path, name: str) -> None:
    base = third_party / "eventlog/ima-evm-utils"
    ascii_name = {
        "sample-binary_bios_measurements-pcrs-8-9": "sample-ascii_runtime_measurements-pcrs-8-9",
        "test_binary_bios_measurements": "test_ascii_runtime_measurements",
    }[name]
    exp = _expected(third_party, "ima-evm-utils", name)
    log = parse_event_log((base / name).read_bytes())
    replayed = log.replay()
    verified = log.verify(replayed)
    ima = parse_ima_log((base / ascii_name).read_bytes())
    pcrs = {bank: dict(vals) for bank, vals in replayed.items()}
    check_boot_aggregate(ima.unverified_entries, pcrs)
    assert verified.verified_pcrs
    for bank, values in exp["derived_boot_aggregates"].items():
        old, new = boot_aggregate_candidates(replayed[bank], bank)
        assert old.hex() == values["pcr0-7"]
        assert new.hex() == values["pcr0-9"]
    bad = {bank: {**vals, 0: bytes(len(vals[0]))} for bank, vals in pcrs.items()}
    with pytest.raises(ReplayMismatchError):
        check_boot_aggregate(ima.unverified_entries, bad)


def test_secure_boot_authorities_of_go_attestation(third_party: Path) -> None:
    """sb_cert: Secure Boot on, db/dbx present, authorities logged after the separator."""
    data = (third_party / "eventlog/go-attestation/sb_cert_eventlog").read_bytes()
    log = parse_event_log(data)
    state = secure_boot_state(log.verify(log.replay()))
    assert state.enabled is True
    assert state.db and state.dbx
    assert [a.name for a in state.authorities] == ["db", "Shim", "Shim"]
    with pytest.raises(TypeError):
        secure_boot_state(log)  # type: ignore[arg-type]


def test_secure_boot_rejects_unverified_pcr7(third_party: Path) -> None:
    data = (third_party / "eventlog/go-attestation/sb_cert_eventlog").read_bytes()
    log = parse_event_log(data)
    only_pcr4 = {"sha256": {4: log.replay()["sha256"][4]}}
    with pytest.raises(VerificationError):
        secure_boot_state(log.verify(only_pcr4))


def _sources_with(shared: Path, needle: str) -> list[tuple[str, str, Any, Path]]:
    out = []
    for folder in FOLDERS:
        doc = json.loads((shared / "eventlog" / folder / "expected.json").read_text())
        for name, entry in doc["logs"].items():
            for key, value in entry.get("expected_from_source", {}).items():
                if needle in key:
                    stored = name.split(" (identical bytes to ")
                    if len(stored) == 2:
                        path = (shared / "eventlog" / folder / stored[1].split(";")[0]).resolve()
                    else:
                        path = shared / "eventlog" / folder / name
                    out.append((folder, name, value, path))
    return out


def test_efi_application_digests_match_go_eventlog(third_party: Path) -> None:
    cases = _sources_with(third_party, "efi_app_digests")
    assert len(cases) >= 6
    for _folder, _name, expected, path in cases:
        log = parse_event_log(path.read_bytes())
        state = secure_boot_state(
            log.verify(log.replay()), workarounds={Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY}
        )
        for bank, digests in expected.items():
            assert [app.digests[bank].hex() for app in state.boot_applications] == digests


def test_post_separator_authorities_match_go_attestation(third_party: Path) -> None:
    cases = _sources_with(third_party, "PostSeparatorAuthority count")
    assert len(cases) == 2
    for _folder, _name, count, path in cases:
        log = parse_event_log(path.read_bytes())
        state = secure_boot_state(log.verify(log.replay()))
        assert len(state.authorities) == count
