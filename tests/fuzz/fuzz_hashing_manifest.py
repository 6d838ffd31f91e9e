"""Fuzz entry point: model manifest decoding (CBOR and JSON).

Run with atheris: ``python tests/fuzz/fuzz_hashing_manifest.py [corpus]``.
Anything but MalformedInputError / UnsupportedAlgorithmError (and their
subclasses) from ``ModelManifest.from_cbor`` / ``from_json`` is a bug.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hashing import BlobDigest
from trustedge.hashing.manifest import ModelManifest, hash_model


def seeds() -> list[bytes]:
    """Manifests (CBOR and JSON) of small model directories: empty files, one
    leaf, several leaves, nested paths."""
    out: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sub").mkdir()
        (root / "config.json").write_bytes(b"{}")
        (root / "empty.bin").write_bytes(b"")
        (root / "sub" / "weights.safetensors").write_bytes(bytes(range(256)) * 40)
        for leaf_size in (4096, 1 << 22):
            manifest = hash_model(root, leaf_size=leaf_size)
            out.append(manifest.to_cbor())
            out.append(json.dumps(manifest.to_json()).encode())
    return out


def TestOneInput(data: bytes) -> None:
    try:
        ModelManifest.from_cbor(data)
    except (MalformedInputError, UnsupportedAlgorithmError):
        pass
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return
    for decode in (ModelManifest.from_json, BlobDigest.from_json):
        try:
            decode(doc)
        except (MalformedInputError, UnsupportedAlgorithmError):
            pass


def main() -> None:  # pragma: no cover - needs atheris
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
