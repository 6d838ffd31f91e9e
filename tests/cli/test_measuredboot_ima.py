"""``trustedge ima show|verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge._cli import main

KEYLIME = "eventlog/keylime/ima"


def test_show_json(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = third_party / KEYLIME / "test_ima_verification/signatures.ascii"
    assert main(["ima", "show", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in doc["entries"]] == ["/usr/bin/dd", "/usr/bin/zmore"]


def test_verify_with_quote_policy_and_keyring(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = third_party / KEYLIME
    argv = [
        "ima",
        "verify",
        str(base / "test_ima_verification/signatures.ascii"),
        "--pcr10",
        "5bfd7d5ca54868d443d09b9e3c4fca6d7d2c1d15",
        "--policy",
        str(base / "test_ima_verification/runtime_policy.json"),
        "--keyring",
        str(base / "ima_keys"),
        "--json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bound_to_quote"] is True
    assert doc["state"]["entries"] == 2


def test_verify_wrong_pcr_and_bad_signature(
    third_party: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = third_party / KEYLIME / "test_ima_verification"
    assert main(["ima", "verify", str(base / "measurements.ascii"), "--pcr10", "11" * 20]) == 1
    assert main(["ima", "verify", str(base / "bad_signatures.ascii")]) == 1
    assert "template hash" in capsys.readouterr().err


def test_incremental_from_offset(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = third_party / KEYLIME / "test_ima_verification/measurements.ascii"
    assert main(["ima", "verify", str(path), "--json", "--pcr10", "0" * 40]) == 0
    first_line = path.read_bytes().split(b"\n", 1)[0] + b"\n"
    capsys.readouterr()
    from trustedge.measuredboot import parse_ima_log

    start = parse_ima_log(first_line).replay("sha1").hex()
    argv = ["ima", "verify", str(path), "--json", "--from-offset", str(len(first_line))]
    argv += ["--start-pcr", start, "--start-entries", "1"]
    argv += ["--pcr10", "dff39e2db052e00d11f45770bb127c4053e14f32"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["state"]["entries"] == 3
    assert doc["entries"] == 2


def test_partial_tail(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = third_party / "eventlog/tpm2-tss/ima/sml-ima-sig-sha256.bin"
    assert main(["ima", "show", str(path)]) == 3
    assert main(["ima", "verify", str(path), "--partial-tail", "--json"]) == 0
