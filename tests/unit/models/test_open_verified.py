"""Verify-on-load: ``open_verified`` returns bytes only after the shard (or
block of a verified unit) holding them matched the signed digest."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import models
from trustedge.errors import VerificationError

SHARD = 256 * 1024
SIZE = 40 * SHARD + 12345  # 10 MiB and a partial last shard


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, bytes]:
    root = tmp_path / "llm"
    root.mkdir()
    data = random.Random(5).randbytes(SIZE)
    (root / "weights.gguf").write_bytes(data)
    (root / "config.json").write_text("{}")
    return root, data


def _verified(
    root: Path, key: ec.EllipticCurvePrivateKey, shard: int | None
) -> models.VerifiedModel:
    bundle = models.sign_model(root, key, shard_size=shard)
    return models.verify_model(root, bundle, public_key=key.public_key())


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x80]))


def test_sequential_read_returns_the_file(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    root, data = big
    vm = _verified(root, p256, SHARD)
    with vm.open("weights.gguf") as fh:
        assert isinstance(fh, io.RawIOBase) and fh.seekable()
        got = bytearray()
        while chunk := fh.read(100_000):
            got += chunk
        assert bytes(got) == data
        assert fh.verified_bytes == SIZE  # each shard hashed once
    # Shard-sized readinto calls: each shard read and checked in the caller's buffer.
    with vm.open("weights.gguf") as fh:
        buf = bytearray(SHARD)
        out = bytearray()
        while n := fh.readinto(buf):
            out += buf[:n]
        assert bytes(out) == data and fh.verified_bytes == SIZE


def test_tampered_shard_in_the_middle_is_caught_at_its_read(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    root, data = big
    vm = _verified(root, p256, SHARD)
    bad = 20 * SHARD + 777  # shard 20 of 41
    _flip(root / "weights.gguf", bad)
    with vm.open("weights.gguf") as fh:
        # Everything before the tampered shard reads fine...
        assert fh.read(20 * SHARD) == data[: 20 * SHARD]
        # ...the read that touches it fails and leaves none of its bytes behind
        # (read into the caller's buffer, then zeroed).
        buf = bytearray(b"\x55" * SHARD)
        with pytest.raises(VerificationError, match=f"{20 * SHARD}..{21 * SHARD}"):
            fh.readinto(buf)
        assert buf == bytes(SHARD)
        with pytest.raises(VerificationError):
            fh.read(10)  # through the pool buffer too
        # Random access around it still works; the shard stays refused.
        fh.seek(30 * SHARD)
        assert fh.read(1000) == data[30 * SHARD : 30 * SHARD + 1000]
        fh.seek(bad - 5)
        with pytest.raises(VerificationError):
            fh.read(1)


def test_a_read_spanning_good_and_bad_shards_copies_only_verified_bytes(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    root, data = big
    vm = _verified(root, p256, SHARD)
    _flip(root / "weights.gguf", 3 * SHARD + 1)
    with vm.open("weights.gguf") as fh:
        fh.seek(2 * SHARD + 10)
        buf = bytearray(2 * SHARD)
        with pytest.raises(VerificationError):
            fh.readinto(buf)
        good = SHARD - 10
        assert buf[:good] == data[2 * SHARD + 10 : 3 * SHARD]
        assert buf[good:] == bytes(len(buf) - good)


def test_random_access_matches_the_file(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    root, data = big
    vm = _verified(root, p256, SHARD)
    rng = random.Random(9)
    with vm.open("weights.gguf") as fh:
        for _ in range(60):
            at = rng.randrange(SIZE + 10)
            n = rng.choice([0, 1, 100, SHARD - 1, SHARD + 1, 3 * SHARD])
            fh.seek(at)
            assert fh.read(n) == data[at : at + n]
            assert fh.tell() == min(at + n, max(at, SIZE)) or at > SIZE
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == data[-10:]


@pytest.mark.parametrize("shard", [None, SHARD])
def test_size_change_is_refused_at_open(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey, shard: int | None
) -> None:
    root, _ = big
    vm = _verified(root, p256, shard)
    with open(root / "weights.gguf", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(VerificationError, match="signature covers"):
        vm.open("weights.gguf")


def test_whole_file_unit_larger_than_direct_limit(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    """A files-method digest over more than direct_limit bytes: the first read
    streams the file once (hashing it and each block); later reads check each
    block they touch, so a change made after that pass is still caught."""
    root, data = big
    vm = _verified(root, p256, None)
    entry = vm.file("weights.gguf")
    path = root / "weights.gguf"
    with models.open_verified(path, entry, block_size=65536, direct_limit=1 << 20) as fh:
        assert fh.read(1000) == data[:1000]
        assert fh.verified_bytes >= SIZE
        _flip(path, 5 * 65536 + 3)
        fh.seek(4 * 65536)
        assert fh.read(65536) == data[4 * 65536 : 5 * 65536]
        with pytest.raises(VerificationError, match="changed since they were verified"):
            fh.read(65536)
    # Tampered before the first read: the first pass refuses the whole unit.
    with models.open_verified(path, entry, block_size=65536, direct_limit=1 << 20) as fh:
        with pytest.raises(VerificationError, match="do not match the signed digest"):
            fh.read(1)


def test_truncated_while_open_is_an_error_not_a_crash(
    big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey
) -> None:
    root, _ = big
    vm = _verified(root, p256, SHARD)
    with vm.open("weights.gguf") as fh:
        os.truncate(root / "weights.gguf", 5 * SHARD)
        fh.seek(10 * SHARD)
        with pytest.raises(VerificationError, match="shorter"):
            fh.read(10)


def test_empty_and_small_files(tmp_path: Path, p256: ec.EllipticCurvePrivateKey) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "empty").write_bytes(b"")
    (root / "small").write_bytes(b"hello")
    for shard in (None, 4):
        vm = _verified(root, p256, shard)
        with vm.open("empty") as fh:
            assert fh.read() == b""
        with vm.open("small") as fh:
            assert fh.read() == b"hello"
            fh.seek(1)
            assert fh.read(3) == b"ell"
    with pytest.raises(KeyError):
        vm.open("missing")


def test_no_fd_and_closed_reader(big: tuple[Path, bytes], p256: ec.EllipticCurvePrivateKey) -> None:
    root, _ = big
    vm = _verified(root, p256, SHARD)
    fh = vm.open("weights.gguf")
    with pytest.raises(io.UnsupportedOperation):
        fh.fileno()  # nothing may read around the verification
    fh.close()
    with pytest.raises(ValueError):
        fh.read(1)
