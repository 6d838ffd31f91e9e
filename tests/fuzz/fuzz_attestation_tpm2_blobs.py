"""atheris entry point: the Tpm2Backend blob parsers (AK blob, sealed blob, TPM2B inputs)
take hostile bytes and raise only MalformedInputError.

Run: python tests/fuzz/fuzz_attestation_tpm2_blobs.py [corpus dir]  (needs atheris)
"""

from __future__ import annotations

import sys

from trustedge.attestation.backends._tpm2_blobs import (
    AKBlob,
    SealedBlob,
    decode_ak_blob,
    decode_sealed_blob,
    encode_ak_blob,
    encode_sealed_blob,
    read_tpm2b,
)
from trustedge.errors import MalformedInputError


def seeds() -> list[bytes]:
    """One blob of each shape, made by the encoders the backend uses."""
    public, private = b"\x00\x23" + bytes(86), bytes(120)
    return [
        encode_ak_blob(AKBlob("rsa", "ecc-p256-ecdsa", public, private=private)),
        encode_ak_blob(AKBlob("ecc", "rsa2048-rsassa", public, handle=0x81010002)),
        encode_sealed_blob(SealedBlob(public, private, {"sha256": (0, 7)}, auth=True)),
        encode_sealed_blob(SealedBlob(public, private, {}, auth=False)),
        len(public).to_bytes(2, "big") + public,
    ]


def TestOneInput(data: bytes) -> None:
    for parse in (decode_ak_blob, decode_sealed_blob, lambda d: read_tpm2b(d, "fuzz")):
        try:
            parse(data)
        except MalformedInputError:
            pass


if __name__ == "__main__":
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
