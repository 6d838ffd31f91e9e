"""``trustedge model sign`` / ``trustedge model verify`` end to end (in process)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.models_support import make_chain, make_model, write_private, write_public
from trustedge._cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["model", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(
        tmp_path / "my-model",
        {"model.safetensors": 200_000, "config.json": 50, "tok/vocab.txt": 3000},
    )


@pytest.fixture(params=["p256", "ed25519"])
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    key: Any = (
        ec.generate_private_key(ec.SECP256R1())
        if request.param == "p256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    return write_private(tmp_path / "signer.key", key), write_public(tmp_path / "signer.pub", key)


def test_sign_default_path_and_verify(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path]
) -> None:
    priv, pub = keys
    code, out, err = run(capsys, "sign", str(model), "--key", str(priv))
    assert code == 0, err
    sig = model.with_name("my-model.sig")
    assert sig.is_file() and f"-> {sig}" in out
    doc = json.loads(sig.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    code, out, err = run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))
    assert code == 0, err
    assert out.startswith(f"OK  {model}: 3 file(s), digest sha256:")


def test_json_success_and_failure(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = keys
    sig = tmp_path / "out.sig"
    code, out, _ = run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig), "--json")
    assert code == 0
    signed = json.loads(out)
    assert signed["signed"] is True and signed["signature"] == str(sig)
    assert signed["method"] == "key" and signed["resources"] == 3
    code, out, _ = run(
        capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub), "--json"
    )
    assert code == 0
    verified = json.loads(out)
    assert verified["verified"] is True
    assert verified["digest"]["sha256"] == signed["digest"]["sha256"]
    assert [f["name"] for f in verified["files"]] == [
        "config.json",
        "model.safetensors",
        "tok/vocab.txt",
    ]
    (model / "config.json").write_text('{"evil": 1}')
    code, out, err = run(
        capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub), "--json"
    )
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith("trustedge: ")
    failed = json.loads(out)  # exactly one document
    assert failed["verified"] is False and failed["error"] == "VerificationError"
    assert "config.json" in failed["message"] and failed["exit_code"] == 1


@pytest.mark.parametrize("attack", ["tamper", "add", "remove", "rename"])
def test_tampered_model_exits_1(
    capsys: pytest.CaptureFixture[str],
    model: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    attack: str,
) -> None:
    priv, pub = keys
    sig = tmp_path / "m.sig"
    assert run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig))[0] == 0
    if attack == "tamper":
        with open(model / "model.safetensors", "r+b") as fh:
            fh.seek(100_000)
            fh.write(b"\x00")
    elif attack == "add":
        (model / "new.bin").write_bytes(b"x")
    elif attack == "remove":
        (model / "tok" / "vocab.txt").unlink()
    else:
        os.rename(model / "config.json", model / "Config.json")
    code, _, err = run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))
    assert code == 1
    assert err.startswith("trustedge: verification failed:") and err.count("\n") == 1


def test_wrong_key_exits_1(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    sig = tmp_path / "m.sig"
    assert run(capsys, "sign", str(model), "--key", str(write_private(tmp_path / "a", a)),
               "-o", str(sig))[0] == 0  # fmt: skip
    code, _, err = run(capsys, "verify", str(model), "--signature", str(sig),
                       "--key", str(write_public(tmp_path / "b.pub", b)))  # fmt: skip
    assert code == 1 and "no matching key" in err


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b'{"mediaType": "x"}', b"[1, 2]", b'{"a": 1, "a": 2}', b"\xff\xfe"],
    ids=["empty", "text", "media-type", "array", "duplicate-key", "not-utf8"],
)
def test_malformed_signature_exits_3(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path,
    content: bytes,
) -> None:  # fmt: skip
    _, pub = keys
    sig = tmp_path / "bad.sig"
    sig.write_bytes(content)
    code, _, err = run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))
    assert code == 3, err
    assert err.startswith("trustedge: malformed input") and "Traceback" not in err
    code, out, _ = run(
        capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub), "--json"
    )
    assert code == 3 and json.loads(out)["exit_code"] == 3


def test_stdout_and_stdin(
    capsys: pytest.CaptureFixture[str],
    model: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    priv, pub = keys
    code = main(["model", "sign", str(model), "--key", str(priv), "-o", "-"])
    bundle = capsys.readouterr().out
    assert code == 0 and json.loads(bundle)["dsseEnvelope"]["payloadType"]
    assert not model.with_name("my-model.sig").exists()
    stdin = io.TextIOWrapper(io.BytesIO(bundle.encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, _, err = run(capsys, "verify", str(model), "--signature", "-", "--key", str(pub))
    assert code == 0, err


def test_json_with_stdout_bundle_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path]
) -> None:
    code, out, _ = run(capsys, "sign", str(model), "--key", str(keys[0]), "-o", "-", "--json")
    assert code == 2 and json.loads(out)["exit_code"] == 2


def test_ignore_paths_and_signature_inside(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    priv, pub = keys
    (model / "runs").mkdir()
    (model / "runs" / "log.txt").write_text("1")
    (model / "notes.md").write_text("n")
    sig = model / "model.sig"  # inside the model: left out by itself
    monkeypatch.chdir(tmp_path)
    # Relative to the model, and a path inside it relative to the cwd (model_signing style).
    code, _, err = run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig),
                       "--ignore-paths", "runs", "my-model/notes.md")  # fmt: skip
    assert code == 0, err
    ser = json.loads(
        __import__("base64").b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"])
    )["predicate"]["serialization"]
    assert {"runs", "notes.md", "model.sig"} <= set(ser["ignore_paths"])
    (model / "runs" / "log.txt").write_text("2")
    (model / "notes.md").write_text("changed")
    code, _, err = run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))
    assert code == 0, err
    code, _, err = run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig),
                       "--ignore-paths", "/elsewhere/x")  # fmt: skip
    assert code == 2 and "not inside the model" in err


def test_unsigned_files_allowed_on_request(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = keys
    sig = tmp_path / "m.sig"
    assert run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig))[0] == 0
    (model / "extra.txt").write_text("e")
    base = ["verify", str(model), "--signature", str(sig), "--key", str(pub)]
    assert run(capsys, *base)[0] == 1
    assert run(capsys, *base, "--ignore-unsigned-files")[0] == 0


def test_shards_and_hash_types(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = keys
    sig = tmp_path / "m.sig"
    for extra in (["--shard-size", "64K"], ["--hash-type", "blake2b"], ["--hash-type", "blake3"]):
        code, out, err = run(
            capsys, "sign", str(model), "--key", str(priv), "-o", str(sig), "--json", *extra
        )
        assert code == 0, err
        ser = json.loads(out)["serialization"]
        code, out, err = run(
            capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub), "--json"
        )
        assert code == 0, err
        assert json.loads(out)["serialization"] == ser
    assert ser["hash_type"] == "blake3"
    # a usage error: main returns argparse's exit 2 (it no longer escapes as SystemExit)
    assert run(capsys, "sign", str(model), "--key", str(priv), "--shard-size", "0")[0] == 2


def test_certificate_chain(capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    chain = make_chain()
    key, signing_chain, root, _ = chain.write(tmp_path)
    sig = tmp_path / "m.sig"
    code, out, err = run(capsys, "sign", str(model), "--key", str(key), "-o", str(sig),
                         "--certificate-chain", str(signing_chain), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["method"] == "certificate"
    base = ["verify", str(model), "--signature", str(sig)]
    code, out, err = run(capsys, *base, "--certificate-chain", str(root), "--json")
    assert code == 0, err
    signer = json.loads(out)["signer"]
    assert signer["method"] == "certificate" and signer["subject"] == "CN=model signer"
    other = make_chain()
    (tmp_path / "other").mkdir()
    _, _, other_root, _ = other.write(tmp_path / "other")
    code, _, err = run(capsys, *base, "--certificate-chain", str(other_root))
    assert code == 1 and "certificate chain does not verify" in err
    # The certificate method needs roots, the key method a key: not both, not neither.
    assert run(capsys, *base)[0] == 2
    assert run(capsys, *base, "--certificate-chain", str(root), "--key", str(key))[0] == 2


def test_certificate_for_another_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
) -> None:
    chain = make_chain()
    _, signing_chain, _, _ = chain.write(tmp_path)
    other = write_private(tmp_path / "other.key", ec.generate_private_key(ec.SECP256R1()))
    code, _, err = run(capsys, "sign", str(model), "--key", str(other),
                       "--certificate-chain", str(signing_chain))  # fmt: skip
    assert code == 2 and "not for this private key" in err


def test_environment_and_usage_errors(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = keys
    code, _, err = run(capsys, "sign", str(model), "--key", str(tmp_path / "missing.key"))
    assert code == 4 and "Traceback" not in err
    (tmp_path / "junk.key").write_bytes(b"junk")
    assert run(capsys, "sign", str(model), "--key", str(tmp_path / "junk.key"))[0] == 3
    sig = tmp_path / "m.sig"
    assert run(capsys, "sign", str(model), "--key", str(priv), "-o", str(sig))[0] == 0
    code, _, _ = run(capsys, "verify", str(tmp_path / "nope"), "--signature", str(sig),
                     "--key", str(pub))  # fmt: skip
    assert code == 2
    assert run(capsys, "sign", str(model), "--key", str(priv), "--threads", "0")[0] == 2


def test_cache_resign(
    capsys: pytest.CaptureFixture[str], model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    priv, pub = keys
    cache = tmp_path / "cache.json"
    sig = tmp_path / "m.sig"
    base = ["sign", str(model), "--key", str(priv), "-o", str(sig), "--cache", str(cache)]
    assert run(capsys, *base)[0] == 0
    assert cache.is_file()
    (model / "config.json").write_text('{"v": 2}')
    assert run(capsys, *base)[0] == 0
    code, _, err = run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))
    assert code == 0, err


def test_progress_on_a_tty_only(model: Path, keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A progress bar on stderr when it is a TTY (a pseudo-terminal here), none
    otherwise or with --no-progress; stdout stays the result."""
    import pty
    import subprocess

    priv, _ = keys
    exe = Path(sys.executable).parent / "trustedge"
    base = [str(exe), "model", "sign", str(model), "--key", str(priv), "-o"]

    def stderr_of(extra: list[str], sig: str) -> bytes:
        master, slave = pty.openpty()
        try:
            subprocess.run([*base, str(tmp_path / sig), *extra], stderr=slave,
                           stdout=subprocess.DEVNULL, check=True, timeout=60)  # fmt: skip
            os.close(slave)
            slave = -1
            out = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)

    assert b"100%" in stderr_of([], "a.sig")
    assert stderr_of(["--no-progress"], "b.sig") == b""
    plain = subprocess.run([*base, str(tmp_path / "c.sig")], capture_output=True, check=True)
    assert plain.stderr == b""


def test_encrypted_key(
    capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization

    monkeypatch.delenv("TRUSTEDGE_KEY_PASSWORD", raising=False)

    key = ec.generate_private_key(ec.SECP256R1())
    enc = tmp_path / "enc.key"
    enc.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    pub = write_public(tmp_path / "enc.pub", key)
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "bad").write_text("wrong\n")
    sig = tmp_path / "m.sig"
    base = ["sign", str(model), "--key", str(enc), "-o", str(sig)]
    code, _, err = run(capsys, *base)  # not a TTY: no prompt; the CLI's one rule (exit 2)
    assert code == 2 and "encrypted" in err and "--password-file" in err
    assert run(capsys, *base, "--password-file", str(tmp_path / "bad"))[0] == 3
    assert run(capsys, *base, "--password-file", str(tmp_path / "pw"))[0] == 0
    assert run(capsys, "verify", str(model), "--signature", str(sig), "--key", str(pub))[0] == 0
