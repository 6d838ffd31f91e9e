"""atheris entry point: verify_quote on arbitrary message/signature bytes.

Only trustedge errors may escape (VerificationError for anything that parses
but fails, MalformedInputError otherwise).
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric import ec

from trustedge.attestation import AttestationKey, verify_quote
from trustedge.errors import MalformedInputError, VerificationError

_KEY = AttestationKey.from_public(ec.derive_private_key(0x7E57, ec.SECP256R1()).public_key())


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    cut = data[0] % len(data)
    try:
        verify_quote(data[1 : cut + 1], data[cut + 1 :], _KEY, nonce=b"n",
                     pcrs={"sha256": {0: bytes(32)}})  # fmt: skip
    except (MalformedInputError, VerificationError):
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
