"""atheris entry point: ``verify_quote`` on hostile message/signature bytes.

Input: a 2-byte big-endian message length, the TPMS_ATTEST message, then the
TPMT_SIGNATURE. The AK, nonce and PCR values are those of the first valid ECDSA
vector of ``vectors/attestation/quotes.json``, so the seeds (every vector's
message and signature) reach the checks behind the signature: the fuzzer explores
the parsers and every refusal. Only trustedge errors may escape
(``VerificationError`` for anything that parses but fails, ``MalformedInputError``
otherwise).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.fuzz._harness import ROOT
from trustedge.attestation import verify_quote
from trustedge.errors import MalformedInputError, VerificationError
from trustedge.hazmat.tpm2 import Public

_DOC = json.loads((ROOT / "vectors/attestation/quotes.json").read_text(encoding="utf-8"))
_GROUP = _DOC["testGroups"][0]
_VALID: dict[str, Any] = next(t for t in _GROUP["tests"] if t["result"] == "valid")
_AK = Public.unmarshal_tpm2b(bytes.fromhex(_GROUP["akPublic"]))
_NONCE = bytes.fromhex(_VALID["nonce"])
_PCRS = {
    bank: {int(i): bytes.fromhex(v) for i, v in values.items()}
    for bank, values in _VALID["pcrs"].items()
}


def seeds() -> list[bytes]:
    """Every quote vector as ``len(message) || message || signature``."""
    out = []
    for group in _DOC["testGroups"]:
        for test in group["tests"]:
            msg, sig = bytes.fromhex(test["message"]), bytes.fromhex(test["signature"])
            out.append(len(msg).to_bytes(2, "big") + msg + sig)
    return out


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    cut = 2 + int.from_bytes(data[:2], "big")
    try:
        verify_quote(data[2:cut], data[cut:], _AK, nonce=_NONCE, pcrs=_PCRS)
    except (MalformedInputError, VerificationError):
        pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
