"""Interop both ways with sigstore's ``model_signing`` 1.1.x (the real peer).

Bundles written by ``trustedge model sign`` verify with ``model_signing verify
key|certificate`` (its CLI, as a subprocess), and bundles written by
``model_signing sign key|certificate`` verify with ``trustedge model verify``;
a tampered, added, removed or renamed file and a shard-boundary change are
rejected by both tools. ``model_signing``'s CLI signs whole files only, so the
shard cases drive its Python API (``hashing.Config().use_shard_serialization``
to sign; ``verifying.Config`` guesses shards from the bundle) in a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.models_support import make_chain, make_model, write_private, write_public
from tests.requirements import unavailable
from trustedge import models
from trustedge._cli import main
from trustedge.models._bundle import build_bundle, dsse_pae

BIN = Path(sys.executable).parent
MODEL_SIGNING = BIN / "model_signing"
SHARD = 65536

# model_signing's Python API, driven in a subprocess (its CLI has no shard option).
_API = r"""
import sys
from model_signing import hashing, signing, verifying
op, model, sig, key = sys.argv[1:5]
if op == "sign-shards":
    cfg = signing.Config().use_elliptic_key_signer(private_key=key)
    cfg.set_hashing_config(
        hashing.Config().use_shard_serialization(shard_size=int(sys.argv[5]))
    )
    cfg.sign(model, sig)
else:
    # model_signing 1.1.1 cannot guess the shard config from its own bundles
    # (it stores shard_size as 65536.0 and calls range() with it): set it.
    cfg = verifying.Config().use_elliptic_key_verifier(public_key=key)
    cfg.set_hashing_config(
        hashing.Config().use_shard_serialization(shard_size=int(sys.argv[5]))
    )
    try:
        cfg.verify(model, sig)
    except ValueError as exc:
        print(f"Verification failed: {exc}", file=sys.stderr)
        sys.exit(1)
