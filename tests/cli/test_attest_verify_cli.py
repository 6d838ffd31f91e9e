"""``trustedge attest verify``: the one-shot offline check (verify_evidence) from the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trustedge._cli import main
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import Attester
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import append_boot_application, boot_from_event_log

PCRS = (1, 2, 3, 4, 5, 6, 7)
NONCE = hashlib.sha256(b"pipeline 77").digest()


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main([str(a) for a in args] + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.fixture
def device(tmp_path: Path) -> tuple[SoftwareTPM, Attester, Path]:
    tpm = SoftwareTPM(tmp_path / "tpm")
    ak = tpm.create_ak("ecc-p256-ecdsa")
    (tmp_path / "ak.tpm2b").write_bytes(ak.public)
    (tmp_path / "eventlog").write_bytes(EVENT_LOG)
    boot_from_event_log(tpm, EVENT_LOG)
    policy = {
        "version": 1,
        "policy_id": "ci",
        "pcrs": list(PCRS),
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
        "runtime": None,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    attester = Attester(tpm, ak=ak, device_id="runner-1", eventlog_path=tmp_path / "eventlog")
    return tpm, attester, tmp_path


def test_affirming_evidence_exits_0(
    device: tuple[SoftwareTPM, Attester, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, attester, tmp = device
    (tmp / "ev.cbor").write_bytes(attester.evidence(NONCE, pcrs=PCRS).encode())
    code, doc = run(
        capsys, "attest", "verify", tmp / "ev.cbor", "--ak", tmp / "ak.tpm2b",
        "--policy", tmp / "policy.json", "--nonce", NONCE.hex(),
    )  # fmt: skip
    assert code == 0, doc
    assert doc["status"] == "affirming" and doc["device_id"] == "runner-1"
    assert doc["quote"] is not None


@pytest.mark.parametrize("lie", ["nonce", "ak", "secure-boot-off"])
def test_rejected_evidence_exits_1_with_one_json_document(
    device: tuple[SoftwareTPM, Attester, Path], capsys: pytest.CaptureFixture[str], lie: str
) -> None:
    tpm, attester, tmp = device
    nonce, ak = NONCE, tmp / "ak.tpm2b"
    if lie == "nonce":
        nonce = bytes(32)
    elif lie == "ak":
        other = SoftwareTPM(tmp / "other").create_ak("ecc-p256-ecdsa")
        ak = tmp / "other.tpm2b"
        ak.write_bytes(other.public)
    else:  # the device loads one more application; the policy demands the golden one
        (tmp / "eventlog").write_bytes(
            append_boot_application(tpm, EVENT_LOG, "\\EFI\\x.efi", b"bootkit")
        )
        policy = json.loads((tmp / "policy.json").read_text())
        policy["boot"]["rules"].append(
            {"rule": "boot_applications", "bank": "sha256", "digests": ["00" * 32]}
        )
        (tmp / "policy.json").write_text(json.dumps(policy))
    (tmp / "ev.cbor").write_bytes(attester.evidence(NONCE, pcrs=PCRS).encode())
    code, doc = run(
        capsys, "attest", "verify", tmp / "ev.cbor", "--ak", ak,
        "--policy", tmp / "policy.json", "--nonce", nonce.hex(),
    )  # fmt: skip
    assert code == 1, doc
    assert doc["status"] == "contraindicated"
    first = {"nonce": "nonce-rejected", "ak": "unknown-device"}.get(lie, "boot-policy-violation")
    assert any(str(r).startswith(first) for r in doc["reasons"]), doc  # type: ignore[attr-defined]


def test_malformed_evidence_exits_3(
    device: tuple[SoftwareTPM, Attester, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, tmp = device
    (tmp / "ev.cbor").write_bytes(b"\xa1garbage")
    capsys.readouterr()
    code = main(
        ["attest", "verify", str(tmp / "ev.cbor"), "--ak", str(tmp / "ak.tpm2b"),
         "--policy", str(tmp / "policy.json"), "--nonce", NONCE.hex()]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err and len(err.strip().splitlines()) == 1
