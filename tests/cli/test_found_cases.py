"""Regression tests for failures found by using the CLI as a newcomer would (issue 15): each
is one stderr line, no traceback, and its documented exit code (3 malformed/unsupported,
4 environment), or a flow that now works as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_TRUSTEDGE = str(Path(sys.executable).parent / "trustedge")


def _run(
    *argv: str | Path, cwd: Path, stdin: bytes = b"", shell: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("TRUSTEDGE_KEY_PASSWORD", None)
    if shell is not None:
        cmd: list[str] = ["bash", "-c", shell]
    else:
        cmd = [_TRUSTEDGE, *map(str, argv)]
    return subprocess.run(
        cmd, input=stdin.decode("latin-1"), capture_output=True, text=True, timeout=120,
        cwd=cwd, env=env,
    )  # fmt: skip


def _one_line(res: subprocess.CompletedProcess[str], *codes: int) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode in codes, (res.returncode, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trustedge: "), lines
    return lines[0]


VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"


def _spec(tmp: Path, **extra: object) -> Path:
    (tmp / "fw.bin").write_bytes(b"firmware")
    component = {"install-id": ["00"], "vendor-id": VENDOR, "class-id": CLASS,
                 "file": "fw.bin", "uri": "#fw", **extra}  # fmt: skip
    spec = {"manifest-version": 1, "manifest-sequence-number": 1, "components": [component]}
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_release_create_misspelled_key_suggests(tmp_path: Path) -> None:
    spec = _spec(tmp_path, bootabel=True)
    line = _one_line(_run("release", "create", spec, "-o", "m.suit", cwd=tmp_path), 3)
    assert "unknown key 'bootabel'" in line and "did you mean bootable" in line
    assert not (tmp_path / "m.suit").exists()


def test_release_create_explains_suit_tool_offset(tmp_path: Path) -> None:
    spec = _spec(tmp_path, offset=33792)
    line = _one_line(_run("release", "create", spec, "-o", "m.suit", cwd=tmp_path), 3)
    assert "'offset'" in line and "slot" in line


def test_release_create_to_stdout(tmp_path: Path) -> None:
    spec = _spec(tmp_path, bootable=True)
    res = subprocess.run([_TRUSTEDGE, "release", "create", str(spec), "-o", "-"],
                         capture_output=True, cwd=tmp_path, check=True)  # fmt: skip
    assert res.stdout[:1] == b"\xd8"  # a tagged SUIT_Envelope, on stdout
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("command", [("release", "keygen"), ("envelope", "keygen")])
def test_keygen_never_overwrites_a_key(command: tuple[str, str], tmp_path: Path) -> None:
    existing = tmp_path / "old.key"
    existing.write_bytes(b"the old signing key")
    existing.chmod(0o644)
    line = _one_line(_run(*command, "-o", existing, cwd=tmp_path), 4)
    assert "exists" in line
    assert existing.read_bytes() == b"the old signing key"
    assert existing.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("command", [("release", "keygen"), ("envelope", "keygen")])
def test_keygen_never_writes_through_a_symlink(command: tuple[str, str], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "new.key"
    link.symlink_to(target)
    line = _one_line(_run(*command, "-o", link, cwd=tmp_path), 4)
    assert "symlink" in line
    assert not target.exists() and link.is_symlink()


@pytest.mark.parametrize("command", [("release", "keygen"), ("envelope", "keygen")])
def test_keygen_creates_mode_0600(command: tuple[str, str], tmp_path: Path) -> None:
    res = subprocess.run(["bash", "-c", f"umask 000 && {_TRUSTEDGE} {' '.join(command)} -o k"],
                         cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pub").stat().st_mode & 0o777 == 0o644


_KEYS = Path(__file__).resolve().parent.parent / "data" / "keys"


def _bad_keys(tmp: Path) -> dict[str, Path]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    der, spki = ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(der, spki)
    changed = p256.replace(bytes.fromhex("2a8648ce3d030107"), bytes.fromhex("2a8648ce3d030108"))
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        der, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )
    mutated = ed.replace(bytes.fromhex("2b6570"), bytes.fromhex("2b657f"))  # OID 1.3.101.127
    out = {"sm2.pem": (_KEYS / "sm2.pem").read_bytes(), "sm2.pub": (_KEYS / "sm2.pub").read_bytes(),
           "changed-oid.der": changed, "mutated-ed25519.der": mutated}  # fmt: skip
    for name, data in out.items():
        (tmp / name).write_bytes(data)
    return {name: tmp / name for name in out}


def _manifest(tmp: Path) -> Path:
    spec = _spec(tmp, bootable=True)
    res = _run("release", "create", spec, "-o", tmp / "m.suit", cwd=tmp)
    assert res.returncode == 0, res.stderr
    return tmp / "m.suit"


@pytest.mark.parametrize("key", ["sm2.pem", "sm2.pub", "changed-oid.der", "mutated-ed25519.der"])
@pytest.mark.parametrize(
    "command",
    ["release verify", "release sign", "envelope seal", "envelope open", "attest result verify"],
)
def test_unsupported_keys_are_one_line_exit_3(command: str, key: str, tmp_path: Path) -> None:
    bad = _bad_keys(tmp_path)[key]
    (tmp_path / "data").write_bytes(b"plaintext")
    argv: list[str | Path] = {
        "release verify": ["release", "verify", _manifest(tmp_path), "--key", bad],
        "release sign": ["release", "sign", _manifest(tmp_path), "--key", bad],
        "envelope seal": ["envelope", "seal", "--recipient", bad, "-i", "data", "-o", "out"],
        "envelope open": ["envelope", "open", "--identity", bad, "-i", "data", "-o", "out"],
        "attest result verify": ["attest", "result", "verify", "data", "--key", bad],
    }[command]
    for extra in ([], ["--json"]):
        res = _run(*argv, *extra, cwd=tmp_path)
        line = _one_line(res, 3)
        assert "key" in line.lower() or "curve" in line.lower() or "sm2" in line.lower(), line
        if extra:
            assert json.loads(res.stdout)["exit_code"] == 3
    assert not (tmp_path / "out").exists()


def test_policy_with_a_list_valued_bank(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    (tmp_path / "key.pem").write_bytes(pem)
    rule = {"rule": "event_digests", "pcr": 4, "bank": ["sha256"], "digests": []}
    policy = {"version": 1, "policy_id": "p", "pcrs": [4],
              "boot": {"version": 1, "rules": [rule]}}  # fmt: skip
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    (tmp_path / "ev").write_bytes(b"\xa0")
    res = _run("attest", "appraise", "ev", "--store", "v.db", "--policy", "policy.json",
               "--key", "key.pem", cwd=tmp_path)  # fmt: skip
    assert "unknown bank" in _one_line(res, 3)


@pytest.mark.parametrize(
    "shell",
    [
        "{t} hash /dev/null",
        "{t} hash <(cat f)",
        "{t} hash /dev/stdin < f",
        "cat f | {t} hash -",
        "{t} hash --tree - < f",
    ],
)
def test_hash_streams(shell: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    res = _run(cwd=tmp_path, shell=shell.format(t=_TRUSTEDGE))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    want = "e3b0c442" if "/dev/null" in shell else "ba7816bf"
    assert res.stdout.startswith(want), res.stdout


def test_hash_check_and_verify_read_like_sha256sum(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"abc")
    (tmp_path / "b").write_bytes(b"")
    sums = subprocess.run(["sha256sum", "a", "b"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    (tmp_path / "SUMS").write_text(sums)
    res = _run("hash", "-c", "SUMS", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == "a: OK\nb: OK\n", res
    (tmp_path / "b").write_bytes(b"changed")
    res = _run("hash", "-c", "SUMS", cwd=tmp_path)
    assert res.returncode == 1 and "b: FAILED\n" in res.stdout and "a: OK\n" in res.stdout
    res = _run("hash", "-c", "SUMS", "--json", cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert res.returncode == 1 and doc["ok"] is False
    assert [f["ok"] for f in doc["files"]] == [True, False]
    (tmp_path / "bad").write_text("not a sum line\n")
    assert "not a sha256sum line" in _one_line(_run("hash", "-c", "bad", cwd=tmp_path), 3)
    digest = sums.split()[0]
    res = _run("hash", "verify", "a", "--digest", digest, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == "a: OK\n"
    res = _run("hash", "verify", "b", "--digest", digest, "--json", cwd=tmp_path)
    assert res.returncode == 1 and json.loads(res.stdout)["exit_code"] == 1


def test_rewrap_remove_unknown_id(tmp_path: Path) -> None:
    assert _run("envelope", "keygen", "-o", "k", cwd=tmp_path).returncode == 0
    (tmp_path / "data").write_bytes(b"secret")
    res = _run("envelope", "seal", "--recipient", "k.pub", "-i", "data", "-o", "env",
               cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = _run("envelope", "rewrap", "--identity", "k", "--remove", "hpke:nosuchid", "-i",
               "env", "-o", "env2", cwd=tmp_path)  # fmt: skip
    assert "no such slot" in _one_line(res, 3)
    assert not (tmp_path / "env2").exists()


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_broken_pipe(extra: list[str], tmp_path: Path) -> None:
    """``| head -c1``: the reader is gone before the output is written (the read end is
    closed first, so the write fails with EPIPE whatever the pipe's buffer size)."""
    (tmp_path / "f").write_bytes(b"abc")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run(
            [_TRUSTEDGE, "hash", "f", *extra], stdout=write_end, stderr=subprocess.PIPE,
            text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert res.returncode == 4, res.stderr
    assert res.stderr == "trustedge: output closed early (broken pipe)\n"


@pytest.mark.parametrize(
    "flag", [["--pcr10", "00" * 20], ["--policy", "p.json"], ["--keyring", "."],
             ["--bank", "sha256"], ["--start-pcr", "00" * 20]]
)  # fmt: skip
def test_ima_show_rejects_verify_only_flags(flag: list[str], tmp_path: Path) -> None:
    """``ima show`` checks nothing: a --pcr10 or --policy given to it was silently ignored
    and the unverified list printed as if checked."""
    (tmp_path / "ima").write_bytes(b"")
    res = _run("ima", "show", "ima", *flag, cwd=tmp_path)
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr, res.stderr
    assert _run("ima", "show", "ima", cwd=tmp_path).returncode == 0


def test_encrypted_pem_passphrase_sources(tmp_path: Path) -> None:
    """An encrypted PEM signs with the passphrase from --password-file or
    $TRUSTEDGE_KEY_PASSWORD; without one (no TTY) it is a one-line usage error."""
    key = _KEYS / "p256-encrypted-hunter2.pem"
    manifest = _manifest(tmp_path)
    line = _one_line(_run("release", "sign", manifest, "--key", key, cwd=tmp_path), 2)
    assert "encrypted" in line and "--password-file" in line
    (tmp_path / "pw").write_text("wrong\n")
    res = _run("release", "sign", manifest, "--key", key, "--password-file", "pw", cwd=tmp_path)
    assert "passphrase" in _one_line(res, 3)
    (tmp_path / "pw").write_text("hunter2\n")
    res = _run("release", "sign", manifest, "--key", key, "--password-file", "pw", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    from cryptography.hazmat.primitives import serialization as ser

    private = ser.load_pem_private_key(key.read_bytes(), b"hunter2")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(private.public_key().public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    env = dict(os.environ, TRUSTEDGE_KEY_PASSWORD="hunter2")
    res2 = subprocess.run([_TRUSTEDGE, "root", "init", "--root-key", str(pub), "--root-threshold",
                           "1", "--firmware-key", str(pub), "--firmware-threshold", "1",
                           "--expires", "4102444800", "--sign", str(key), "-o", "-"],
                          capture_output=True, cwd=tmp_path, env=env)  # fmt: skip
    assert res2.returncode == 0, res2.stderr
    assert res2.stdout and not (tmp_path / "-").exists()  # root init -o - writes stdout


def test_tpm_quote_to_stdout(tmp_path: Path) -> None:
    """``tpm quote -o -`` prints one JSON document (hex of the three tpm2-tools files)
    instead of creating files named ``-.msg``."""
    assert _run("tpm", "init", "--software", "tpm", "-o", "ak", cwd=tmp_path).returncode == 0
    res = _run("tpm", "quote", "--software", "tpm", "--pcr-selection", "sha256:0", "--nonce",
               "00" * 16, "-o", "-", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert bytes.fromhex(doc["message"])[:4] == b"\xffTCG"
    assert not list(tmp_path.glob("-*"))
