#!/usr/bin/env python3
"""Generate vectors/hashing/tree.json: whole-file SHA-256 and tree digests.

Inputs are a short byte pattern repeated to ``size`` bytes, so the file stays
small while covering every leaf-count edge (empty, 1 byte, one leaf, leaf +/- 1,
many leaves). The digests are computed here from the definition with hashlib
alone (not with trustedge), so the vectors check the implementation rather
than echo it. ``--check`` regenerates in memory and exits 1 on a difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "vectors" / "hashing" / "tree.json"
PATTERN = bytes.fromhex("74727573746564676501")  # "trustedge" 0x01: 10 bytes, not a divisor of 64


def data_of(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def tree(data: bytes, leaf_size: int) -> tuple[str, list[str]]:
    leaves = [
        hashlib.sha256(b"\x00" + data[i : i + leaf_size]).digest()
        for i in range(0, len(data), leaf_size)
    ]
    root = hashlib.sha256(
        b"\x01trustedge-tree-v1/sha256"
        + leaf_size.to_bytes(8, "big")
        + len(data).to_bytes(8, "big")
        + b"".join(leaves)
    ).hexdigest()
    return root, [x.hex() for x in leaves]


def valid_group(leaf_size: int, sizes: list[tuple[int, str]], first: int) -> dict[str, Any]:
    tests = []
    for n, (size, comment) in enumerate(sizes):
        data = data_of(size)
        root, leaves = tree(data, leaf_size)
        tests.append(
            {
                "tcId": first + n,
                "comment": comment,
                "flags": [],
                "result": "valid",
                "size": size,
                "sha256": hashlib.sha256(data).hexdigest(),
                "root": root,
                "leaves": leaves,
            }
        )
    return {"type": "BlobDigest", "leafSize": leaf_size, "pattern": PATTERN.hex(), "tests": tests}


def digest_json(size: int, leaf_size: int) -> dict[str, Any]:
    data = data_of(size)
    root, leaves = tree(data, leaf_size)
    return {
        "size": size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "tree": {"leaf_size": leaf_size, "root": root, "leaves": leaves},
    }


def invalid_group(first: int) -> dict[str, Any]:
    cases: list[tuple[str, str, dict[str, Any]]] = []
    good = digest_json(3 * 4096 + 5, 4096)

    def variant(comment: str, error: str, change: Any) -> None:
        d = json.loads(json.dumps(good))
        change(d)
        cases.append((comment, error, d))

    variant("size one larger than the leaves cover", "MalformedInputError",
            lambda d: d.update(size=d["size"] + 4096))
    variant("leaves swapped", "MalformedInputError", lambda d: d["tree"]["leaves"].reverse())
    variant("one leaf dropped", "MalformedInputError", lambda d: d["tree"]["leaves"].pop())
    variant("root of another file", "MalformedInputError",
            lambda d: d["tree"].update(root=hashlib.sha256(b"x").hexdigest()))
    variant("uppercase hex", "MalformedInputError",
            lambda d: d["tree"].update(root=d["tree"]["root"].upper()))
    variant("negative size", "MalformedInputError", lambda d: d.update(size=-1))
    variant("leaf size not a power of two", "UnsupportedAlgorithmError",
            lambda d: d["tree"].update(leaf_size=5000))
    variant("unknown field", "MalformedInputError", lambda d: d.update(blake3="00"))
    tests = [
        {"tcId": first + n, "comment": c, "flags": [], "result": "invalid", "error": e, "json": d}
        for n, (c, e, d) in enumerate(cases)
    ]  # fmt: skip
    return {"type": "BlobDigestJson", "tests": tests}


def build() -> str:
    L = 4096
    small = [
        (0, "empty file: no leaves"),
        (1, "one byte"),
        (55, "SHA-256 padding edge (55)"),
        (56, "SHA-256 padding edge (56)"),
        (63, "one byte short of a block"),
        (64, "one block"),
        (L - 1, "leaf - 1"),
        (L, "exactly one leaf"),
        (L + 1, "leaf + 1: second leaf of 1 byte"),
        (2 * L, "exactly two leaves"),
        (17 * L + 5, "many leaves, short last"),
        (40 * L, "many leaves, all full"),
    ]
    groups = [valid_group(L, small, 1)]
    groups.append(valid_group(1 << 16, [(0, "empty"), ((1 << 16) + 1, "64 KiB leaf + 1")], 100))
    groups.append(valid_group(4 << 20, [((4 << 20) + 3, "default 4 MiB leaf + 3")], 200))
    groups.append(invalid_group(300))
    doc = {
        "schema": "trustedge-vectors/1",
        "algorithm": "trustedge blob digest: whole-file SHA-256 and tree-v1 (SHA-256 leaves)",
        "source": "inputs: 'pattern' repeated and cut to 'size' bytes; digests from hashlib",
        "generator": "tools/vectors/gen_hashing.py",
        "notes": {},
        "numberOfTests": sum(len(g["tests"]) for g in groups),  # type: ignore[arg-type]
        "testGroups": groups,
    }
    return json.dumps(doc, indent=1) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = ap.parse_args()
    text = build()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
