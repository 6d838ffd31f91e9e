"""BlobHasher: streamed bytes give the same digests as the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import trustedge.hashing as hashing

LEAF = 4096


@pytest.mark.parametrize("size", [0, 1, LEAF - 1, LEAF, LEAF + 1, 9 * LEAF + 77])
@pytest.mark.parametrize("chunk", [1, 1000, LEAF, 3 * LEAF + 5])
def test_stream_equals_file(tmp_path: Path, size: int, chunk: int) -> None:
    if chunk == 1 and size > 2 * LEAF:
        chunk = 333  # keep the test fast
    data = hashlib.shake_256(b"s%d" % size).digest(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    h = hashing.BlobHasher(LEAF)
    for i in range(0, size, chunk):
        h.update(data[i : i + chunk])
    assert h.size == size
    assert h.digest() == hashing.hash_file(path, LEAF)


def test_digest_midway_then_continue() -> None:
    h = hashing.BlobHasher(LEAF)
    h.update(b"a" * (LEAF + 1))
    first = h.digest()
    h.update(bytearray(b"b" * 10))
    assert first.size == LEAF + 1
    assert h.digest().size == LEAF + 11
    assert h.digest().sha256 == hashlib.sha256(b"a" * (LEAF + 1) + b"b" * 10).digest()


def test_bad_leaf_size() -> None:
    with pytest.raises(ValueError):
        hashing.BlobHasher(5000)
