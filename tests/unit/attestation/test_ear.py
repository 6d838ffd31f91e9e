"""EAR model, JWT and CWT signing, verify_result; cross-checked with joserfc and pycose."""

from __future__ import annotations

import json

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OKPKey
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys import EC2Key
from pycose.keys import OKPKey as CoseOKPKey
from pycose.keys.curves import P256, Ed25519
from pycose.messages import Sign1Message

from trustedge._cbor import CBORTag, decode, encode
from trustedge.attestation import ear
from trustedge.attestation.ear import (
    EAR_PROFILE,
    Appraisal,
    AttestationResult,
    TrustTier,
    TrustVector,
    VerifierId,
    sign_cwt,
    sign_jwt,
    verify_result,
)
from trustedge.errors import (
    ExpiredError,
    MalformedInputError,
    NonceError,
    SignatureError,
    TrustedgeError,
    UnsupportedAlgorithmError,
)

# joserfc warns that the polymorphic "EdDSA" is deprecated by RFC 9864; EAR peers still use it.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

NOW = 1_700_000_000
NONCE = bytes(range(32))


@pytest.fixture(params=["ES256", "EdDSA"])
def keypair(
    request: pytest.FixtureRequest,
) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    if request.param == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def affirming() -> AttestationResult:
    vector = TrustVector(
        instance_identity=ear.TRUSTWORTHY_INSTANCE,
        configuration=ear.APPROVED_CONFIG,
        executables=ear.APPROVED_RUNTIME,
        file_system=ear.APPROVED_FILES,
        hardware=ear.GENUINE_HARDWARE,
    )
    return AttestationResult(
        issued_at=NOW,
        verifier_id=VerifierId(build="trustedge 0.1", developer="https://trustedge.example"),
        submods={"dev-1": Appraisal.from_vector(vector, policy_id="fleet-v1", reasons=("ok",))},
        nonce=NONCE,
        raw_evidence=b"\xa0",
    )


def contraindicated() -> AttestationResult:
    vector = TrustVector(
        instance_identity=ear.TRUSTWORTHY_INSTANCE,
        executables=ear.CONTRAINDICATED_RUNTIME,
        hardware=ear.UNRECOGNIZED_HARDWARE,
    )
    return AttestationResult(
        issued_at=NOW,
        verifier_id=VerifierId("b", "d"),
        submods={
            "dev-2": Appraisal.from_vector(vector, reasons=("PCR4: unexpected boot app",)),
            "dev-3": Appraisal(TrustTier.WARNING, TrustVector(configuration=ear.UNSAFE_CONFIG)),
        },
    )


# -- model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (0, TrustTier.NONE),
        (1, TrustTier.NONE),
        (-1, TrustTier.NONE),
        (2, TrustTier.AFFIRMING),
        (31, TrustTier.AFFIRMING),
        (32, TrustTier.WARNING),
        (95, TrustTier.WARNING),
        (96, TrustTier.CONTRAINDICATED),
        (99, TrustTier.CONTRAINDICATED),
        (127, TrustTier.CONTRAINDICATED),
        (-96, TrustTier.CONTRAINDICATED),
    ],
)
def test_claim_tiers(value: int, tier: TrustTier) -> None:
    assert TrustTier.of_claim(value) is tier


def test_status_is_worst() -> None:
    assert affirming().status is TrustTier.AFFIRMING
    assert contraindicated().status is TrustTier.CONTRAINDICATED
    assert contraindicated().submods["dev-3"].status is TrustTier.WARNING


def test_status_may_not_be_better_than_vector() -> None:
    with pytest.raises(ValueError, match="better"):
        Appraisal(TrustTier.AFFIRMING, TrustVector(hardware=ear.UNRECOGNIZED_HARDWARE))
    # Worse than the vector is allowed (the verifier's policy may demote).
    Appraisal(TrustTier.CONTRAINDICATED, TrustVector(hardware=ear.GENUINE_HARDWARE))


