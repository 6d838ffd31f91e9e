"""verify_quote: each check fails closed with its own error class.

Structures are forged with a local key so that every field can be set; the
quote is then signed properly, so only the check under test can fail.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from trustedge.attestation import (
    AttestationKey,
    ClockRegressionError,
    FirmwarePolicyError,
    HashPolicyError,
    PCRDigestError,
    PCRSelectionError,
    QuoteFormatError,
    QuoteNonceError,
    QuotePolicy,
    QuoteSignatureError,
    QuoteState,
    verify_quote,
)
from trustedge.errors import MalformedInputError, PolicyError, VerificationError
from trustedge.hazmat.tpm2 import (
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    CertifyInfo,
    ClockInfo,
    PCRSelectionList,
    QuoteInfo,
    Scheme,
    Signature,
    TPMAlg,
    TPMAObject,
    ak_template,
    hash_for,
    pcr_composite_digest,
    public_from_key,
    with_key,
)

NONCE = b"n" * 32
PCRS = {"sha256": {0: b"\x00" * 32, 7: b"\x07" * 32, 16: b"\x10" * 32}}
SEL = PCRSelectionList.from_mapping({"sha256": [0, 7, 16]})
ECC = ec.generate_private_key(ec.SECP256R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def attest(**changes: object) -> Attest:
    digest = pcr_composite_digest(int(TPMAlg.SHA256), [PCRS["sha256"][i] for i in (0, 7, 16)])
    base = Attest(TPM_GENERATED_VALUE, int(TPMST.ATTEST_QUOTE), b"\x00\x0b" + bytes(32), NONCE,
                  ClockInfo(5000, 3, 1, True), 0x20191023, QuoteInfo(SEL, digest))  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def sign(
    message: bytes, key: object = ECC, scheme: int = TPMAlg.ECDSA, hash_id: int = TPMAlg.SHA256
) -> bytes:
    algo = hash_for(hash_id)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(algo)))
        return Signature(
            scheme, hash_id, r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big")
        ).marshal()
    assert isinstance(key, rsa.RSAPrivateKey)
    pad: padding.AsymmetricPadding = (
        padding.PSS(mgf=padding.MGF1(algo), salt_length=20)
        if scheme == TPMAlg.RSAPSS
        else padding.PKCS1v15()
    )
    return Signature(scheme, hash_id, rsa=key.sign(message, pad, algo)).marshal()


ECC_AK = with_key(ak_template("ecc-p256-ecdsa"), ECC.public_key())


def verify(message: bytes, signature: bytes, ak: object = ECC_AK, **kw: object) -> object:
    kw.setdefault("nonce", NONCE)
    kw.setdefault("pcrs", PCRS)
    return verify_quote(message, signature, ak, **kw)  # type: ignore[arg-type]


def test_valid_quote() -> None:
    msg = attest().marshal()
    v = verify(msg, sign(msg))
    assert v.pcrs == PCRS and v.state == QuoteState(3, 1, 5000) and v.reboot is None  # type: ignore[attr-defined]
    # A prepared key and a bare cryptography key verify the same quote.
    verify(msg, sign(msg), AttestationKey.from_public(ECC_AK))
    verify(msg, sign(msg), ECC.public_key())


@pytest.mark.parametrize("scheme", [TPMAlg.RSASSA, TPMAlg.RSAPSS])
def test_rsa_schemes_and_pss_any_salt(scheme: TPMAlg) -> None:
    alg = "rsa2048-rsassa" if scheme == TPMAlg.RSASSA else "rsa2048-rsapss"
    ak = with_key(ak_template(alg), RSA.public_key())
    msg = attest().marshal()
    verify(msg, sign(msg, RSA, scheme), ak)
    other = TPMAlg.RSAPSS if scheme == TPMAlg.RSASSA else TPMAlg.RSASSA
    with pytest.raises(QuoteSignatureError, match="scheme"):
        verify(msg, sign(msg, RSA, other), ak)


def test_wrong_key_type_and_bad_signature() -> None:
    msg = attest().marshal()
    rsa_ak = with_key(ak_template("rsa2048-rsassa"), RSA.public_key())
    with pytest.raises(QuoteSignatureError):
        verify(msg, sign(msg), rsa_ak)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(QuoteSignatureError):
        verify(msg, sign(msg, other))
    with pytest.raises(QuoteSignatureError, match="parse"):
        verify(msg, b"\x00\x18\x00")


def test_small_rsa_key_rejected() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    msg = attest().marshal()
    with pytest.raises(HashPolicyError):
        verify(msg, sign(msg, small, TPMAlg.RSASSA), small.public_key())


def test_sha1_signature_rejected_by_default() -> None:
    msg = attest().marshal()
    with pytest.raises(HashPolicyError):
        verify(msg, sign(msg, hash_id=TPMAlg.SHA1), ECC.public_key())


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"magic": 0xFF544348}, QuoteFormatError),
        ({"type": int(TPMST.ATTEST_CERTIFY), "attested": CertifyInfo(b"", b"")}, QuoteFormatError),
        ({"extra_data": b"m" * 32}, QuoteNonceError),
        ({"extra_data": b""}, QuoteNonceError),
    ],
    ids=["magic", "type", "nonce", "empty-nonce"],
)
def test_format_and_nonce_checks(changes: dict[str, object], error: type[Exception]) -> None:
    msg = attest(**changes).marshal()
    with pytest.raises(error):
        verify(msg, sign(msg))


def test_selection_and_digest_checks() -> None:
    msg = attest().marshal()
    sig = sign(msg)
    with pytest.raises(PCRSelectionError):
        verify(msg, sig, selection={"sha256": [0, 7]})
    with pytest.raises(PCRSelectionError):
        verify(
            msg,
            sig,
            pcrs={"sha256": {0: bytes(32), 7: bytes(32)}},
            selection={"sha256": [0, 7, 16]},
        )
    bad = {"sha256": dict(PCRS["sha256"], **{})}
    bad["sha256"][16] = b"\x11" * 32
    with pytest.raises(PCRDigestError):
        verify(msg, sig, pcrs=bad)


def test_sha1_bank_needs_policy() -> None:
    sel = PCRSelectionList.from_mapping({"sha1": [0]})
    digest = pcr_composite_digest(int(TPMAlg.SHA256), [bytes(20)])
    msg = attest(attested=QuoteInfo(sel, digest)).marshal()
    pcrs = {"sha1": {0: bytes(20)}}
    with pytest.raises(HashPolicyError):
        verify(msg, sign(msg), pcrs=pcrs)
    verify(msg, sign(msg), pcrs=pcrs, policy=QuotePolicy(allowed_banks=frozenset({"sha1"})))


def test_firmware_policy() -> None:
    msg = attest().marshal()
    sig = sign(msg)
    verify(msg, sig, policy=QuotePolicy(firmware_versions=frozenset({0x20191023})))
    with pytest.raises(FirmwarePolicyError):
        verify(msg, sig, policy=QuotePolicy(firmware_versions=frozenset({1})))
    with pytest.raises(FirmwarePolicyError):
        verify(msg, sig, policy=QuotePolicy(min_firmware_version=0x20200000))


def test_ak_attributes_policy() -> None:
    decrypting = dataclasses.replace(ECC_AK, attributes=ECC_AK.attributes | TPMAObject.DECRYPT)
    not_restricted = dataclasses.replace(
        ECC_AK, attributes=ECC_AK.attributes & ~TPMAObject.RESTRICTED
    )
    msg = attest().marshal()
    for ak in (decrypting, not_restricted):
        with pytest.raises(PolicyError):
            verify(msg, sign(msg), ak)
        verify(msg, sign(msg), ak, policy=QuotePolicy(require_ak_attributes=False))


def test_scheme_null_ak_accepts_signature_scheme() -> None:
    ak = public_from_key(ECC.public_key(), scheme=Scheme())
    msg = attest().marshal()
    verify(msg, sign(msg), ak)


def test_safe_zero_is_a_warning_or_an_error() -> None:
    msg = attest(clock_info=ClockInfo(5000, 3, 0, False)).marshal()
    v = verify(msg, sign(msg))
    assert v.warnings  # type: ignore[attr-defined]
    with pytest.raises(PolicyError):
        verify(msg, sign(msg), policy=QuotePolicy(require_safe=True))


@pytest.mark.parametrize(
    ("last", "outcome"),
    [
        (QuoteState(3, 1, 4999), None),
        (QuoteState(3, 1, 5000), ClockRegressionError),  # replay: same clock
        (QuoteState(3, 1, 6000), ClockRegressionError),  # clock went back
        (QuoteState(3, 2, 10), ClockRegressionError),  # restartCount went back
        (QuoteState(4, 0, 10), ClockRegressionError),  # resetCount went back
        (QuoteState(3, 0, 9000), "restart"),  # resume: clock not compared
        (QuoteState(2, 7, 9000), "reset"),  # reboot: restart and clock may drop
    ],
)
def test_clock_rules(last: QuoteState, outcome: object) -> None:
    msg = attest().marshal()
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            verify(msg, sign(msg), last=last)
    else:
        assert verify(msg, sign(msg), last=last).reboot == outcome  # type: ignore[attr-defined]


def test_signed_garbage_is_malformed_and_empty_nonce_is_misuse() -> None:
    garbage = b"\xff\x54\x43\x47\x80\x18"
    with pytest.raises(MalformedInputError):
        verify(garbage, sign(garbage))
    msg = attest().marshal()
    with pytest.raises(ValueError):
        verify(msg, sign(msg), nonce=b"")


def test_every_failure_is_a_verification_error() -> None:
    msg = attest().marshal()
    sig = sign(msg)
    for i in range(len(msg)):
        bad = bytearray(msg)
        bad[i] ^= 0xFF
        with pytest.raises(VerificationError):
            verify(bytes(bad), sig)
    assert hashlib.sha256(msg).digest()


def test_p384_ak_with_sha384() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    ak = public_from_key(key.public_key(), scheme=Scheme(int(TPMAlg.ECDSA), int(TPMAlg.SHA384)))
    digest = pcr_composite_digest(int(TPMAlg.SHA384), [PCRS["sha256"][i] for i in (0, 7, 16)])
    msg = attest(attested=QuoteInfo(SEL, digest)).marshal()
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hash_for(int(TPMAlg.SHA384)))))
    sig = Signature(int(TPMAlg.ECDSA), int(TPMAlg.SHA384), r=r.to_bytes(48, "big"),
                    s=s.to_bytes(48, "big")).marshal()  # fmt: skip
    verify(msg, sig, ak)
    with pytest.raises(PCRDigestError):  # a digest made with the wrong hash
        wrong = attest().marshal()
        r, s = decode_dss_signature(key.sign(wrong, ec.ECDSA(hash_for(int(TPMAlg.SHA384)))))
        verify(wrong, Signature(int(TPMAlg.ECDSA), int(TPMAlg.SHA384), r=r.to_bytes(48, "big"),
                                s=s.to_bytes(48, "big")).marshal(), ak)  # fmt: skip
