"""Key material of the software TPM: a DRBG, deterministic key generation, the EK certificate."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ObjectIdentifier

__all__ = ["Drbg", "ek_certificate", "generate_ecc", "generate_rsa", "manufacturer_ca"]

_SMALL_PRIMES: Final = tuple(
    p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))
)


class Drbg:
    """Random bytes: ``os.urandom`` or, with a seed, an HMAC-SHA256 stream
    keyed by the seed (deterministic mode, for test vectors only).
    ``counter`` is persisted so that a reloaded state continues the stream."""

    def __init__(self, seed: bytes | None, counter: int = 0) -> None:
        self.seed = seed
        self.counter = counter

    @property
    def deterministic(self) -> bool:
        return self.seed is not None

    def __call__(self, n: int) -> bytes:
        if self.seed is None:
            return os.urandom(n)
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hmac.new(self.seed, self.counter.to_bytes(8, "big"), hashlib.sha256).digest()
        return out[:n]


def _probable_prime(n: int, rand: Drbg) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(40):
        a = 2 + int.from_bytes(rand(len(str(n))), "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rand: Drbg) -> int:
    while True:
        c = int.from_bytes(rand(bits // 8), "big") | (3 << (bits - 2)) | 1
        if (c - 1) % 65537 and _probable_prime(c, rand):
            return c


def generate_rsa(bits: int, rand: Drbg) -> rsa.RSAPrivateKey:
    """An RSA key with e = 65537: OpenSSL's generator normally; from the DRBG
    in deterministic mode."""
    if not rand.deterministic:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    e = 65537
    while True:
        p, q = _prime(bits // 2, rand), _prime(bits // 2, rand)
        if p != q and (p * q).bit_length() == bits:
            break
    if p < q:
        p, q = q, p
    d = pow(e, -1, (p - 1) * (q - 1))
    nums = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )  # fmt: skip
    return nums.private_key()


_ORDERS: Final = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
}


def generate_ecc(curve: ec.EllipticCurve, rand: Drbg) -> ec.EllipticCurvePrivateKey:
    """An ECC key on ``curve``: random normally, from the DRBG in deterministic mode."""
    if not rand.deterministic:
        return ec.generate_private_key(curve)
    order = _ORDERS[curve.name]
    scalar = int.from_bytes(rand((curve.key_size + 7) // 8 + 8), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


#: TCG OIDs of the EK Credential Profile.
_TCG_EK_CERTIFICATE: Final = ObjectIdentifier("2.23.133.8.1")
_TPM_MANUFACTURER: Final = ObjectIdentifier("2.23.133.2.1")
_TPM_MODEL: Final = ObjectIdentifier("2.23.133.2.2")
_TPM_VERSION: Final = ObjectIdentifier("2.23.133.2.3")
_NOT_BEFORE: Final = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER: Final = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


_CA_USAGE: Final = x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def manufacturer_ca(key: ec.EllipticCurvePrivateKey, rand: Drbg) -> x509.Certificate:
    """The software TPM's own self-signed "manufacturer" CA (never a hardware root)."""
    name = x509.Name([
        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "trustedge"),
        x509.NameAttribute(x509.NameOID.COMMON_NAME, "trustedge SoftwareTPM EK CA (not hardware)"),
    ])  # fmt: skip
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(rand(16), "big") >> 1 | 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    return _sign(builder, key, rand)


def _sign(
    builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, rand: Drbg
) -> x509.Certificate:
    if rand.deterministic:
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(key, hashes.SHA256())


def ek_certificate(
    ek_public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    rand: Drbg,
) -> x509.Certificate:
    """An EK certificate in the TCG profile's shape: empty subject, a critical
    SAN with the TPM manufacturer/model/version, EKU 2.23.133.8.1."""
    san = x509.SubjectAlternativeName([
        x509.DirectoryName(x509.Name([x509.RelativeDistinguishedName([
            x509.NameAttribute(_TPM_MANUFACTURER, "id:54455347"),
            x509.NameAttribute(_TPM_MODEL, "trustedge-software-tpm"),
            x509.NameAttribute(_TPM_VERSION, "id:00010000"),
        ])]))
    ])  # fmt: skip
    key_usage = (
        x509.KeyUsage(False, False, True, False, False, False, False, False, False)
        if isinstance(ek_public, rsa.RSAPublicKey)
        else x509.KeyUsage(False, False, False, False, True, False, False, False, False)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(ek_public)
        .serial_number(int.from_bytes(rand(16), "big") >> 1 | 1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(san, critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([_TCG_EK_CERTIFICATE]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    return _sign(builder, ca_key, rand)
