"""``trustedge envelope ...`` end to end: files, stdin/stdout, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustedge._cli import main

EXE = [sys.executable, "-m", "trustedge", "envelope"]


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(EXE + args, input=data, capture_output=True, check=False)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert main(["envelope", "keygen", "--type", "x25519", "-o", str(tmp_path / "id.key")]) == 0
    assert main(["envelope", "keygen", "--type", "kek", "-o", str(tmp_path / "a.kek")]) == 0
    assert main(["envelope", "keygen", "--type", "kek", "-o", str(tmp_path / "b.kek")]) == 0
    assert main(["envelope", "keygen", "--type", "box", "-o", str(tmp_path / "box.key")]) == 0
    assert (tmp_path / "id.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "id.key.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    return tmp_path


def test_seal_open_files(keys: Path) -> None:
    msg = keys / "msg"
    msg.write_bytes(b"hello " * 10_000)
    env, out = keys / "msg.tenv", keys / "out"
    assert (
        main(
            [
                "envelope",
                "seal",
                "--recipient",
                str(keys / "id.key.pub"),
                "--kek",
                str(keys / "a.kek"),
                "--box-recipient",
                str(keys / "box.key.pub"),
                "--context",
                "app=x",
                "-i",
                str(msg),
                "-o",
                str(env),
            ]
        )
        == 0
    )
    for key in (["--identity", "id.key"], ["--kek", "a.kek"], ["--box-identity", "box.key"]):
        out.unlink(missing_ok=True)
        argv = ["envelope", "open", key[0], str(keys / key[1]), "-i", str(env), "-o", str(out)]
        assert main([*argv, "--context", "app=x"]) == 0
        assert out.read_bytes() == msg.read_bytes()
    assert (
        main(
            [
                "envelope",
                "open",
                "--kek",
                str(keys / "a.kek"),
                "--context",
                "app=y",
                "-i",
                str(env),
                "-o",
                str(keys / "never"),
            ]
        )
        == 1
    )
    assert not (keys / "never").exists()


def test_stdin_stdout_and_exit_codes(keys: Path) -> None:
    kek = str(keys / "a.kek")
    sealed = _run(["seal", "--kek", kek], b"piped data")
    assert sealed.returncode == 0, sealed.stderr
    opened = _run(["open", "--kek", kek], sealed.stdout)
    assert opened.returncode == 0 and opened.stdout == b"piped data"
    # authentication failures: wrong key, tampered body -> 1
    assert _run(["open", "--kek", str(keys / "b.kek")], sealed.stdout).returncode == 1
    bad = bytearray(sealed.stdout)
    bad[-3] ^= 1
    assert _run(["open", "--kek", kek], bytes(bad)).returncode == 1
    assert _run(["open", "--kek", kek], sealed.stdout[:-5]).returncode == 1
    # malformed -> 3
    res = _run(["open", "--kek", kek], b"not an envelope")
    assert res.returncode == 3 and b"malformed input" in res.stderr


def test_large_files_and_pipes_agree(keys: Path) -> None:
    # Files (-i) are read ahead by a helper thread, stdin on the main thread:
    # every combination must round-trip, and a bad late chunk still fails.
    data = (bytes(range(256)) * 13_000)[: 3 * 1024 * 1024 + 777]
    msg, env = keys / "big", keys / "big.tenv"
    msg.write_bytes(data)
    kek = str(keys / "a.kek")
    assert _run(["seal", "--kek", kek, "-i", str(msg), "-o", str(env)]).returncode == 0
    piped = _run(["seal", "--kek", kek], data)
    assert piped.returncode == 0
    assert _run(["open", "--kek", kek, "-i", str(env)]).stdout == data
    assert _run(["open", "--kek", kek], env.read_bytes()).stdout == data
    assert _run(["open", "--kek", kek], piped.stdout).stdout == data
    bad = bytearray(env.read_bytes())
    bad[-50_000] ^= 1
    env.write_bytes(bytes(bad))
    res = _run(["open", "--kek", kek, "-i", str(env), "-o", str(keys / "out")])
    assert res.returncode == 1 and b"chunk 188 " in res.stderr
    assert not (keys / "out").exists()


def test_failed_open_leaves_no_file(keys: Path) -> None:
    msg = keys / "m"
    msg.write_bytes(b"x" * 70_000)
    env = keys / "m.tenv"
    assert (
        main(["envelope", "seal", "--kek", str(keys / "a.kek"), "-i", str(msg), "-o", str(env)])
        == 0
    )
    data = bytearray(env.read_bytes())
    data[-100] ^= 1
    env.write_bytes(bytes(data))
    out = keys / "m.out"
    assert (
        main(["envelope", "open", "--kek", str(keys / "a.kek"), "-i", str(env), "-o", str(out)])
        == 1
    )
    assert not out.exists()
    assert sorted(p.name for p in keys.iterdir() if p.name.startswith(".")) == []


def test_rewrap_and_inspect(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msg = keys / "m"
    msg.write_bytes(b"rotate me")
    env, env2 = keys / "m.tenv", keys / "m2.tenv"
    a, b = str(keys / "a.kek"), str(keys / "b.kek")
    assert main(["envelope", "seal", "--kek", a, "-i", str(msg), "-o", str(env)]) == 0
    capsys.readouterr()
    assert main(["envelope", "inspect", "-i", str(env), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is False and info["size"] == 9
    old_id = info["slots"][0]["kek_id"]
    assert (
        main(
            [
                "envelope",
                "rewrap",
                "--kek",
                a,
                "--add-kek",
                b,
                "--remove",
                old_id,
                "-i",
                str(env),
                "-o",
                str(env2),
            ]
        )
        == 0
    )
    assert env.read_bytes()[-25:] == env2.read_bytes()[-25:]
    assert main(["envelope", "open", "--kek", a, "-i", str(env2), "-o", str(keys / "x")]) == 1
    assert main(["envelope", "open", "--kek", b, "-i", str(env2), "-o", str(keys / "y")]) == 0
    assert (keys / "y").read_bytes() == b"rotate me"
    assert main(["envelope", "inspect", "-i", str(env2)]) == 0
    assert "UNVERIFIED" in capsys.readouterr().out


def test_usage_errors(keys: Path) -> None:
    assert main(["envelope", "seal", "-i", str(keys / "a.kek")]) == 2
    assert main(["envelope", "seal", "--kek", str(keys / "a.kek"), "--context", "novalue"]) == 2
    assert main(["envelope"]) == 2
    # TPM slots need a backend: without one it is an environment error (4)
    assert (
        main(
            [
                "envelope",
                "open",
                "--tpm",
                str(keys / "a.kek"),
                "--tcti",
                "none",
                "-i",
                str(keys / "a.kek"),
            ]
        )
        == 4
    )


def test_progress_bar_on_tty(keys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    big = keys / "big"
    big.write_bytes(b"\x00" * (9 << 20))
    env = keys / "big.tenv"
    assert (
        main(["envelope", "seal", "--kek", str(keys / "a.kek"), "-i", str(big), "-o", str(env)])
        == 0
    )
    assert "sealing [" in err.getvalue() and "100%" in err.getvalue()
    err.truncate(0)
    assert (
        main(
            [
                "envelope",
                "open",
                "--kek",
                str(keys / "a.kek"),
                "-i",
                str(env),
                "-o",
                str(keys / "big.out"),
            ]
        )
        == 0
    )
    assert "opening [" in err.getvalue()
    assert (keys / "big.out").read_bytes() == big.read_bytes()
