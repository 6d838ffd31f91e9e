"""Truncation while hashing, cancellation, progress and Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

import trustedge.hashing as hashing
from trustedge.errors import VerificationError

LEAF = 4096


def slow_path(module: ModuleType) -> str:
    """The slowest kernel, so a hash lasts long enough to be interrupted."""
    paths: tuple[str, ...] = module.SIMD_PATHS
    return paths[-1]


@pytest.fixture
def big_sparse(tmp_path: Path) -> Path:
    """1 GiB of zeros without using disk (sparse)."""
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as fh:
        fh.truncate(1 << 30)
    return path


def test_short_file_is_a_clean_error(tmp_path: Path, implementation: ModuleType) -> None:
    # The file ends before the size the caller saw: the read comes up short.
    path = tmp_path / "short"
    path.write_bytes(b"x" * (5 * LEAF))
    fd = os.open(path, os.O_RDONLY)
    try:
        # whole file alone, leaves alone, both in one pass
        for want_sha, leaves in ((True, []), (False, list(range(8))), (True, list(range(8)))):
            with pytest.raises(VerificationError, match="truncated"):
                implementation.hash_fd(
                    fd, 8 * LEAF, LEAF, want_sha, leaves, 2,
                    implementation.SIMD_PATHS[0], None, None,
                )  # fmt: skip
    finally:
        os.close(fd)


def test_truncated_while_hashing(tmp_path: Path, implementation: ModuleType) -> None:
    path = tmp_path / "shrinks.bin"
    with open(path, "wb") as fh:
        fh.truncate(256 << 20)
    calls = []

    def truncate(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            os.truncate(path, 4096)

    with pytest.raises(VerificationError):
        hashing.hash_file(
            path, LEAF * 16, threads=2, progress=truncate, simd=slow_path(implementation)
        )
    assert calls


def test_cancel_flag_stops_within_100ms(big_sparse: Path, implementation: ModuleType) -> None:
    cancel = threading.Event()
    set_at: list[float] = []

    def fire() -> None:
        set_at.append(time.monotonic())
        cancel.set()

    timer = threading.Timer(0.05, fire)
    timer.start()
    try:
        with pytest.raises(InterruptedError):
            hashing.hash_file(big_sparse, cancel=cancel, threads=2, simd=slow_path(implementation))
        stopped = time.monotonic()
    finally:
        timer.cancel()
    assert stopped - set_at[0] < 0.1


def test_ctrl_c_stops_within_100ms(big_sparse: Path, implementation: ModuleType) -> None:
    # A shell's background job starts with SIGINT ignored: install Python's handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        ctrl_c_during_hash(big_sparse, implementation)
    finally:
        signal.signal(signal.SIGINT, previous)


def ctrl_c_during_hash(big_sparse: Path, implementation: ModuleType) -> None:
    sent: list[float] = []

    def interrupt(done: int, total: int) -> None:
        if not sent:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        hashing.hash_file(big_sparse, progress=interrupt, threads=2, simd=slow_path(implementation))
    assert time.monotonic() - sent[0] < 0.1


def test_progress_is_reported_and_ends_at_total(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.write_bytes(b"p" * (10 * LEAF + 1))
    seen: list[tuple[int, int]] = []
    d = hashing.hash_file(path, LEAF, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2 * d.size, 2 * d.size)  # whole file + every leaf
    assert all(done <= total for done, total in seen)


def test_progress_exception_propagates(big_sparse: Path, implementation: ModuleType) -> None:
    def boom(done: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        hashing.tree_digest(big_sparse, progress=boom, simd=slow_path(implementation))
