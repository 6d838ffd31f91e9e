"""atheris entry point: SUIT envelope decoding + authentication + manifest decoding."""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric import ed25519

from trustedge.errors import MalformedInputError, VerificationError
from trustedge.ota.suit import KeySet, authenticate, decode_envelope

_KEYS = KeySet.of([ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()])


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
