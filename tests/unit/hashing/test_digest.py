"""The digest definition: whole-file SHA-256 and the tree, on every edge size."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType

import pytest

import trustedge.hashing as hashing
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError, VerificationError
from trustedge.hashing import BlobDigest

LEAF = 4096


def reference_tree(data: bytes, leaf_size: int) -> tuple[bytes, list[bytes]]:
    """The definition from docs/hashing.md, written out independently."""
    leaves = [
        hashlib.sha256(b"\x00" + data[i : i + leaf_size]).digest()
        for i in range(0, len(data), leaf_size)
    ]
    root = hashlib.sha256(
        b"\x01trustedge-tree-v1/sha256"
        + leaf_size.to_bytes(8, "big")
        + len(data).to_bytes(8, "big")
        + b"".join(leaves)
    ).digest()
    return root, leaves


SIZES = [
    0,
    1,
    63,
    64,
    65,
    LEAF - 1,
    LEAF,
    LEAF + 1,
    2 * LEAF,
    3 * LEAF - 1,
    17 * LEAF + 5,
    40 * LEAF,
]


@pytest.fixture(params=SIZES, ids=lambda n: f"size{n}")
def blob(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    data = hashlib.shake_256(str(request.param).encode()).digest(request.param)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_hash_file_matches_definition(blob: tuple[Path, bytes], threads: int) -> None:
    path, data = blob
    root, leaves = reference_tree(data, LEAF)
    got = hashing.hash_file(path, LEAF, threads=threads)
    assert got.sha256 == hashlib.sha256(data).digest()
    assert got.root == root
    assert list(got.leaves) == leaves
    assert got.size == len(data) and got.leaf_size == LEAF


def test_every_simd_path_gives_the_same_tree(
    blob: tuple[Path, bytes], implementation: ModuleType
) -> None:
    path, data = blob
    root, _ = reference_tree(data, LEAF)
    for simd in implementation.SIMD_PATHS:
        for threads in (1, 2):
            got = hashing.hash_file(path, LEAF, threads=threads, simd=simd)
            assert got.root == root, (simd, threads)
            assert got.sha256 == hashlib.sha256(data).digest(), (simd, threads)


BIG_LEAF = 1 << 20  # several 256 KiB read chunks per leaf


@pytest.mark.parametrize(
    "size", [BIG_LEAF - 1, BIG_LEAF + 1, 3 * BIG_LEAF + 300_001], ids=lambda n: f"size{n}"
)
def test_one_pass_over_leaves_of_several_chunks(
    tmp_path: Path, implementation: ModuleType, size: int
) -> None:
    # hash_file feeds each chunk to the whole-file stream and to the leaf stream that is
    # one byte behind it (the 0x00 prefix): the byte carried across chunks, leaves taken
    # by the whole-file worker (1 thread) or shared with leaf workers (2, 3), every path.
    data = hashlib.shake_256(str(size).encode()).digest(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    root, leaves = reference_tree(data, BIG_LEAF)
    for simd in implementation.SIMD_PATHS:
        for threads in (1, 2, 3):
            got = hashing.hash_file(path, BIG_LEAF, threads=threads, simd=simd)
            assert got.sha256 == hashlib.sha256(data).digest(), (simd, threads)
            assert list(got.leaves) == leaves, (simd, threads)
            assert got.root == root, (simd, threads)


def test_sha256_file_and_tree_digest(blob: tuple[Path, bytes]) -> None:
    path, data = blob
    assert hashing.sha256_file(path) == hashlib.sha256(data).digest()
    tree = hashing.tree_digest(path, LEAF)
    assert tree.sha256 is None
    assert tree.root == reference_tree(data, LEAF)[0]


def test_default_leaf_size_is_4_mib(tmp_path: Path) -> None:
    data = os.urandom(4 * 1024 * 1024 + 3)
    path = tmp_path / "b"
    path.write_bytes(data)
    got = hashing.tree_digest(path)
    assert got.leaf_size == hashing.DEFAULT_LEAF_SIZE == 4 * 1024 * 1024
    assert got.root == reference_tree(data, got.leaf_size)[0]
    assert len(got.leaves) == 2


@pytest.mark.parametrize("bad", [0, 1000, 4095, 4097, 3 * 4096, 1 << 31])
def test_leaf_size_must_be_power_of_two_in_range(tmp_path: Path, bad: int) -> None:
    path = tmp_path / "b"
    path.write_bytes(b"x")
    with pytest.raises(ValueError):
        hashing.tree_digest(path, bad)


def test_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        hashing.sha256_file(tmp_path)
    with pytest.raises(FileNotFoundError):
        hashing.sha256_file(tmp_path / "missing")


def test_threads_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "b"
    path.write_bytes(b"x")
    with pytest.raises(ValueError):
        hashing.tree_digest(path, LEAF, threads=0)


def test_unknown_simd_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b"
    path.write_bytes(b"x")
    with pytest.raises(ValueError):
        hashing.tree_digest(path, LEAF, simd="sse9")


def test_implementation_names() -> None:
    assert hashing.IMPLEMENTATION in ("speedups", "native")
    assert hashing.SIMD_PATH in hashing.available_simd_paths()


# -- BlobDigest as data ---------------------------------------------------------


def digest_of(tmp_path: Path, size: int) -> BlobDigest:
    path = tmp_path / "d"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"\x07" * (size % 256))
    return hashing.hash_file(path, LEAF)


def test_json_round_trip(tmp_path: Path) -> None:
    d = digest_of(tmp_path, 3 * LEAF + 10)
    assert BlobDigest.from_json(d.to_json()) == d
    tree_only = hashing.tree_digest(tmp_path / "d", LEAF)
    assert BlobDigest.from_json(tree_only.to_json()) == tree_only


@pytest.mark.parametrize(
    "mutate",
    [
        lambda j: j.update(size=j["size"] + 1),
        lambda j: j.update(size=-1),
        lambda j: j.update(size="12"),
        lambda j: j.update(size=True),
        lambda j: j["tree"]["leaves"].pop(),
        lambda j: j["tree"]["leaves"].reverse(),
        lambda j: j["tree"].update(root="00" * 32),
        lambda j: j["tree"].update(root="AB" * 32),
        lambda j: j["tree"].update(root="zz" * 32),
        lambda j: j["tree"].update(leaves="x"),
        lambda j: j.update(sha256="00" * 31),
        lambda j: j.update(extra=1),
        lambda j: j.pop("tree"),
    ],
)
def test_from_json_rejects_tampering(tmp_path: Path, mutate: object) -> None:
    j = digest_of(tmp_path, 3 * LEAF + 10).to_json()
    mutate(j)  # type: ignore[operator]
    with pytest.raises(MalformedInputError):
        BlobDigest.from_json(j)


def test_from_json_rejects_odd_leaf_size(tmp_path: Path) -> None:
    j = digest_of(tmp_path, 10).to_json()
    j["tree"]["leaf_size"] = 1000
    with pytest.raises(UnsupportedAlgorithmError):
        BlobDigest.from_json(j)


def test_leaf_range(tmp_path: Path) -> None:
    d = digest_of(tmp_path, 3 * LEAF + 10)
    assert d.leaf_range(0, 0) == range(0)
    assert d.leaf_range(0, 1) == range(0, 1)
    assert d.leaf_range(LEAF - 1, LEAF + 1) == range(0, 2)
    assert d.leaf_range(LEAF, 2 * LEAF) == range(1, 2)
    assert d.leaf_range(0, d.size) == range(0, 4)
    with pytest.raises(ValueError):
        d.leaf_range(0, d.size + 1)


def test_tree_root_rejects_wrong_leaf_count() -> None:
    with pytest.raises(ValueError):
        hashing.tree_root(LEAF + 1, LEAF, [b"\x00" * 32])


def test_changed_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "grow"
    path.write_bytes(b"a" * (3 * LEAF))

    def grow(done: int, total: int) -> None:
        with open(path, "ab") as fh:
            fh.write(b"more")

    with pytest.raises(VerificationError, match="changed"):
        hashing.hash_file(path, LEAF, progress=grow)
