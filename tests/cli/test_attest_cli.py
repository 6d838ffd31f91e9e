"""``trustedge attest``: enroll, challenge, evidence, appraise, result verify -- via the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from trustedge._cli import main
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import boot_from_event_log, measure_boot_aggregate, measure_file

DEVICE = "edge-cli"


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str | Path
) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = cli(*args, "--json")
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    tpm_dir = tmp_path / "tpm"
    tpm = SoftwareTPM(tpm_dir)
    (tmp_path / "ca.der").write_bytes(tpm.ek_ca_certificate())
    (tmp_path / "eventlog").write_bytes(EVENT_LOG)
    boot_from_event_log(tpm, EVENT_LOG)
    ima = tmp_path / "ima"
    ima.write_bytes(b"")
    measure_boot_aggregate(tpm, ima)
    measure_file(tpm, ima, "/usr/bin/agent", hashlib.sha256(b"agent").digest())
    policy = {
        "version": 1,
        "policy_id": "cli-test",
        "pcrs": [1, 2, 3, 4, 5, 6, 7, 8, 10],
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
        "runtime": {"digests": {"/usr/bin/agent": [hashlib.sha256(b"agent").hexdigest()]}},
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return tmp_path


def test_enroll_attest_appraise_verify(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = setup
    verifier = ["--store", d / "v.db", "--policy", d / "policy.json",
                "--software-roots", d / "ca.der"]  # fmt: skip
    assert cli("tpm", "init", "--software", d / "tpm", "-o", d / "ak") == 0
    enroll = ["--ek", d / "ak.ek.tpm2b", "--ak", d / "ak.tpm2b", "--ek-cert", d / "ak.ek.der"]
    assert cli("attest", "enroll", *verifier, "--device-id", DEVICE, *enroll, "-o", d / "cred") == 0
    assert cli("credential", "activate", "--software", d / "tpm", "-i", d / "cred",
               "-o", d / "secret") == 0  # fmt: skip
    code, out = run_json(capsys, "attest", "complete", *verifier, "--device-id", DEVICE,
                         "--secret", d / "secret")  # fmt: skip
    assert code == 0 and out["state"] == "enrolled"

    code, ch = run_json(capsys, "attest", "challenge", *verifier, "--device-id", DEVICE)
    assert code == 0 and ch["ima_offset"] == 0 and ch["pcrs"] == [1, 2, 3, 4, 5, 6, 7, 8, 10]
    code, ev = run_json(capsys, "attest", "evidence", "--software", d / "tpm", "--device-id",
                        DEVICE, "--nonce", str(ch["nonce"]), "--pcrs", "1-8,10", "--eventlog",
                        d / "eventlog", "--ima", d / "ima", "-o", d / "ev.cbor")  # fmt: skip
    assert code == 0 and ev["device_id"] == DEVICE and ev["nonce"] == ch["nonce"]

    appraise = ["attest", "appraise", d / "ev.cbor", *verifier, "--key", d / "key.pem"]
    code, res = run_json(capsys, *appraise, "-o", d / "token.jwt")
    assert code == 0, res
    assert res["status"] == "affirming"
    code, verified = run_json(capsys, "attest", "result", "verify", d / "token.jwt",
                              "--key", d / "pub.pem", "--nonce", str(ch["nonce"]),
                              "--max-age", "300")  # fmt: skip
    assert code == 0 and verified["status"] == "affirming"

    # The same evidence again: a replay, contraindicated (exit 1), as a CWT this time.
    code, res = run_json(capsys, *appraise, "--format", "cwt", "-o", d / "token.cwt")
    assert code == 1 and res["status"] == "contraindicated"
    reasons = res["claims"]["submods"][DEVICE]["trustedge.reasons"]  # type: ignore[index]
    assert reasons[0].startswith("nonce-rejected")
    capsys.readouterr()
    assert cli("attest", "result", "verify", d / "token.cwt", "--key", d / "pub.pem") == 1
    text = capsys.readouterr().out
    assert "CONTRAINDICATED" in text and "nonce-rejected" in text


def test_appraise_refuses_malformed_inputs(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = setup
    (d / "junk").write_bytes(b"\xff" * 10)
    verifier = ["--store", d / "v.db", "--policy", d / "policy.json"]
    code, res = run_json(capsys, "attest", "appraise", d / "junk", *verifier, "--key",
                         d / "key.pem")  # fmt: skip
    assert code == 1 and res["status"] == "contraindicated"
    (d / "bad-policy.json").write_text('{"version": 1, "boot": 3}')
    assert cli("attest", "appraise", d / "junk", "--store", d / "v.db", "--policy",
               d / "bad-policy.json", "--key", d / "key.pem") == 3  # fmt: skip
    # A tampered token does not verify (exit 1).
    (d / "bad.jwt").write_text("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
    assert cli("attest", "result", "verify", d / "bad.jwt", "--key", d / "pub.pem") in (1, 3)
    # An unknown device cannot get a challenge.
    assert cli("attest", "challenge", *verifier, "--device-id", "nobody") == 1


def test_evidence_takes_pcrs_and_ima_offset_from_the_challenge_file(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented flow: ``attest challenge --json > challenge.json`` on the verifier,
    ``attest evidence --challenge challenge.json`` on the device, no --pcrs/--nonce/--ima-offset
    (the old default 0-10 contradicted the policy's PCRs and appraisal failed)."""
    d = setup
    verifier = ["--store", d / "v.db", "--policy", d / "policy.json",
                "--software-roots", d / "ca.der"]  # fmt: skip
    assert cli("tpm", "init", "--software", d / "tpm", "-o", d / "ak") == 0
    enroll = ["--ek", d / "ak.ek.tpm2b", "--ak", d / "ak.tpm2b", "--ek-cert", d / "ak.ek.der"]
    assert cli("attest", "enroll", *verifier, "--device-id", DEVICE, *enroll, "-o", d / "cred") == 0
    assert cli("credential", "activate", "--software", d / "tpm", "-i", d / "cred",
               "-o", d / "secret") == 0  # fmt: skip
    assert cli("attest", "complete", *verifier, "--device-id", DEVICE,
               "--secret", d / "secret") == 0  # fmt: skip
    for round_ in range(2):
        capsys.readouterr()
        assert cli("attest", "challenge", *verifier, "--device-id", DEVICE, "--json") == 0
        (d / "challenge.json").write_text(capsys.readouterr().out)
        code, ev = run_json(capsys, "attest", "evidence", "--software", d / "tpm",
                            "--challenge", d / "challenge.json", "--eventlog", d / "eventlog",
                            "--ima", d / "ima", "-o", d / "ev.cbor")  # fmt: skip
        assert code == 0 and ev["device_id"] == DEVICE, ev
        code, res = run_json(capsys, "attest", "appraise", d / "ev.cbor", *verifier,
                             "--key", d / "key.pem")  # fmt: skip
        assert code == 0 and res["status"] == "affirming", (round_, res)
    # A challenge for another device is refused, as is a challenge that is not one.
    assert cli("attest", "evidence", "--software", d / "tpm", "--device-id", "other",
               "--challenge", d / "challenge.json", "-o", d / "x") == 2  # fmt: skip
    (d / "bad.json").write_text('{"nonce": "zz"}')
    assert cli("attest", "evidence", "--software", d / "tpm", "--challenge", d / "bad.json",
               "-o", d / "x") == 3  # fmt: skip
    assert not (d / "x").exists()


