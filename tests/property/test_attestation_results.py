"""Any valid EAR survives JSON and CBOR claims and both token forms unchanged."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge._cbor import decode, encode
from trustedge.attestation.ear import (
    Appraisal,
    AttestationResult,
    TrustTier,
    TrustVector,
    VerifierId,
    sign_cwt,
    sign_jwt,
    verify_result,
)

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
text = st.text(min_size=1, max_size=30)
claim = st.integers(-128, 127)
vectors = st.builds(
    TrustVector,
    instance_identity=claim,
    configuration=claim,
    executables=claim,
    file_system=claim,
    hardware=claim,
    runtime_opaque=claim,
    storage_opaque=claim,
    sourced_data=claim,
)


@st.composite
def appraisals(draw: st.DrawFn) -> Appraisal:
    vector = draw(vectors)
    worse = [t for t in TrustTier if t.rank >= vector.tier().rank]
    return Appraisal(
        draw(st.sampled_from(worse)),
        vector,
        draw(st.none() | text),
        tuple(draw(st.lists(text, max_size=3))),
    )


results = st.builds(
    AttestationResult,
    issued_at=st.integers(1, 2**40),
    verifier_id=st.builds(VerifierId, build=text, developer=text),
    submods=st.dictionaries(text, appraisals(), min_size=1, max_size=3),
    nonce=st.none() | st.binary(min_size=8, max_size=64),
    raw_evidence=st.none() | st.binary(max_size=64),
)


@given(results)
@settings(max_examples=150, deadline=None)
def test_claims_roundtrip(result: AttestationResult) -> None:
    assert AttestationResult.from_json_claims(result.to_json_claims()) == result
    assert AttestationResult.from_cbor_claims(decode(encode(result.to_cbor_claims()))) == result


@given(results)
@settings(max_examples=60, deadline=None)
def test_tokens_roundtrip(result: AttestationResult) -> None:
    public = KEY.public_key()
    assert verify_result(sign_jwt(result, KEY), public).claims == result
    assert verify_result(sign_cwt(result, KEY), public).claims == result
    assert result.status.rank == max(a.status.rank for a in result.submods.values())
