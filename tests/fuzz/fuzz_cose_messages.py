"""atheris entry point: COSE_Sign1 / COSE_Sign / COSE_Mac0 / COSE_Key decoding."""

from __future__ import annotations

import sys

from tests.fuzz._harness import json_hex_values
from trustedge import cose
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError

SEEDS = ["third_party/suit/**/*.cbor"]


def seeds() -> list[bytes]:
    """The COSE working group's examples (``cbor`` fields), tagged and untagged."""
    return list(json_hex_values("third_party/cose/**/*.json", keys=["cbor"]))


def TestOneInput(data: bytes) -> None:
    for decode in (cose.decode_sign1, cose.decode_sign, cose.decode_mac0, cose.decode_mac):
        try:
            decode(data, tagged=False)
        except MalformedInputError:
            pass
    try:
        cose.decode_key(data)
    except (MalformedInputError, UnsupportedAlgorithmError):
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
