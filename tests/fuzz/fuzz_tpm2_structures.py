"""atheris entry point: every hazmat.tpm2 parser on arbitrary bytes.

Run with ``python tests/fuzz/fuzz_tpm2_structures.py`` when atheris is installed.
Only MalformedInputError (and UnsupportedAlgorithmError from key conversion)
may escape; anything else is a bug.
"""

from __future__ import annotations

import sys

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2 import (
    Attest,
    Credential,
    PCRSelectionList,
    Public,
    Signature,
    load_public,
    read_pcr_file,
    unmarshal_digest_list,
)

PARSERS = (
    Attest.unmarshal,
    Attest.unmarshal_tpm2b,
    Signature.unmarshal,
    Public.unmarshal,
    Public.unmarshal_tpm2b,
    PCRSelectionList.unmarshal,
    unmarshal_digest_list,
    read_pcr_file,
    Credential.from_tpm2_tools,
    load_public,
)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    parser = PARSERS[data[0] % len(PARSERS)]
    try:
        parser(data[1:])
    except (MalformedInputError, UnsupportedAlgorithmError):
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
