"""atheris entry point: evidence bundles and signed attestation results.

Run with ``python tests/fuzz/fuzz_attestation_evidence.py [corpus...]`` when
atheris is installed. The module imports without atheris so tools can
collect ``TestOneInput`` and feed it inputs directly.
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric import ec

from tests.fuzz._harness import json_hex_values
from trustedge.attestation.ear import verify_result
from trustedge.attestation.evidence import Evidence
from trustedge.errors import TrustedgeError

# A fixed key: the fuzzer explores parsing, not signatures.
_KEY = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1()).public_key()

MAX_LEN = 65536


def seeds() -> list[bytes]:
    """The project's evidence bundles and attestation results (EAR tokens)."""
    out = list(json_hex_values("vectors/attestation/evidence.json", keys=["input"]))
    out += list(json_hex_values("vectors/attestation/ear.json", keys=["token"]))
    return out


def TestOneInput(data: bytes) -> None:
    """Hostile bytes must produce a model or a trustedge error, never anything else."""
    try:
        evidence = Evidence.decode(data)
    except TrustedgeError:
        pass
    else:
        if evidence.encode() != data:
            raise AssertionError("decoded evidence does not re-encode to the same bytes")
    for token in (data, data.decode("latin-1")):
        try:
            verify_result(token, _KEY)
        except TrustedgeError:
            pass


def main() -> None:  # pragma: no cover - needs atheris
    import atheris

    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
