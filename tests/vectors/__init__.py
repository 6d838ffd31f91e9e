"""Loader for Wycheproof-style vector files: the project's own (``vectors/``) and
third-party ones vendored in ``tests/data/third_party`` (each with SOURCES.md and licence).
Both live in the repository: a missing vector file is an error, never a skip.

A vector file is JSON::

    {"schema": "trustedge-vectors/1", "algorithm": ..., "source": ..., "generator": ...,
     "notes": {...}, "numberOfTests": N,
     "testGroups": [{..., "tests": [{"tcId": 1, "comment": ..., "flags": [...],
                                      "result": "valid"|"invalid"|"acceptable",
                                      "error": "MalformedInputError", ...}]}]}

``@vector_cases("measuredboot/parse.json")`` turns every test of a file into one
pytest case with a readable id (``measuredboot/parse.json#17-truncated-header``);
the test function receives a :class:`VectorCase`.

This package is also where the vector-driven tests live (``tests/vectors/test_*.py``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

import trustedge.errors

__all__ = [
    "PROJECT_VECTORS",
    "VectorCase",
    "error_class",
    "iter_cases",
    "load_vector_file",
    "THIRD_PARTY",
    "third_party_dir",
    "vector_cases",
]

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT_VECTORS = ROOT / "vectors"

F = TypeVar("F", bound=Callable[..., Any])


THIRD_PARTY = ROOT / "tests" / "data" / "third_party"


def third_party_dir() -> Path:
    """The vendored third-party corpora (``tests/data/third_party``)."""
    return THIRD_PARTY


@dataclass(frozen=True)
class VectorCase:
    """One test of a vector file, with its group's parameters."""

    file: str
    group: dict[str, Any]
    test: dict[str, Any]

    @property
    def tc_id(self) -> int:
        return int(self.test["tcId"])

    @property
    def result(self) -> str:
        return str(self.test.get("result", "valid"))

    @property
    def error(self) -> str | None:
        err = self.test.get("error")
        return None if err is None else str(err)

    @property
    def flags(self) -> list[str]:
        return list(self.test.get("flags", []))

    def __getitem__(self, key: str) -> Any:
        """A test field, falling back to the group's field of the same name."""
        if key in self.test:
            return self.test[key]
        return self.group[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def hex(self, key: str) -> bytes:
        return bytes.fromhex(self[key])


def error_class(name: str) -> type[BaseException]:
    """Map an ``error`` field (a trustedge.errors class name) to the class."""
    cls = getattr(trustedge.errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise LookupError(f"unknown error class {name!r} in vector file")
    return cls


def load_vector_file(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    if "testGroups" not in data:
        raise ValueError(f"{path}: not a vector file (no testGroups)")
    return data


def iter_cases(name: str, *, shared: bool = False) -> Iterator[VectorCase]:
    """Every case of a project (``vectors/``) or third-party vector file; missing is an error."""
    path = (THIRD_PARTY if shared else PROJECT_VECTORS) / name
    if not path.is_file():
        raise FileNotFoundError(f"vector file {path} not found")
    data = load_vector_file(path)
    for group in data["testGroups"]:
        params = {k: v for k, v in group.items() if k != "tests"}
        for test in group["tests"]:
            yield VectorCase(name, params, test)


def _case_id(case: VectorCase) -> str:
    comment = re.sub(r"[^A-Za-z0-9]+", "-", str(case.test.get("comment", ""))).strip("-")
    suffix = f"-{comment[:40]}" if comment else ""
    return f"{case.file}#{case.tc_id}{suffix}"


def vector_cases(name: str, *, shared: bool = False, argname: str = "case") -> Callable[[F], F]:
    """Parametrise a test over every case of a vector file."""
    cases = list(iter_cases(name, shared=shared))
    if not cases:
        raise ValueError(f"vector file {name} has no cases")
    return pytest.mark.parametrize(argname, cases, ids=[_case_id(c) for c in cases])
