"""trustedge._fs: the one atomic-write helper (replace, exclusive create, kills mid-write)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trustedge._fs import atomic_output, atomic_write, create_exclusive


def test_atomic_write_replaces_with_mode(tmp_path: Path) -> None:
    dst = tmp_path / "state"
    dst.write_bytes(b"old")
    os.chmod(dst, 0o644)
    atomic_write(dst, b"new", mode=0o600)
    assert dst.read_bytes() == b"new"
    assert (dst.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_atomic_write_never_streams_into_a_device(tmp_path: Path) -> None:
    # A state file that is (or was made) a FIFO is replaced, never written through.
    dst = tmp_path / "state"
    os.mkfifo(dst)
    atomic_write(dst, b"x")
    assert dst.is_file() and dst.read_bytes() == b"x"


def test_atomic_output_streams_to_dev_null() -> None:
    with atomic_output("/dev/null") as fh:
        fh.write(b"discarded")
    assert Path("/dev/null").is_char_device()


def test_atomic_output_exception_leaves_old_content(tmp_path: Path) -> None:
    dst = tmp_path / "out"
    dst.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(dst) as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert dst.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_create_exclusive_refuses_existing_and_symlinks(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    create_exclusive(key, b"secret")
    assert (key.stat().st_mode & 0o777) == 0o600
    with pytest.raises(FileExistsError):
        create_exclusive(key, b"other")
    assert key.read_bytes() == b"secret"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(FileExistsError):
        create_exclusive(link, b"evil")
    assert victim.read_bytes() == b"keep"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        create_exclusive(dangling, b"evil")
    assert not (tmp_path / "nowhere").exists()


def test_create_exclusive_mode_ignores_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        create_exclusive(tmp_path / "pub", b"p", mode=0o644)
    finally:
        os.umask(old)
    assert ((tmp_path / "pub").stat().st_mode & 0o777) == 0o644


def test_kill_mid_write_leaves_old_state(tmp_path: Path) -> None:
    """SIGKILL while the new content is being written: the old content stays, no debris."""
    dst = tmp_path / "state"
    atomic_write(dst, b"old")
    script = textwrap.dedent(
        """
        import os, sys
        from trustedge._fs import atomic_output
        with atomic_output(sys.argv[1], stream_to_devices=False) as fh:
            fh.write(b"new-but-partial")
            fh.flush()
            sys.stdout.write("written\\n"); sys.stdout.flush()
            sys.stdin.readline()  # killed here, after bytes reached the file
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(dst)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"written\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert dst.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_without_o_tmpfile_the_named_fallback_keeps_the_same_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustedge._fs as fs

    monkeypatch.setattr(fs, "_unnamed_file", lambda directory, name: (-1, None))
    key = tmp_path / "key.pem"
    create_exclusive(key, b"secret")
    with pytest.raises(FileExistsError):
        create_exclusive(key, b"other")
    atomic_write(tmp_path / "state", b"new")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "state") as fh:
        fh.write(b"partial")
        raise RuntimeError
    assert key.read_bytes() == b"secret"
    assert (tmp_path / "state").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem", "state"]


def test_atomic_file_is_invisible_until_commit(tmp_path: Path) -> None:
    from trustedge._fs import AtomicFile

    slot = tmp_path / "slot0"
    writer = AtomicFile(slot, mode=0o644)
    writer.write(b"image")
    assert not slot.exists()
    writer.commit()
    assert slot.read_bytes() == b"image" and (slot.stat().st_mode & 0o777) == 0o644
    other = AtomicFile(slot)
    other.write(b"half")
    other.discard()
    assert slot.read_bytes() == b"image"
    assert [p.name for p in tmp_path.iterdir()] == ["slot0"]
