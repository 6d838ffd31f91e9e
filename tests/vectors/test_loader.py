"""The vector loader itself (tests/vectors.py) on a small synthetic file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import vectors
from trustedge.errors import MalformedInputError


def test_error_class_maps_names() -> None:
    assert vectors.error_class("MalformedInputError") is MalformedInputError
    with pytest.raises(LookupError):
        vectors.error_class("NoSuchError")


def test_iter_cases_and_group_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {
        "schema": "trustedge-vectors/1",
        "testGroups": [
            {
                "keySize": 256,
                "tests": [{"tcId": 1, "comment": "a b", "result": "valid", "x": "00ff"}],
            }
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(doc))
    monkeypatch.setattr(vectors, "PROJECT_VECTORS", tmp_path)
    (case,) = list(vectors.iter_cases("t.json"))
    assert case["keySize"] == 256
    assert case.hex("x") == b"\x00\xff"
    assert case.result == "valid" and case.error is None
    assert vectors._case_id(case) == "t.json#1-a-b"


def test_shared_vectors_are_found(third_party: Path) -> None:
    assert (third_party / "wycheproof").is_dir()
