"""trustedge update predict: the next boot's PCRs from a signed manifest and a log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.pe import build_pe
from tests.vectors import third_party_dir
from trustedge._cli import main
from trustedge.measuredboot import parse_event_log
from trustedge.measuredboot.authenticode import authenticode_digest

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
LOG = third_party_dir() / "eventlog/go-eventlog/tpm/rhel8-uefi.bin"
GRUB = build_pe(((".text", b"\x90" * 300 + b"\xc3"), (".data", b"grub 2.12")))


def _release(tmp: Path, boot: bool = True) -> tuple[Path, Path]:
    (tmp / "grubx64.efi").write_bytes(GRUB)
    comp = {
        "install-id": ["00"],
        "vendor-id": VENDOR,
        "class-id": CLASS,
        "file": "grubx64.efi",
        "uri": "#grub",
    }
    if boot:
        comp["boot-measurement"] = {"role": "loader", "banks": ["sha256", "sha1"]}
    spec = {"manifest-version": 1, "manifest-sequence-number": 3, "components": [comp]}
    (tmp / "spec.json").write_text(json.dumps(spec))
    key, manifest = tmp / "release.pem", tmp / "update.suit"
    assert main(["release", "keygen", "-o", str(key)]) == 0
    assert main(["release", "create", str(tmp / "spec.json"), "-o", str(manifest)]) == 0
    assert main(["release", "sign", str(manifest), "--key", str(key)]) == 0
    return manifest, key


def _expected_pcr4(bank: str) -> bytes:
    """The test's own rewrite: RHEL's chain is shim (23), GRUB (26), kernel (77)."""
    value = bytes(hashlib.new(bank).digest_size)
    for ev in parse_event_log(LOG.read_bytes()).unverified_events:
        if ev.pcr == 4 and ev.event_type != 3:
            digest = authenticode_digest(GRUB, bank) if ev.number == 26 else ev.digests[bank]
            value = hashlib.new(bank, value + digest).digest()
    return value


def test_predict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, key = _release(tmp_path)
    capsys.readouterr()
    argv = ["update", "predict", str(manifest), "--eventlog", str(LOG), "--key", f"{key}.pub"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["manifest_authenticated"] is True
    pcr4 = out["pcrs"]["sha256"]["4"]
    assert pcr4["changed"] and pcr4["next"] == _expected_pcr4("sha256").hex()
    assert out["pcrs"]["sha1"]["4"]["next"] == _expected_pcr4("sha1").hex()
    assert out["pcrs"]["sha384"]["4"]["next"] is None  # no sha384 digest in the manifest
    assert out["pcrs"]["sha256"]["7"]["changed"] is False
    assert [(c["pcr"], c["event_number"]) for c in out["changes"]] == [(4, 26)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "CHANGES" in text and "PCR4 replace event 26" in text


def test_predict_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, _ = _release(tmp_path)
    other = tmp_path / "other.pem"
    assert main(["release", "keygen", "-o", str(other)]) == 0
    base = ["update", "predict", str(manifest), "--eventlog", str(LOG)]
    assert main([*base, "--key", f"{other}.pub"]) == 1  # not signed by that key
    assert main([*base[:4], str(tmp_path / "spec.json"), "--json"]) == 3  # not a log
    plain = tmp_path / "plain"
    plain.mkdir()
    no_boot, _ = _release(plain, boot=False)
    assert main(["update", "predict", str(no_boot), "--eventlog", str(LOG)]) == 3
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_text(json.dumps({"sha256": {"4": "00" * 32}}))
    assert main([*base, "--pcrs", str(pcrs)]) == 1  # the log does not match these PCRs


def test_predict_a_uki_at_a_boot_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A UKI replacing RHEL's kernel: PCR11 predicted after the stub and at --phase."""
    from trustedge.measuredboot.uki import uki_pcr11

    uki = build_pe(((".linux", b"\x4d\x5a kernel 6.12"), (".cmdline", b"ro quiet")))
    (tmp_path / "uki.efi").write_bytes(uki)
    comp = {"install-id": ["01"], "vendor-id": VENDOR, "class-id": CLASS, "file": "uki.efi",
            "uri": "#uki", "boot-measurement": {"role": "uki", "banks": ["sha256"]}}  # fmt: skip
    spec = {"manifest-version": 1, "manifest-sequence-number": 4, "components": [comp]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    key, manifest = tmp_path / "release.pem", tmp_path / "uki.suit"
    assert main(["release", "keygen", "-o", str(key)]) == 0
    assert main(["release", "create", str(tmp_path / "spec.json"), "-o", str(manifest)]) == 0
    assert main(["release", "sign", str(manifest), "--key", str(key)]) == 0
    argv = ["update", "predict", str(manifest), "--eventlog", str(LOG), "--key", f"{key}.pub"]
    capsys.readouterr()
    for phases in ([], ["enter-initrd"], ["enter-initrd", "leave-initrd", "sysinit", "ready"]):
        flags = [f"--phase={p}" for p in phases]
        assert main([*argv, *flags, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["phases"] == phases
        assert out["pcrs"]["sha256"]["11"]["next"] == uki_pcr11(uki, phases=phases).hex()
    assert main([*argv, "--phase", "a:b"]) == 3  # not a phase string
    plain = tmp_path / "plain"
    plain.mkdir()
    loader, loader_key = _release(plain)
    no_uki = [
        "update",
        "predict",
        str(loader),
        "--eventlog",
        str(LOG),
        "--key",
        f"{loader_key}.pub",
    ]
    assert main([*no_uki, "--phase", "enter-initrd"]) == 1  # PCR11 is not predicted
