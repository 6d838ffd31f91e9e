"""Hypothesis: C and Python twins agree on random files and leaf sizes; hostile
manifest bytes raise only trustedge input errors; manifests round-trip."""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trustedge.hashing as hashing
from trustedge import _cbor
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hashing.manifest import ModelManifest, hash_model

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def implementations() -> list[object]:
    out = [importlib.import_module("trustedge.hashing._native")]
    try:
        out.append(importlib.import_module("trustedge.hashing._speedups"))
    except ImportError:
        if IN_CI:
            pytest.fail("required in CI: trustedge.hashing._speedups")
    return out


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=70_000),
    leaf_exp=st.integers(min_value=12, max_value=14),
    threads=st.integers(min_value=1, max_value=4),
    seed=st.binary(min_size=1, max_size=8),
)
def test_twins_agree(size: int, leaf_exp: int, threads: int, seed: bytes) -> None:
    data = hashlib.shake_256(seed).digest(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        try:
            results = [
                module.hash_fd(  # type: ignore[attr-defined]
                    fd,
                    size,
                    1 << leaf_exp,
                    True,
                    list(range(hashing.leaf_count(size, 1 << leaf_exp))),
                    threads,
                    simd,
                    None,
                    None,
                )
                for module in implementations()
                for simd in module.SIMD_PATHS  # type: ignore[attr-defined]
            ]
        finally:
            os.close(fd)
    assert results[0][0] == hashlib.sha256(data).digest()
    assert all(r == results[0] for r in results)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_hostile_manifest_bytes(data: bytes) -> None:
    try:
        ModelManifest.from_cbor(data)
    except (MalformedInputError, UnsupportedAlgorithmError):
        pass


@pytest.fixture(scope="module")
def manifest_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("model")
    (root / "a.bin").write_bytes(b"a" * 10_000)
    (root / "b.bin").write_bytes(b"")
    return hash_model(root, 4096).to_cbor()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_manifest_bytes(manifest_bytes: bytes, data: st.DataObject) -> None:
    buf = bytearray(manifest_bytes)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(buf) - 1))
        buf[i] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        m = ModelManifest.from_cbor(bytes(buf))
    except (MalformedInputError, UnsupportedAlgorithmError):
        return
    assert m.to_cbor() == bytes(buf)  # accepted input re-encodes identically
    assert _cbor.decode(m.to_cbor(), canonical=True) is not None
