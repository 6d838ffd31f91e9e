"""verify_file: whole file, byte ranges, and every way to fail closed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import trustedge.hashing as hashing
from trustedge.errors import VerificationError

LEAF = 4096


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, hashing.BlobDigest]:
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(256)) * (10 * LEAF // 256) + b"tail")
    return path, hashing.hash_file(path, LEAF)


def poke(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 1]))


def test_whole_file_ok(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    hashing.verify_file(path, d)
    hashing.verify_file(path, dataclasses.replace(d, sha256=None))


def test_ranges_hash_only_their_leaves(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    poke(path, 5 * LEAF + 3)  # inside leaf 5
    hashing.verify_file(path, d, ranges=[(0, LEAF), (7 * LEAF, 7 * LEAF + 1), (9, 9)])
    with pytest.raises(VerificationError, match="leaf 5"):
        hashing.verify_file(path, d, ranges=[(5 * LEAF + 3, 5 * LEAF + 4)])
    with pytest.raises(VerificationError):
        hashing.verify_file(path, d)


def test_sha256_mismatch_alone_fails(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    with pytest.raises(VerificationError, match="SHA-256"):
        hashing.verify_file(path, dataclasses.replace(d, sha256=b"\x00" * 32))


def test_size_mismatch(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    with open(path, "ab") as fh:
        fh.write(b"!")
    with pytest.raises(VerificationError, match="bytes"):
        hashing.verify_file(path, d, ranges=[(0, 1)])


def test_leaves_not_matching_root(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    forged = dataclasses.replace(d, leaves=(b"\x00" * 32, *d.leaves[1:]))
    with pytest.raises(VerificationError, match="root"):
        hashing.verify_file(path, forged, ranges=[(LEAF, LEAF + 1)])


def test_range_outside_blob(blob: tuple[Path, hashing.BlobDigest]) -> None:
    path, d = blob
    with pytest.raises(ValueError):
        hashing.verify_file(path, d, ranges=[(0, d.size + 1)])
