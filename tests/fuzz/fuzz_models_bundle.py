"""Fuzz entry point: OMS bundle and statement parsing (trustedge.models).

Run with atheris: ``python tests/fuzz/fuzz_models_bundle.py [corpus]``.
Each input is parsed as a bundle (then its payload as a statement), as a bare
statement, and checked by ``verify_bundle`` against a fixed key. Anything but
a ``trustedge.errors`` exception is a finding; a statement that parses must
rebuild into a statement that parses to the same content.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import models
from trustedge.errors import TrustedgeError
from trustedge.models._bundle import Resource, build_statement

SEEDS = ["third_party/oms/test-vectors/v1.0/*/*.json"]
MAX_LEN = 16384

_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())


def seeds() -> list[bytes]:
    """Bundles trustedge writes: files and shards, key and the payloads alone."""
    out: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        (root / "sub").mkdir(parents=True)
        (root / "config.json").write_bytes(b"{}")
        (root / "empty.bin").write_bytes(b"")
        (root / "sub" / "w.safetensors").write_bytes(bytes(range(256)) * 40)
        for shard in (None, 4096):
            bundle = models.sign_model(root, _KEY, shard_size=shard)
            out.append(bundle)
            out.append(models.parse_bundle(bundle).payload)
    return out


def _roundtrip(statement: models.UnverifiedStatement) -> None:
    resources = [
        Resource(r.path, r.start, r.end, r.algorithm, r.digest) for r in statement.resources
    ]
    again = models.parse_statement(
        build_statement(statement.subject_name, statement.serialization, resources)
    )
    assert sorted(again.resources, key=lambda r: r.name) == sorted(
        statement.resources, key=lambda r: r.name
    )
    assert again.serialization == statement.serialization


def TestOneInput(data: bytes) -> None:
    try:
        parsed = models.parse_bundle(data)
        _roundtrip(models.parse_statement(parsed.payload))
    except TrustedgeError:
        pass
    try:
        _roundtrip(models.parse_statement(data))
    except TrustedgeError:
        pass
    try:
        models.verify_bundle(data, public_key=_KEY.public_key())
    except TrustedgeError:
        pass


def main() -> None:  # pragma: no cover - needs atheris
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
