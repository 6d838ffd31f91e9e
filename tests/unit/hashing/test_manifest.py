"""Model manifests: walking, normalised paths, CBOR/JSON, verification."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from trustedge import _cbor
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from trustedge.hashing import hash_file
from trustedge.hashing.manifest import (
    ModelFile,
    ModelManifest,
    hash_model,
    normalise_path,
    sha256_model,
    verify_model,
)

LEAF = 4096


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(b"\x11" * (3 * LEAF + 7))
    (root / "config.json").write_bytes(b'{"a": 1}')
    (root / "sub" / "tokenizer.json").write_bytes(b"tok" * 1000)
    (root / "sub" / "deeper" / "empty.bin").write_bytes(b"")
    (root / "Z-upper.gguf").write_bytes(b"G" * LEAF)
    return root


def test_hash_model_lists_sorted_normalised_paths(model: Path) -> None:
    m = hash_model(model, LEAF)
    assert [f.path for f in m.files] == [
        "Z-upper.gguf", "config.json", "model.safetensors",
        "sub/deeper/empty.bin", "sub/tokenizer.json",
    ]  # fmt: skip
    entry = m.file("model.safetensors")
    assert entry.digest == hash_file(model / "model.safetensors", LEAF)
    assert m.file("sub/deeper/empty.bin").digest.size == 0
    with pytest.raises(KeyError):
        m.file("nope")


def test_cbor_is_deterministic_and_round_trips(model: Path) -> None:
    m = hash_model(model, LEAF)
    data = m.to_cbor()
    assert data == hash_model(model, LEAF).to_cbor()
    assert _cbor.encode(_cbor.decode(data, canonical=True)) == data
    assert ModelManifest.from_cbor(data) == m
    assert ModelManifest.from_json(m.to_json()) == m
    assert len(m.digest()) == 32


def test_verify_model_accepts_the_directory(model: Path) -> None:
    m = hash_model(model, LEAF)
    verify_model(model, m)
    verify_model(model, m, paths=["config.json"])


def test_verify_model_rejects_changes(model: Path) -> None:
    m = hash_model(model, LEAF)
    (model / "sub" / "tokenizer.json").write_bytes(b"tok" * 999 + b"tox")
    with pytest.raises(VerificationError):
        verify_model(model, m)
    verify_model(model, m, paths=["model.safetensors"])  # only listed files are hashed


@pytest.mark.parametrize("change", ["extra", "missing", "symlink", "rename"])
def test_verify_model_binds_the_file_set(model: Path, change: str) -> None:
    m = hash_model(model, LEAF)
    if change == "extra":
        (model / "extra.bin").write_bytes(b"x")
    elif change == "missing":
        (model / "config.json").unlink()
    elif change == "symlink":
        (model / "link").symlink_to(model / "config.json")
    else:
        (model / "config.json").rename(model / "config2.json")
    with pytest.raises(VerificationError):
        verify_model(model, m)


def test_hash_model_refuses_symlinks(model: Path) -> None:
    (model / "sub" / "link").symlink_to("../config.json")
    with pytest.raises(ValueError, match="symlink"):
        hash_model(model, LEAF)


def test_hash_model_ignore(model: Path) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_bytes(b"ref")
    m = hash_model(model, LEAF, ignore=[".git"])
    assert all(not f.path.startswith(".git") for f in m.files)


def test_hash_model_refuses_non_utf8_names(model: Path) -> None:
    os.close(os.open(os.fsencode(model) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o600))
    with pytest.raises(ValueError, match="UTF-8"):
        hash_model(model, LEAF)


@pytest.mark.parametrize(
    "path", ["", "/abs", "a//b", "a/./b", "../x", "a/..", "back\\slash", "ctl\x01", "e\u0301", "a/"]
)
def test_normalise_path_rejects(path: str) -> None:
    with pytest.raises(MalformedInputError):
        normalise_path(path)


def test_normalise_path_accepts() -> None:
    assert normalise_path("dir/file.bin") == "dir/file.bin"
    assert normalise_path("\u00e9t\u00e9/x") == "\u00e9t\u00e9/x"
    with pytest.raises(LimitExceededError):
        normalise_path("a" * 5000)


def mutated(m: ModelManifest, **changes: object) -> bytes:
    obj = _cbor.decode(m.to_cbor())
    for key, value in changes.items():
        if key.startswith("file_"):
            obj["files"][0][key[5:]] = value
        else:
            obj[key] = value
    return _cbor.encode(obj)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"v": 2}, UnsupportedAlgorithmError),
        ({"alg": "sha512"}, UnsupportedAlgorithmError),
        ({"leaf_size": 1000}, UnsupportedAlgorithmError),
        ({"files": "x"}, MalformedInputError),
        ({"extra": 1}, MalformedInputError),
        ({"file_path": "../etc/passwd"}, MalformedInputError),
        ({"file_path": "zzz"}, MalformedInputError),  # breaks the sort order
        ({"file_size": 1 << 40}, MalformedInputError),
        ({"file_leaves": b"\x00" * 31}, MalformedInputError),
        ({"file_root": b"\x00" * 32}, MalformedInputError),
        ({"file_sha256": None}, MalformedInputError),
        ({"file_extra": 1}, MalformedInputError),
    ],
)
def test_from_cbor_rejects(model: Path, changes: dict[str, object], error: type) -> None:
    m = hash_model(model, LEAF)
    with pytest.raises(error):
        ModelManifest.from_cbor(mutated(m, **changes))


def test_from_cbor_rejects_non_canonical_and_junk(model: Path) -> None:
    data = hash_model(model, LEAF).to_cbor()
    with pytest.raises(MalformedInputError):
        ModelManifest.from_cbor(data + b"\x00")
    with pytest.raises(MalformedInputError):
        ModelManifest.from_cbor(b"\xa0")
    with pytest.raises(MalformedInputError):
        ModelManifest.from_cbor(b"")


def test_duplicate_paths_rejected(model: Path) -> None:
    m = hash_model(model, LEAF)
    obj = _cbor.decode(m.to_cbor())
    obj["files"].insert(1, obj["files"][0])
    with pytest.raises(MalformedInputError):
        ModelManifest.from_cbor(_cbor.encode(obj))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_sha256_model_matches_hashlib_and_the_manifest(model: Path, threads: int) -> None:
    sums = sha256_model(model, threads=threads)
    manifest = hash_model(model, LEAF)
    assert [(p, n) for p, n, _ in sums] == [(f.path, f.digest.size) for f in manifest.files]
    for rel, _, sha in sums:
        assert sha == hashlib.sha256((model / rel).read_bytes()).digest()
    assert [sha for _, _, sha in sums] == [f.digest.sha256 for f in manifest.files]


def test_sha256_model_refuses_like_hash_model(model: Path) -> None:
    os.symlink(model / "config.json", model / "link.json")
    with pytest.raises(ValueError, match="symlink"):
        sha256_model(model)
    with pytest.raises(ValueError, match="not a directory"):
        sha256_model(model / "config.json")


def _with_sha256(m: ModelManifest, path: str, sha: bytes) -> ModelManifest:
    files = tuple(
        ModelFile(f.path, dataclasses.replace(f.digest, sha256=sha)) if f.path == path else f
        for f in m.files
    )
    return ModelManifest(m.leaf_size, files)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_verify_model_tree_only_and_parallel(model: Path, threads: int) -> None:
    m = hash_model(model, LEAF)
    verify_model(model, m, check_sha256=False, threads=threads)
    verify_model(model, m, threads=threads)
    # A manifest whose sha256 disagrees with its tree: the tree alone passes (it binds
    # the bytes); asked for every digest, it fails.
    odd = _with_sha256(m, "model.safetensors", b"\x00" * 32)
    verify_model(model, odd, check_sha256=False, threads=threads)
    with pytest.raises(VerificationError, match="SHA-256"):
        verify_model(model, odd, threads=threads)
    # A changed leaf fails both ways, whichever file and thread takes it.
    data = bytearray((model / "model.safetensors").read_bytes())
    data[LEAF + 5] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    for check in (False, True):
        with pytest.raises(VerificationError, match="leaf"):
            verify_model(model, m, check_sha256=check, threads=threads)


def test_verify_model_progress_reaches_the_total(model: Path) -> None:
    m = hash_model(model, LEAF)
    seen: list[tuple[int, int]] = []
    verify_model(model, m, check_sha256=False, threads=2, progress=lambda d, t: seen.append((d, t)))
    total = sum(f.digest.size for f in m.files)
    assert all(t == total and d <= t for d, t in seen)
