"""``release model``, ``update apply|load`` for models and ``attest evidence --model-log``:
a model delivered, loaded and attested with the CLI alone (software TPM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from trustedge._cli import main
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.modellog import load_model_policy
from trustedge.attestation.simulate import boot_from_event_log
from trustedge.errors import MalformedInputError
from trustedge.models import sign_model

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
DEVICE = "edge-cli-model"


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def run_json(
    capsys: pytest.CaptureFixture[str], *args: str | Path
) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = cli(*args, "--json")
    return code, json.loads(capsys.readouterr().out)


def pem_pair(key: ed25519.Ed25519PrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    Path(f"{path}.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture
def d(tmp_path: Path) -> Path:
    model = tmp_path / "edge-llm"
    (model / "tok").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"\x01" * 20_000)
    (model / "tok" / "vocab.json").write_text("{}")
    vendor = ed25519.Ed25519PrivateKey.generate()
    pem_pair(vendor, tmp_path / "vendor.key")
    (tmp_path / "edge-llm.sig").write_bytes(sign_model(model, vendor))
    assert cli("release", "keygen", "--alg", "ed25519", "-o", tmp_path / "release.key") == 0
    assert cli("envelope", "keygen", "--type", "x25519", "-o", tmp_path / "device.key") == 0
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "identity.json").write_text(
        json.dumps({"vendor-id": VENDOR, "class-id": CLASS, "model-components": ["model"]})
    )
    return tmp_path


def release(d: Path, *extra: str | Path, sequence: int = 1) -> int:
    return cli("release", "model", d / "edge-llm", "--recipient", d / "device.key.pub",
               "--key", d / "release.key", "--sequence", str(sequence), "--vendor-id", VENDOR,
               "--class-id", CLASS, "-o", d / "u.suit", *extra)  # fmt: skip


def apply(d: Path, *extra: str | Path) -> int:
    return cli("update", "apply", d / "u.suit", "--payload", d / "u.suit.tenv",
               "--key", d / "release.key.pub", "--state", d / "state", "--device", d / "device",
               *extra)  # fmt: skip


def test_deliver_load_attest_with_the_cli(d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, built = run_json(capsys, "release", "model", d / "edge-llm", "--recipient",
                           d / "device.key.pub", "--key", d / "release.key", "--sequence", "3",
                           "--vendor-id", VENDOR, "--class-id", CLASS,
                           "--model-key", d / "vendor.key.pub", "-o", d / "u.suit")  # fmt: skip
    assert code == 0 and built["uri"] == "u.suit.tenv" and built["sequence_number"] == 3
    assert (d / "u.suit.tenv").stat().st_size == built["payload_size"]
    code, out = run_json(capsys, "update", "apply", d / "u.suit", "--payload", d / "u.suit.tenv",
                         "--key", d / "release.key.pub", "--identity", d / "device.key",
                         "--model-key", d / "vendor.key.pub", "--state", d / "state",
                         "--device", d / "device")  # fmt: skip
    assert code == 0 and out["sequence_number"] == 3
    assert cli("update", "confirm", "--state", d / "state", "--device", d / "device") == 0

    # the device: a TPM, booted; the verifier enrolls it (as in test_attest_cli)
    tpm = SoftwareTPM(d / "tpm")
    (d / "ca.der").write_bytes(tpm.ek_ca_certificate())
    boot_from_event_log(tpm, EVENT_LOG)
    (d / "eventlog").write_bytes(EVENT_LOG)
    del tpm
    code, loaded = run_json(capsys, "update", "load", "--device", d / "device", "--model-key",
                            d / "vendor.key.pub", "--log", d / "models.log",
                            "--software", d / "tpm")  # fmt: skip
    assert code == 0 and loaded["name"] == "edge-llm" and loaded["recnum"] == 0
    digest = loaded["digest"]["sha256"]  # type: ignore[index]

    policy = {
        "version": 1, "pcrs": [1, 2, 3, 4, 5, 6, 7],
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]}, "runtime": None,
        "models": {"allowed_signers": [(d / "vendor.key.pub").read_text()]},
    }  # fmt: skip
    (d / "policy.json").write_text(json.dumps(policy))
    verifier = ["--store", d / "v.db", "--policy", d / "policy.json",
                "--software-roots", d / "ca.der"]  # fmt: skip
    assert cli("tpm", "init", "--software", d / "tpm", "-o", d / "ak") == 0
    enroll = ["--ek", d / "ak.ek.tpm2b", "--ak", d / "ak.tpm2b", "--ek-cert", d / "ak.ek.der"]
    assert cli("attest", "enroll", *verifier, "--device-id", DEVICE, *enroll, "-o", d / "cred") == 0
    assert cli("credential", "activate", "--software", d / "tpm", "-i", d / "cred",
               "-o", d / "secret") == 0  # fmt: skip
    assert cli("attest", "complete", *verifier, "--device-id", DEVICE, "--secret",
               d / "secret") == 0  # fmt: skip

    def attest(*extra: str | Path) -> tuple[int, dict[str, object]]:
        code, ch = run_json(capsys, "attest", "challenge", *verifier, "--device-id", DEVICE)
        assert code == 0
        code, _ = run_json(capsys, "attest", "evidence", "--software", d / "tpm", "--device-id",
                           DEVICE, "--nonce", str(ch["nonce"]), "--pcrs", "1-7", "--eventlog",
                           d / "eventlog", *extra, "-o", d / "ev.cbor")  # fmt: skip
        assert code == 0
        return run_json(capsys, "attest", "appraise", d / "ev.cbor", *verifier,
                        "--key", d / "vendor.key")  # fmt: skip

    code, res = attest("--model-log", d / "models.log")
    assert code == 0 and res["status"] == "affirming", res
    model = res["claims"]["submods"]["model"]  # type: ignore[index]
    assert model["ear.status"] == "affirming"
    assert any("model-approved" in r for r in model["trustedge.reasons"])
    # without the model log the model submod is a warning (the policy requires a model)
    code, res = attest()
    assert code == 1 and res["status"] == "warning"  # the result's status: the worst submod
    assert res["claims"]["submods"]["model"]["ear.status"] == "warning"  # type: ignore[index]

    # an allowed digest instead of a signer; a wrong digest is unapproved
    for digests, want in (([digest], "affirming"), (["00" * 32], "contraindicated")):
        policy["models"] = {"allowed_digests": digests}
        (d / "policy.json").write_text(json.dumps(policy))
        code, res = attest("--model-log", d / "models.log")
        assert code == (0 if want == "affirming" else 1) and res["status"] == want
        assert res["claims"]["submods"]["model"]["ear.status"] == want, res  # type: ignore[index]

    # the weights swapped in the installed slot: refused at load (exit 1), nothing logged
    slot_model = Path(str(loaded["directory"]))
    (slot_model / "model.safetensors").write_bytes(b"\x02" * 20_000)
    before = (d / "models.log").read_bytes()
    assert cli("update", "load", "--device", d / "device", "--model-key", d / "vendor.key.pub",
               "--log", d / "models.log", "--software", d / "tpm") == 1  # fmt: skip
    assert (d / "models.log").read_bytes() == before
    # a corrupt model-load log is malformed input (exit 3) for load and for evidence
    (d / "bad.log").write_bytes(b"\xff\x00")
    assert (
        cli(
            "update",
            "load",
            "--device",
            d / "device",
            "--model-key",
            d / "vendor.key.pub",
            "--log",
            d / "bad.log",
            "--software",
            d / "tpm",
        )
        == 1
    )  # the weights still differ
    (slot_model / "model.safetensors").write_bytes(b"\x01" * 20_000)
    assert cli("update", "load", "--device", d / "device", "--model-key", d / "vendor.key.pub",
               "--log", d / "bad.log", "--software", d / "tpm") == 3  # fmt: skip


def test_release_and_apply_refusals(d: Path) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    pem_pair(other, d / "other.key")
    # the signature does not match the model, or is by another key: exit 1, nothing written
    assert release(d, "--model-key", d / "other.key.pub") == 1
    assert not (d / "u.suit").exists() and not (d / "u.suit.tenv").exists()
    (d / "edge-llm" / "extra.bin").write_bytes(b"x")
    assert release(d, "--model-key", d / "vendor.key.pub") == 1
    (d / "edge-llm" / "extra.bin").unlink()
    # a signature that is no bundle (3); one inside the model directory (2)
    (d / "junk.sig").write_bytes(b"{not json")
    assert release(d, "--signature", d / "junk.sig", "--model-key", d / "vendor.key.pub") == 3
    (d / "edge-llm" / "model.sig").write_bytes((d / "edge-llm.sig").read_bytes())
    assert release(d, "--signature", d / "edge-llm" / "model.sig") == 2
    (d / "edge-llm" / "model.sig").unlink()
    assert release(d, "--vendor-id", "not-a-uuid") == 2

    assert release(d, sequence=5) == 0
    # a model component needs the device key (2); another device's key cannot open it (1)
    assert apply(d) == 2
    assert cli("envelope", "keygen", "--type", "x25519", "-o", d / "stranger.key") == 0
    assert apply(d, "--identity", d / "stranger.key") == 1
    # release-signed, but the model vendor is not the one this device trusts (1)
    assert apply(d, "--identity", d / "device.key", "--model-key", d / "other.key.pub") == 1
    assert not [p for p in (d / "device").rglob("*") if ".tmp-" in p.name]
    assert apply(d, "--identity", d / "device.key", "--model-key", d / "vendor.key.pub") == 0
    assert cli("update", "confirm", "--state", d / "state", "--device", d / "device") == 0
    # the older release (sequence 1): rollback refused (1)
    assert release(d, sequence=1) == 0
    assert apply(d, "--identity", d / "device.key") == 1


def test_json_failure_documents(d: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    pem_pair(other, d / "other.key")
    capsys.readouterr()
    assert release(d, "--model-key", d / "other.key.pub", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["built"] is False and doc["exit_code"] == 1 and doc["error"] == "SignatureError"
    assert release(d, sequence=2) == 0 and apply(d, "--identity", d / "device.key") == 0
    assert cli("update", "confirm", "--state", d / "state", "--device", d / "device") == 0
    assert release(d, sequence=1) == 0
    capsys.readouterr()
    assert apply(d, "--identity", d / "device.key", "--json") == 1
    out, err = capsys.readouterr()
    assert err == "trustedge: rollback: sequence 1 is below the floor 2\n"  # one line, with --json
    assert json.loads(out) == {
        "installed": False,
        "ok": False,
        "valid": False,
        "error": "RollbackError",
        "message": "rollback: sequence 1 is below the floor 2",
        "exit_code": 1,
    }
    load = ["update", "load", "--device", d / "device", "--log", d / "m.log"]
    code, doc = run_json(capsys, *load, "--model-key", d / "other.key.pub", "--software", d / "tpm")
    assert code == 1 and doc["loaded"] is False and doc["error"] == "SignatureError"


@pytest.mark.parametrize(
    "doc",
    [
        {"allowed_digests": ["zz" * 32]},
        {"allowed_digests": ["00" * 31]},
        {"allowed_digests": "00"},
        {"revoked_digests": ["00"]},
        {"allowed_signers": ["not a key"]},
        {"allowed_roots": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]},
        {"nv_index": "0x81000001"},
        {"nv_index": True},
        {"require_model": "yes"},
        {"allowed": []},
    ],
)
def test_model_policy_documents_are_checked(doc: dict[str, object]) -> None:
    with pytest.raises(MalformedInputError):
        load_model_policy(doc)


def test_model_policy_document() -> None:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    policy = load_model_policy(
        {"allowed_digests": ["sha256:" + "ab" * 32], "allowed_signers": [pem],
         "nv_index": "0x013e0d02", "require_model": False, "revoked_digests": ["cd" * 32]}
    )  # fmt: skip
    assert policy.allowed_digests == frozenset({bytes([0xAB]) * 32})
    assert policy.allowed_signers == (pub,) and policy.nv_index == 0x013E0D02
    assert policy.require_model is False
    assert policy.revoked_digests == frozenset({bytes([0xCD]) * 32})
