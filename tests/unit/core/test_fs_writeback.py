"""Early write-back of large atomic outputs: requested every WRITEBACK_STEP bytes, a hint only
(content and the commit's fsync unchanged)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustedge import _fs


def test_large_output_requests_writeback_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = _fs._start_writeback

    def spy(fd: int, offset: int) -> None:
        calls.append((offset, os.fstat(fd).st_size))
        real(fd, offset)  # the real system call still runs

    monkeypatch.setattr(_fs, "_start_writeback", spy)
    step = _fs.WRITEBACK_STEP
    block = os.urandom(1 << 20)
    total = 2 * step + 3 * len(block)
    target = tmp_path / "big.bin"
    with _fs.atomic_output(target) as fh:
        for _ in range(total // len(block)):
            fh.write(block)
    assert target.read_bytes() == block * (total // len(block))
    # One request per full step, each from where the previous one ended, once the step's bytes
    # were in the file.
    assert [offset for offset, _ in calls] == [0, step]
    assert all(size >= offset + step for offset, size in calls)


def test_small_output_makes_no_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_fs, "_start_writeback", lambda fd, offset: calls.append(offset))
    _fs.atomic_write(tmp_path / "state", b"x" * 1000)
    assert calls == [] and (tmp_path / "state").read_bytes() == b"x" * 1000


def test_writeback_hint_on_a_real_file_does_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with path.open("wb") as fh:
        fh.write(b"y" * 65536)
        fh.flush()
        _fs._start_writeback(fh.fileno(), 0)  # sync_file_range on Linux; ignored elsewhere
    assert path.read_bytes() == b"y" * 65536
