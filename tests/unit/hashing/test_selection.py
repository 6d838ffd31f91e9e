"""TRUSTEDGE_HASHING and TRUSTEDGE_HASHING_SIMD pick the implementation and path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import trustedge.hashing as h; print(h.IMPLEMENTATION, h.SIMD_PATH)"


def probe(**env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRUSTEDGE_HASHING": "", "TRUSTEDGE_HASHING_SIMD": "", **env},
    )
    return out.stdout.split()


def test_native_is_forced_by_env() -> None:
    assert probe(TRUSTEDGE_HASHING="native") == ["native", "hashlib"]


@pytest.mark.parametrize("simd", ["portable", "shani", "avx2", "avx512"])
def test_simd_path_forced_by_env(simd: str) -> None:
    from tests.unit.hashing.conftest import load_implementation

    speedups = load_implementation("speedups")
    got = probe(TRUSTEDGE_HASHING_SIMD=simd)
    assert got[0] == "speedups"
    # A path this CPU lacks falls back to the best available one.
    assert got[1] == (simd if simd in speedups.SIMD_PATHS else speedups.SIMD_PATHS[0])
