"""A real TPM 2.0 (or swtpm) through tpm2-pytss: :class:`Tpm2Backend`.

Implements :class:`trustedge.hazmat.tpmbackend.TPMBackend`. tpm2-pytss (the
optional extra ``trustedge[tpm]``, which needs libtss2) is imported only when a
backend is opened, so importing this module -- and verifying quotes -- never
needs it.

Connections are named by an explicit TCTI string, never the library default
(which silently picks whatever answers on ``localhost:2321``):

* ``device:/dev/tpmrm0`` -- the kernel resource manager (use this on devices);
* ``tabrmd:`` -- the user-space resource manager daemon;
* ``swtpm:host=127.0.0.1,port=2321`` -- swtpm (control port is always port + 1).

Without a resource manager (``/dev/tpm0``, swtpm) the TPM holds only a few
transient objects; this class flushes every object and session it creates,
on every path, so it can run indefinitely on one connection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from trustedge._fs import atomic_write
from trustedge.errors import BackendError, BackendUnavailableError, LimitExceededError
from trustedge.hazmat.tpm2.policy import (
    PCRPolicy,
    SignedPolicy,
    policy_authorize,
    version_operand,
)
from trustedge.hazmat.tpm2.public import Public
from trustedge.hazmat.tpmbackend import (
    AKAlgorithm,
    AKHandle,
    BackendInfo,
    EKKind,
    PCRSelection,
    PCRValues,
    QuoteResult,
    TPMBackend,
)

from ._tpm2_blobs import (
    PERSISTENT_FIRST,
    PERSISTENT_LAST,
    AKBlob,
    decode_ak_blob,
    decode_authorized_blob,
    decode_sealed_blob,
    encode_ak_blob,
    encode_authorized_blob,
    encode_sealed_blob,
    normalize_selection,
    read_tpm2b,
)

if TYPE_CHECKING:
    from ._tpm2_esapi import Connection

__all__ = ["Tpm2Backend"]

_MAX_SECRET: Final = 128
_MAX_NONCE: Final = 64  # TPM2B_DATA holds at most a TPMT_HA
_NV_FIRST: Final = 0x01000000
_NV_LAST: Final = 0x01FFFFFF
_MAX_AK_FILE: Final = 64 * 1024


def _check_nv_index(index: int) -> None:
    if not _NV_FIRST <= index <= _NV_LAST:
        raise ValueError(f"0x{index:x} is not an NV index (0x01000000..0x01ffffff)")


def _check_pcr(index: int) -> None:
    if not 0 <= index <= 23:
        raise ValueError(f"PCR index {index} out of range 0..23")


class Tpm2Backend:
    """A TPM reached through the TCTI string ``tcti`` (see the module docstring).

    ``owner_auth`` / ``endorsement_auth`` are the hierarchy passwords when the
    device owner set them (empty by default on most devices); the owner
    hierarchy holds the SRK, NV counters and persistent AKs, the endorsement
    hierarchy the EKs.

    Use as a context manager (or call :meth:`close`); the ESAPI context is
    closed on exit. Opening raises :class:`BackendUnavailableError` when
    tpm2-pytss/libtss2 is missing or the TPM does not answer; every TPM
    failure afterwards raises :class:`BackendError` whose ``code`` is the TPM
    response code and whose message carries the TPM's own text.

    Beyond the protocol: :meth:`persist_ak`, :meth:`evict_ak`,
    :meth:`save_ak_file`, :meth:`load_ak_file`, :meth:`nv_certify`,
    :meth:`loaded_handles`.
    """

    def __init__(
        self,
        tcti: str,
        *,
        owner_auth: bytes | None = None,
        endorsement_auth: bytes | None = None,
    ) -> None:
        if not tcti:
            raise ValueError("an explicit TCTI string is required (e.g. 'device:/dev/tpmrm0')")
        try:
            from ._tpm2_esapi import Connection
        except ImportError as exc:  # tpm2-pytss or libtss2 missing
            raise BackendUnavailableError(
                f"the TPM backend needs tpm2-pytss (pip install 'trustedge[tpm]'): {exc}"
            ) from exc
        self.tcti = tcti
        self._conn: Connection | None = Connection(tcti, owner_auth, endorsement_auth)

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Close the ESAPI context (idempotent)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __enter__(self) -> Tpm2Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def _c(self) -> Connection:
        if self._conn is None:
            raise BackendError("the TPM backend is closed")
        return self._conn

    # -- information ------------------------------------------------------------
    def info(self) -> BackendInfo:
        """Manufacturer, firmware version, allocated banks, EK certificate presence.

        ``details`` holds ``vendor`` (the vendor strings) and ``spec_revision``.
        """
        return self._c.info()

    def loaded_handles(self) -> list[int]:
        """Transient objects and sessions currently held by the TPM (0x80..., 0x02...,
        0x03...). Empty between calls of this class: a leak check for tests and agents."""
        c = self._c
        return c.handles(0x80000000) + c.handles(0x02000000) + c.handles(0x03000000)

    # -- endorsement and attestation keys --------------------------------------
    def ek_public(self, kind: EKKind = "rsa2048") -> bytes:
        """The EK's marshalled ``TPM2B_PUBLIC``, created from the TCG template
        (the template and nonce from NV when the TPM provides them)."""
        return self._c.ek_public(kind)

    def ek_certificate(self, kind: EKKind = "rsa2048") -> bytes | None:
        """The EK certificate (DER, NV padding removed) or None when its NV index
        (0x01C00002 RSA, 0x01C0000A P-256, 0x01C00016 P-384) is absent.
        Nothing is verified: see ``trustedge.attestation.ekcert``."""
        return self._c.ek_certificate(kind)

    def _handle(self, blob: AKBlob) -> AKHandle:
        return AKHandle(
            public=blob.public,
            name=self._c.name_of(blob.public),
            blob=encode_ak_blob(blob),
            algorithm=blob.algorithm,
            ek_kind=blob.ek_kind,
        )

    def create_ak(
        self, algorithm: AKAlgorithm = "ecc-p256-ecdsa", *, ek_kind: EKKind = "rsa2048"
    ) -> AKHandle:
        """A restricted signing key (fixedTPM, fixedParent, sensitiveDataOrigin,
        userWithAuth, empty auth, SHA-256 scheme) under the EK. ``blob`` holds
        the key's public and (EK-wrapped) private part; nothing stays loaded."""
        return self._handle(self._c.create_ak(algorithm, ek_kind))

    def load_ak(self, blob: bytes) -> AKHandle:
        """An AK from :attr:`AKHandle.blob`. Raises ``MalformedInputError`` for
        a blob that does not parse; a persisted AK is checked to be still there
        and the same key (``BackendError`` otherwise)."""
        parsed = decode_ak_blob(blob)
        if parsed.handle is not None:
            with self._c.ak(parsed):
                pass
        return self._handle(parsed)

    def persist_ak(self, ak: AKHandle, handle: int) -> AKHandle:
        """Make the AK persistent at ``handle`` (0x81000000..0x81ffffff, owner
        auth empty); the returned AKHandle's ``blob`` names the handle."""
        if not PERSISTENT_FIRST <= handle <= PERSISTENT_LAST:
            raise ValueError(f"0x{handle:x} is not a persistent handle")
        return self._handle(self._c.persist_ak(decode_ak_blob(ak.blob), handle))

    def evict_ak(self, ak: AKHandle) -> None:
        """Remove a persisted AK from its handle (ValueError for a non-persisted AK)."""
        parsed = decode_ak_blob(ak.blob)
        if parsed.handle is None:
            raise ValueError("this AK is not persisted")
        with self._c.ak(parsed):
            pass  # refuse to evict some other key that took the handle
        self._c.evict(parsed.handle)

    @staticmethod
    def save_ak_file(ak: AKHandle, path: str | os.PathLike[str]) -> None:
        """Write the AK blob to ``path`` atomically (``trustedge._fs.atomic_write``, mode 0600)."""
        atomic_write(Path(path), ak.blob)

    def load_ak_file(self, path: str | os.PathLike[str]) -> AKHandle:
        """:meth:`load_ak` on the contents of a file written by :meth:`save_ak_file`."""
        with open(path, "rb") as fh:
            data = fh.read(_MAX_AK_FILE + 1)
        if len(data) > _MAX_AK_FILE:
            raise LimitExceededError(f"AK file larger than {_MAX_AK_FILE} bytes")
        return self.load_ak(data)

    def activate_credential(
        self, ak: AKHandle, credential_blob: bytes, encrypted_secret: bytes
    ) -> bytes:
        """TPM2_ActivateCredential of ``ak`` with its EK (EK policy session).

        ``credential_blob`` / ``encrypted_secret`` are the size-prefixed
        ``TPM2B_ID_OBJECT`` / ``TPM2B_ENCRYPTED_SECRET``. A credential made for
        another key name or EK fails with ``BackendError`` (the TPM's integrity
        check)."""
        credential = read_tpm2b(credential_blob, "TPM2B_ID_OBJECT")
        secret = read_tpm2b(encrypted_secret, "TPM2B_ENCRYPTED_SECRET")
        return self._c.activate_credential(decode_ak_blob(ak.blob), credential, secret)

    # -- PCRs and quotes ----------------------------------------------------------
    def pcr_read(self, selection: PCRSelection) -> PCRValues:
        """Current PCR values; ``BackendError`` for a bank the TPM has not allocated."""
        return self._c.pcr_read(normalize_selection(selection))

    def pcr_extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        """Extend PCR ``index`` in each given (allocated) bank."""
        _check_pcr(index)
        self._c.pcr_extend(index, digests)

    def pcr_reset(self, index: int) -> None:
        """Reset a resettable PCR (16 or 23 at locality 0)."""
        _check_pcr(index)
        self._c.pcr_reset(index)

    def quote(self, ak: AKHandle, nonce: bytes, selection: PCRSelection) -> QuoteResult:
        """TPM2_Quote over ``selection`` (banks in the given order, indices
        ascending) with ``nonce`` as extraData (at most 64 bytes). The returned
        ``pcrs`` are read after the quote and checked against its pcrDigest
        (retried when a PCR moved in between)."""
        if len(nonce) > _MAX_NONCE:
            raise ValueError(f"nonce longer than {_MAX_NONCE} bytes")
        return self._c.quote(decode_ak_blob(ak.blob), nonce, normalize_selection(selection))

    # -- NV counters --------------------------------------------------------------
    def nv_counter_define(self, index: int, *, auth: bytes | None = None) -> None:
        """Define an 8-byte TPM_NT_COUNTER index in the owner hierarchy (empty owner auth).

        Without ``auth`` the counter is open: owner or its own (empty) auth may read and
        increment it, no dictionary-attack lockout. With ``auth`` (at most 32 bytes) its
        auth policy is PolicyCommandCode(NV_Increment) AND PolicyAuthValue: only a holder
        of ``auth`` can increment it (dictionary-attack protected), anyone reads it
        through the owner hierarchy. Reads as 0 until first incremented; the first
        increment starts from the TPM's highest counter value ever, so compare values,
        never assume a start of 1."""
        _check_nv_index(index)
        if auth is not None and not 0 < len(auth) <= 32:
            raise ValueError("a counter auth value has 1 to 32 bytes")
        self._c.nv_counter_define(index, auth)

    def nv_counter_increment(self, index: int, *, auth: bytes | None = None) -> int:
        """Increment and return the new value. ``auth`` is needed for a counter defined
        with one (``VerificationError`` when it is wrong or missing)."""
        _check_nv_index(index)
        return self._c.nv_counter_increment(index, auth)

    def nv_counter_read(self, index: int) -> int:
        """The counter's value; ``BackendError`` (TPM_RC_NV_UNINITIALIZED) before the
        first increment."""
        _check_nv_index(index)
        return self._c.nv_counter_read(index)

    def nv_counter_undefine(self, index: int) -> None:
        """Delete the index (owner auth). The TPM keeps its high-water mark."""
        _check_nv_index(index)
        self._c.nv_counter_undefine(index)

    def nv_certify(
        self, ak: AKHandle, index: int, nonce: bytes, *, size: int = 8, offset: int = 0
    ) -> tuple[bytes, bytes]:
        """TPM2_NV_Certify of ``size`` bytes at ``offset`` (default: an 8-byte
        counter): ``(TPMS_ATTEST, TPMT_SIGNATURE)``, the attest of type 0x8014
        (TPMS_NV_CERTIFY_INFO) with ``nonce`` as extraData."""
        _check_nv_index(index)
        if len(nonce) > _MAX_NONCE:
            raise ValueError(f"nonce longer than {_MAX_NONCE} bytes")
        if not (0 <= size <= 1024 and 0 <= offset <= 0xFFFF):
            raise ValueError("size must be 0..1024 and offset 0..65535")
        return self._c.nv_certify(decode_ak_blob(ak.blob), index, nonce, size, offset)

    # -- NV extend indices -----------------------------------------------------------
    def nv_extend_define(self, index: int) -> bytes:
        """Define a SHA-256 ``TPM_NT_EXTEND`` index (``EXTEND_ATTRIBUTES``, empty
        auth) in the owner hierarchy; returns its TPMS_NV_PUBLIC. Idempotent when
        the index exists with the same public area; ``BackendError`` otherwise."""
        _check_nv_index(index)
        return self._c.nv_extend_define(index)

    def nv_extend(self, index: int, digest: bytes) -> None:
        """TPM2_NV_Extend with the index's own (empty) auth."""
        _check_nv_index(index)
        if not 0 < len(digest) <= 1024:
            raise ValueError("extend data must be 1 to 1024 bytes")
        self._c.nv_extend(index, digest)

    def nv_extend_read(self, index: int) -> bytes | None:
        """The value, or None while the index is unwritten (since its definition
        or the last TPM Reset)."""
        _check_nv_index(index)
        return self._c.nv_extend_read(index)

    def nv_undefine(self, index: int) -> None:
        """Delete an NV index (owner auth)."""
        _check_nv_index(index)
        self._c.nv_counter_undefine(index)

    # -- sealing ------------------------------------------------------------------
    def seal(
        self, secret: bytes, *, pcrs: PCRSelection | None = None, auth: bytes | None = None
    ) -> bytes:
        """Seal ``secret`` (at most 128 bytes) under the owner-hierarchy ECC SRK.

        With ``pcrs`` the object's policy is PolicyPCR over their *current*
        values (plus PolicyAuthValue when ``auth`` is given); with only ``auth``
        the auth value alone guards it (dictionary-attack protected). Returns an
        opaque blob for :meth:`unseal`."""
        if len(secret) > _MAX_SECRET:
            raise ValueError(f"a sealed secret has at most {_MAX_SECRET} bytes")
        if auth is not None and len(auth) > 32:
            raise ValueError("an auth value has at most 32 bytes")
        selection = normalize_selection(pcrs) if pcrs else {}
        return encode_sealed_blob(self._c.seal(secret, selection, auth))

    def unseal(self, blob: bytes, *, auth: bytes | None = None) -> bytes:
        """Unseal a :meth:`seal` blob; ``VerificationError`` when the PCRs or the
        auth value do not match, ``MalformedInputError`` for a blob that does not parse.
        ``auth`` is ignored for a blob sealed without one."""
        return self._c.unseal(decode_sealed_blob(blob), auth)

    # -- signed PCR policies (TPM2_PolicyAuthorize) -------------------------------
    def nv_name(self, index: int) -> bytes:
        """The index's name as the TPM reports it (TPM2_NV_ReadPublic)."""
        _check_nv_index(index)
        return self._c.nv_name(index)

    def seal_authorized(self, secret: bytes, *, authority: bytes, policy_ref: bytes = b"") -> bytes:
        """Seal ``secret`` (at most 128 bytes) under the SRK with ``authPolicy =
        PolicyAuthorize(name(authority), policy_ref)`` and no user auth: only a
        session that passes an approved, signed policy unseals it."""
        if len(secret) > _MAX_SECRET:
            raise ValueError(f"a sealed secret has at most {_MAX_SECRET} bytes")
        if len(policy_ref) > 64:
            raise ValueError("policyRef has at most 64 bytes")
        name = Public.unmarshal_tpm2b(authority).name()
        public, private = self._c.seal_authorized(secret, policy_authorize(name, policy_ref))
        return encode_authorized_blob(public, private)

    def unseal_authorized(self, blob: bytes, policy: bytes, *, authority: bytes) -> bytes:
        """TPM2_LoadExternal(authority, owner) -> TPM2_VerifySignature (ticket) ->
        PolicyPCR (current values) -> PolicyNV(counter <= version) ->
        PolicyAuthorize -> Unseal, in one salted policy session."""
        public, private = decode_authorized_blob(blob)
        return self._c.unseal_authorized(public, private, SignedPolicy.decode(policy), authority)

    def trial_policy_digest(self, policy: PCRPolicy) -> bytes:
        """The digest a trial session reaches for ``policy`` (PolicyPCR with its
        pcrDigest, then PolicyNV on its index): for cross-checking
        :meth:`PCRPolicy.digest`. The NV index must exist."""

        def steps(esapi: Any, session: Any) -> None:
            from tpm2_pytss.constants import TPM2_EO
            from tpm2_pytss.types import TPM2B_DIGEST, TPM2B_OPERAND, TPML_PCR_SELECTION

            sel = "+".join(f"{b}:{','.join(map(str, i))}" for b, i in policy.selection.items())
            esapi.policy_pcr(
                session, TPM2B_DIGEST(policy.pcr_digest), TPML_PCR_SELECTION.parse(sel)
            )
            if policy.nv_name:
                nvh = esapi.tr_from_tpmpublic(policy.nv_index)
                try:
                    esapi.policy_nv(
                        nvh, nvh, session, TPM2B_OPERAND(version_operand(policy.version)),
                        TPM2_EO.UNSIGNED_LE, 0,
                    )  # fmt: skip
                finally:
                    esapi.tr_close(nvh)

        return self._c.trial_digest(steps)

    def trial_authorize_digest(self, authority: bytes, policy_ref: bytes = b"") -> bytes:
        """A trial session's digest after PolicyAuthorize(name(authority), policy_ref)."""
        name = Public.unmarshal_tpm2b(authority).name()

        def steps(esapi: Any, session: Any) -> None:
            from tpm2_pytss.types import TPM2B_DIGEST, TPM2B_NAME, TPM2B_NONCE, TPMT_TK_VERIFIED

            # A trial session checks no ticket; a NULL one (tag TPM_ST_VERIFIED, hierarchy NULL).
            ticket = TPMT_TK_VERIFIED(tag=0x8022, hierarchy=0x40000007)
            esapi.policy_authorize(
                session, TPM2B_DIGEST(b"\0" * 32), TPM2B_NAME(name), ticket, TPM2B_NONCE(policy_ref)
            )

        return self._c.trial_digest(steps)


if TYPE_CHECKING:

    def _satisfies_protocol(backend: Tpm2Backend) -> TPMBackend:
        return backend  # mypy checks every method signature against the protocol
