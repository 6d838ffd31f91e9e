"""Fuzz entry point: ``trustedge._cbor.decode`` / ``decode_prefix`` on hostile bytes.

The first input byte picks the mode (canonical or not, indefinite lengths
allowed or not, whole-input or prefix decoding, default or tight limits); the
rest is the CBOR input. Beyond the contract (only ``MalformedInputError`` /
``LimitExceededError``), every successful decode is checked:

* canonical decoding accepts exactly the deterministic encoding: ``encode``
  of the result gives the input bytes back;
* any decoded value re-encodes, and that encoding decodes canonically to a
  value with the same encoding (a fixed point);
* ``decode_prefix`` never reports more bytes than it was given.
"""

from __future__ import annotations

from tests.fuzz._harness import fuzz_target, json_hex_values
from trustedge import _cbor
from trustedge._cbor import DecodeLimits

MAX_LEN = 16384
SEEDS = [
    "third_party/suit/**/*.cbor",
    "third_party/suit/**/*.suit",
]

_TIGHT = DecodeLimits(max_size=1024, max_depth=4, max_items=64)


def seeds() -> list[bytes]:
    """COSE examples and every hex field of the project's vectors (the regression cases of
    ``vectors/fuzz/cbor_decode.json`` among them), behind a mode byte."""
    bodies = list(json_hex_values("third_party/cose/**/*.json", keys=["cbor"]))
    bodies += list(json_hex_values("vectors/**/*.json"))
    return [bytes([mode]) + body for body in bodies for mode in (0x00, 0x01)]


@fuzz_target()
def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    canonical = bool(mode & 1)
    allow_indefinite = bool(mode & 2) and not canonical
    limits = _TIGHT if mode & 8 else _cbor.DEFAULT_LIMITS
    if mode & 4:
        obj, used = _cbor.decode_prefix(
            body, limits=limits, canonical=canonical, allow_indefinite=allow_indefinite
        )
        assert 0 < used <= len(body), (used, len(body))
        consumed = body[:used]
    else:
        obj = _cbor.decode(
            body, limits=limits, canonical=canonical, allow_indefinite=allow_indefinite
        )
        consumed = body
    encoded = _cbor.encode(obj)
    if canonical:
        assert encoded == consumed, "canonical decode accepted a non-deterministic encoding"
    again = _cbor.decode(encoded, canonical=True, limits=DecodeLimits(max_depth=limits.max_depth))
    assert _cbor.encode(again) == encoded, "re-encoding is not a fixed point"


if __name__ == "__main__":  # pragma: no cover - manual run: python tests/fuzz/fuzz_cbor_decode.py
    import sys

    import atheris

    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
