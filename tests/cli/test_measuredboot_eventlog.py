"""``trustedge eventlog show|replay|verify`` on shared logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge._cli import main


def _log(shared: Path, rel: str) -> Path:
    return shared / "eventlog" / rel


def _expected(shared: Path, folder: str, name: str) -> dict[str, object]:
    data = json.loads((shared / "eventlog" / folder / "expected.json").read_text())
    entry: dict[str, object] = data["logs"][name]
    return entry


def test_replay_json_is_exactly_the_expected_object(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "tpm2-tss/binary_measurements_hcrtm.bin")
    assert main(["eventlog", "replay", str(log), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    exp = _expected(third_party, "tpm2-tss", "binary_measurements_hcrtm.bin")
    assert out == exp["pcrs_replayed"]
    assert list(out) == ["sha1", "sha256", "sm3_256"]


def test_replay_text(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(third_party, "go-attestation/crypto_agile_eventlog")
    assert main(["eventlog", "replay", str(log)]) == 0
    assert capsys.readouterr().out.startswith("sha256:\n   0: ")


def test_show_json_decodes_events(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(third_party, "tpm2-tools/logs/event-bootorder.bin")
    assert main(["eventlog", "show", str(log), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "crypto-agile"
    assert len(doc["events"]) == 104
    var = doc["events"][4]["decoded"]["variable"]
    assert var["name"] == "SecureBoot"
    assert var["guid"] == "8be4df61-93ca-11d2-aa0d-00e098032b8c"


def test_show_text(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(third_party, "go-attestation/sb_cert_eventlog")
    assert main(["eventlog", "show", str(log)]) == 0
    out = capsys.readouterr().out
    assert "EV_EFI_VARIABLE_AUTHORITY" in out


def test_verify_json_pcrs_ok_and_mismatch(
    third_party: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog")
    exp = _expected(third_party, "go-attestation", "coreos_36_shielded_vm_no_secure_boot_eventlog")
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_text(json.dumps(exp["pcrs_replayed"]))
    assert main(["eventlog", "verify", str(log), "--pcrs", str(pcrs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verified"] is True
    bad = json.loads(pcrs.read_text())
    bad["sha256"]["7"] = "00" * 32
    pcrs.write_text(json.dumps(bad))
    assert main(["eventlog", "verify", str(log), "--pcrs", str(pcrs)]) == 1
    assert "sha256:7" in capsys.readouterr().err


def test_verify_tpm2_pcrread_yaml(
    third_party: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "go-attestation/crypto_agile_eventlog")
    exp = _expected(third_party, "go-attestation", "crypto_agile_eventlog")
    lines = []
    for bank, values in exp["pcrs_replayed"].items():  # type: ignore[attr-defined]
        lines.append(f"  {bank}:")
        lines.extend(f"    {int(k):<2}: 0x{v.upper()}" for k, v in values.items())
    pcrs = tmp_path / "pcrs.yaml"
    pcrs.write_text("\n".join(lines) + "\n")
    assert main(["eventlog", "verify", str(log), "--pcrs", str(pcrs)]) == 0
    assert "verified" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name", ["binary_bios_measurements-bogus", "binary_bios_measurements-empty"]
)
def test_malformed_exit_3(third_party: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(third_party, f"keylime/create-mb-policy/{name}")
    assert main(["eventlog", "replay", str(log), "--json"]) == 3
    assert "offset" in capsys.readouterr().err


def test_workaround_flag(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(third_party, "tpm2-tools/logs/specid-vendordata.bin")
    assert main(["eventlog", "replay", str(log), "--json"]) == 3
    capsys.readouterr()
    argv = ["eventlog", "replay", str(log), "--json"]
    assert main([*argv, "--workaround", "spec-id-vendor-info-outside-event"]) == 0
    assert json.loads(capsys.readouterr().out) == {}
    assert main([*argv, "--workaround", "nope"]) == 2


def test_verify_with_policy(
    third_party: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
    exp = _expected(
        third_party, "go-attestation", "ubuntu_2104_shielded_vm_no_secure_boot_eventlog"
    )
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_text(json.dumps(exp["pcrs_replayed"]))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "rules": [{"rule": "secure_boot"}]}))
    argv = ["eventlog", "verify", str(log), "--pcrs", str(pcrs), "--policy", str(policy)]
    assert main(argv) == 1
    assert "SecureBoot is not enabled" in capsys.readouterr().err
    policy.write_text(
        json.dumps(
            {"version": 1, "rules": [{"rule": "kernel_cmdline", "required": ["console=ttyS0"]}]}
        )
    )
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == "passed"
    policy.write_text("{")
    assert main(argv) == 3


def _show(log: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["eventlog", "show", str(log), *extra]) == 0
    return capsys.readouterr().out


def test_show_text_has_what_the_json_has(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Variable values, signature-list counts and subjects, Boot#### entries, raw hex."""
    out = _show(_log(third_party, "tpm2-tools/logs/event-bootorder.bin"), capsys)
    assert "SecureBoot = 00 (disabled)" in out
    assert "BootOrder = 0001, 0000, 0002" in out
    assert "description: UEFI Misc Device\n        path: PciRoot(0x0)/Pci(0x6,0x0)\n" in out
    assert "description: UiApp" in out
    out = _show(_log(third_party, "go-attestation/sb_cert_eventlog"), capsys)
    assert "db (d719b2cb-3d3a-4596-a3bc-dad00e67656f)\n        4 signature lists, 4 entries" in out
    assert "            CN=Microsoft Windows Production PCA 2011," in out
    assert "        1 signature lists, 77 entries\n          EFI_CERT_SHA256: 77" in out
    assert "        owner: d281fad2-8d88-47a4-9792-5baa47bb1b89" in out
    assert "subject: CN=Canonical Ltd. Master Certificate Authority" in out
    assert "bytes after VariableData: 0000000000af" in out
    out = _show(_log(third_party, "tpm2-tools/logs/event-moklisttrusted.bin"), capsys)
    assert "MokListTrusted = 01 (enabled)" in out
    assert "SbatLevel = 'sbat,1,2021030218'" in out


