"""The ``trustedge tpm`` commands on a real TPM (swtpm) through ``--tcti``."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge._cli import main

NONCE = "00112233445566778899aabbccddeeff"


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def tpm(swtpm_factory: type[Swtpm]) -> Swtpm:
    return swtpm_factory().start()


def test_info_init_quote_checked_by_tpm2_checkquote(
    tpm: Swtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("tpm", "info", "--tcti", tpm.tcti, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "tpm" and "sha256" in info["banks"]

    prefix = tmp_path / "ak"
    assert cli("tpm", "init", "--tcti", tpm.tcti, "--ek", "ecc-p256", "-o", prefix) == 0
    assert (tmp_path / "ak.pem").exists() and (tmp_path / "ak.tpm2b").exists()

    assert (
        cli("tpm", "extend", "--tcti", tpm.tcti, "--pcr", "16", "--digest", "sha256=" + "ab" * 32)
        == 0
    )
    q = tmp_path / "q"
    args = ["tpm", "quote", "--tcti", tpm.tcti, "--ak-blob", f"{prefix}.blob"]
    assert cli(*args, "--pcrs", "sha256:0,1,2,16", "--nonce", NONCE, "-o", q) == 0
    capsys.readouterr()

    checkquote = [
        "tpm2_checkquote", "-u", f"{prefix}.pem", "-m", f"{q}.msg", "-s", f"{q}.sig",
        "-f", f"{q}.pcrs", "-g", "sha256", "-q", NONCE,
    ]  # fmt: skip
    subprocess.run(checkquote, check=True, capture_output=True, env=tpm.env())
    verify = ["quote", "verify", "--message", f"{q}.msg", "--signature", f"{q}.sig"]
    assert cli(*verify, "--ak", f"{prefix}.tpm2b", "--nonce", NONCE, "--pcrs", f"{q}.pcrs") == 0
    assert cli(*verify, "--ak", f"{prefix}.tpm2b", "--nonce", "00" * 16, "--pcrs", f"{q}.pcrs") == 1

    capsys.readouterr()
    assert cli("tpm", "pcrread", "--tcti", tpm.tcti, "--pcrs", "sha256:16", "--json") == 0
    pcrs = json.loads(capsys.readouterr().out)
    assert pcrs["sha256"]["16"] != "00" * 32


def test_nv_counter_commands(tpm: Swtpm, capsys: pytest.CaptureFixture[str]) -> None:
    index = "0x01500030"
    assert cli("tpm", "nv-counter", "define", index, "--tcti", tpm.tcti) == 0
    capsys.readouterr()
    assert cli("tpm", "nv-counter", "increment", index, "--tcti", tpm.tcti, "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert cli("tpm", "nv-counter", "increment", index, "--tcti", tpm.tcti, "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert cli("tpm", "nv-counter", "read", index, "--tcti", tpm.tcti, "--json") == 0
    assert json.loads(capsys.readouterr().out)["value"] == second["value"] == first["value"] + 1


def test_quote_verify_takes_tpm2_pcrread_output(tpm: Swtpm, tmp_path: Path) -> None:
    """``tpm2_pcrread`` YAML and ``tpm2_pcrread -o`` binary values as ``--pcr-values`` (the
    values are checked against the quote's PCR digest: a changed value fails)."""
    prefix = tmp_path / "ak"
    assert cli("tpm", "init", "--tcti", tpm.tcti, "--ek", "ecc-p256", "-o", prefix) == 0
    assert cli("tpm", "extend", "--tcti", tpm.tcti, "--pcr", "16", "--digest",
               "sha256=" + "cd" * 32) == 0  # fmt: skip
    q = tmp_path / "q"
    assert cli("tpm", "quote", "--tcti", tpm.tcti, "--ak-blob", f"{prefix}.blob",
               "--pcr-selection", "sha256:0,16", "--nonce", NONCE, "-o", q) == 0  # fmt: skip
    yaml = subprocess.run(["tpm2_pcrread", "sha256:0,16"], check=True, capture_output=True,
                          env=tpm.env()).stdout  # fmt: skip
    (tmp_path / "pcrs.yaml").write_bytes(yaml)
    subprocess.run(["tpm2_pcrread", "sha256:0,16", "-o", str(tmp_path / "pcrs.bin")],
                   check=True, capture_output=True, env=tpm.env())  # fmt: skip
    assert (tmp_path / "pcrs.bin").stat().st_size == 64
    verify = ["quote", "verify", "--message", f"{q}.msg", "--signature", f"{q}.sig",
              "--ak", f"{prefix}.tpm2b", "--nonce", NONCE]  # fmt: skip
    assert cli(*verify, "--pcr-values", tmp_path / "pcrs.yaml") == 0
    assert cli(*verify, "--pcr-values", tmp_path / "pcrs.bin",
               "--pcr-selection", "sha256:0,16") == 0  # fmt: skip
    assert cli(*verify, "--pcrs", tmp_path / "pcrs.yaml") == 0  # the deprecated alias
    text = yaml.decode()
    match = re.search(r"16\s*:\s*0x([0-9A-Fa-f]{64})", text)
    assert match is not None, text
    value16 = match.group(1)
    (tmp_path / "bad.yaml").write_text(text.replace(value16, "00" * 32))
    assert cli(*verify, "--pcr-values", tmp_path / "bad.yaml") == 1


def test_credential_make_takes_a_pem_ek_from_tpm2_createek(
    tpm: Swtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tpm2_createek -f pem`` output as ``credential make --ek``: the credential made for
    it activates on that TPM (the name is the default template's with this key)."""
    prefix = tmp_path / "ak"
    capsys.readouterr()
    assert cli("tpm", "init", "--tcti", tpm.tcti, "--ek", "rsa2048", "-o", prefix, "--json") == 0
    ak_name = json.loads(capsys.readouterr().out)["ak_name"]
    ek_pem = tmp_path / "ek.pem"
    subprocess.run(["tpm2_createek", "-G", "rsa", "-u", str(ek_pem), "-f", "pem",
                    "-c", str(tmp_path / "ek.ctx")],
                   check=True, capture_output=True, env=tpm.env())  # fmt: skip
    assert ek_pem.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    (tmp_path / "secret").write_bytes(b"s" * 32)
    assert cli("credential", "make", "--ek", ek_pem, "--ak-name", ak_name, "--secret",
               tmp_path / "secret", "-o", tmp_path / "cred") == 0  # fmt: skip
    assert cli("credential", "activate", "--tcti", tpm.tcti, "--ak-blob", f"{prefix}.blob",
               "-i", tmp_path / "cred", "-o", tmp_path / "out") == 0  # fmt: skip
    assert (tmp_path / "out").read_bytes() == b"s" * 32
