"""tpm2-tools formats as they come (issue 15): real tpm2-tools output on swtpm.

``quote verify --ak`` takes TPM2B_PUBLIC (``tpm2_readpublic -o``), TPMT_PUBLIC (``-f tpmt``),
PEM and DER (``-f pem``/``-f der``) through the one key loader; ``--signature`` takes the
TPMT_SIGNATURE (``tpm2_quote -s``) and ``tpm2_quote -f plain`` signatures; ``attest enroll``
takes the EK as PEM (``tpm2_createek -f pem``) and refuses a PEM AK (no TPM name).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge._cli import main
from trustedge.hazmat.tpm2 import Public
from trustedge.hazmat.tpm2.public import ek_template, with_key
from trustedge.keys import load_tpm_public

pytestmark = pytest.mark.tpm

NONCE = "5ca1ab1e00112233445566778899aabbccddeeff0011223344556677889900aa"
SELECTION = "sha256:0,1,2,3,7,16"


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def tools(env: dict[str, str], cwd: Path, *args: str) -> None:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, check=False)
    for flag in ("-t", "-s"):  # swtpm has three transient slots and no resource manager
        subprocess.run(["tpm2_flushcontext", flag], cwd=cwd, env=env, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr.decode(errors='replace')}"


@pytest.fixture(scope="module", params=[("ecc", "ecdsa"), ("rsa", "rsassa")],
                ids=["ecdsa", "rsassa"])  # fmt: skip
def ak_dir(
    request: pytest.FixtureRequest, swtpm: Swtpm, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An EK and AK made by tpm2-tools, the AK public key in every readpublic format, and one
    quote with its signature in tss and plain format."""
    key_alg, scheme = request.param
    d = tmp_path_factory.mktemp(f"fmt-{key_alg}")
    env = swtpm.env()
    tools(env, d, "tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub")
    tools(env, d, "tpm2_readpublic", "-c", "ek.ctx", "-f", "pem", "-o", "ek.pem")
    tools(env, d, "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", key_alg, "-g",
          "sha256", "-s", scheme, "-u", "ak.createak", "-n", "ak.name")  # fmt: skip
    for fmt, name in (("tss", "ak.tpm2b"), ("tpmt", "ak.tpmt"), ("pem", "ak.pem"),
                      ("der", "ak.der")):  # fmt: skip
        tools(env, d, "tpm2_readpublic", "-c", "ak.ctx", "-f", fmt, "-o", name)
    tools(env, d, "tpm2_pcrextend", f"16:sha256={'cd' * 32}")
    quote = ["tpm2_quote", "-c", "ak.ctx", "-l", SELECTION, "-q", NONCE, "-g", "sha256"]
    tools(env, d, *quote, "-m", "q.msg", "-s", "q.sig", "-o", "q.pcrs")
    # The same quote again with a plain signature (a new quote: the clock moved).
    tools(env, d, *quote, "-m", "p.msg", "-s", "p.plain", "-f", "plain", "-o", "p.pcrs")
    return d


def _verify(d: Path, msg: str, sig: str, ak: str, *extra: str) -> list[str | Path]:
    return ["quote", "verify", "--message", d / msg, "--signature", d / sig, "--ak", d / ak,
            "--nonce", NONCE, "--pcr-values", d / "q.pcrs", "--pcr-selection", SELECTION,
            *extra]  # fmt: skip