def test_show_text_prints_raw_events_as_hex(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "go-attestation/windows_gcp_shielded_vm.eventlog.bin")
    assert main(["eventlog", "show", str(log), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    raw = [ev for ev in doc["events"] if ev["decoded"]["kind"] == "raw"]
    assert raw
    out = _show(log, capsys)
    for ev in raw:
        first = ev["data"][:64] or "(no data)"
        assert f"\n      {first}\n" in out + "\n"
    # Every byte: the lines of the dump join back to the data.
    text_lines = out.splitlines()
    start = text_lines.index(next(t for t in text_lines if t.startswith(f"#{raw[0]['number']} ")))
    dump = []
    for line in text_lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("      ") and ":" not in line and " " not in line.strip():
            dump.append(line.strip())
    assert "".join(dump) == raw[0]["data"]


def test_show_labels_ccel_registers_as_rtmrs(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(third_party, "go-eventlog/ccel/cos-113-intel-tdx.bin")
    out = _show(log, capsys)
    assert out.startswith("format: CCEL (TDX RTMRs); crypto-agile")
    assert "RTMR2   EV_IPL" in out and "PCR 3" not in out
    assert main(["eventlog", "show", str(log), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {ev["register"] for ev in doc["events"]} == {"RTMR0", "RTMR1", "RTMR2"}
    assert {ev["pcr"] for ev in doc["events"]} == {1, 2, 3}  # the logged index, unchanged


# -- eventlog diff ---------------------------------------------------------------------
_UBUNTU = "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog"
_COREOS = "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog"


def test_diff_of_two_real_boots_names_the_first_divergent_event(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _log(third_party, _UBUNTU), _log(third_party, _COREOS)
    assert main(["eventlog", "diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "PCR4: event 23 \\EFI\\ubuntu\\shimx64.efi sha256 digest differs" in out.splitlines()
    assert main(["eventlog", "diff", str(a), str(b), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["same"] is False and doc["bank"] == "sha256"
    pcr4 = next(d for d in doc["divergences"] if d["pcr"] == 4)
    assert (pcr4["kind"], pcr4["event"], pcr4["reference_event"]) == ("digest-differs", 23, 22)


def test_diff_of_a_log_with_itself_is_same(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _log(third_party, _UBUNTU)
    assert main(["eventlog", "diff", str(a), str(a), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"same": True, "bank": None, "divergences": []}
    assert main(["eventlog", "diff", str(a), str(a)]) == 0
    assert capsys.readouterr().out.startswith("same")


def test_diff_of_a_malformed_log_exits_3_with_one_json_document(
    third_party: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x01\x02\x03")
    a = _log(third_party, _UBUNTU)
    assert main(["eventlog", "diff", str(bad), str(a), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["same"] is None and doc["error"] == "malformed input"
    assert main(["eventlog", "diff", str(a), str(bad)]) == 3
    captured = capsys.readouterr()
    assert "malformed input" in captured.err and "Traceback" not in captured.err


def test_verify_mismatch_names_the_first_divergent_event(
    third_party: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The quoted PCR4 stops before the log's last event: the CLI says which one."""
    from trustedge.measuredboot import parse_event_log
    from trustedge.measuredboot.events import bank_hasher

    path = _log(third_party, _UBUNTU)
    log = parse_event_log(path.read_bytes())
    values = {b: {str(k): v.hex() for k, v in vals.items()} for b, vals in log.replay().items()}
    pcr4 = [e for e in log.unverified_events if e.pcr == 4]
    value = bytes(32)
    for ev in pcr4[:-1]:
        value = bank_hasher("sha256")(value + ev.digests["sha256"]).digest()
    values["sha256"]["4"] = value.hex()
    values = {"sha256": values["sha256"]}
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_text(json.dumps(values))
    assert main(["eventlog", "verify", str(path), "--pcrs", str(pcrs)]) == 1
    err = capsys.readouterr().err
    assert f"PCR4: event {pcr4[-1].number} " in err and "log runs ahead" in err
    assert main(["eventlog", "verify", str(path), "--pcrs", str(pcrs), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is False and doc["error"] == "replay mismatch"
    assert [(d["pcr"], d["kind"], d["event"]) for d in doc["divergences"]] == [
        (4, "not-in-pcr", pcr4[-1].number)
    ]
