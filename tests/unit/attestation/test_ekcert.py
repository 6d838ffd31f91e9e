"""EK certificate chain validation: real certificates made by `swtpm_setup --create-ek-cert`
with a per-test (hermetic) local CA, plus forged chains for the negative cases."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as X509VerificationError

from tests.requirements import unavailable
from tests.swtpm import Swtpm, SwtpmUnavailable
from trustedge.attestation.ekcert import (
    OID_EK_CERTIFICATE,
    load_certificates,
    verify_ek_certificate,
)
from trustedge.errors import LimitExceededError, MalformedInputError, VerificationError

# A little ahead: swtpm_setup stamps notBefore with the moment it runs, after import.
NOW = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)


@dataclass(frozen=True)
class Manufactured:
    """A TPM as swtpm_setup manufactured it: EK certs and keys, and its local CA."""

    root: x509.Certificate
    issuer: x509.Certificate
    certs: dict[str, bytes]
    keys: dict[str, object]


def manufacture(base: Path) -> Path:
    """Run swtpm_setup with its own local-CA state under ``base``; returns the TPM state dir."""
    localca = shutil.which("swtpm_localca")
    if shutil.which("swtpm_setup") is None or localca is None:
        unavailable("swtpm_setup/swtpm_localca missing (apt-get install swtpm-tools)")
    ca, state = base / "ca", base / "state"
    ca.mkdir()
    state.mkdir()
    (base / "setup.conf").write_text(
        f"create_certs_tool = {localca}\n"
        f"create_certs_tool_config = {base / 'localca.conf'}\n"
        f"create_certs_tool_options = {base / 'localca.options'}\n"
        "active_pcr_banks = sha256\n"
    )
    (base / "localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca / 'signkey.pem'}\n"
        f"issuercert = {ca / 'issuercert.pem'}\ncertserial = {ca / 'certserial'}\n"
    )
    (base / "localca.options").write_text(
        "--platform-manufacturer trustedge\n--platform-version 2.1\n--platform-model test\n"
    )
    subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert",
         "--create-platform-cert", "--lock-nvram", "--pcr-banks", "sha256", "--overwrite",
         "--config", str(base / "setup.conf"), "--logfile", str(base / "setup.log")],
        check=True, capture_output=True,
    )  # fmt: skip
    return state


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manufactured]:
    from tpm2_pytss.types import TPM2B_PUBLIC

    from trustedge.attestation.backends.tpm2 import Tpm2Backend

    base = tmp_path_factory.mktemp("manufactured")
    state = manufacture(base)
    try:
        swtpm = Swtpm(state).start()
    except SwtpmUnavailable as exc:
        unavailable(str(exc))
        raise
    certs: dict[str, bytes] = {}
    keys: dict[str, object] = {}
    try:
        with Tpm2Backend(swtpm.tcti) as backend:
            assert backend.info().ek_certificate_present
            assert backend.ek_certificate("ecc-p256") is None  # swtpm makes no P-256 EK cert
            for kind in ("rsa2048", "ecc-p384"):
                cert = backend.ek_certificate(kind)
                assert cert is not None
                certs[kind] = cert
                public = TPM2B_PUBLIC.unmarshal(backend.ek_public(kind))[0]
                keys[kind] = serialization.load_pem_public_key(bytes(public.to_pem()))
    finally:
        swtpm.cleanup()
    ca = base / "ca"
    yield Manufactured(
        root=load_certificates((ca / "swtpm-localca-rootca-cert.pem").read_bytes())[0],
        issuer=load_certificates((ca / "issuercert.pem").read_bytes())[0],
        certs=certs,
        keys=keys,
    )


@pytest.mark.tpm
@pytest.mark.parametrize("kind", ["rsa2048", "ecc-p384"])
def test_swtpm_ek_certificate_verifies(tpm: Manufactured, kind: str) -> None:
    verified = verify_ek_certificate(
        tpm.certs[kind],
        roots=[tpm.root],
        intermediates=[tpm.issuer],
        now=NOW,
        ek_public_key=tpm.keys[kind],  # type: ignore[arg-type]
    )
    assert verified.chain == (verified.certificate, tpm.issuer, tpm.root)
    assert verified.tpm_manufacturer == "id:00001014"  # IBM
    assert verified.tpm_model == "swtpm"
    assert verified.tpm_version.startswith("id:")
    san = verified.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # the reason stock validation fails
    eku = verified.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert OID_EK_CERTIFICATE in eku.value


@pytest.mark.tpm
def test_stock_client_validation_rejects_the_same_certificate(tpm: Manufactured) -> None:
    verifier = PolicyBuilder().store(Store([tpm.root])).time(NOW).build_client_verifier()
    leaf = x509.load_der_x509_certificate(tpm.certs["rsa2048"])
    with pytest.raises(X509VerificationError):
        verifier.verify(leaf, [tpm.issuer])


@pytest.mark.tpm
def test_ek_certificate_of_another_key_fails(tpm: Manufactured) -> None:
    with pytest.raises(VerificationError, match="different key"):
        verify_ek_certificate(
            tpm.certs["rsa2048"],
            roots=[tpm.root],
            intermediates=[tpm.issuer],
            now=NOW,
            ek_public_key=tpm.keys["ecc-p384"],  # type: ignore[arg-type]
        )


@pytest.mark.tpm
def test_missing_intermediate_or_wrong_root_fails(tpm: Manufactured) -> None:
    with pytest.raises(VerificationError, match="chain"):
        verify_ek_certificate(tpm.certs["rsa2048"], roots=[tpm.root], now=NOW)
    other_root = _ca("other root")[1]
    with pytest.raises(VerificationError, match="chain"):
        verify_ek_certificate(
            tpm.certs["rsa2048"], roots=[other_root], intermediates=[tpm.issuer], now=NOW
        )


@pytest.mark.tpm
def test_validity_period_is_checked_at_the_given_time(tpm: Manufactured) -> None:
    leaf = x509.load_der_x509_certificate(tpm.certs["rsa2048"])
    before = leaf.not_valid_before_utc - dt.timedelta(days=1)
    with pytest.raises(VerificationError):
        verify_ek_certificate(
            tpm.certs["rsa2048"], roots=[tpm.root], intermediates=[tpm.issuer], now=before
        )


# -- forged chains (no TPM needed) -----------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    *,
    eku: list[x509.ObjectIdentifier] | None = None,
    is_ca: bool = False,
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.DirectoryName(
                x509.Name(
                    [
                        x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.1"), "id:54455354"),
                        x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.2"), "forged"),
                        x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.3"), "id:0001"),
                    ]
                )
            )
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(san, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_forged_ek_profile_leaf_verifies_and_reports_tpm_attributes() -> None:
    key, root = _ca("forged root")
    leaf = _leaf(key, root, eku=[OID_EK_CERTIFICATE])
    verified = verify_ek_certificate(leaf, roots=[root], now=NOW)
    assert (verified.tpm_manufacturer, verified.tpm_model) == ("id:54455354", "forged")
    # No EKU at all is allowed by the EK profile.
    verify_ek_certificate(_leaf(key, root), roots=[root], now=NOW)


def test_leaf_with_foreign_eku_or_ca_flag_fails() -> None:
    key, root = _ca("forged root")
    with pytest.raises(VerificationError, match="tcg-kp-EKCertificate"):
        verify_ek_certificate(
            _leaf(key, root, eku=[ExtendedKeyUsageOID.SERVER_AUTH]), roots=[root], now=NOW
        )
    with pytest.raises(VerificationError):
        verify_ek_certificate(_leaf(key, root, is_ca=True), roots=[root], now=NOW)


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x03\x02\x01\x00", b"garbage" * 10])
def test_malformed_certificate_bytes(data: bytes) -> None:
    _, root = _ca("r")
    with pytest.raises(MalformedInputError):
        verify_ek_certificate(data, roots=[root], now=NOW)
    with pytest.raises(MalformedInputError):
        load_certificates(data)


def test_limits_and_misuse() -> None:
    _, root = _ca("r")
    with pytest.raises(LimitExceededError):
        verify_ek_certificate(bytes(70_000), roots=[root], now=NOW)
    with pytest.raises(LimitExceededError):
        load_certificates(bytes(70_000))
    with pytest.raises(ValueError):
        verify_ek_certificate(b"\x30\x00", roots=[], now=NOW)


def test_load_certificates_reads_pem_bundles_and_der() -> None:
    _, a = _ca("a")
    _, b = _ca("b")
    pem = a.public_bytes(serialization.Encoding.PEM) + b.public_bytes(serialization.Encoding.PEM)
    assert load_certificates(pem) == [a, b]
    assert load_certificates(a.public_bytes(serialization.Encoding.DER)) == [a]
