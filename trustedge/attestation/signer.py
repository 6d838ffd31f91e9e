"""Signing appraisal results: the only part of a verifier that holds a private key.

:class:`ResultSigner` turns an :class:`~trustedge.attestation.appraisal.Appraisal`
into a signed EAR (JWT or CWT, :mod:`trustedge.attestation.ear`) with the
device's submod, the ``model`` submod when there is one, and the nonce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from trustedge.attestation import ear
from trustedge.attestation._signing import PrivateKey
from trustedge.attestation.appraisal import Appraisal
from trustedge.attestation.ear import AttestationResult, VerifierId
from trustedge.attestation.modellog import MODEL_SUBMOD

__all__ = ["RESULT_MEDIA_TYPES", "AppraisalOutcome", "ResultSigner"]

#: The media type of a signed EAR by result format.
RESULT_MEDIA_TYPES: Final = {"jwt": "application/eat+jwt", "cwt": "application/eat+cwt"}

#: The submod name of an appraisal whose evidence did not decode (no device id).
MALFORMED_SUBMOD = "evidence"


@dataclass(frozen=True)
class AppraisalOutcome:
    """The signed result (``token``: JWT text or CWT bytes) and what it says."""

    token: str | bytes
    result: AttestationResult
    appraisal: ear.Appraisal
    device_id: str

    @property
    def status(self) -> ear.TrustTier:
        """The result's status: the worst over every submod (the device's
        ``appraisal`` and, with a model policy, ``model``)."""
        return self.result.status


@dataclass(frozen=True)
class ResultSigner:
    """Signs results with ``key`` (P-256 -> ES256, Ed25519 -> EdDSA) as ``result_format``
    (``"jwt"`` or ``"cwt"``), naming the verifier ``verifier_id``."""

    key: PrivateKey
    result_format: Literal["jwt", "cwt"] = "jwt"
    verifier_id: VerifierId = field(
        default_factory=lambda: VerifierId(build="trustedge", developer="trustedge")
    )

    def __post_init__(self) -> None:
        if self.result_format not in ("jwt", "cwt"):
            raise ValueError("result_format must be 'jwt' or 'cwt'")

    def sign(self, result: AttestationResult) -> str | bytes:
        """The signed EAR: JWT text or CWT bytes."""
        if self.result_format == "cwt":
            return ear.sign_cwt(result, self.key)
        return ear.sign_jwt(result, self.key)

    def sign_appraisal(self, appraisal: Appraisal, *, now: int) -> AppraisalOutcome:
        """The EAR of ``appraisal`` issued at ``now``, signed."""
        submod = appraisal.device_id or MALFORMED_SUBMOD
        verdict = appraisal.result
        submods = {submod: verdict}
        models = appraisal.models
        if models is not None:
            submods[MODEL_SUBMOD] = models
        result = AttestationResult(
            issued_at=now,
            verifier_id=self.verifier_id,
            submods=submods,
            nonce=appraisal.nonce,
        )
        return AppraisalOutcome(self.sign(result), result, verdict, submod)
