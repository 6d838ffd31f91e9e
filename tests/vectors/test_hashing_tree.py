"""vectors/hashing/tree.json against both implementations."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from tests.requirements import unavailable
import trustedge.hashing as hashing
from tests.vectors import VectorCase, error_class, vector_cases
from trustedge.hashing import BlobDigest



@pytest.fixture(params=["speedups", "native"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    try:
        module = importlib.import_module(f"trustedge.hashing._{request.param}")
    except ImportError:
        unavailable("the hashing extension is not built")
    monkeypatch.setattr(hashing, "_impl", module)
    monkeypatch.setattr(hashing, "SIMD_PATH", module.SIMD_PATHS[0])
    return str(request.param)


@vector_cases("hashing/tree.json")
def test_tree_vectors(case: VectorCase, tmp_path: Path, implementation: str) -> None:
    if case["type"] == "BlobDigestJson":
        with pytest.raises(error_class(case.error or "")):
            BlobDigest.from_json(case["json"])
        return
    pattern = bytes.fromhex(case["pattern"])
    size = case["size"]
    path = tmp_path / "blob"
    path.write_bytes((pattern * (size // len(pattern) + 1))[:size])
    got = hashing.hash_file(path, case["leafSize"])
    assert got.sha256 is not None and got.sha256.hex() == case["sha256"]
    assert got.root.hex() == case["root"]
    assert [x.hex() for x in got.leaves] == case["leaves"]
    assert BlobDigest.from_json(got.to_json()) == got