@pytest.mark.parametrize("ak", ["ak.tpm2b", "ak.tpmt", "ak.pem", "ak.der", "ak.createak"])
def test_quote_verify_takes_every_readpublic_format(
    ak_dir: Path, ak: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(*_verify(ak_dir, "q.msg", "q.sig", ak, "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    name = (ak_dir / "ak.name").read_bytes().hex()
    # A TPM structure gives the AK's TPM name; a PEM/DER key has none (documented).
    assert doc["ak_name"] == ("" if ak in ("ak.pem", "ak.der") else name)


def test_the_formats_load_to_one_key(ak_dir: Path) -> None:
    tpm2b = load_tpm_public((ak_dir / "ak.tpm2b").read_bytes())
    tpmt = load_tpm_public((ak_dir / "ak.tpmt").read_bytes())
    assert isinstance(tpm2b, Public) and tpm2b == tpmt
    assert tpm2b.name() == (ak_dir / "ak.name").read_bytes()
    for bare in ("ak.pem", "ak.der"):
        key = load_tpm_public((ak_dir / bare).read_bytes())
        assert not isinstance(key, Public) and key.public_numbers() == (
            tpm2b.public_key().public_numbers()
        )


@pytest.mark.parametrize("ak", ["ak.tpm2b", "ak.pem"])
def test_plain_signature_verifies(
    ak_dir: Path, ak: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _verify(ak_dir, "p.msg", "p.plain", ak)
    base[base.index(ak_dir / "q.pcrs")] = ak_dir / "p.pcrs"
    assert cli(*base) == 0  # detected by its length
    assert cli(*base, "--signature-format", "plain", "--hash-alg", "sha256") == 0
    # The hash is part of what is verified: a wrong --hash-alg fails, it is not ignored.
    assert cli(*base, "--signature-format", "plain", "--hash-alg", "sha384") == 1
    # A plain signature taken as a TPMT_SIGNATURE does not parse: a failed verification.
    assert cli(*base, "--signature-format", "tss") == 1
    capsys.readouterr()


def test_tampered_plain_signature_fails(ak_dir: Path, tmp_path: Path) -> None:
    bad = bytearray((ak_dir / "p.plain").read_bytes())
    bad[-1] ^= 1
    (tmp_path / "bad.plain").write_bytes(bytes(bad))
    args = _verify(ak_dir, "p.msg", "p.plain", "ak.tpm2b")
    args[args.index(ak_dir / "p.plain")] = tmp_path / "bad.plain"
    args[args.index(ak_dir / "q.pcrs")] = ak_dir / "p.pcrs"
    assert cli(*args) == 1


@pytest.mark.parametrize("content", [b"garbage", b"\x00\x05abc", b"-----BEGIN PUBLIC KEY-----\n"])
def test_unknown_ak_format_is_one_line_exit_3(
    ak_dir: Path, tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ak.bad").write_bytes(content)
    args = _verify(ak_dir, "q.msg", "q.sig", "ak.tpm2b")
    args[args.index(ak_dir / "ak.tpm2b")] = tmp_path / "ak.bad"
    assert cli(*args) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--ak" in err and "Traceback" not in err


def test_enroll_takes_a_pem_ek_and_refuses_a_pem_ak(
    ak_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # tpm2_createek's default RSA EK is the TCG template: the PEM stands for the same object.
    pem_ek = load_tpm_public((ak_dir / "ek.pem").read_bytes())
    assert not isinstance(pem_ek, Public)
    assert with_key(ek_template("rsa2048"), pem_ek).marshal_tpm2b() == (
        (ak_dir / "ek.pub").read_bytes()
    )
    policy = {"version": 1, "policy_id": "formats", "pcrs": [0],
              "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]}}  # fmt: skip
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    common = ["attest", "enroll", "--store", tmp_path / "v.db", "--policy",
              tmp_path / "policy.json", "--allow-uncertified-ek"]  # fmt: skip
    for n, (ek, ak) in enumerate([("ek.pem", "ak.tpm2b"), ("ek.pub", "ak.tpmt")]):
        out = tmp_path / f"cred{n}"
        assert cli(*common, "--device-id", f"dev{n}", "--ek", ak_dir / ek, "--ak",
                   ak_dir / ak, "-o", out) == 0, capsys.readouterr().err  # fmt: skip
        assert out.stat().st_size > 0
    capsys.readouterr()
    assert cli(*common, "--device-id", "dev9", "--ek", ak_dir / "ek.pub", "--ak",
               ak_dir / "ak.pem", "-o", tmp_path / "cred9") == 3  # fmt: skip
    err = capsys.readouterr().err
    assert "no TPM name" in err and "tpm2_readpublic" in err
    assert not (tmp_path / "cred9").exists()
