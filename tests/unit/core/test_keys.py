"""The one key loader: every encoding users have, and only trustedge errors on bad bytes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from hypothesis import given
from hypothesis import strategies as st

from trustedge import keys
from trustedge.cose import encode_key
from trustedge.errors import MalformedInputError, TrustedgeError, UnsupportedAlgorithmError

DATA = Path(__file__).resolve().parents[2] / "data" / "keys"
PEM, DER, RAW = serialization.Encoding.PEM, serialization.Encoding.DER, serialization.Encoding.Raw
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS8 = serialization.PrivateFormat.PKCS8
NOENC = serialization.NoEncryption()


def _same(a: object, b: object) -> bool:
    return a.public_bytes(DER, SPKI) == b.public_bytes(DER, SPKI)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
        ed448.Ed448PrivateKey.generate,
    ],
)
def test_signature_keys_in_every_encoding(make: object) -> None:
    key = make()  # type: ignore[operator]
    pub = key.public_key()
    encodings = [
        pub.public_bytes(PEM, SPKI),
        pub.public_bytes(DER, SPKI),
        key.private_bytes(PEM, PKCS8, NOENC),
        key.private_bytes(DER, PKCS8, NOENC),
        encode_key(pub),
        encode_key(key, include_private=True),
    ]
    for data in encodings:
        assert _same(keys.load_public_key(data), pub)
    for data in encodings[2:4] + encodings[5:]:
        assert _same(keys.load_private_key(data).public_key(), pub)


def test_encrypted_pem_asks_for_the_passphrase_only_when_needed() -> None:
    data = (DATA / "p256-encrypted-hunter2.pem").read_bytes()
    asked: list[int] = []

    def prompt() -> bytes:
        asked.append(1)
        return b"hunter2"

    assert isinstance(keys.load_private_key(data, password=prompt), ec.EllipticCurvePrivateKey)
    assert asked == [1]
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(PEM, PKCS8, NOENC)
    keys.load_private_key(plain, password=prompt)
    assert asked == [1]
    with pytest.raises(MalformedInputError, match="wrong passphrase"):
        keys.load_private_key(data, password=b"nope")
    with pytest.raises(MalformedInputError, match="encrypted and no passphrase"):
        keys.load_private_key(data)


def test_encrypted_pkcs8_der_and_sec1() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(b"pw")
    der = key.private_bytes(DER, PKCS8, enc)
    sec1 = key.private_bytes(PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc)
    for data in (der, sec1):
        assert _same(keys.load_private_key(data, password=b"pw").public_key(), key.public_key())


def test_openssh_keys() -> None:
    for name in ("id_ed25519", "id_ecdsa"):
        private = keys.load_private_key((DATA / name).read_bytes())
        public = keys.load_public_key((DATA / f"{name}.pub").read_bytes())
        assert _same(private.public_key(), public)
        assert _same(keys.load_public_key((DATA / name).read_bytes()), public)


def test_openssh_public_key_where_a_private_key_is_wanted() -> None:
    with pytest.raises(MalformedInputError, match=r"^OpenSSH key: .*ssh-ed25519 public key"):
        keys.load_private_key((DATA / "id_ed25519.pub").read_bytes())
    with pytest.raises(UnsupportedAlgorithmError, match="RSA"):
        keys.load_public_key((DATA / "id_rsa.pub").read_bytes())
    with pytest.raises(MalformedInputError, match="OpenSSH key"):
        keys.load_public_key(b"ssh-ed25519 AAAAnotbase64!! comment\n")


def test_raw_libsodium_keys() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pk = key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    seed = key.private_bytes(RAW, serialization.PrivateFormat.Raw, NOENC)
    for data in (pk, pk.hex().encode() + b"\n", base64.b64encode(pk), base64.urlsafe_b64encode(pk)):
        assert _same(keys.load_public_key(data), key.public_key())
    for data in (seed, seed + pk, (seed + pk).hex().encode(), base64.b64encode(seed + pk)):
        assert _same(keys.load_private_key(data).public_key(), key.public_key())
    with pytest.raises(MalformedInputError, match="public half"):
        keys.load_private_key(seed + bytes(32))
    box = x25519.X25519PrivateKey.generate()
    raw = box.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    assert isinstance(keys.load_agreement_public_key(raw.hex().encode()), x25519.X25519PublicKey)
    assert keys.load_raw_key(base64.b64encode(raw)) == raw
    with pytest.raises(MalformedInputError):
        keys.load_raw_key(b"\x00" * 31)


def test_agreement_keys() -> None:
    for key in (x25519.X25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        pem = key.public_key().public_bytes(PEM, SPKI)
        assert _same(keys.load_agreement_public_key(pem), key.public_key())
        priv = key.private_bytes(PEM, PKCS8, NOENC)
        assert _same(keys.load_agreement_private_key(priv).public_key(), key.public_key())
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(PEM, SPKI)
    with pytest.raises(UnsupportedAlgorithmError):
        keys.load_agreement_public_key(p384)
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(PEM, SPKI)
    with pytest.raises(UnsupportedAlgorithmError):
        keys.load_agreement_public_key(ed)


def _p256_spki_with_curve_oid(oid: bytes) -> bytes:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(DER, SPKI)
    p256 = bytes.fromhex("2a8648ce3d030107")
    return der.replace(p256, oid)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ((DATA / "sm2.pem").read_bytes(), UnsupportedAlgorithmError),
        ((DATA / "sm2.pub").read_bytes(), UnsupportedAlgorithmError),
        (_p256_spki_with_curve_oid(bytes.fromhex("2a8648ce3d030108")), UnsupportedAlgorithmError),
        (
            rsa.generate_private_key(65537, 1024).public_key().public_bytes(PEM, SPKI),
            UnsupportedAlgorithmError,
        ),
        (b"", MalformedInputError),
        (b"hello", MalformedInputError),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", MalformedInputError),
        (bytes(1 << 17), MalformedInputError),
    ],
)
def test_found_cases_raise_trustedge_errors(data: bytes, error: type[Exception]) -> None:
    """Issue 15: SM2, a changed curve OID, RSA ... were tracebacks in the CLI."""
    for load in (keys.load_public_key, keys.load_private_key, keys.load_agreement_public_key):
        with pytest.raises((MalformedInputError, UnsupportedAlgorithmError)):
            load(data)
    with pytest.raises(error):
        keys.load_public_key(data)


def test_mutated_ed25519_der_never_escapes() -> None:
    der = ed25519.Ed25519PrivateKey.generate().private_bytes(DER, PKCS8, NOENC)
    for i in range(len(der)):
        for value in (0x00, 0xFF, der[i] ^ 0x01):
            data = der[:i] + bytes([value]) + der[i + 1 :]
            for load in (keys.load_public_key, keys.load_private_key):
                try:
                    load(data)
                except TrustedgeError:
                    pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_trustedge_errors(data: bytes) -> None:
    loaders = (
        keys.load_public_key,
        keys.load_private_key,
        keys.load_agreement_public_key,
        keys.load_agreement_private_key,
    )
    for load in loaders:
        try:
            load(data)
        except TrustedgeError:
            pass
