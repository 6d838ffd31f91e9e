"""Attestation: remote attestation end to end, and TPM quote verification.

Device side: :class:`Attester` turns a TPM backend, its AK and the
measurement logs into an :class:`UnverifiedEvidence` bundle (``Evidence`` is
its earlier name). Verifier side, in layers:

* :func:`appraise` -- the pure appraisal core (no store, no key, no I/O):
  evidence, the device's :class:`EnrolledDevice`, an :class:`AppraisalPolicy`
  and the :class:`AppraisalState` of the last accepted appraisal in, an
  :class:`Appraisal` out; :func:`verify_evidence` is the one-shot recipe over
  it (a pinned AK; raises unless the evidence affirms);
* :class:`Enrollment` -- EK certificate check and credential activation;
* :class:`ResultSigner` -- signs an appraisal as an EAR (:func:`verify_result`
  for relying parties returns a :class:`VerifiedResult`);
* :class:`Verifier` -- a thin orchestrator: nonces, ``appraise``, the store
  commit (``trustedge.attestation.store``) and signing.

Underneath, :func:`verify_quote` checks a TPM2_Quote strictly. Backends
(``trustedge.attestation.backends``) produce quotes: the pure-Python
``SoftwareTPM`` and the tpm2-pytss ``Tpm2Backend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export

if TYPE_CHECKING:
    from trustedge.attestation.appraisal import (
        Appraisal,
        AppraisalState,
        EnrolledDevice,
        EvidenceRejectedError,
        appraise,
        verify_evidence,
    )
    from trustedge.attestation.attester import Attester, EnrollmentRequest
    from trustedge.attestation.ear import (
        AttestationResult,
        TrustTier,
        VerifiedResult,
        verify_result,
    )
    from trustedge.attestation.enrollment import Enrollment
    from trustedge.attestation.evidence import Evidence, UnverifiedEvidence
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
        signature_from_plain,
        verify_quote,
    )
    from trustedge.attestation.signer import ResultSigner
    from trustedge.attestation.verifier import (
        AppraisalOutcome,
        AppraisalPolicy,
        AttestationChallenge,
        TrustAnchors,
        Verifier,
        load_appraisal_policy,
    )

__all__ = [
    "Appraisal",
    "AppraisalState",
    "EnrolledDevice",
    "Enrollment",
    "EvidenceRejectedError",
    "ResultSigner",
    "UnverifiedEvidence",
    "VerifiedResult",
    "appraise",
    "verify_evidence",
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
    "signature_from_plain",
    "verify_quote",
]

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "Appraisal": "trustedge.attestation.appraisal",
    "AppraisalState": "trustedge.attestation.appraisal",
    "EnrolledDevice": "trustedge.attestation.appraisal",
    "EvidenceRejectedError": "trustedge.attestation.appraisal",
    "appraise": "trustedge.attestation.appraisal",
    "verify_evidence": "trustedge.attestation.appraisal",
    "Attester": "trustedge.attestation.attester",
    "EnrollmentRequest": "trustedge.attestation.attester",
    "AttestationResult": "trustedge.attestation.ear",
    "TrustTier": "trustedge.attestation.ear",
    "VerifiedResult": "trustedge.attestation.ear",
    "verify_result": "trustedge.attestation.ear",
    "Enrollment": "trustedge.attestation.enrollment",
    "Evidence": "trustedge.attestation.evidence",
    "UnverifiedEvidence": "trustedge.attestation.evidence",
    "AttestationKey": "trustedge.attestation.quote",
    "ClockRegressionError": "trustedge.attestation.quote",
    "FirmwarePolicyError": "trustedge.attestation.quote",
    "HashPolicyError": "trustedge.attestation.quote",
    "PCRDigestError": "trustedge.attestation.quote",
    "PCRSelectionError": "trustedge.attestation.quote",
    "QualifiedSignerError": "trustedge.attestation.quote",
    "QuoteFormatError": "trustedge.attestation.quote",
    "QuoteNonceError": "trustedge.attestation.quote",
    "QuotePolicy": "trustedge.attestation.quote",
    "QuoteSignatureError": "trustedge.attestation.quote",
    "QuoteState": "trustedge.attestation.quote",
    "VerifiedQuote": "trustedge.attestation.quote",
    "signature_from_plain": "trustedge.attestation.quote",
    "verify_quote": "trustedge.attestation.quote",
    "ResultSigner": "trustedge.attestation.signer",
    "AppraisalOutcome": "trustedge.attestation.verifier",
    "AppraisalPolicy": "trustedge.attestation.verifier",
    "AttestationChallenge": "trustedge.attestation.verifier",
    "TrustAnchors": "trustedge.attestation.verifier",
    "Verifier": "trustedge.attestation.verifier",
    "load_appraisal_policy": "trustedge.attestation.verifier",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
