"""Attestation: remote attestation end to end, and TPM quote verification.

Device side: :class:`Attester` turns a TPM backend, its AK and the
measurement logs into an :class:`Evidence` bundle. Verifier side:
:class:`Verifier` enrolls devices by credential activation, issues nonces
and appraises evidence into a signed EAR (:func:`verify_result` for
relying parties), keeping its state in a ``VerifierStore``
(``trustedge.attestation.store``). Underneath, :func:`verify_quote` checks a
TPM2_Quote strictly. Backends (``trustedge.attestation.backends``) produce
quotes: the pure-Python ``SoftwareTPM`` and the tpm2-pytss ``Tpm2Backend``.
"""

from __future__ import annotations

from trustedge.attestation.attester import Attester, EnrollmentRequest
from trustedge.attestation.ear import AttestationResult, TrustTier, verify_result
from trustedge.attestation.evidence import Evidence
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
from trustedge.attestation.verifier import (
    AppraisalOutcome,
    AppraisalPolicy,
    AttestationChallenge,
    TrustAnchors,
    Verifier,
    load_appraisal_policy,
)

__all__ = [
    "AppraisalOutcome",
    "AppraisalPolicy",
    "AttestationChallenge",
    "AttestationResult",
    "Attester",
    "EnrollmentRequest",
    "Evidence",
    "TrustAnchors",
    "TrustTier",
    "Verifier",
    "load_appraisal_policy",
    "verify_result",
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
