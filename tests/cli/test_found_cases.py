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
