"""sign_model / verify_model round trips and the tamper cases."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import models
from trustedge.errors import (
    KeyNotFoundError,
    MalformedInputError,
    SignatureError,
    VerificationError,
)
from trustedge.models._bundle import parse_bundle, parse_statement


def _statement(bundle: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(parse_bundle(bundle).payload)
    return doc


def test_round_trip_files(model: Path, key: Any) -> None:
    bundle = models.sign_model(model, key)
    vm = models.verify_model(model, bundle, public_key=key.public_key())
    assert [f.name for f in vm.files] == [
        "config.json",
        "empty.txt",
        "model.safetensors",
        "tokenizer/vocab.txt",
    ]
    st = _statement(bundle)
    assert st["subject"][0]["name"] == "my-model"
    assert st["subject"][0]["digest"]["sha256"] == vm.digest.hex()
    assert st["predicate"]["serialization"]["method"] == "files"
    assert vm.statement.signer.method == "key"


def test_round_trip_shards(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = models.sign_model(model, p256, shard_size=65536)
    st = _statement(bundle)
    names = [r["name"] for r in st["predicate"]["resources"]]
    assert "model.safetensors:0:65536" in names
    assert "model.safetensors:262144:300000" in names
    assert not any(n.startswith("empty.txt") for n in names)  # OMS §6.3.2
    vm = models.verify_model(model, bundle, public_key=p256.public_key())
    assert len(vm.file("model.safetensors").units) == 5


def test_wrong_key_is_refused(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = models.sign_model(model, p256)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyNotFoundError):
        models.verify_model(model, bundle, public_key=other.public_key())


def test_bad_signature_is_refused(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    doc = json.loads(models.sign_model(model, p256))
    other = ec.generate_private_key(ec.SECP256R1())
    forged = json.loads(models.sign_model(model, other))
    doc["dsseEnvelope"]["signatures"] = forged["dsseEnvelope"]["signatures"]
    with pytest.raises(SignatureError):
        models.verify_bundle(json.dumps(doc).encode(), public_key=p256.public_key())


@pytest.mark.parametrize("shard_size", [None, 65536])
@pytest.mark.parametrize("attack", ["tamper", "add", "remove", "rename", "truncate"])
def test_tampered_model_is_refused(
    model: Path, p256: ec.EllipticCurvePrivateKey, attack: str, shard_size: int | None
) -> None:
    bundle = models.sign_model(model, p256, shard_size=shard_size)
    weights = model / "model.safetensors"
    if attack == "tamper":
        with open(weights, "r+b") as fh:
            fh.seek(150_000)
            fh.write(b"\xff")
    elif attack == "add":
        (model / "extra.bin").write_bytes(b"x")
    elif attack == "remove":
        (model / "config.json").unlink()
    elif attack == "rename":
        os.rename(model / "config.json", model / "config2.json")
    else:
        os.truncate(weights, 299_999)
    with pytest.raises(VerificationError):
        models.verify_model(model, bundle, public_key=p256.public_key())


def test_shard_boundary_change_is_refused(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    doc = json.loads(models.sign_model(model, p256, shard_size=65536))
    st = json.loads(parse_bundle(json.dumps(doc).encode()).payload)
    # Re-sign a statement whose shards of one file were merged: the signature
    # is valid but the boundaries no longer follow shard_size.
    res = [r for r in st["predicate"]["resources"] if not r["name"].startswith("model.")]
    res.append({"name": "model.safetensors:0:300000", "algorithm": "sha256", "digest": "00" * 32})
    st["predicate"]["resources"] = sorted(res, key=lambda r: r["name"])
    with pytest.raises(MalformedInputError):
        parse_statement(json.dumps(st).encode())


def test_ignore_paths_and_signature_inside(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    (model / "cache").mkdir()
    (model / "cache" / "junk").write_bytes(b"junk")
    sig = model / "model.sig"
    bundle = models.sign_model(model, p256, ignore_paths=["cache"], signature_path=sig)
    sig.write_bytes(bundle)
    ser = _statement(bundle)["predicate"]["serialization"]
    assert "cache" in ser["ignore_paths"] and "model.sig" in ser["ignore_paths"]
    (model / "cache" / "junk").write_bytes(b"changed")
    models.verify_model(model, bundle, public_key=p256.public_key(), signature_path=sig)


def test_unsigned_files_allowed_on_request(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    bundle = models.sign_model(model, p256)
    (model / "new.bin").write_bytes(b"new")
    models.verify_model(model, bundle, public_key=p256.public_key(), ignore_unsigned_files=True)


def test_symlink_is_refused(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    (model / "link").symlink_to(model / "config.json")
    with pytest.raises(MalformedInputError):
        models.sign_model(model, p256)


def test_single_file_model(model: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    f = model / "model.safetensors"
    bundle = models.sign_model(f, p256)
    assert [r["name"] for r in _statement(bundle)["predicate"]["resources"]] == [
        "model.safetensors"
    ]
    models.verify_model(f, bundle, public_key=p256.public_key())


@pytest.mark.parametrize("hash_type", ["blake2b", "blake3"])
def test_other_hashes(model: Path, p256: ec.EllipticCurvePrivateKey, hash_type: str) -> None:
    bundle = models.sign_model(model, p256, hash_type=hash_type)
    vm = models.verify_model(model, bundle, public_key=p256.public_key())
    assert vm.statement.serialization.hash_type == hash_type
    (model / "config.json").write_text("{}")
    with pytest.raises(VerificationError):
        models.verify_model(model, bundle, public_key=p256.public_key())


def test_cache_rehashes_only_changed(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    cache = models.HashCache(tmp_path / "cache.json")
    first = models.sign_model(model, p256, cache=cache)
    assert cache.misses == 4 and cache.hits == 0
    cache = models.HashCache(tmp_path / "cache.json")
    with open(model / "config.json", "ab") as fh:
        fh.write(b" ")
    second = models.sign_model(model, p256, cache=cache)
    assert cache.hits == 3 and cache.misses == 1
    assert _statement(first) != _statement(second)
    models.verify_model(model, second, public_key=p256.public_key())
