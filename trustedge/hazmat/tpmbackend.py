"""The backend protocol every TPM implementation of trustedge satisfies.

.. warning:: hazmat. This is the raw device interface; most callers want
   ``trustedge.attestation`` (Attester/Verifier) instead.

Two implementations exist: ``trustedge.attestation.backends.software.SoftwareTPM``
(pure Python, persistent state) and ``trustedge.attestation.backends.tpm2.Tpm2Backend``
(tpm2-pytss, a real TPM or swtpm). One behaviour suite runs against both.

The protocol lives at this low level, and speaks only bytes, ints and small
dataclasses, so that envelope encryption (TPM-sealed KEKs) and OTA rollback
state (NV counters) can use a TPM without importing the attestation layer.

Encodings on the wire are TPM 2.0 marshalled structures, exactly as a TPM
produces them and as tpm2-tools writes them to files:

* public keys: ``TPM2B_PUBLIC`` (what ``tpm2_readpublic -o`` writes);
* quotes: the raw ``TPMS_ATTEST`` (``tpm2_quote -m``) and a ``TPMT_SIGNATURE``
  (``tpm2_quote -s``).

Bank names are the lowercase names used everywhere in trustedge:
``"sha1"``, ``"sha256"``, ``"sha384"``, ``"sha512"``, ``"sm3_256"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from trustedge.errors import MalformedInputError, VerificationError

__all__ = [
    "AKAlgorithm",
    "AKHandle",
    "BackendInfo",
    "EKKind",
    "PCRSelection",
    "PCRValues",
    "QuoteResult",
    "TPMBackend",
    "unseal_with_policies",
]

#: Endorsement key types (TCG EK Credential Profile templates).
EKKind = Literal["rsa2048", "ecc-p256", "ecc-p384"]

#: Attestation key algorithms and signature schemes.
AKAlgorithm = Literal["ecc-p256-ecdsa", "rsa2048-rsassa", "rsa2048-rsapss"]

#: A PCR selection: bank name -> PCR indices (order irrelevant; TPM order is ascending).
PCRSelection = Mapping[str, Sequence[int]]

#: PCR values: bank name -> {PCR index -> digest}.
PCRValues = dict[str, dict[int, bytes]]


@dataclass(frozen=True)
class BackendInfo:
    """What a backend says about itself (``trustedge tpm info``)."""

    kind: Literal["software", "tpm"]
    manufacturer: str
    firmware_version: int
    banks: tuple[str, ...]
    ek_certificate_present: bool
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AKHandle:
    """An attestation key known to a backend.

    ``public`` is the AK's marshalled ``TPM2B_PUBLIC``; ``name`` its TPM name
    (nameAlg || H(TPMT_PUBLIC)); ``blob`` an opaque byte string with which
    :meth:`TPMBackend.load_ak` finds the key again later (a context/blob for a
    real TPM, a key id for the software TPM). ``ek_kind`` is the EK it lives under.
    """

    public: bytes
    name: bytes
    blob: bytes
    algorithm: AKAlgorithm
    ek_kind: EKKind


@dataclass(frozen=True)
class QuoteResult:
    """A quote as the TPM returned it, plus the PCR values it covers.

    ``message`` is the raw ``TPMS_ATTEST`` that was signed, ``signature`` the
    ``TPMT_SIGNATURE``; ``pcrs`` the values read in the same call.
    Nothing here is verified: pass it to ``trustedge.attestation.verify_quote``.
    """

    message: bytes
    signature: bytes
    pcrs: PCRValues


@runtime_checkable
class TPMBackend(Protocol):
    """Operations trustedge needs from a TPM. Failures raise ``BackendError``
    (with the TPM response code when there is one) or ``BackendUnavailableError``."""

    def info(self) -> BackendInfo: ...

    # -- endorsement and attestation keys ---------------------------------
    def ek_public(self, kind: EKKind = "rsa2048") -> bytes:
        """The EK's ``TPM2B_PUBLIC`` (created from the TCG template when needed)."""
        ...

    def ek_certificate(self, kind: EKKind = "rsa2048") -> bytes | None:
        """The EK certificate (DER) from its NV index, or None when absent."""
        ...

    def create_ak(
        self, algorithm: AKAlgorithm = "ecc-p256-ecdsa", *, ek_kind: EKKind = "rsa2048"
    ) -> AKHandle:
        """Create a restricted signing key under the EK (tpm2_createak-style)."""
        ...

    def load_ak(self, blob: bytes) -> AKHandle:
        """Find an AK again from :attr:`AKHandle.blob`."""
        ...

    def activate_credential(
        self, ak: AKHandle, credential_blob: bytes, encrypted_secret: bytes
    ) -> bytes:
        """TPM2_ActivateCredential with the AK's EK; returns the secret.

        ``credential_blob`` is the ``TPM2B_ID_OBJECT`` and ``encrypted_secret``
        the ``TPM2B_ENCRYPTED_SECRET`` (both with their size prefix), as
        MakeCredential returns them.
        """
        ...

    # -- PCRs and quotes ----------------------------------------------------
    def pcr_read(self, selection: PCRSelection) -> PCRValues: ...

    def pcr_extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        """Extend PCR ``index`` in each given bank with the given digest."""
        ...

    def pcr_reset(self, index: int) -> None:
        """Reset a resettable PCR (16 or 23 at locality 0)."""
        ...

    def quote(self, ak: AKHandle, nonce: bytes, selection: PCRSelection) -> QuoteResult: ...

    # -- NV counters ----------------------------------------------------------
    def nv_counter_define(self, index: int) -> None: ...

    def nv_counter_increment(self, index: int) -> int:
        """Increment and return the new value."""
        ...

    def nv_counter_read(self, index: int) -> int: ...

    def nv_counter_undefine(self, index: int) -> None: ...

    # -- NV extend indices (measurements no command can reset) ---------------
    def nv_extend_define(self, index: int) -> bytes:
        """Define a SHA-256 ``TPM_NT_EXTEND`` index with
        ``trustedge.hazmat.tpm2.nv.EXTEND_ATTRIBUTES`` and an empty auth value;
        returns its ``TPMS_NV_PUBLIC`` (as defined, not written). An index that
        already exists with exactly that public area is kept (idempotent);
        any other index at ``index`` raises ``BackendError``."""
        ...

    def nv_extend(self, index: int, digest: bytes) -> None:
        """TPM2_NV_Extend: value = SHA-256(value || digest); the first extend
        after definition or a TPM Reset starts from 32 zero bytes."""
        ...

    def nv_extend_read(self, index: int) -> bytes | None:
        """The index's value, or None while it has not been written since the
        last TPM Reset (no measurement yet)."""
        ...

    def nv_undefine(self, index: int) -> None:
        """Delete an NV index (owner authorization)."""
        ...

    def nv_certify(
        self, ak: AKHandle, index: int, nonce: bytes, *, size: int = 8, offset: int = 0
    ) -> tuple[bytes, bytes]:
        """TPM2_NV_Certify of ``size`` bytes at ``offset`` with ``nonce`` as
        qualifyingData: ``(TPMS_ATTEST, TPMT_SIGNATURE)``, the attest of type
        ATTEST_NV (TPMS_NV_CERTIFY_INFO: index name, offset, contents)."""
        ...

    # -- sealing --------------------------------------------------------------
    def seal(
        self, secret: bytes, *, pcrs: PCRSelection | None = None, auth: bytes | None = None
    ) -> bytes:
        """Seal ``secret`` (at most 128 bytes) to the current values of ``pcrs``
        and/or an auth value; returns an opaque blob for :meth:`unseal`."""
        ...

    def unseal(self, blob: bytes, *, auth: bytes | None = None) -> bytes:
        """Unseal; raises ``VerificationError`` when the PCR policy or auth fails."""
        ...

    # -- signed PCR policies (TPM2_PolicyAuthorize) --------------------------------
    def nv_name(self, index: int) -> bytes:
        """The NV index's name as the TPM computes it now (``TPMA_NV_WRITTEN``
        included): what a PolicyNV over the index hashes."""
        ...

    def seal_authorized(self, secret: bytes, *, authority: bytes, policy_ref: bytes = b"") -> bytes:
        """Seal ``secret`` (at most 128 bytes) with ``authPolicy =
        PolicyAuthorize(name(authority), policy_ref)``; ``authority`` is the
        ``TPM2B_PUBLIC`` of the key whose signed policies unseal it
        (``trustedge.hazmat.tpm2.policy.authority_public``)."""
        ...

    def unseal_authorized(self, blob: bytes, policy: bytes, *, authority: bytes) -> bytes:
        """Unseal with a signed policy (``SignedPolicy.encode()``): the TPM checks
        the signature (VerifySignature ticket), runs PolicyPCR over the current
        values and PolicyNV(counter <= version), and PolicyAuthorize. Raises
        ``SignatureError`` (not the authority's signature), ``PolicyError`` (PCRs
        or counter outside the policy, wrong authority), ``MalformedInputError``."""
        ...


def unseal_with_policies(
    backend: TPMBackend, blob: bytes, policies: Sequence[bytes], *, authority: bytes
) -> bytes:
    """Unseal a :meth:`TPMBackend.seal_authorized` blob with the first of ``policies``
    (``SignedPolicy.encode()`` documents) the TPM accepts.

    Before an update commits a device holds the current and the pending policy; whichever
    matches the booted chain (and is not revoked) unseals. A policy that is junk, stale or
    another chain's does not hide the others: when none unseals, ``VerificationError``
    names each one's failure (no policy at all is a failure too).
    """
    if not policies:
        raise VerificationError("no signed PCR policy to unseal with")
    errors = []
    for number, policy in enumerate(policies, 1):
        try:
            return backend.unseal_authorized(blob, policy, authority=authority)
        except (VerificationError, MalformedInputError) as exc:
            errors.append(f"policy {number}: {exc}")
    raise VerificationError("; ".join(errors))