def test_verifier_requires_a_signed_policy(setup: Path) -> None:
    """With --policy-key the verifier takes only a signed appraisal policy that verifies."""
    d = setup
    signed = d / "policy.signed"
    assert cli("policy", "sign", d / "policy.json", "--key", d / "key.pem", "--kind", "appraisal",
               "--version", "4", "--expires", "4000000000", "-o", signed) == 0  # fmt: skip
    common = ["--store", d / "v.db", "--software-roots", d / "ca.der"]
    assert cli("tpm", "init", "--software", d / "tpm", "-o", d / "ak") == 0
    enroll = ["--ek", d / "ak.ek.tpm2b", "--ak", d / "ak.tpm2b", "--ek-cert", d / "ak.ek.der"]
    keyed = [*common, "--policy", signed, "--policy-key", d / "pub.pem"]
    assert cli("attest", "enroll", *keyed, "--device-id", DEVICE, *enroll, "-o", d / "cred") == 0
    # the unsigned document is refused once a policy key is required ...
    unsigned = [*common, "--policy", d / "policy.json", "--policy-key", d / "pub.pem"]
    assert cli("attest", "enroll", *unsigned, "--device-id", "x", *enroll, "-o", d / "c2") == 3
    # ... a signed policy without the key, an older version, or another signer too
    assert cli("attest", "enroll", *common, "--policy", signed, "--device-id", "y",
               *enroll, "-o", d / "c3") == 1  # fmt: skip
    assert cli("attest", "enroll", *keyed, "--policy-min-version", "5", "--device-id", "z",
               *enroll, "-o", d / "c4") == 1  # fmt: skip
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    (d / "other.pem").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert cli("attest", "enroll", *common, "--policy", signed, "--policy-key", d / "other.pem",
               "--device-id", "w", *enroll, "-o", d / "c5") == 1  # fmt: skip


def test_policy_explain_evidence(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``policy explain POLICY EVIDENCE --ak AK``: the appraisal, finding by finding."""
    d = setup
    assert cli("tpm", "init", "--software", d / "tpm", "-o", d / "ak") == 0
    assert cli("attest", "evidence", "--software", d / "tpm", "--device-id", DEVICE,
               "--nonce", "00" * 16, "--pcrs", "1-8,10", "--eventlog", d / "eventlog",
               "--ima", d / "ima", "-o", d / "ev.cbor") == 0  # fmt: skip
    code, out = run_json(capsys, "policy", "explain", d / "policy.json", d / "ev.cbor",
                         "--ak", d / "ak.tpm2b")  # fmt: skip
    assert code == 0 and out["status"] == "affirming", out
    assert any(r.startswith("runtime-approved") for r in out["reasons"])  # type: ignore[union-attr]
    strict = json.loads((d / "policy.json").read_text())
    strict["runtime"] = {"digests": {"/usr/bin/agent": ["00" * 32]}}
    (d / "strict.json").write_text(json.dumps(strict))
    code, out = run_json(capsys, "policy", "explain", d / "strict.json", d / "ev.cbor",
                         "--ak", d / "ak.tpm2b")  # fmt: skip
    assert code == 1 and out["status"] == "contraindicated"
    assert any("/usr/bin/agent" in r for r in out["reasons"])  # type: ignore[union-attr]
