"""AK enrollment across implementations: trustedge MakeCredential activates on swtpm
(tpm2_activatecredential), tpm2_makecredential blobs activate in the SoftwareTPM;
a wrong AK name fails both ways. SoftwareTPM quotes pass tpm2_checkquote."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.test_attestation_swtpm import make_ak, run
from tests.swtpm import Swtpm
from trustedge.attestation import verify_quote
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import BackendError
from trustedge.hazmat.tpm2 import (
    Credential,
    PCRSelectionList,
    Public,
    load_public,
    make_credential,
    write_pcr_file,
)

pytestmark = pytest.mark.tpm
SECRET = b"enrollment-secret-0123456789abcd"


def _activate_on_swtpm(
    ak_dir: Path, env: dict[str, str], blob: bytes
) -> subprocess.CompletedProcess[bytes]:
    (ak_dir / "cred.blob").write_bytes(blob)
    run(env, ak_dir, "tpm2_startauthsession", "--policy-session", "-S", "s.ctx", flush=False)
    run(env, ak_dir, "tpm2_policysecret", "-S", "s.ctx", "-c", "e", flush=False)
    return run(env, ak_dir, "tpm2_activatecredential", "-c", "ak.ctx", "-C", "ek.ctx", "-i",
               "cred.blob", "-o", "out.bin", "-P", "session:s.ctx", check=False)  # fmt: skip


@pytest.mark.parametrize("ek_alg", ["rsa", "ecc"])
def test_trustedge_make_credential_activates_on_swtpm(
    swtpm: Swtpm, tmp_path: Path, ek_alg: str
) -> None:
    ak = make_ak(swtpm, tmp_path, ek_alg, "ecc", "ecdsa")
    ek = load_public((ak.dir / "ek.pub").read_bytes())
    assert isinstance(ek, Public)
    ak_name = (ak.dir / "ak.name").read_bytes()
    cred = make_credential(ek, SECRET, ak_name)
    proc = _activate_on_swtpm(ak.dir, ak.env, cred.to_tpm2_tools())
    assert proc.returncode == 0, proc.stderr
    assert (ak.dir / "out.bin").read_bytes() == SECRET
    # The same secret bound to another name does not activate.
    wrong = make_credential(ek, SECRET, ak_name[:-1] + bytes([ak_name[-1] ^ 1]))
    (ak.dir / "out.bin").unlink()
    assert _activate_on_swtpm(ak.dir, ak.env, wrong.to_tpm2_tools()).returncode != 0


@pytest.mark.parametrize("ek_kind", ["rsa2048", "ecc-p256"])
def test_tpm2_makecredential_activates_in_software_tpm(tmp_path: Path, ek_kind: str) -> None:
    tpm = SoftwareTPM(tmp_path / "state")
    ak = tpm.create_ak("ecc-p256-ecdsa", ek_kind=ek_kind)  # type: ignore[arg-type]
    (tmp_path / "ek.pub").write_bytes(tpm.ek_public(ek_kind))  # type: ignore[arg-type]
    (tmp_path / "secret.bin").write_bytes(SECRET)
    for name, expect_ok in ((ak.name, True), (ak.name[:-1] + bytes([ak.name[-1] ^ 1]), False)):
        subprocess.run(
            ["tpm2_makecredential", "-T", "none", "-u", "ek.pub", "-s", "secret.bin",
             "-n", name.hex(), "-o", "cred.blob"],
            cwd=tmp_path, capture_output=True, check=True,
        )  # fmt: skip
        cred = Credential.from_tpm2_tools((tmp_path / "cred.blob").read_bytes())
        if expect_ok:
            assert (
                tpm.activate_credential(ak, cred.credential_blob, cred.encrypted_secret) == SECRET
            )
        else:
            with pytest.raises(BackendError):
                tpm.activate_credential(ak, cred.credential_blob, cred.encrypted_secret)


@pytest.mark.parametrize("algorithm", ["ecc-p256-ecdsa", "rsa2048-rsassa"])
def test_software_quotes_pass_tpm2_checkquote(tmp_path: Path, algorithm: str) -> None:
    tpm = SoftwareTPM(tmp_path / "state")
    ak = tpm.create_ak(algorithm)  # type: ignore[arg-type]
    tpm.pcr_extend(16, {"sha256": b"\x11" * 32})
    nonce = bytes(range(32))
    selection = {"sha256": [0, 1, 2, 7, 16]}
    q = tpm.quote(ak, nonce, selection)
    pub = load_public(ak.public)
    assert isinstance(pub, Public)
    verify_quote(q.message, q.signature, pub, nonce=nonce, pcrs=q.pcrs, selection=selection)
    pem = pub.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "ak.pem").write_bytes(pem)
    (tmp_path / "q.msg").write_bytes(q.message)
    (tmp_path / "q.sig").write_bytes(q.signature)
    (tmp_path / "q.pcrs").write_bytes(
        write_pcr_file(PCRSelectionList.from_mapping(selection), q.pcrs)
    )
    args = ["tpm2_checkquote", "-u", "ak.pem", "-m", "q.msg", "-s", "q.sig", "-f", "q.pcrs",
            "-g", "sha256", "-q"]  # fmt: skip
    ok = subprocess.run([*args, nonce.hex()], cwd=tmp_path, capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [*args, "ff" + nonce.hex()[2:]], cwd=tmp_path, capture_output=True, check=False
    )
    assert bad.returncode != 0
