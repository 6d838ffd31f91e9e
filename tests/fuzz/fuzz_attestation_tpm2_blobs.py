"""atheris entry point: the Tpm2Backend blob parsers (AK blob, sealed blob, TPM2B inputs)
take hostile bytes and raise only MalformedInputError.

Run: python tests/fuzz/fuzz_attestation_tpm2_blobs.py [corpus dir]  (needs atheris)
"""

from __future__ import annotations

import sys

from trustedge.attestation.backends._tpm2_blobs import (
    decode_ak_blob,
    decode_sealed_blob,
    read_tpm2b,
)
from trustedge.errors import MalformedInputError


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
