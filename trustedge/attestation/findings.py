"""From appraisal findings to an EAR appraisal: the AR4SI mapping in one table.

An appraisal records what it observed as :class:`Finding` values (optionally
with a detail text); :func:`appraisal_from_findings` turns them into an
:class:`~trustedge.attestation.ear.Appraisal`. The table :data:`EFFECTS`
is the single source of the mapping documented in ``docs/attest-fleet.md``.

Combining: each finding sets one or more trustworthiness claims; when several
findings set the same claim, the value in the worst tier wins (within one
tier, the lower value: e.g. ``APPROVED_RUNTIME`` 2 beats ``APPROVED_BOOT``
3). Some findings also force a minimum status (a replayed nonce says nothing
about the device's state, but the result must not affirm it). The status is
the worst of the vector's tier and every forced status.

A software-TPM AK is never evidence of genuine hardware: its finding makes
*no* hardware claim, so a software-TPM device can be affirming overall while
its ``hardware`` claim stays 0.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from trustedge.attestation import ear
from trustedge.attestation.ear import Appraisal, TrustTier, TrustVector

__all__ = ["EFFECTS", "Effect", "Finding", "appraisal_from_findings"]


class Finding(enum.Enum):
    """Something an appraisal observed."""

    # identity and freshness
    AK_ENROLLED = "ak-enrolled"
    UNKNOWN_DEVICE = "unknown-device"
    DEVICE_REVOKED = "device-revoked"
    EVIDENCE_MALFORMED = "evidence-malformed"
    QUOTE_SIGNATURE_INVALID = "quote-signature-invalid"
    QUOTE_INVALID = "quote-invalid"
    PCR_DIGEST_MISMATCH = "pcr-digest-mismatch"
    NONCE_REJECTED = "nonce-rejected"
    QUOTE_ROLLBACK = "quote-rollback"
    # platform
    HARDWARE_TPM = "hardware-tpm"
    SOFTWARE_TPM = "software-tpm"
    EK_CERT_INVALID = "ek-cert-invalid"
    CLOCK_UNSAFE = "clock-unsafe"
    # boot
    BOOT_APPROVED = "boot-approved"
    FIRMWARE_LOG_MISMATCH = "firmware-log-mismatch"
    BOOT_POLICY_VIOLATION = "boot-policy-violation"
    SECURE_BOOT_APPROVED = "secure-boot-approved"
    SECURE_BOOT_VIOLATION = "secure-boot-violation"
    # runtime (IMA)
    RUNTIME_APPROVED = "runtime-approved"
    IMA_LOG_MISMATCH = "ima-log-mismatch"
    IMA_FILE_MODIFIED = "ima-file-modified"
    IMA_FILE_UNKNOWN = "ima-file-unknown"
    IMA_BOOT_AGGREGATE_MISMATCH = "ima-boot-aggregate-mismatch"
    IMA_BOOT_AGGREGATE_UNCHECKED = "ima-boot-aggregate-unchecked"
    # models (the ``model`` submod, trustedge.attestation.modellog)
    MODEL_LOG_CERTIFIED = "model-log-certified"
    MODEL_APPROVED = "model-approved"
    MODEL_UNAPPROVED = "model-unapproved"
    MODEL_LOG_MISMATCH = "model-log-mismatch"
    MODEL_CERTIFY_INVALID = "model-certify-invalid"
    MODEL_LOG_MISSING = "model-log-missing"


@dataclass(frozen=True)
class Effect:
    """What a finding does: claims it sets, a status floor, a default reason."""

    claims: tuple[tuple[str, int], ...]
    reason: str
    min_status: TrustTier = TrustTier.NONE


_C = TrustTier.CONTRAINDICATED

EFFECTS: Final = MappingProxyType(
    {
        Finding.AK_ENROLLED: Effect(
            (("instance_identity", ear.TRUSTWORTHY_INSTANCE),),
            "quote signed by the AK enrolled for this device",
        ),
        Finding.UNKNOWN_DEVICE: Effect(
            (("instance_identity", ear.UNRECOGNIZED_INSTANCE),),
            "device or AK is not enrolled",
        ),
        Finding.DEVICE_REVOKED: Effect(
            (("instance_identity", ear.UNTRUSTWORTHY_INSTANCE),), "device is revoked"
        ),
        Finding.EVIDENCE_MALFORMED: Effect(
            (("instance_identity", ear.UNEXPECTED_EVIDENCE),),
            "evidence could not be parsed",
            _C,
        ),
        Finding.QUOTE_SIGNATURE_INVALID: Effect(
            (("instance_identity", ear.CRYPTO_VALIDATION_FAILED),),
            "quote signature does not verify with the enrolled AK",
        ),
        Finding.QUOTE_INVALID: Effect(
            (("instance_identity", ear.CRYPTO_VALIDATION_FAILED),),
            "quote structure invalid (magic, type, nonce or PCR selection)",
        ),
        Finding.PCR_DIGEST_MISMATCH: Effect(
            (("instance_identity", ear.CRYPTO_VALIDATION_FAILED),),
            "reported PCR values do not match the quoted PCR digest",
        ),
        Finding.NONCE_REJECTED: Effect((), "nonce unknown, expired or already used", _C),
        Finding.QUOTE_ROLLBACK: Effect(
            (), "quote clock state is not newer than the last accepted quote", _C
        ),
        Finding.HARDWARE_TPM: Effect(
            (("hardware", ear.GENUINE_HARDWARE),), "EK certificate chains to a trusted TPM root"
        ),
        Finding.SOFTWARE_TPM: Effect(
            (("hardware", ear.NO_CLAIM),), "AK belongs to a software TPM: no hardware claim"
        ),
        Finding.EK_CERT_INVALID: Effect(
            (("hardware", ear.UNRECOGNIZED_HARDWARE),),
            "EK certificate does not chain to a trusted root",
        ),
        Finding.CLOCK_UNSAFE: Effect(
            (("hardware", ear.UNSAFE_HARDWARE),),
            "TPM clock not safe after an unclean reset: a rollback cannot be ruled out",
        ),
        Finding.BOOT_APPROVED: Effect(
            (("executables", ear.APPROVED_BOOT),),
            "firmware event log replays to the quoted PCRs and matches the boot policy",
        ),
        Finding.FIRMWARE_LOG_MISMATCH: Effect(
            (("executables", ear.CONTRAINDICATED_RUNTIME),),
            "firmware event log does not replay to the quoted PCRs",
        ),
        Finding.BOOT_POLICY_VIOLATION: Effect(
            (("executables", ear.CONTRAINDICATED_RUNTIME),),
            "a boot component is not allowed by the policy",
        ),
        Finding.SECURE_BOOT_APPROVED: Effect(
            (("configuration", ear.APPROVED_CONFIG),), "Secure Boot on with the expected keys"
        ),
        Finding.SECURE_BOOT_VIOLATION: Effect(
            (("configuration", ear.UNSUPPORTABLE_CONFIG),),
            "Secure Boot off or its key databases are not the expected ones",
        ),
        Finding.RUNTIME_APPROVED: Effect(
            (("executables", ear.APPROVED_RUNTIME), ("file_system", ear.APPROVED_FILES)),
            "every new IMA entry is allowed by the runtime policy",
        ),
        Finding.IMA_LOG_MISMATCH: Effect(
            (("file_system", ear.CONTRAINDICATED_FILES),),
            "IMA log does not replay to the quoted PCR 10",
        ),
        Finding.IMA_FILE_MODIFIED: Effect(
            (("file_system", ear.CONTRAINDICATED_FILES),),
            "a measured file's digest differs from the allowed one",
        ),
        Finding.IMA_FILE_UNKNOWN: Effect(
            (("file_system", ear.UNRECOGNIZED_FILES),),
            "a measured file is not in the runtime policy",
        ),
        Finding.IMA_BOOT_AGGREGATE_MISMATCH: Effect(
            (("file_system", ear.CONTRAINDICATED_FILES),),
            "the IMA list's boot_aggregate does not match the quoted boot PCRs "
            "(or is missing, all zero or not entry 0)",
        ),
        # No claim: the policy does not quote PCRs 0-7, so the binding of the
        # IMA list to this boot is not checked; the result says so.
        Finding.IMA_BOOT_AGGREGATE_UNCHECKED: Effect(
            (), "boot_aggregate not checked: the policy does not quote PCRs 0-7"
        ),
        Finding.MODEL_LOG_CERTIFIED: Effect(
            (("instance_identity", ear.TRUSTWORTHY_INSTANCE),),
            "the model-log NV index was certified by the enrolled AK over the nonce",
        ),
        Finding.MODEL_APPROVED: Effect(
            (("executables", ear.APPROVED_RUNTIME),),
            "every loaded model is signed by an allowed signer or has an allowed digest",
        ),
        Finding.MODEL_UNAPPROVED: Effect(
            (("executables", ear.CONTRAINDICATED_RUNTIME),),
            "a loaded model is neither signed by an allowed signer nor an allowed digest",
        ),
        Finding.MODEL_LOG_MISMATCH: Effect(
            (("executables", ear.CONTRAINDICATED_RUNTIME),),
            "the model-load log does not replay to the certified NV value",
        ),
        Finding.MODEL_CERTIFY_INVALID: Effect(
            (("instance_identity", ear.CRYPTO_VALIDATION_FAILED),),
            "the NV certification does not verify (AK, nonce, index or boot)",
        ),
        Finding.MODEL_LOG_MISSING: Effect(
            (("executables", ear.UNRECOGNIZED_RUNTIME),),
            "no certified model measurement: the device has not loaded a model",
        ),
    }
)


def _worse(new: int, old: int | None) -> bool:
    if old is None:
        return True
    new_rank, old_rank = TrustTier.of_claim(new).rank, TrustTier.of_claim(old).rank
    return new_rank > old_rank or (new_rank == old_rank and abs(new) < abs(old))


def appraisal_from_findings(
    findings: Iterable[Finding | tuple[Finding, str]], *, policy_id: str | None = None
) -> Appraisal:
    """Combine findings into an appraisal (see the module docstring for the rules).

    Each item is a :class:`Finding` or ``(finding, detail)``; the reasons list
    gets ``"<finding>: <detail or default reason>"`` per item, in order.
    """
    claims: dict[str, int] = {}
    status = TrustTier.NONE
    reasons: list[str] = []
    for item in findings:
        finding, detail = item if isinstance(item, tuple) else (item, None)
        effect = EFFECTS[finding]
        for claim, value in effect.claims:
            if _worse(value, claims.get(claim)):
                claims[claim] = value
        if effect.min_status.rank > status.rank:
            status = effect.min_status
        reasons.append(f"{finding.value}: {detail or effect.reason}")
    vector = replace(TrustVector(), **claims)
    if vector.tier().rank > status.rank:
        status = vector.tier()
    return Appraisal(status, vector, policy_id, tuple(reasons))
