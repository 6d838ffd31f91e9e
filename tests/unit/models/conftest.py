"""Shared fixtures of the models tests: a small model directory and keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def make_model(root: Path, sizes: dict[str, int], seed: int = 1) -> Path:
    """A model directory with files of the given sizes (deterministic bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(sizes.items()):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        block = (bytes([seed, i]) * 32768)[: min(size, 65536)] or b""
        with open(p, "wb") as fh:
            left = size
            n = 0
            while left:
                chunk = bytes((b + n) & 0xFF for b in block[:8]) + block[8 : min(left, 65536)]
                fh.write(chunk[:left])
                left -= min(left, len(chunk))
                n += 1
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(
        tmp_path / "my-model",
        {
            "model.safetensors": 300_000,
            "config.json": 40,
            "tokenizer/vocab.txt": 5000,
            "empty.txt": 0,
        },
    )


@pytest.fixture(params=["p256", "p384", "ed25519"])
def key(request: pytest.FixtureRequest) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if request.param == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if request.param == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_ = os
