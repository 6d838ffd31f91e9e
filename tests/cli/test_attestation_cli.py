"""``trustedge tpm ...``, ``quote verify`` and ``credential ...`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_attestation_swtpm import NONCE, make_ak
from tests.swtpm import Swtpm
from trustedge._cli import main


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def soft(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    assert cli("tpm", "init", "--software", state, "-o", tmp_path / "ak") == 0
    return state


def test_software_init_quote_verify(
    soft: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli("tpm", "extend", "--software", soft, "--pcr", "16", "--digest", "sha256=" + "cd" * 32)
        == 0
    )
    q = tmp_path / "q"
    assert (
        cli(
            "tpm",
            "quote",
            "--software",
            soft,
            "--pcrs",
            "sha256:0,1,2,7,16",
            "--nonce",
            "abcd",
            "-o",
            q,
        )
        == 0
    )
    capsys.readouterr()
    for ak in ("ak.pem", "ak.tpm2b"):
        code = cli(
            "quote",
            "verify",
            "--message",
            f"{q}.msg",
            "--signature",
            f"{q}.sig",
            "--ak",
            tmp_path / ak,
            "--nonce",
            "abcd",
            "--pcrs",
            f"{q}.pcrs",
            "--json",
        )
        assert code == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["valid"] is True and doc["pcrs"]["sha256"]["16"] != "00" * 32
    assert (
        cli(
            "quote",
            "verify",
            "--message",
            f"{q}.msg",
            "--signature",
            f"{q}.sig",
            "--ak",
            tmp_path / "ak.pem",
            "--nonce",
            "abce",
            "--pcrs",
            f"{q}.pcrs",
        )
        == 1
    )
    (tmp_path / "pcrs.json").write_text(
        json.dumps({"sha256": {str(i): "00" * 32 for i in (0, 1, 2, 7, 16)}})
    )
    assert (
        cli(
            "quote",
            "verify",
            "--message",
            f"{q}.msg",
            "--signature",
            f"{q}.sig",
            "--ak",
            tmp_path / "ak.pem",
            "--nonce",
            "abcd",
            "--pcrs",
            tmp_path / "pcrs.json",
        )
        == 1
    )


def test_malformed_inputs_exit_3(soft: Path, tmp_path: Path) -> None:
    q = tmp_path / "q"
    assert (
        cli("tpm", "quote", "--software", soft, "--pcrs", "sha256:0", "--nonce", "01", "-o", q) == 0
    )
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x05junk")
    base = ["quote", "verify", "--message", f"{q}.msg", "--signature", f"{q}.sig", "--nonce", "01"]
    assert cli(*base, "--ak", junk, "--pcrs", f"{q}.pcrs") == 3
    assert cli(*base, "--ak", tmp_path / "ak.pem", "--pcrs", junk) == 3


def test_pcrread_nv_counter(soft: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("tpm", "pcrread", "--software", soft, "--pcrs", "sha256:16", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"sha256": {"16": "00" * 32}}
    assert cli("tpm", "nv-counter", "define", "0x01500020", "--software", soft) == 0
    assert cli("tpm", "nv-counter", "read", "0x01500020", "--software", soft) == 4
    assert cli("tpm", "nv-counter", "increment", "0x01500020", "--software", soft) == 0
    capsys.readouterr()
    assert cli("tpm", "nv-counter", "read", "0x01500020", "--software", soft, "--json") == 0
    assert json.loads(capsys.readouterr().out)["value"] == 1
    assert cli("tpm", "info", "--software", soft, "--json") == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "software"


def test_credential_make_activate(soft: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 32)
    name = (tmp_path / "ak.name").read_bytes().hex()
    blob = tmp_path / "cred"
    assert (
        cli(
            "credential",
            "make",
            "--ek",
            tmp_path / "ak.ek.tpm2b",
            "--ak-name",
            name,
            "--secret",
            secret,
            "-o",
            blob,
        )
        == 0
    )
    out = tmp_path / "out"
    assert cli("credential", "activate", "--software", soft, "-i", blob, "-o", out) == 0
    assert out.read_bytes() == b"s" * 32
    wrong = "00" if name[-2:] != "00" else "01"
    assert (
        cli(
            "credential",
            "make",
            "--ek",
            tmp_path / "ak.ek.tpm2b",
            "--ak-name",
            name[:-2] + wrong,
            "--secret",
            secret,
            "-o",
            blob,
        )
        == 0
    )
    assert cli("credential", "activate", "--software", soft, "-i", blob, "-o", out) != 0


def test_tcti_backend_unavailable_or_unreachable_exits_4() -> None:
    assert cli("tpm", "info", "--tcti", "swtpm:host=127.0.0.1,port=1") == 4


@pytest.mark.tpm
@pytest.mark.parametrize(
    ("key_alg", "scheme"), [("ecc", "ecdsa"), ("rsa", "rsassa"), ("rsa", "rsapss")]
)
def test_swtpm_quotes_verify_and_every_byte_change_fails(
    swtpm: Swtpm, tmp_path: Path, key_alg: str, scheme: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ak = make_ak(swtpm, tmp_path, "rsa", key_alg, scheme)
    m, s, o = ak.quote("q")

    def verify(msg: Path, sig: Path, nonce: bytes = NONCE, key: str = "ak.tpm2b") -> int:
        return cli(
            "quote",
            "verify",
            "--message",
            msg,
            "--signature",
            sig,
            "--ak",
            ak.dir / key,
            "--nonce",
            nonce.hex(),
            "--pcrs",
            o,
        )

    assert verify(m, s) == 0
    assert verify(m, s, key="ak.pem") == 0
    assert verify(m, s, nonce=NONCE[:-1] + b"\xff") == 1
    for original in (m, s):
        data = original.read_bytes()
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= 0x80
            mutated = tmp_path / "mutated"
            mutated.write_bytes(bytes(bad))
            args = (mutated, s) if original == m else (m, mutated)
            assert verify(*args) == 1, f"byte {i} of {original.name}"
    capsys.readouterr()


def test_pcr_spec_parsing() -> None:
    from trustedge._cli._common import CommandError
    from trustedge._cli.attestation import parse_pcr_spec

    assert parse_pcr_spec("sha256:0,1,2+sha1:0-2") == {"sha256": [0, 1, 2], "sha1": [0, 1, 2]}
    assert parse_pcr_spec("SHA256:7,7") == {"sha256": [7]}
    for bad in ("sha256", "sha256:x", "sha256:40", ":1"):
        with pytest.raises(CommandError):
            parse_pcr_spec(bad)


def test_usage_errors(soft: Path, tmp_path: Path) -> None:
    assert cli("tpm", "extend", "--software", soft, "--pcr", "16") == 2
    assert cli("tpm", "extend", "--software", soft, "--pcr", "16", "--digest", "sha256") == 2
    assert cli("tpm", "quote", "--software", soft, "--pcrs", "sha256:0", "--nonce", "zz",
               "-o", tmp_path / "q") == 2  # fmt: skip
    assert cli("tpm", "nv-counter", "read", "nope", "--software", soft) == 2