@pytest.mark.parametrize(
    "make",
    [
        lambda: TrustVector(hardware=128),
        lambda: TrustVector(hardware=True),
        lambda: AttestationResult(0, VerifierId("b", "d"), {"x": Appraisal(TrustTier.NONE)}),
        lambda: AttestationResult(NOW, VerifierId("b", "d"), {}),
        lambda: AttestationResult(
            NOW, VerifierId("b", "d"), {"x": Appraisal(TrustTier.NONE)}, nonce=b"1"
        ),
        lambda: Appraisal(TrustTier.NONE, reasons=("x" * 5000,)),
    ],
)
def test_model_rejects(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_json_claims_shape() -> None:
    claims = affirming().to_json_claims()
    assert claims["eat_profile"] == EAR_PROFILE
    sub = claims["submods"]["dev-1"]
    assert sub["ear.status"] == "affirming"
    assert sub["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "file-system": 2,
        "hardware": 2,
    }
    assert sub["ear.appraisal-policy-id"] == "fleet-v1"
    assert AttestationResult.from_json_claims(claims) == affirming()


def test_cbor_claims_shape() -> None:
    claims = contraindicated().to_cbor_claims()
    assert claims[265] == EAR_PROFILE and claims[6] == NOW
    assert claims[1004] == {0: "d", 1: "b"}
    assert claims[266]["dev-2"][1000] == 96
    assert claims[266]["dev-2"][1001] == {0: 2, 2: 96, 4: 97}
    assert claims[266]["dev-3"][1000] == 32
    assert AttestationResult.from_cbor_claims(decode(encode(claims))) == contraindicated()


# -- JWT ------------------------------------------------------------------------------


def _pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _jose_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> ECKey | OKPKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECKey.import_key(_pem(key))
    return OKPKey.import_key(_pem(key))


def test_jwt_roundtrip_and_joserfc(keypair: ec.EllipticCurvePrivateKey) -> None:
    token = sign_jwt(affirming(), keypair, kid="verifier-1")
    assert verify_result(token, keypair.public_key(), expected_nonce=NONCE).claims == affirming()
    # An independent JOSE library accepts the token and sees the same claims.
    alg = "ES256" if isinstance(keypair, ec.EllipticCurvePrivateKey) else "EdDSA"
    decoded = jose_jwt.decode(token, _jose_key(keypair), algorithms=[alg])
    assert decoded.header["alg"] == alg and decoded.header["kid"] == "verifier-1"
    assert decoded.claims == affirming().to_json_claims()


def test_jwt_from_joserfc_verifies(keypair: ec.EllipticCurvePrivateKey) -> None:
    alg = "ES256" if isinstance(keypair, ec.EllipticCurvePrivateKey) else "EdDSA"
    token = jose_jwt.encode(
        {"alg": alg}, contraindicated().to_json_claims(), _jose_key(keypair), algorithms=[alg]
    )
    assert verify_result(token, keypair.public_key()).claims == contraindicated()


def test_jwt_bytes_accepted(keypair: ec.EllipticCurvePrivateKey) -> None:
    token = sign_jwt(affirming(), keypair).encode()
    assert verify_result(token, keypair.public_key()).claims == affirming()


def _tamper_payload(token: str, change: dict[str, object]) -> str:
    head, body, sig = token.split(".")
    import base64

    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims.update(change)
    new = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{new}.{sig}"


def test_jwt_failures(keypair: ec.EllipticCurvePrivateKey) -> None:
    token = sign_jwt(affirming(), keypair)
    pub = keypair.public_key()
    with pytest.raises(SignatureError):
        verify_result(_tamper_payload(token, {"iat": NOW + 1}), pub)
    other = (
        ec.generate_private_key(ec.SECP256R1())
        if isinstance(keypair, ec.EllipticCurvePrivateKey)
        else ed25519.Ed25519PrivateKey.generate()
    )
    with pytest.raises(SignatureError):
        verify_result(token, other.public_key())
    with pytest.raises(NonceError):
        verify_result(token, pub, expected_nonce=bytes(32))
    with pytest.raises(ExpiredError, match="old"):
        verify_result(token, pub, now=NOW + 301, max_age=300)
    with pytest.raises(ExpiredError, match="future"):
        verify_result(token, pub, now=NOW - 61, max_age=300)
    assert verify_result(token, pub, now=NOW + 300, max_age=300).claims == affirming()


def test_jwt_algorithm_confusion() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    # Signed with Ed25519, presented to a P-256 key: the key decides, so it fails.
    with pytest.raises(SignatureError, match="does not match"):
        verify_result(sign_jwt(affirming(), ed), p256.public_key())
    # alg "none" with an empty signature.
    import base64

    head = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = sign_jwt(affirming(), p256).split(".")[1]
    with pytest.raises(SignatureError):
        verify_result(f"{head}.{body}.", p256.public_key())


@pytest.mark.parametrize(("jose", "cose"), [("ESP256", -9), ("Ed25519", -19)])
def test_fully_specified_algorithm_names(jose: str, cose: int) -> None:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if jose == "ESP256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    import base64

    from trustedge.attestation import _signing

    head = base64.urlsafe_b64encode(json.dumps({"alg": jose}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(affirming().to_json_claims()).encode())
    signing_input = head + "." + body.rstrip(b"=").decode()
    _, sig = _signing.sign(key, signing_input.encode())
    token = signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    assert verify_result(token, key.public_key()).claims == affirming()
    protected = encode({1: cose})
    payload = encode(affirming().to_cbor_claims())
    _, sig = _signing.sign(key, encode(["Signature1", protected, b"", payload]))
    cwt = encode(CBORTag(18, [protected, {}, payload, sig]))
    assert verify_result(cwt, key.public_key()).claims == affirming()


def test_unsupported_keys() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnsupportedAlgorithmError):
        sign_jwt(affirming(), rsa_key)  # type: ignore[arg-type]
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UnsupportedAlgorithmError):
        sign_cwt(affirming(), p384)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        "e30.e30.AAA=",
        "eyJhbGciOiJFUzI1NiIsImFsZyI6IkVTMjU2In0.e30." + "A" * 86,  # duplicate "alg"
        "W10.e30." + "A" * 86,  # header is a list
        "eyJjcml0IjpbXX0.e30." + "A" * 86,  # crit
        "x" * (1 << 20) + "..",
    ],
)
def test_jwt_malformed(token: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises((MalformedInputError, UnsupportedAlgorithmError, SignatureError)):
        verify_result(token, key)


# -- CWT ------------------------------------------------------------------------------


def _cose_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> object:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        nums = key.private_numbers()
        return EC2Key(
            crv=P256,
            x=nums.public_numbers.x.to_bytes(32, "big"),
            y=nums.public_numbers.y.to_bytes(32, "big"),
            d=nums.private_value.to_bytes(32, "big"),
        )
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return CoseOKPKey(crv=Ed25519, x=pub, d=raw)


def _pycose_decode(token: bytes) -> Sign1Message:
    # pycose 1.1's Sign1Message.decode expects cbor2 < 6, which now decodes the
    # content of a tag as a tuple; hand it the (cbor2-decoded) array instead.
    outer = cbor2.loads(token)
    assert outer.tag == 18
    protected, unprotected, payload, signature = outer.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)


