"""Fuzz entry point: ``trustedge._cbor.decode`` against cbor2, the reference decoder.

Whatever trustedge accepts (indefinite lengths allowed, default limits) must be
accepted by cbor2 with the same value -- compared through trustedge's
deterministic encoding, so NaN, -0.0 and float widths compare exactly. Inputs
with tags are skipped (cbor2 interprets bignums, dates, ... where trustedge
returns tags raw). Stricter is fine: trustedge rejecting what cbor2 accepts
(duplicate keys, undefined, non-scalar keys) is by design.
"""

from __future__ import annotations

from typing import Any

import cbor2

from tests.fuzz._harness import fuzz_target, json_hex_values
from trustedge import _cbor
from trustedge._cbor import CBORTag

MAX_LEN = 8192
SEEDS = ["third_party/suit/**/*.cbor"]


def seeds() -> list[bytes]:
    """The COSE examples and every hex field of the project's vectors."""
    return [*json_hex_values("third_party/cose/**/*.json", keys=["cbor"]), *json_hex_values(
        "vectors/**/*.json")]  # fmt: skip


def _has_tag(obj: Any) -> bool:
    if isinstance(obj, CBORTag):
        return True
    if isinstance(obj, list):
        return any(_has_tag(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_tag(v) for v in obj.values())
    return False


@fuzz_target()
def TestOneInput(data: bytes) -> None:
    ours = _cbor.decode(data, allow_indefinite=True)
    if _has_tag(ours):
        return
    try:
        theirs = cbor2.loads(data)
    except Exception as exc:
        raise AssertionError(f"trustedge accepted what cbor2 rejects: {exc!r}") from exc
    assert _cbor.encode(theirs) == _cbor.encode(ours), (theirs, ours)


if __name__ == "__main__":  # pragma: no cover - manual run
    import sys

    import atheris

    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
