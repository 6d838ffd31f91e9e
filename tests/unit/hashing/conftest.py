"""Every hashing test runs twice: against the C extension and the hashlib twin.

The autouse ``implementation`` fixture swaps the module that
``trustedge.hashing`` delegates to. A missing extension skips the C half
locally but fails in CI (where ``TRUSTEDGE_REQUIRE_EXTENSION=1`` also makes the
build itself fatal).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

import trustedge.hashing as hashing
from tests.requirements import unavailable


def load_implementation(name: str) -> ModuleType:
    """The module behind ``name`` (``"speedups"`` or ``"native"``)."""
    try:
        return importlib.import_module(f"trustedge.hashing._{name}")
    except ImportError:
        unavailable(f"trustedge.hashing._{name} is not built")


@pytest.fixture(autouse=True, params=["speedups", "native"])
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    module = load_implementation(request.param)
    monkeypatch.setattr(hashing, "_impl", module)
    monkeypatch.setattr(hashing, "IMPLEMENTATION", request.param)
    monkeypatch.setattr(hashing, "SIMD_PATH", module.SIMD_PATHS[0])
    yield module