def test_cwt_roundtrip_and_pycose(keypair: ec.EllipticCurvePrivateKey) -> None:
    token = sign_cwt(affirming(), keypair, kid=b"v1")
    assert verify_result(token, keypair.public_key()).claims == affirming()
    msg = _pycose_decode(token)
    msg.key = _cose_key(keypair)
    assert msg.verify_signature()
    assert msg.get_attr(KID) == b"v1"
    assert AttestationResult.from_cbor_claims(decode(msg.payload)) == affirming()


def test_cwt_from_pycose_verifies(keypair: ec.EllipticCurvePrivateKey) -> None:
    alg = Es256 if isinstance(keypair, ec.EllipticCurvePrivateKey) else EdDSA
    msg = Sign1Message(phdr={Algorithm: alg}, payload=encode(contraindicated().to_cbor_claims()))
    msg.key = _cose_key(keypair)
    token = msg.encode()
    assert verify_result(token, keypair.public_key()).claims == contraindicated()


def test_cwt_tampered_and_wrong_key(keypair: ec.EllipticCurvePrivateKey) -> None:
    token = sign_cwt(affirming(), keypair)
    obj = decode(token)
    protected, unprotected, payload, sig = obj.value
    claims = decode(payload)
    claims[6] = NOW + 1
    forged = encode(CBORTag(18, [protected, unprotected, encode(claims), sig]))
    with pytest.raises(SignatureError):
        verify_result(forged, keypair.public_key())
    with pytest.raises(SignatureError):
        verify_result(token, ec.generate_private_key(ec.SECP256R1()).public_key())


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"\xff",
        encode([b"", {}, b"", b""]),  # untagged
        encode(CBORTag(98, [b"", {}, b"", b""])),  # COSE_Sign, not Sign1
        encode(CBORTag(18, [b"", {}, b""])),
        encode(CBORTag(18, [b"", {}, None, b"\x00" * 64])),  # detached payload
        encode(CBORTag(18, [encode([1]), {}, b"", b"\x00" * 64])),
        encode(CBORTag(18, [encode({1: -7, 2: [1]}), {}, b"", b"\x00" * 64])),  # crit
        encode(CBORTag(18, [encode({}), {1: -7}, b"", b"\x00" * 64])),  # unprotected alg
        encode(CBORTag(18, [encode({1: -35}), {}, b"", b"\x00" * 64])),  # ES384
        encode(CBORTag(18, [encode({1: -7}), {}, b"\xa0", b"\x00" * 64])),  # zero sig
    ],
)
def test_cwt_malformed(token: bytes) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises((MalformedInputError, UnsupportedAlgorithmError, SignatureError)):
        verify_result(token, key)


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {265: "other-profile", 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 0}}},
        {265: EAR_PROFILE, 6: "now", 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 0}}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d"}, 266: {"x": {1000: 0}}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 7}}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {}}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 2, 1001: {9: 2}}}},
        # affirming status with a contraindicated claim: inconsistent, refused
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 2, 1001: {4: 97}}}},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 0}}, 10: "n"},
        {265: EAR_PROFILE, 6: NOW, 1004: {0: "d", 1: "b"}, 266: {"x": {1000: 0, -71000: [1]}}},
    ],
)
def test_signed_but_malformed_claims(claims: dict[int, object]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from trustedge import cose

    token = cose.create_sign1(encode(claims), key)
    with pytest.raises(MalformedInputError):
        verify_result(token, key.public_key())


def test_verify_result_argument_misuse() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError):
        verify_result(sign_jwt(affirming(), key), key.public_key(), now=NOW)
    with pytest.raises(TypeError):
        verify_result(123, key.public_key())  # type: ignore[arg-type]


