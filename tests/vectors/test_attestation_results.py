"""Published vectors for evidence bundles and EAR tokens (vectors/attestation/)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from tests.vectors import VectorCase, error_class, vector_cases
from trustedge.attestation.ear import verify_result
from trustedge.attestation.evidence import Evidence


@vector_cases("attestation/evidence.json")
def test_evidence_vectors(case: VectorCase) -> None:
    data = case.hex("input")
    if case.result == "invalid":
        assert case.error is not None
        with pytest.raises(error_class(case.error)):
            Evidence.decode(data)
        return
    evidence = Evidence.decode(data)
    view = evidence.to_json()
    assert view["device_id"] == case["device_id"]
    assert view["nonce"] == case["nonce"]
    assert view["ima_offset"] == case["ima_offset"]
    assert view["pcrs"] == case["pcrs"]
    assert evidence.encode() == data


@vector_cases("attestation/ear.json")
def test_ear_vectors(case: VectorCase) -> None:
    key = serialization.load_der_public_key(case.hex("key"))
    token: str | bytes = case["token"] if case["format"] == "jwt" else case.hex("token")
    if case.result == "invalid":
        assert case.error is not None
        with pytest.raises(error_class(case.error)):
            verify_result(token, key)  # type: ignore[arg-type]
        return
    result = verify_result(token, key)  # type: ignore[arg-type]
    assert result.status.value == case["status"]
    assert result.to_json_claims() == case["claims"]


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@vector_cases("attestation/ear.json")
def test_valid_ear_vectors_verify_with_joserfc_and_pycose(case: VectorCase) -> None:
    # The vectors themselves are checked by independent JOSE/COSE libraries.
    if case.result != "valid":
        return
    import cbor2
    from joserfc import jwt
    from joserfc.jwk import ECKey, OKPKey
    from pycose.keys import EC2Key
    from pycose.keys import OKPKey as CoseOKPKey
    from pycose.keys.curves import P256, Ed25519
    from pycose.messages import Sign1Message

    key = serialization.load_der_public_key(case.hex("key"))
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_key = hasattr(key, "curve")
    if case["format"] == "jwt":
        alg = jwt.decode(
            case["token"],
            ECKey.import_key(pem) if ec_key else OKPKey.import_key(pem),
            algorithms=["ES256", "EdDSA", "Ed25519"],
        )
        assert alg.claims == case["claims"]
        return
    outer = cbor2.loads(case.hex("token"))
    protected, unprotected, payload, signature = outer.value
    if cbor2.loads(protected).get(1) == -19:
        return  # pycose 1.1 predates RFC 9864's fully-specified Ed25519 (-19)
    msg = Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)
    if ec_key:
        nums = key.public_numbers()  # type: ignore[union-attr]
        msg.key = EC2Key(crv=P256, x=nums.x.to_bytes(32, "big"), y=nums.y.to_bytes(32, "big"))
    else:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        msg.key = CoseOKPKey(crv=Ed25519, x=raw)
    assert msg.verify_signature()
