"""The published vectors in vectors/attestation/ (quotes, credentials, TPMS_ATTEST parsing)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

import trustedge.attestation
from tests.vectors import VectorCase, error_class, vector_cases
from trustedge.attestation import QuoteState, verify_quote
from trustedge.hazmat.tpm2 import Attest, Credential, Public, recover_credential


def _pcrs(doc: dict[str, dict[str, str]]) -> dict[str, dict[int, bytes]]:
    return {b: {int(i): bytes.fromhex(v) for i, v in vals.items()} for b, vals in doc.items()}


@vector_cases("attestation/quotes.json")
def test_quote_vectors(case: VectorCase) -> None:
    ak = Public.unmarshal_tpm2b(bytes.fromhex(case["akPublic"]))
    last = case.get("last")
    signer = case.get("qualifiedSigner")

    def run() -> object:
        return verify_quote(
            case.hex("message"), case.hex("signature"), ak, nonce=case.hex("nonce"),
            pcrs=_pcrs(case["pcrs"]), selection=case["selection"],
            qualified_signer=bytes.fromhex(signer) if signer else None,
            last=QuoteState(*last) if last else None,
        )  # fmt: skip

    if case.result == "valid":
        verified = run()
        assert verified.ak_name.hex() == case["akName"]  # type: ignore[attr-defined]
        if "expectedClock" in case.test:
            assert list(verified.state.__dict__.values()) == case["expectedClock"]  # type: ignore[attr-defined]
    else:
        assert case.error is not None
        specific = getattr(trustedge.attestation, case["check"], None) or error_class(case["check"])
        with pytest.raises(error_class(case.error)) as info:
            run()
        assert isinstance(info.value, specific)


@vector_cases("attestation/credentials.json")
def test_credential_vectors(case: VectorCase) -> None:
    ek = Public.unmarshal_tpm2b(case.hex("ekPublic"))
    priv = serialization.load_pem_private_key(case["ekPrivatePem"].encode(), None)

    def run() -> bytes:
        return recover_credential(ek, priv, case.hex("credentialBlob"),  # type: ignore[arg-type]
                                  case.hex("encryptedSecret"), case.hex("akName"))  # fmt: skip

    if case.result == "valid":
        assert run() == case.hex("secret")
        cred = Credential.from_tpm2_tools(case.hex("tpm2ToolsFile"))
        assert cred.credential_blob == case.hex("credentialBlob")
    else:
        assert case.error is not None
        with pytest.raises(error_class(case.error)):
            run()


@vector_cases("attestation/attest_parse.json")
def test_attest_parse_vectors(case: VectorCase) -> None:
    raw = case.hex("attest")
    if case.result == "valid":
        a = Attest.unmarshal(raw)
        assert a.type == case["type"] and a.extra_data == case.hex("extraData")
        c = a.clock_info
        assert [c.clock, c.reset_count, c.restart_count, int(c.safe)] == case["clock"]
        assert a.marshal() == raw
    else:
        assert case.error is not None
        with pytest.raises(error_class(case.error)):
            Attest.unmarshal(raw)