_FUZZ_KEY = ec.generate_private_key(ec.SECP256R1())


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_hostile_cwt_bytes_raise_only_trustedge_errors(data: bytes) -> None:
    try:
        verify_result(data, _FUZZ_KEY.public_key())
    except TrustedgeError:
        pass


@given(st.text(max_size=512))
@settings(max_examples=300, deadline=None)
def test_hostile_jwt_text_raises_only_trustedge_errors(text: str) -> None:
    try:
        verify_result(text, _FUZZ_KEY.public_key())
    except TrustedgeError:
        pass


@given(st.binary(max_size=256))
@settings(max_examples=200, deadline=None)
def test_hostile_signed_claims_raise_only_trustedge_errors(data: bytes) -> None:
    from trustedge import cose

    try:
        verify_result(cose.create_sign1(data, _FUZZ_KEY), _FUZZ_KEY.public_key())
    except TrustedgeError:
        pass


@pytest.mark.parametrize("vid", [("", "d"), ("b", ""), ("b", "x" * 5000)])
def test_verifier_id_must_be_filled(vid: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        VerifierId(*vid)
    claims = affirming().to_cbor_claims()
    claims[1004] = {0: vid[1], 1: vid[0]}
    key = ec.generate_private_key(ec.SECP256R1())
    from trustedge import cose

    with pytest.raises(MalformedInputError):
        verify_result(cose.create_sign1(encode(claims), key), key.public_key())
