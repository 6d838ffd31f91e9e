"""atheris entry point: SUIT envelope decoding + authentication + manifest decoding."""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.fuzz._harness import json_hex_values
from trustedge.errors import MalformedInputError, VerificationError
from trustedge.ota.suit import KeySet, authenticate, decode_envelope

_KEYS = KeySet.of([ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()])

MAX_LEN = 16384
SEEDS = ["third_party/suit/**/*.suit", "third_party/suit/**/*.cbor"]


def seeds() -> list[bytes]:
    """The project's OTA scenarios (genuine, tampered, rolled-back envelopes)."""
    return list(json_hex_values("vectors/ota/scenarios.json", keys=["envelope"]))


def TestOneInput(data: bytes) -> None:
    for legacy in (False, True):
        try:
            authenticate(decode_envelope(data, legacy_install=legacy), _KEYS)
        except (MalformedInputError, VerificationError):
            pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
