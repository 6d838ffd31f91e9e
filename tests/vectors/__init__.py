"""Loader for Wycheproof-style vector files: the project's own (``vectors/``) and
third-party ones (``../shared/vectors`` or ``$TRUSTEDGE_SHARED_VECTORS``).

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
    "shared_vectors_dir",
    "vector_cases",
]

ROOT = Path(__file__).resolve().parent.parent.parent
PROJECT_VECTORS = ROOT / "vectors"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

F = TypeVar("F", bound=Callable[..., Any])


def shared_vectors_dir() -> Path | None:
    """Where the read-only third-party vectors are, or None."""
    env = os.environ.get("TRUSTEDGE_SHARED_VECTORS")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "vectors")
    for path in candidates:
        if path.is_dir():
            return path
    return None


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


def _resolve(name: str, shared: bool) -> Path | None:
    if shared:
        base = shared_vectors_dir()
        return None if base is None else base / name
    return PROJECT_VECTORS / name


def iter_cases(name: str, *, shared: bool = False) -> Iterator[VectorCase]:
    path = _resolve(name, shared)
    if path is None or not path.exists():
        if IN_CI:
            raise FileNotFoundError(f"vector file {name} not found (shared={shared})")
        return
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
        return pytest.mark.skip(reason=f"no vectors in {name}")  # type: ignore[return-value]
    return pytest.mark.parametrize(argname, cases, ids=[_case_id(c) for c in cases])
