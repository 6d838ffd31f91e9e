"""Validate a TPM endorsement-key certificate against the manufacturer's CA.

EK certificates (TCG EK Credential Profile) carry a *critical* Subject
Alternative Name holding a directoryName (TPM manufacturer, model, version)
and often an empty subject; stock WebPKI path validation rejects them
("unhandled critical extension", "required EKU not found"). This module
validates the chain with WebPKI rules for the CA certificates and the EK
profile's rules for the leaf:

* the chain from the leaf to one of ``roots`` (through ``intermediates``)
  verifies at the time ``now`` that the caller passes in;
* the leaf is not a CA; an Extended Key Usage, when present, contains
  tcg-kp-EKCertificate (2.23.133.8.1);
* a Subject Alternative Name, critical or not, is accepted, and its TPM
  attributes are returned;
* optionally the certified key equals the EK the TPM reported.

Everything that fails raises: :class:`~trustedge.errors.MalformedInputError`
for bytes that are no certificate, :class:`~trustedge.errors.VerificationError`
for a certificate that does not pass.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ObjectIdentifier
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import (
    VerificationError as X509VerificationError,
)

from trustedge.errors import LimitExceededError, MalformedInputError, VerificationError

__all__ = [
    "OID_EK_CERTIFICATE",
    "VerifiedEKCertificate",
    "load_certificates",
    "verify_ek_certificate",
]

#: tcg-kp-EKCertificate, the EKU of an EK certificate.
OID_EK_CERTIFICATE: Final = ObjectIdentifier("2.23.133.8.1")
_OID_TPM_MANUFACTURER: Final = ObjectIdentifier("2.23.133.2.1")
_OID_TPM_MODEL: Final = ObjectIdentifier("2.23.133.2.2")
_OID_TPM_VERSION: Final = ObjectIdentifier("2.23.133.2.3")
_MAX_CERT: Final = 64 * 1024
_MAX_CHAIN_DEPTH: Final = 4


@dataclass(frozen=True)
class VerifiedEKCertificate:
    """An EK certificate whose chain verified; only :func:`verify_ek_certificate` makes one.

    ``chain`` runs from the leaf to the trusted root; ``tpm_manufacturer``,
    ``tpm_model`` and ``tpm_version`` come from the SAN's directoryName
    (empty when absent).
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    public_key: CertificatePublicKeyTypes
    tpm_manufacturer: str = ""
    tpm_model: str = ""
    tpm_version: str = ""


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM (one or more) or a single DER certificate.

    Raises ``MalformedInputError`` when nothing parses, ``LimitExceededError``
    for inputs over 64 KiB.
    """
    if len(data) > _MAX_CERT:
        raise LimitExceededError(f"certificate input larger than {_MAX_CERT} bytes")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise MalformedInputError(f"not an X.509 certificate: {exc}") from exc
    return certs


def _tpm_attributes(cert: x509.Certificate) -> dict[ObjectIdentifier, str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    out: dict[ObjectIdentifier, str] = {}
    for name in san.get_values_for_type(x509.DirectoryName):
        for attr in name:
            if isinstance(attr.value, str):
                out[attr.oid] = attr.value
    return out


def _check_leaf(cert: x509.Certificate) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise VerificationError("EK certificate is a CA certificate")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if OID_EK_CERTIFICATE not in eku:
        raise VerificationError("EK certificate's extended key usage lacks tcg-kp-EKCertificate")


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_ek_certificate(
    certificate: bytes,
    *,
    roots: Sequence[x509.Certificate],
    now: datetime,
    intermediates: Sequence[x509.Certificate] = (),
    ek_public_key: CertificatePublicKeyTypes | None = None,
) -> VerifiedEKCertificate:
    """Verify the DER EK ``certificate`` (as read from the TPM's NV) up to ``roots``.

    ``now`` is the validation time (timezone-aware or UTC-naive). When
    ``ek_public_key`` is given, the certified key must equal it (compare the
    key from ``Tpm2Backend.ek_public`` to bind the certificate to *this* TPM).
    Returns the verified certificate; raises ``MalformedInputError`` /
    ``VerificationError`` as described in the module docstring.
    """
    if not roots:
        raise ValueError("at least one trusted root certificate is required")
    if len(certificate) > _MAX_CERT:
        raise LimitExceededError(f"EK certificate larger than {_MAX_CERT} bytes")
    try:
        leaf = x509.load_der_x509_certificate(certificate)
    except ValueError as exc:
        raise MalformedInputError(f"EK certificate is not DER X.509: {exc}") from exc

    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(now)
        .max_chain_depth(_MAX_CHAIN_DEPTH)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            # The EK profile, not WebPKI, governs the leaf (critical SAN with a
            # directoryName, no clientAuth EKU): checked by _check_leaf below.
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except X509VerificationError as exc:
        raise VerificationError(f"EK certificate chain does not verify: {exc}") from exc
    _check_leaf(leaf)

    try:
        public_key = leaf.public_key()
    except (ValueError, TypeError) as exc:
        raise MalformedInputError(f"EK certificate key does not parse: {exc}") from exc
    if ek_public_key is not None and not hmac.compare_digest(
        _spki(public_key), _spki(ek_public_key)
    ):
        raise VerificationError("EK certificate certifies a different key than the TPM's EK")

    attrs = _tpm_attributes(leaf)
    return VerifiedEKCertificate(
        certificate=leaf,
        chain=tuple(verified.chain),
        public_key=public_key,
        tpm_manufacturer=attrs.get(_OID_TPM_MANUFACTURER, ""),
        tpm_model=attrs.get(_OID_TPM_MODEL, ""),
        tpm_version=attrs.get(_OID_TPM_VERSION, ""),
    )
