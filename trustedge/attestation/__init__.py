"""Attestation: TPM quote verification and the backends that produce quotes.

:func:`verify_quote` checks a TPM2_Quote strictly and returns a
:class:`VerifiedQuote` or raises a :class:`~trustedge.errors.VerificationError`
subclass. Backends (``trustedge.attestation.backends``) produce quotes: the
pure-Python ``SoftwareTPM`` and the tpm2-pytss ``Tpm2Backend``.
"""

from __future__ import annotations

from trustedge.attestation.quote import (
    AttestationKey,
    ClockRegressionError,
    FirmwarePolicyError,
    HashPolicyError,
    PCRDigestError,
    PCRSelectionError,
    QualifiedSignerError,
    QuoteFormatError,
    QuoteNonceError,
    QuotePolicy,
    QuoteSignatureError,
    QuoteState,
    VerifiedQuote,
    verify_quote,
)

__all__ = [
    "AttestationKey",
    "ClockRegressionError",
    "FirmwarePolicyError",
    "HashPolicyError",
    "PCRDigestError",
    "PCRSelectionError",
    "QualifiedSignerError",
    "QuoteFormatError",
    "QuoteNonceError",
    "QuotePolicy",
    "QuoteSignatureError",
    "QuoteState",
    "VerifiedQuote",
    "verify_quote",
]
