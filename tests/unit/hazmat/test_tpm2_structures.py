"""hazmat.tpm2: every structure round-trips and the parsers are strict."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2 import (
    EK_TEMPLATES,
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    CertifyInfo,
    ClockInfo,
    CommandAuditInfo,
    CreationInfo,
    ECCPoint,
    KeyedHashParms,
    NVCertifyInfo,
    NVDigestCertifyInfo,
    PCRSelection,
    PCRSelectionList,
    Public,
    QuoteInfo,
    Scheme,
    SessionAuditInfo,
    Signature,
    SymCipherParms,
    SymDef,
    TimeAttestInfo,
    TPMAlg,
    ak_template,
    load_public,
    marshal_digest_list,
    public_from_key,
    read_pcr_file,
    unmarshal_digest_list,
    with_key,
    write_pcr_file,
)

CLOCK = ClockInfo(123456, 7, 2, True)
SEL = PCRSelectionList.from_mapping({"sha256": [0, 1, 2, 7, 16], "sha1": [0]})
NAME = b"\x00\x0b" + bytes(range(32))
INFOS = {
    TPMST.ATTEST_QUOTE: QuoteInfo(SEL, bytes(32)),
    TPMST.ATTEST_CERTIFY: CertifyInfo(NAME, NAME[::-1]),
    TPMST.ATTEST_CREATION: CreationInfo(NAME, b"\x01" * 32),
    TPMST.ATTEST_NV: NVCertifyInfo(NAME, 0, (5).to_bytes(8, "big")),
    TPMST.ATTEST_NV_DIGEST: NVDigestCertifyInfo(NAME, b"\x02" * 32),
    TPMST.ATTEST_TIME: TimeAttestInfo(999, CLOCK, 0x2019102300163636),
    TPMST.ATTEST_SESSION_AUDIT: SessionAuditInfo(True, b"\x03" * 32),
    TPMST.ATTEST_COMMAND_AUDIT: CommandAuditInfo(3, int(TPMAlg.SHA256), b"\x04" * 32, b"\x05" * 32),
}


def _attest(st: TPMST) -> Attest:
    return Attest(TPM_GENERATED_VALUE, int(st), NAME, b"nonce", CLOCK, 0x1234, INFOS[st])


@pytest.mark.parametrize("st", list(INFOS), ids=[s.name for s in INFOS])
def test_attest_round_trip_every_type(st: TPMST) -> None:
    a = _attest(st)
    raw = a.marshal()
    assert Attest.unmarshal(raw) == a
    assert Attest.unmarshal(raw).marshal() == raw
    assert Attest.unmarshal_tpm2b(len(raw).to_bytes(2, "big") + raw) == a


def test_quote_layout_matches_tpm() -> None:
    """A quote over sha256:0,1,2,3,7,16 with a 32-byte signer name and a 32-byte
    nonce is 145 bytes (research note)."""
    sel = PCRSelectionList.from_mapping({"sha256": [0, 1, 2, 3, 7, 16]})
    a = Attest(TPM_GENERATED_VALUE, int(TPMST.ATTEST_QUOTE), NAME, bytes(32), CLOCK, 0,
               QuoteInfo(sel, bytes(32)))  # fmt: skip
    assert len(a.marshal()) == 145
    assert sel.selections[0].select == bytes([0x8F, 0x00, 0x01])


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda b: b + b"\x00", MalformedInputError),
        (lambda b: b[:-1], MalformedInputError),
        (lambda b: b[:4] + b"\x80\x99" + b[6:], MalformedInputError),  # unknown type
        (lambda b: b[:6] + b"\x00\x43" + b[8:], LimitExceededError),  # name too long
    ],
    ids=["trailing", "truncated", "unknown-type", "oversized-name"],
)
def test_attest_strict(mutate: object, error: type[Exception]) -> None:
    raw = _attest(TPMST.ATTEST_QUOTE).marshal()
    with pytest.raises(error):
        Attest.unmarshal(mutate(raw))  # type: ignore[operator]


def test_safe_must_be_yes_or_no() -> None:
    raw = bytearray(_attest(TPMST.ATTEST_QUOTE).marshal())
    safe_at = 4 + 2 + 2 + len(NAME) + 2 + 5 + 16
    assert raw[safe_at] == 1
    raw[safe_at] = 2
    with pytest.raises(MalformedInputError, match="safe"):
        Attest.unmarshal(bytes(raw))


def test_duplicate_bank_rejected() -> None:
    raw = PCRSelectionList(
        (PCRSelection(0x0B, b"\x01\x00\x00"), PCRSelection(0x0B, b"\x02\x00\x00"))
    ).marshal()
    with pytest.raises(MalformedInputError, match="twice"):
        PCRSelectionList.unmarshal(raw)


def test_selection_helpers() -> None:
    assert SEL.to_mapping() == {"sha256": (0, 1, 2, 7, 16), "sha1": (0,)}
    assert SEL.pcr_order()[:2] == [("sha256", 0), ("sha256", 1)]
    assert PCRSelectionList.unmarshal(SEL.marshal()) == SEL
    with pytest.raises(ValueError):
        PCRSelection.from_indices("sha256", [40])
    with pytest.raises(UnsupportedAlgorithmError):
        PCRSelection(0x0099, b"\x01").bank  # noqa: B018


@pytest.mark.parametrize(
    "sig",
    [
        Signature(int(TPMAlg.ECDSA), int(TPMAlg.SHA256), r=b"\x01" * 32, s=b"\x02" * 32),
        Signature(int(TPMAlg.RSASSA), int(TPMAlg.SHA256), rsa=b"\x03" * 256),
        Signature(int(TPMAlg.RSAPSS), int(TPMAlg.SHA384), rsa=b"\x04" * 256),
        Signature(int(TPMAlg.HMAC), int(TPMAlg.SHA256), digest=b"\x05" * 32),
        Signature(int(TPMAlg.NULL), int(TPMAlg.NULL)),
    ],
    ids=["ecdsa", "rsassa", "rsapss", "hmac", "null"],
)
def test_signature_round_trip(sig: Signature) -> None:
    raw = sig.marshal()
    assert Signature.unmarshal(raw) == sig
    with pytest.raises(MalformedInputError):
        Signature.unmarshal(raw + b"\x00")


def test_signature_unknown_scheme_and_hmac_hash() -> None:
    with pytest.raises(MalformedInputError):
        Signature.unmarshal(b"\x00\x99\x00\x0b")
    with pytest.raises(MalformedInputError):
        Signature.unmarshal(b"\x00\x05\x00\x99" + bytes(32))


@pytest.mark.parametrize("kind", list(EK_TEMPLATES))
def test_ek_templates_round_trip(kind: str) -> None:
    t = EK_TEMPLATES[kind]
    assert Public.unmarshal(t.marshal()) == t
    assert Public.unmarshal_tpm2b(t.marshal_tpm2b()) == t
    assert t.name()[:2] == t.name_alg.to_bytes(2, "big")


def test_rsa_ek_template_name_is_the_tcg_value() -> None:
    # The L-1 template with an all-zero unique field is what tpm2_createek hands the TPM.
    assert EK_TEMPLATES["rsa2048"].marshal()[:10].hex() == "0001000b000300b20020"


def test_other_public_types_round_trip() -> None:
    keyed = Public(
        int(TPMAlg.KEYEDHASH),
        int(TPMAlg.SHA256),
        0x00060072,
        b"",
        KeyedHashParms(Scheme(int(TPMAlg.XOR), int(TPMAlg.SHA256), kdf=0x22)),
        b"\x01" * 32,
    )
    sym = Public(int(TPMAlg.SYMCIPHER), int(TPMAlg.SHA256), 0x00060072, b"\x00" * 32,
                 SymCipherParms(SymDef(int(TPMAlg.AES), 128, int(TPMAlg.CFB))), b"")  # fmt: skip
    for pub in (keyed, sym):
        assert Public.unmarshal(pub.marshal()) == pub
        with pytest.raises(UnsupportedAlgorithmError):
            pub.public_key()


def test_public_strictness() -> None:
    t = EK_TEMPLATES["ecc-p256"].marshal_tpm2b()
    with pytest.raises(MalformedInputError):
        Public.unmarshal_tpm2b(t + b"\x00")
    with pytest.raises(MalformedInputError):
        Public.unmarshal_tpm2b((len(t)).to_bytes(2, "big") + t[2:])
    with pytest.raises(MalformedInputError):
        Public.unmarshal(b"\x00\x99" + t[4:])
    # An all-zero ECC point is not on the curve.
    with pytest.raises(MalformedInputError):
        EK_TEMPLATES["ecc-p256"].public_key()


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_ecc_key_conversion_both_ways(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve).public_key()
    pub = public_from_key(key)
    assert pub.public_key().public_numbers() == key.public_numbers()
    assert Public.unmarshal(pub.marshal()) == pub


def test_rsa_key_conversion_both_ways() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pub = with_key(ak_template("rsa2048-rsapss"), key)
    assert pub.public_key().public_numbers() == key.public_numbers()
    assert pub.scheme().scheme == TPMAlg.RSAPSS
    broken = Public(pub.type, pub.name_alg, pub.attributes, pub.auth_policy, pub.parameters,
                    b"\x01" * 255)  # fmt: skip
    with pytest.raises(MalformedInputError):
        broken.public_key()


def test_load_public_formats() -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public(pem) == key
    assert load_public(der) == key
    assert isinstance(load_public(public_from_key(key).marshal_tpm2b()), Public)
    with pytest.raises(MalformedInputError):
        load_public(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(MalformedInputError):
        load_public(b"\x30\x03\x02\x01\x00")


def test_digest_list() -> None:
    raw = marshal_digest_list([b"\x01" * 32, b"\x02" * 20])
    assert unmarshal_digest_list(raw) == (b"\x01" * 32, b"\x02" * 20)
    with pytest.raises(LimitExceededError):
        unmarshal_digest_list(b"\x00\x00\x00\x09")


def test_pcr_file_round_trip_and_checks() -> None:
    sel = PCRSelectionList.from_mapping({"sha256": list(range(10)), "sha1": [0]})
    values = {"sha256": {i: bytes([i]) * 32 for i in range(10)}, "sha1": {0: b"\x09" * 20}}
    raw = write_pcr_file(sel, values)
    assert read_pcr_file(raw) == (sel, values)
    with pytest.raises(MalformedInputError):
        read_pcr_file(raw + b"\x00")
    short = PCRSelectionList.from_mapping({"sha256": [0]})
    bad = write_pcr_file(short, {"sha256": {0: b"\x01" * 20}})
    with pytest.raises(MalformedInputError):
        read_pcr_file(bad)


def test_ecc_point_and_scheme_rules() -> None:
    with pytest.raises(MalformedInputError):
        Public.unmarshal(ak_template("ecc-p256-ecdsa").marshal()[:-1])
    assert ECCPoint(b"", b"") == ak_template("ecc-p256-ecdsa").unique
