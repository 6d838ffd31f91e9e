"""atheris entry point: every hazmat.tpm2 parser on arbitrary bytes.

Run with ``python tests/fuzz/fuzz_tpm2_structures.py`` when atheris is installed.
Only MalformedInputError (and UnsupportedAlgorithmError from key conversion)
may escape; anything else is a bug.
"""

from __future__ import annotations

import json
import sys

from tests.fuzz._harness import ROOT
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


def _vectors(name: str) -> list[dict[str, object]]:
    doc = json.loads((ROOT / "vectors/attestation" / name).read_text(encoding="utf-8"))
    return [dict(group, **test) for group in doc["testGroups"] for test in group["tests"]]


def seeds() -> list[bytes]:
    """Selector byte + structure: TPMS_ATTEST and TPMT_SIGNATURE of every quote vector,
    the parse vectors' attests, AK and EK publics (TPM2B_PUBLIC and bare TPMT_PUBLIC),
    tpm2-tools credential files."""
    out: list[bytes] = []

    def add(parser: object, hexdata: object) -> None:
        if isinstance(hexdata, str) and hexdata:
            out.append(bytes([PARSERS.index(parser)]) + bytes.fromhex(hexdata))  # type: ignore[arg-type]

    for case in _vectors("quotes.json"):
        add(Attest.unmarshal, case["message"])
        add(Signature.unmarshal, case["signature"])
        add(Public.unmarshal_tpm2b, case["akPublic"])
        add(Public.unmarshal, str(case["akPublic"])[4:])
        add(load_public, case["akPublic"])
    for case in _vectors("attest_parse.json"):
        add(Attest.unmarshal, case["attest"])
    for case in _vectors("credentials.json"):
        add(Credential.from_tpm2_tools, case.get("tpm2ToolsFile"))
        add(Public.unmarshal_tpm2b, case.get("ekPublic"))
    return out


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
