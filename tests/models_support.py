"""Shared helpers of the model-signing tests: model directories, key files and
a small certificate chain (root CA -> intermediate CA -> code-signing leaf)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def make_model(root: Path, sizes: dict[str, int], seed: int = 1) -> Path:
    """A model directory with files of the given sizes (deterministic bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(sizes.items()):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        unit = bytes((seed * 31 + i * 7 + j) & 0xFF for j in range(251))
        data = (unit * (size // len(unit) + 1))[:size]
        p.write_bytes(data)
    return root


def write_private(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_public(path: Path, key: PrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@dataclass(frozen=True)
class Chain:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    def write(self, directory: Path) -> tuple[Path, Path, Path, Path]:
        """(leaf key, signing chain: leaf + intermediate, root, leaf alone) as PEM files."""
        pem = serialization.Encoding.PEM
        key = write_private(directory / "leaf.key", self.leaf_key)
        chain = directory / "chain.pem"
        chain.write_bytes(self.leaf.public_bytes(pem) + self.intermediate.public_bytes(pem))
        root = directory / "root.pem"
        root.write_bytes(self.root.public_bytes(pem))
        leaf = directory / "leaf.pem"
        leaf.write_bytes(self.leaf.public_bytes(pem))
        inter = directory / "intermediate.pem"
        inter.write_bytes(self.intermediate.public_bytes(pem))
        return key, chain, root, leaf


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    code_signing: bool = True,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        oid = ExtendedKeyUsageOID
        usage = oid.CODE_SIGNING if code_signing else oid.SERVER_AUTH
        eku = [usage]
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_chain(*, code_signing: bool = True) -> Chain:
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("test root CA", root_key, "test root CA", root_key, ca=True)
    inter = _cert("test intermediate CA", inter_key, "test root CA", root_key, ca=True)
    leaf = _cert(
        "model signer",
        leaf_key,
        "test intermediate CA",
        inter_key,
        ca=False,
        code_signing=code_signing,
    )
    return Chain(root, inter, leaf, leaf_key)
