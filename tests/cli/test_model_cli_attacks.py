"""Attacks on ``trustedge model verify`` from the command line: each input a
signature does not cover, or a bundle built to confuse the verifier, is
refused with the documented exit code (1 verification failed, 3 malformed)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.models_support import make_model, write_private, write_public
from trustedge import models
from trustedge._cli import main
from trustedge.models._bundle import build_bundle, dsse_pae, root_digest


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey, Path]:
    model = make_model(tmp_path / "m", {"w.bin": 70_000, "config.json": 30, "sub/t.txt": 10})
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(tmp_path / "k.pem", key)
    pub = write_public(tmp_path / "k.pub", key)
    return model, pub, key, tmp_path


def verify(model: Path, sig: Path, pub: Path, *extra: str) -> int:
    return main(["model", "verify", str(model), "--signature", str(sig), "--key", str(pub), *extra])


def _statement(bundle: bytes) -> dict[str, Any]:
    doc = json.loads(bundle)
    st: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return st


def _signed(key: ec.EllipticCurvePrivateKey, statement: dict[str, Any]) -> bytes:
    """``statement`` as a validly signed bundle (the root digest recomputed)."""
    digests = [bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"]]
    statement["subject"][0]["digest"]["sha256"] = root_digest(digests).hex()
    payload = json.dumps(statement).encode()
    sig = key.sign(dsse_pae(models.PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return build_bundle(payload, sig, key_hint=models.key_hint(key.public_key()))


def test_symlink_planted_after_signing(setup: tuple[Path, Path, Any, Path]) -> None:
    model, pub, key, tmp = setup
    sig = tmp / "m.sig"
    sig.write_bytes(models.sign_model(model, key))
    (model / "sub" / "t.txt").unlink()
    os.symlink("/etc/hostname", model / "sub" / "t.txt")
    assert verify(model, sig, pub) == 1


def test_attacker_key_with_the_victims_hint(setup: tuple[Path, Path, Any, Path]) -> None:
    """An attacker signs a tampered model and copies the real key's hint into
    the bundle: the hint is only a claim; the signature must verify with the
    verifier's own key."""
    model, pub, key, tmp = setup
    attacker = ec.generate_private_key(ec.SECP256R1())
    (model / "config.json").write_text('{"evil": true}')
    doc = json.loads(models.sign_model(model, attacker))
    doc["verificationMaterial"]["publicKey"]["hint"] = models.key_hint(key.public_key())
    sig = tmp / "forged.sig"
    sig.write_text(json.dumps(doc))
    assert verify(model, sig, pub) == 1


def test_second_signature_from_an_attacker_does_not_help(
    setup: tuple[Path, Path, Any, Path],
) -> None:
    model, pub, key, tmp = setup
    bundle = json.loads(models.sign_model(model, key))
    attacker = ec.generate_private_key(ec.SECP256R1())
    st = _statement(models.sign_model(model, attacker))
    st["predicate"]["resources"] = [
        r for r in st["predicate"]["resources"] if r["name"] != "config.json"
    ]
    forged = json.loads(_signed(attacker, st))
    # The attacker's statement with both signatures: the victim's signs other bytes.
    forged["dsseEnvelope"]["signatures"] += bundle["dsseEnvelope"]["signatures"]
    forged["verificationMaterial"] = bundle["verificationMaterial"]
    sig = tmp / "two.sig"
    sig.write_text(json.dumps(forged))
    assert verify(model, sig, pub) == 1


def test_payload_type_swap(setup: tuple[Path, Path, Any, Path]) -> None:
    model, pub, key, tmp = setup
    doc = json.loads(models.sign_model(model, key))
    doc["dsseEnvelope"]["payloadType"] = "application/json"
    sig = tmp / "t.sig"
    sig.write_text(json.dumps(doc))
    assert verify(model, sig, pub) == 3


@pytest.mark.parametrize(
    "name", ["../outside", "/etc/passwd", "sub/../config.json", "./config.json", "a\x00b"]
)
def test_signed_but_unsafe_resource_names(setup: tuple[Path, Path, Any, Path], name: str) -> None:
    """Even the real signer cannot name a file outside the model."""
    model, pub, key, tmp = setup
    st = _statement(models.sign_model(model, key))
    st["predicate"]["resources"].append({"name": name, "algorithm": "sha256", "digest": "00" * 32})
    sig = tmp / "names.sig"
    sig.write_bytes(_signed(key, st))
    assert verify(model, sig, pub) == 3


def test_signed_statement_for_fewer_files_is_refused(
    setup: tuple[Path, Path, Any, Path],
) -> None:
    """A genuine signature over a subset (e.g. an older release without a file)
    does not cover a file that is now present."""
    model, pub, key, tmp = setup
    st = _statement(models.sign_model(model, key))
    st["predicate"]["resources"] = [
        r for r in st["predicate"]["resources"] if r["name"] != "sub/t.txt"
    ]
    sig = tmp / "subset.sig"
    sig.write_bytes(_signed(key, st))
    assert verify(model, sig, pub) == 1
    assert verify(model, sig, pub, "--ignore-unsigned-files") == 0  # only on request


def test_shard_name_under_files_method(setup: tuple[Path, Path, Any, Path]) -> None:
    """Under ``files`` a ``path:start:end`` name is a file of that name: the
    real ``w.bin`` is then unsigned and the named file missing."""
    model, pub, key, tmp = setup
    st = _statement(models.sign_model(model, key))
    for r in st["predicate"]["resources"]:
        if r["name"] == "w.bin":
            r["name"] = "w.bin:0:70000"
    sig = tmp / "files.sig"
    sig.write_bytes(_signed(key, st))
    assert verify(model, sig, pub) == 1


def test_shards_that_skip_bytes(setup: tuple[Path, Path, Any, Path]) -> None:
    """Shards that leave a gap (the file's tail unsigned) are refused."""
    model, pub, key, tmp = setup
    st = _statement(models.sign_model(model, key, shard_size=65536))
    st["predicate"]["resources"] = [
        r for r in st["predicate"]["resources"] if r["name"] != "w.bin:65536:70000"
    ]
    sig = tmp / "gap.sig"
    sig.write_bytes(_signed(key, st))
    assert verify(model, sig, pub) == 1


def test_signed_ignore_path_cannot_be_widened_by_the_bundle_holder(
    setup: tuple[Path, Path, Any, Path],
) -> None:
    """ignore_paths are inside the signed statement: adding one breaks the signature."""
    model, pub, key, tmp = setup
    doc = json.loads(models.sign_model(model, key))
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    st["predicate"]["serialization"]["ignore_paths"].append("w.bin")
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    sig = tmp / "widened.sig"
    sig.write_text(json.dumps(doc))
    (model / "w.bin").write_bytes(b"evil")
    assert verify(model, sig, pub) == 1