print("ok")
"""


@pytest.fixture(scope="module", autouse=True)
def _peer() -> None:
    if not MODEL_SIGNING.is_file():
        unavailable("model_signing is not installed (pip install 'model-signing>=1.1,<1.2')")
    try:
        import OpenSSL  # noqa: F401  # model_signing imports it without declaring it
    except ImportError:
        unavailable("pyopenssl is not installed (model_signing needs it)")


def ms(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODEL_SIGNING), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ms_api(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _API, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def te(*argv: str | Path) -> int:
    return main(["model", *map(str, argv)])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(
        tmp_path / "model",
        {
            "model.safetensors": 5 * SHARD + 1234,
            "config.json": 80,
            "tokenizer/vocab.txt": 7000,
        },
    )


@pytest.fixture(params=["p256", "p384"])
def key_files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    curve = ec.SECP256R1() if request.param == "p256" else ec.SECP384R1()
    key = ec.generate_private_key(curve)
    return write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def _refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "failed" in (result.stdout + result.stderr).lower()


# --------------------------------------------------------------------------- key method


def test_trustedge_signed_verifies_with_model_signing(
    model: Path, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = key_files
    sig = tmp_path / "te.sig"
    assert te("sign", model, "--key", priv, "-o", sig) == 0
    result = ms("verify", "key", model, "--signature", sig, "--public_key", pub)
    _ok(result)
    assert "Verification succeeded" in result.stdout + result.stderr


def test_model_signing_signed_verifies_with_trustedge(
    model: Path, key_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    priv, pub = key_files
    sig = tmp_path / "ms.sig"
    _ok(ms("sign", "key", model, "--private_key", priv, "--signature", sig))
    capsys.readouterr()
    assert te("verify", model, "--signature", sig, "--key", pub, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["name"] == "model"
    # Same model, same statement content: both tools compute the same root digest.
    mine = tmp_path / "te.sig"
    assert te("sign", model, "--key", priv, "-o", mine, "--json") == 0
    assert json.loads(capsys.readouterr().out)["digest"] == doc["digest"]


def _attack(model: Path, attack: str) -> None:
    weights = model / "model.safetensors"
    if attack == "tamper":
        with open(weights, "r+b") as fh:
            fh.seek(3 * SHARD + 17)
            byte = fh.read(1)
            fh.seek(3 * SHARD + 17)
            fh.write(bytes([byte[0] ^ 1]))
    elif attack == "add":
        (model / "tokenizer" / "merges.txt").write_text("a b\n")
    elif attack == "remove":
        (model / "config.json").unlink()
    elif attack == "rename":
        os.rename(model / "tokenizer" / "vocab.txt", model / "tokenizer" / "vocab2.txt")
    else:  # shard-boundary: one byte inserted at the front moves every boundary
        data = weights.read_bytes()
        weights.write_bytes(b"\x00" + data[:-1])


ATTACKS = ["tamper", "add", "remove", "rename", "shard-boundary"]


@pytest.mark.parametrize("signer", ["trustedge", "model_signing"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_refused_by_both_files(
    model: Path, tmp_path: Path, signer: str, attack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    sig = tmp_path / "m.sig"
    if signer == "trustedge":
        assert te("sign", model, "--key", priv, "-o", sig) == 0
    else:
        _ok(ms("sign", "key", model, "--private_key", priv, "--signature", sig))
    _attack(model, attack)
    _refused(ms("verify", "key", model, "--signature", sig, "--public_key", pub))
    capsys.readouterr()
    assert te("verify", model, "--signature", sig, "--key", pub) == 1
    assert "verification failed" in capsys.readouterr().err


# --------------------------------------------------------------------------- shards


def test_shards_both_ways(model: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    ms_sig, te_sig = tmp_path / "ms.sig", tmp_path / "te.sig"
    _ok(ms_api("sign-shards", model, ms_sig, priv, SHARD))
    assert te("verify", model, "--signature", ms_sig, "--key", pub) == 0
    assert te("sign", model, "--key", priv, "-o", te_sig, "--shard-size", SHARD) == 0
    _ok(ms_api("verify", model, te_sig, pub, SHARD))
    a = models.verify_bundle(ms_sig.read_bytes(), public_key=key.public_key())
    b = models.verify_bundle(te_sig.read_bytes(), public_key=key.public_key())
    assert a.digest == b.digest and len(a.resources) == 6 + 1 + 1


@pytest.mark.parametrize("signer", ["trustedge", "model_signing"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_refused_by_both_shards(
    model: Path, tmp_path: Path, signer: str, attack: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    sig = tmp_path / "m.sig"
    if signer == "trustedge":
        assert te("sign", model, "--key", priv, "-o", sig, "--shard-size", SHARD) == 0
    else:
        _ok(ms_api("sign-shards", model, sig, priv, SHARD))
    _attack(model, attack)
    _refused(ms_api("verify", model, sig, pub, SHARD))
    assert te("verify", model, "--signature", sig, "--key", pub) == 1


def _resign(bundle: bytes, key: ec.EllipticCurvePrivateKey, edit: Any) -> bytes:
    """The bundle's statement edited by ``edit`` and signed again by the same
    key: a validly signed statement, so only the content checks can refuse it."""
    doc = json.loads(bundle)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    edit(statement)
    payload = json.dumps(statement, indent=2).encode()
    sig = key.sign(dsse_pae(models.PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    return build_bundle(payload, sig, key_hint=models.key_hint(key.public_key()))


def test_signed_shard_boundary_change_refused_by_both(model: Path, tmp_path: Path) -> None:
    """A signer-made statement whose shards of one file do not follow
    shard_size (0:100 and 100:end, digests correct for those ranges) is refused
    by both verifiers: shard boundaries are part of what is checked."""
    import hashlib

    from trustedge.models._bundle import root_digest

    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    sig = tmp_path / "m.sig"
    assert te("sign", model, "--key", priv, "-o", sig, "--shard-size", SHARD) == 0
    data = (model / "config.json").read_bytes()

    def split(statement: dict[str, Any]) -> None:
        res = [r for r in statement["predicate"]["resources"] if not r["name"].startswith("config")]
        for start, end in ((0, 40), (40, len(data))):
            res.append(
                {
                    "name": f"config.json:{start}:{end}",
                    "algorithm": "sha256",
                    "digest": hashlib.sha256(data[start:end]).hexdigest(),
                }
            )
        res.sort(key=lambda r: r["name"])
        statement["predicate"]["resources"] = res
        digests = [bytes.fromhex(r["digest"]) for r in res]
        statement["subject"][0]["digest"]["sha256"] = root_digest(digests).hex()

    forged = tmp_path / "forged.sig"
    forged.write_bytes(_resign(sig.read_bytes(), key, split))
    _refused(ms_api("verify", model, forged, pub, SHARD))
    assert te("verify", model, "--signature", forged, "--key", pub) == 3  # malformed shard list


# --------------------------------------------------------------------------- certificates


def test_certificate_chain_both_ways(model: Path, tmp_path: Path) -> None:
    chain = make_chain()
    key, signing_chain, root, leaf = chain.write(tmp_path)
    intermediate = tmp_path / "intermediate.pem"
    te_sig, ms_sig = tmp_path / "te.sig", tmp_path / "ms.sig"
    assert te("sign", model, "--key", key, "--certificate-chain", signing_chain, "-o", te_sig) == 0
    _ok(ms("verify", "certificate", model, "--signature", te_sig, "--certificate_chain", root))
    signed = ms(
        *("sign", "certificate", model, "--private_key", key, "--signing_certificate", leaf),
        *("--certificate_chain", intermediate, "--signature", ms_sig),
    )
    _ok(signed)
    assert te("verify", model, "--signature", ms_sig, "--certificate-chain", root) == 0
    # Another root: both refuse.
    (tmp_path / "other").mkdir()
    _, _, other_root, _ = make_chain().write(tmp_path / "other")
    _refused(
        ms("verify", "certificate", model, "--signature", te_sig, "--certificate_chain", other_root)
    )
    assert te("verify", model, "--signature", ms_sig, "--certificate-chain", other_root) == 1
    # A tampered file under a certificate signature: both refuse.
    _attack(model, "tamper")
    _refused(ms("verify", "certificate", model, "--signature", te_sig, "--certificate_chain", root))
    assert te("verify", model, "--signature", ms_sig, "--certificate-chain", root) == 1


def test_model_signing_has_no_ed25519_keys(model: Path, tmp_path: Path) -> None:
    """model_signing 1.1.x signs and verifies EC keys only (it reads
    ``key.curve``): an Ed25519 bundle from trustedge is refused by its CLI,
    while trustedge signs and verifies it. Should model_signing gain Ed25519,
    this test fails and the interop matrix grows."""
    key = ed25519.Ed25519PrivateKey.generate()
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    sig = tmp_path / "ed.sig"
    assert te("sign", model, "--key", priv, "-o", sig) == 0
    assert te("verify", model, "--signature", sig, "--key", pub) == 0
    result = ms("verify", "key", model, "--signature", sig, "--public_key", pub)
    assert result.returncode != 0 and "curve" in result.stdout + result.stderr
    assert ms("sign", "key", model, "--private_key", priv, "--signature", tmp_path / "x").returncode


def test_copied_model_verifies_elsewhere(model: Path, tmp_path: Path) -> None:
    """The signature binds names relative to the model, not where it lies."""
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    sig = tmp_path / "m.sig"
    assert te("sign", model, "--key", priv, "-o", sig) == 0
    moved = shutil.copytree(model, tmp_path / "elsewhere" / "model")
    _ok(ms("verify", "key", moved, "--signature", sig, "--public_key", pub))


def test_ignore_paths_both_ways(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ignored paths are recorded relative to the model and honoured by the
    other tool: changing an ignored file breaks neither verification."""
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = write_private(tmp_path / "k.pem", key), write_public(tmp_path / "k.pub", key)
    (model / "runs").mkdir()
    (model / "runs" / "log.txt").write_text("epoch 1")
    monkeypatch.chdir(tmp_path)
    te_sig, ms_sig = tmp_path / "te.sig", tmp_path / "ms.sig"
    assert te("sign", model, "--key", priv, "-o", te_sig, "--ignore-paths", "model/runs") == 0
    _ok(ms("sign", "key", model, "--private_key", priv, "--signature", ms_sig,
           "--ignore-paths", model / "runs"))  # fmt: skip
    (model / "runs" / "log.txt").write_text("epoch 2")
    (model / "runs" / "new.txt").write_text("x")
    _ok(ms("verify", "key", model, "--signature", te_sig, "--public_key", pub))
    assert te("verify", model, "--signature", ms_sig, "--key", pub) == 0
    # ...while a change outside them still fails in both.
    _attack(model, "tamper")
    _refused(ms("verify", "key", model, "--signature", te_sig, "--public_key", pub))
    assert te("verify", model, "--signature", ms_sig, "--key", pub) == 1
