"""``hashing.sha256_ranges``: plain SHA-256 of byte ranges (OMS files and
shards), against hashlib, on every SIMD path and both implementations."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from trustedge import hashing
from trustedge.errors import VerificationError

SIZES = [0, 1, 63, 64, 65, 1000, 262_143, 262_144, 262_145, 600_001]


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    rng = random.Random(7)
    out = []
    for i, size in enumerate(SIZES):
        p = tmp_path / f"f{i}"
        p.write_bytes(rng.randbytes(size))
        out.append(p)
    return out


def _want(ranges: list[tuple[Path, int, int]]) -> list[bytes]:
    return [hashlib.sha256(p.read_bytes()[s:e]).digest() for p, s, e in ranges]


def _ranges(files: list[Path]) -> list[tuple[Path, int, int]]:
    rng = random.Random(3)
    out = []
    for p in files:
        size = p.stat().st_size
        out.append((p, 0, size))
        for _ in range(3):
            a = rng.randrange(size + 1)
            out.append((p, a, rng.randrange(a, size + 1)))
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matches_hashlib_on_every_path(files: list[Path], threads: int) -> None:
    ranges = _ranges(files)
    want = _want(ranges)
    for simd in hashing.available_simd_paths():
        assert hashing.sha256_ranges(ranges, threads=threads, simd=simd) == want, simd


def test_odd_count_and_unequal_pairs(files: list[Path]) -> None:
    # Pairs of very different lengths: the longer one finishes alone.
    ranges = [(files[-1], 0, 600_001), (files[1], 0, 1), (files[7], 5, 262_144)]
    assert hashing.sha256_ranges(ranges, threads=1) == _want(ranges)
    assert hashing.sha256_ranges([], threads=2) == []


def test_progress_reaches_total(files: list[Path]) -> None:
    seen: list[tuple[int, int]] = []
    ranges = _ranges(files)
    hashing.sha256_ranges(ranges, progress=lambda d, t: seen.append((d, t)))
    total = sum(e - s for _, s, e in ranges)
    assert seen[-1] == (total, total)


def test_range_past_the_end_is_refused(files: list[Path]) -> None:
    with pytest.raises(VerificationError):
        hashing.sha256_ranges([(files[3], 0, 65)])
    with pytest.raises(ValueError):
        hashing.sha256_ranges([(files[3], 10, 5)])
    with pytest.raises(ValueError):
        hashing.sha256_ranges([(files[3].parent, 0, 0)])
    with pytest.raises(FileNotFoundError):
        hashing.sha256_ranges([(files[3].parent / "missing", 0, 0)])


def test_cancel(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)
    flag = threading.Event()
    flag.set()
    with pytest.raises(InterruptedError):
        hashing.sha256_ranges([(big, 0, 64 << 20)] * 4, cancel=flag)


def test_many_files_beyond_the_open_batch(tmp_path: Path) -> None:
    paths = []
    for i in range(300):  # more than one batch of open files
        p = tmp_path / f"s{i}"
        p.write_bytes(os.urandom(i))
        paths.append((p, 0, i))
    assert hashing.sha256_ranges(paths, threads=2) == _want(paths)


@pytest.mark.parametrize("length", [64, 1000, 65536, 131_072 + 64 + 5, 300_000])
def test_groups_of_equal_ranges(tmp_path: Path, length: int) -> None:
    """Many ranges of one length (the shards of a model) run as multi-buffer
    groups where the kernel has wide lanes; odd counts and tails finish alone."""
    p = tmp_path / "shards"
    p.write_bytes(random.Random(length).randbytes(length * 37 + 11))
    ranges = [(p, i * length, (i + 1) * length) for i in range(37)]
    ranges.append((p, 37 * length, 37 * length + 11))
    want = _want(ranges)
    for simd in hashing.available_simd_paths():
        for threads in (1, 2):
            assert hashing.sha256_ranges(ranges, threads=threads, simd=simd) == want, simd


@pytest.mark.parametrize("spread", [0.0, 0.1, 0.25, 0.26, 0.9])
def test_groups_of_near_equal_files(tmp_path: Path, spread: float) -> None:
    """Files of about one length (a model's shards, each a little different) run as
    multi-buffer groups over their common blocks, each finishing its own rest alone;
    a spread beyond 1/4 falls back to pairs. Digests equal hashlib's either way."""
    rng = random.Random(int(spread * 100))
    longest = 200_000
    ranges = []
    for i in range(35):
        size = longest - int(rng.random() * spread * longest) + rng.randrange(64)
        p = tmp_path / f"shard-{i}"
        p.write_bytes(rng.randbytes(size))
        ranges.append((p, 0, size))
    ranges.append((tmp_path / "shard-0", 7, 70))  # a short one at the end
    want = _want(ranges)
    for simd in hashing.available_simd_paths():
        for threads in (1, 2):
            assert hashing.sha256_ranges(ranges, threads=threads, simd=simd) == want, simd


def test_the_gil_is_released_while_hashing(tmp_path: Path) -> None:
    """Another Python thread keeps running while ranges hash (C: worker
    pthreads without the GIL; twin: hashlib drops it for large updates)."""
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(96 << 20)
    count = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        before = count[0]
        hashing.sha256_ranges([(big, i << 20, (i + 1) << 20) for i in range(96)], threads=1)
        during = count[0] - before
    finally:
        stop.set()
        t.join()
    assert during > 10_000
