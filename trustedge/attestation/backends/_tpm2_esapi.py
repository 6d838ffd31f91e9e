"""The ESAPI work behind :class:`~trustedge.attestation.backends.tpm2.Tpm2Backend`.

This module imports tpm2-pytss at the top; ``tpm2.py`` imports it only when a
backend is opened, so ``import trustedge`` never needs libtss2.

Resource rules (swtpm and a raw ``/dev/tpm0`` have no resource manager, and
three transient object slots): every transient object and session is created
inside a ``with`` block that flushes it on every path; primary keys (EK, SRK)
are kept only as *saved contexts*, which take no slot and are re-created when
the TPM rejects them (after a reset).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_CC,
    TPM2_EO,
    TPM2_NT,
    TPM2_PT,
    TPM2_PT_NV,
    TPM2_RC,
    TPM2_SE,
    TPM2_SU,
    TPMA_NV,
    TPMA_OBJECT,
    TPMA_SESSION,
)
from tpm2_pytss.internal.templates import ek_template
from tpm2_pytss.types import (
    TPM2B_DIGEST,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_NAME,
    TPM2B_NONCE,
    TPM2B_NV_PUBLIC,
    TPM2B_OPERAND,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_ATTEST,
    TPMS_NV_PUBLIC,
    TPMS_SENSITIVE_CREATE,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SIGNATURE,
    TPMT_SYM_DEF,
    TPMU_HA,
)
from tpm2_pytss.utils import NoSuchIndex, create_ek_template

from trustedge._binary import Reader
from trustedge.errors import (
    BackendError,
    BackendUnavailableError,
    MalformedInputError,
    PolicyError,
    SignatureError,
    VerificationError,
)
from trustedge.hazmat.tpm2.constants import HASH_ALGS
from trustedge.hazmat.tpm2.nv import NVPublic
from trustedge.hazmat.tpm2.policy import SignedPolicy, authorize_hash, version_operand
from trustedge.hazmat.tpmbackend import (
    AKAlgorithm,
    BackendInfo,
    EKKind,
    PCRValues,
    QuoteResult,
)

from ._tpm2_blobs import AKBlob, SealedBlob

__all__ = ["Connection"]

_BANK_ALGS: Final = {
    "sha1": TPM2_ALG.SHA1,
    "sha256": TPM2_ALG.SHA256,
    "sha384": TPM2_ALG.SHA384,
    "sha512": TPM2_ALG.SHA512,
    "sm3_256": TPM2_ALG.SM3_256,
}
_BANK_NAMES: Final = {int(v): k for k, v in _BANK_ALGS.items()}
_DIGEST_SIZES: Final = {h.name: h.digest_size for h in HASH_ALGS}

#: tpm2-pytss EK template names and the NV index of each EK certificate.
_EK_TEMPLATES: Final[dict[str, str]] = {
    "rsa2048": "EK-RSA2048",
    "ecc-p256": "EK-ECC256",
    "ecc-p384": "EK-HIGH-ECC384",
}
_EK_CERT_INDEX: Final[dict[str, int]] = {
    "rsa2048": 0x01C00002,
    "ecc-p256": 0x01C0000A,
    "ecc-p384": 0x01C00016,
}
_AK_TEMPLATES: Final[dict[str, str]] = {
    "ecc-p256-ecdsa": "ecc256:ecdsa-sha256:null",
    "rsa2048-rsassa": "rsa2048:rsassa-sha256:null",
    "rsa2048-rsapss": "rsa2048:rsapss-sha256:null",
}
_AK_ATTRS: Final = (
    TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.SIGN_ENCRYPT
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
)
#: Storage root key (TCG provisioning guidance ECC P-256 SRK), parent of sealed objects.
_SRK_ATTRS: Final = (
    TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.DECRYPT
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
)
_COUNTER_ATTRS: Final = (
    TPMA_NV.OWNERREAD
    | TPMA_NV.OWNERWRITE
    | TPMA_NV.AUTHREAD
    | TPMA_NV.AUTHWRITE
    | TPMA_NV.NO_DA
    | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT)
)
#: Response codes that mean "the policy or the auth value did not match".
_AUTH_FAILURES: Final = frozenset(
    int(rc)
    for rc in (
        TPM2_RC.POLICY_FAIL,
        TPM2_RC.AUTH_FAIL,
        TPM2_RC.BAD_AUTH,
        TPM2_RC.PCR_CHANGED,
        TPM2_RC.POLICY,
        TPM2_RC.POLICY_CC,
        TPM2_RC.AUTH_MISSING,
    )
)
_QUOTE_ATTEMPTS: Final = 3
# TPM_PT values tpm2-pytss does not name (TPM 2.0 Part 2, 6.13).
_PT_VENDOR_STRINGS: Final = (0x106, 0x107, 0x108, 0x109)
_PT_FIRMWARE_VERSION_1: Final = 0x10B
_PT_FIRMWARE_VERSION_2: Final = 0x10C


def base_rc(rc: int) -> int:
    """A TPM response code without layer, handle, session and parameter numbers."""
    code = rc & 0xFFFF
    return code & 0xBF if code & 0x80 else code


@contextmanager
def tpm_errors(what: str) -> Iterator[None]:
    """Map TSS2 exceptions to :class:`BackendError` carrying the TPM's code and text."""
    try:
        yield
    except TSS2_Exception as exc:
        raise BackendError(f"{what}: {exc}", code=int(exc.rc)) from exc


def _unmarshal(cls: Any, data: bytes, what: str) -> Any:
    try:
        value, used = cls.unmarshal(data)
    except (TSS2_Exception, ValueError, TypeError) as exc:
        raise MalformedInputError(f"{what} does not parse: {exc}") from exc
    if used != len(data):
        raise MalformedInputError(f"{what}: {len(data) - used} trailing bytes")
    return value


def _selection_string(selection: Mapping[str, tuple[int, ...]]) -> str:
    return "+".join(f"{bank}:{','.join(map(str, idx))}" for bank, idx in selection.items())


def _der_length(data: bytes) -> int:
    """Length of the DER SEQUENCE at the start of ``data`` (NV areas may be padded)."""
    reader = Reader(data)
    if reader.u8("DER tag") != 0x30:
        raise reader.fail("EK certificate NV area does not start with a DER SEQUENCE")
    length = reader.u8("DER length")
    if length >= 0x80:
        n = length & 0x7F
        if not 1 <= n <= 3:
            raise reader.fail("EK certificate has an unsupported DER length")
        length = int.from_bytes(reader.read(n, "DER length"), "big")
    reader.skip(length, "EK certificate body")
    return reader.offset


class Connection:
    """One open ESAPI context and the per-connection caches (templates, saved contexts)."""

    def __init__(
        self, tcti: str, owner_auth: bytes | None = None, endorsement_auth: bytes | None = None
    ) -> None:
        try:
            self.esapi = ESAPI(tcti)
        except TSS2_Exception as exc:
            raise BackendUnavailableError(f"cannot open TPM at {tcti!r}: {exc}") from exc
        self._closed = False
        try:
            self._start_if_needed()
            with tpm_errors("setting hierarchy auth values"):
                if owner_auth is not None:
                    self.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
                if endorsement_auth is not None:
                    self.esapi.tr_set_auth(ESYS_TR.ENDORSEMENT, endorsement_auth)
        except BaseException:
            self.esapi.close()
            raise
        self._templates: dict[str, tuple[bytes | None, Any]] = {}
        self._contexts: dict[str, Any] = {}
        self._publics: dict[str, Any] = {}
        self._nv_buffer_max: int | None = None

    def _start_if_needed(self) -> None:
        """Send TPM2_Startup(CLEAR) when the TPM says it has not had one yet.

        Firmware normally does this; a bare swtpm (without ``startup-clear``)
        or a simulator after power-on does not.
        """
        try:
            self.esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, TPM2_PT.MANUFACTURER, 1)
            return
        except TSS2_Exception as exc:
            if base_rc(int(exc.rc)) != int(TPM2_RC.INITIALIZE):
                raise BackendUnavailableError(f"the TPM does not answer: {exc}") from exc
        with tpm_errors("TPM2_Startup(CLEAR)"):
            self.esapi.startup(TPM2_SU.CLEAR)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._contexts.clear()
            self.esapi.close()

    # -- resource handling ---------------------------------------------------
    @contextmanager
    def transient(self, handle: Any) -> Iterator[Any]:
        """Flush ``handle`` (object or session) when the block ends, however it ends.

        A failed flush is reported only when the block itself succeeded, so it
        never hides the error that is already on its way out.
        """
        ok = False
        try:
            yield handle
            ok = True
        finally:
            try:
                self.esapi.flush_context(handle)
            except TSS2_Exception as exc:
                if ok:
                    raise BackendError(f"flushing a handle: {exc}", code=int(exc.rc)) from exc

    @contextmanager
    def closing_tr(self, handle: Any) -> Iterator[Any]:
        """Release an ESAPI metadata handle (NV index, persistent object) afterwards."""
        try:
            yield handle
        finally:
            try:
                self.esapi.tr_close(handle)
            except TSS2_Exception:
                pass  # metadata only; nothing in the TPM to leak

    @contextmanager
    def session(
        self, kind: Any, auth_hash: Any = TPM2_ALG.SHA256, *, salt_key: Any = None
    ) -> Iterator[Any]:
        """A policy, trial or HMAC session, flushed afterwards.

        With ``salt_key`` (a loaded decryption key) the session is salted to it
        and encrypts the first command and response parameter (AES-128-CFB), so
        secrets never cross the bus to a discrete TPM in the clear.
        """
        with tpm_errors("starting a session"):
            handle = self.esapi.start_auth_session(
                tpm_key=ESYS_TR.NONE if salt_key is None else salt_key,
                bind=ESYS_TR.NONE,
                session_type=kind,
                symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL)
                if salt_key is None
                else TPMT_SYM_DEF.parse("aes128cfb"),
                auth_hash=auth_hash,
            )
        with self.transient(handle):
            if salt_key is not None:
                with tpm_errors("setting session attributes"):
                    self.esapi.trsess_set_attributes(
                        handle,
                        TPMA_SESSION.CONTINUESESSION | TPMA_SESSION.DECRYPT | TPMA_SESSION.ENCRYPT,
                    )
            yield handle

    @contextmanager
    def primary(self, key: str, template: Any, hierarchy: Any) -> Iterator[tuple[Any, Any]]:
        """A primary key loaded for the block: from its saved context, else created anew."""
        handle = None
        context = self._contexts.get(key)
        if context is not None:
            try:
                handle = self.esapi.context_load(context)
            except TSS2_Exception:
                # Saved contexts die with a TPM reset or hierarchy change: re-create.
                del self._contexts[key]
        if handle is None:
            with tpm_errors(f"creating the {key} primary key"):
                handle, public, *_ = self.esapi.create_primary(None, template, hierarchy)
            self._publics[key] = public
        with self.transient(handle):
            if key not in self._contexts:
                with tpm_errors(f"saving the {key} context"):
                    self._contexts[key] = self.esapi.context_save(handle)
            yield handle, self._publics[key]

    # -- NV helpers -----------------------------------------------------------
    def nv_defined(self, index: int) -> bool:
        with tpm_errors("listing NV indices"):
            _, data = self.esapi.get_capability(TPM2_CAP.HANDLES, index, 1)
        handles = data.data.handles
        # (iterating an empty TPML in tpm2-pytss 3.0 raises IndexError: index explicitly)
        return int(handles.count) > 0 and int(handles[0]) == index

    def _buffer_max(self) -> int:
        if self._nv_buffer_max is None:
            self._nv_buffer_max = self.property(TPM2_PT_NV.BUFFER_MAX) or 512
        return self._nv_buffer_max

    def nv_read_all(self, index: int) -> bytes:
        """The whole data of an NV index, read with the index's own (empty) auth."""
        index = int(index)
        if not self.nv_defined(index):
            raise NoSuchIndex(index)
        with tpm_errors(f"reading NV index 0x{index:08x}"):
            nvh = self.esapi.tr_from_tpmpublic(index)
            with self.closing_tr(nvh):
                nvpub, _ = self.esapi.nv_read_public(nvh)
                size = int(nvpub.nvPublic.dataSize)
                out = bytearray()
                while len(out) < size:
                    chunk = min(self._buffer_max(), size - len(out))
                    out += bytes(self.esapi.nv_read(nvh, chunk, len(out), auth_handle=nvh))
        return bytes(out)

    def handles(self, first: int, count: int = 64) -> list[int]:
        """Handles the TPM holds from ``first`` on (e.g. 0x80000000: transient objects)."""
        with tpm_errors("listing handles"):
            _, data = self.esapi.get_capability(TPM2_CAP.HANDLES, first, count)
        handles = data.data.handles
        return [
            int(handles[i])
            for i in range(int(handles.count))
            if int(handles[i]) >> 24 == first >> 24
        ]

    def property(self, prop: Any) -> int | None:
        with tpm_errors("reading TPM properties"):
            _, data = self.esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, prop, 1)
        for p in data.data.tpmProperties:
            if int(p.property) == int(prop):
                return int(p.value)
        return None

    # -- info -----------------------------------------------------------------
    def info(self) -> BackendInfo:
        def text(*props: Any) -> str:
            raw = b"".join((self.property(p) or 0).to_bytes(4, "big") for p in props)
            return raw.replace(b"\x00", b"").decode("ascii", "replace").strip()

        fw1 = self.property(_PT_FIRMWARE_VERSION_1) or 0
        fw2 = self.property(_PT_FIRMWARE_VERSION_2) or 0
        revision = self.property(TPM2_PT.REVISION) or 0
        return BackendInfo(
            kind="tpm",
            manufacturer=text(TPM2_PT.MANUFACTURER),
            firmware_version=(fw1 << 32) | fw2,
            banks=self.banks(),
            ek_certificate_present=any(self.nv_defined(i) for i in _EK_CERT_INDEX.values()),
            details={
                "vendor": text(*_PT_VENDOR_STRINGS),
                "spec_revision": f"{revision // 100}.{revision % 100:02d}",
            },
        )

    def banks(self) -> tuple[str, ...]:
        """Allocated PCR banks (at least one PCR selected), in the TPM's order."""
        with tpm_errors("reading PCR banks"):
            _, data = self.esapi.get_capability(TPM2_CAP.PCRS, 0, 1)
        out = []
        for sel in data.data.assignedPCR:
            name = _BANK_NAMES.get(int(sel.hash))
            if name is not None and any(bytes(sel.pcrSelect)[: int(sel.sizeofSelect)]):
                out.append(name)
        return tuple(out)

    # -- EK ---------------------------------------------------------------------
    def _ek_template(self, kind: EKKind) -> tuple[bytes | None, Any]:
        cached = self._templates.get(kind)
        if cached is None:
            name = _EK_TEMPLATES[kind]
            try:
                cached = create_ek_template(name, self.nv_read_all)
            except ValueError:
                # High-range EKs have no template without a certificate in
                # tpm2-pytss; the TCG template itself is the same.
                template = ek_template.lookup(name)
                cached = (None, TPM2B_PUBLIC(publicArea=template.template.publicArea))
            self._templates[kind] = cached
        return cached

    @contextmanager
    def ek(self, kind: EKKind) -> Iterator[tuple[Any, Any]]:
        """The EK loaded for the block: ``(handle, TPM2B_PUBLIC)``."""
        _, template = self._ek_template(kind)
        with self.primary(f"ek-{kind}", template, ESYS_TR.ENDORSEMENT) as loaded:
            yield loaded

    @contextmanager
    def ek_auth(self, ek_public: Any) -> Iterator[Any]:
        """Authorization for using the EK: its default policy (PolicySecret(endorsement))
        for the low-range templates, the (empty) password for the high-range ones."""
        attrs = ek_public.publicArea.objectAttributes
        if attrs & TPMA_OBJECT.USERWITHAUTH:
            yield ESYS_TR.PASSWORD
            return
        with self.session(TPM2_SE.POLICY, ek_public.publicArea.nameAlg) as sess:
            with tpm_errors("satisfying the EK policy"):
                self.esapi.policy_secret(ESYS_TR.ENDORSEMENT, sess)
            yield sess

    def ek_public(self, kind: EKKind) -> bytes:
        with self.ek(kind) as (_, public):
            return bytes(public.marshal())

    def ek_certificate(self, kind: EKKind) -> bytes | None:
        index = _EK_CERT_INDEX[kind]
        try:
            data = self.nv_read_all(index)
        except NoSuchIndex:
            return None
        return data[: _der_length(data)]

    # -- AK ---------------------------------------------------------------------
    def create_ak(self, algorithm: AKAlgorithm, ek_kind: EKKind) -> AKBlob:
        template = TPM2B_PUBLIC.parse(
            _AK_TEMPLATES[algorithm], objectAttributes=_AK_ATTRS, nameAlg="sha256"
        )
        with self.ek(ek_kind) as (ek, ek_public), self.ek_auth(ek_public) as auth:
            with tpm_errors("creating the AK"):
                private, public, *_ = self.esapi.create(ek, None, template, session1=auth)
        return AKBlob(
            ek_kind=ek_kind,
            algorithm=algorithm,
            public=bytes(public.marshal()),
            private=bytes(private.marshal()),
        )

    @staticmethod
    def name_of(public: bytes) -> bytes:
        area = _unmarshal(TPM2B_PUBLIC, public, "AK public")
        return bytes(area.get_name().marshal())[2:]

    @contextmanager
    def ak(self, blob: AKBlob, ek: Any = None) -> Iterator[Any]:
        """The AK loaded for the block (a persistent AK is only looked up)."""
        if blob.handle is not None:
            with tpm_errors(f"opening persistent AK 0x{blob.handle:08x}"):
                handle = self.esapi.tr_from_tpmpublic(blob.handle)
            with self.closing_tr(handle):
                with tpm_errors("reading the AK public"):
                    public, _, _ = self.esapi.read_public(handle)
                if not hmac.compare_digest(bytes(public.marshal()), blob.public):
                    raise BackendError(
                        f"persistent handle 0x{blob.handle:08x} holds a different key"
                    )
                yield handle
            return
        assert blob.private is not None
        public = _unmarshal(TPM2B_PUBLIC, blob.public, "AK public")
        private = _unmarshal(TPM2B_PRIVATE, blob.private, "AK private")
        if ek is None:
            with self.ek(blob.ek_kind) as (ek_handle, _):
                with self.ak(blob, ek_handle) as handle:
                    yield handle
            return
        with self.ek_auth(self._publics[f"ek-{blob.ek_kind}"]) as auth:
            with tpm_errors("loading the AK"):
                handle = self.esapi.load(ek, private, public, session1=auth)
        with self.transient(handle):
            yield handle

    def persist_ak(self, blob: AKBlob, handle: int) -> AKBlob:
        with self.ak(blob) as loaded, tpm_errors(f"persisting the AK at 0x{handle:08x}"):
            tr = self.esapi.evict_control(ESYS_TR.OWNER, loaded, handle)
            self.esapi.tr_close(tr)
        return AKBlob(blob.ek_kind, blob.algorithm, blob.public, handle=handle)

    def evict(self, handle: int) -> None:
        with tpm_errors(f"evicting persistent object 0x{handle:08x}"):
            tr = self.esapi.tr_from_tpmpublic(handle)
            # EvictControl on a persistent handle removes it; ESAPI drops the tr itself.
            self.esapi.evict_control(ESYS_TR.OWNER, tr, handle)

    def activate_credential(self, blob: AKBlob, credential: bytes, secret: bytes) -> bytes:
        id_object = TPM2B_ID_OBJECT(credential=credential)
        encrypted = TPM2B_ENCRYPTED_SECRET(secret=secret)
        with self.ek(blob.ek_kind) as (ek, ek_public), self.ak(blob, ek) as ak:
            with self.ek_auth(ek_public) as ek_auth:
                with tpm_errors("activating the credential"):
                    out = self.esapi.activate_credential(
                        ak, ek, id_object, encrypted, session1=ESYS_TR.PASSWORD, session2=ek_auth
                    )
        return bytes(out)

    # -- PCRs and quotes ----------------------------------------------------------
    def pcr_read(self, selection: Mapping[str, tuple[int, ...]]) -> PCRValues:
        values: PCRValues = {}
        for bank, indices in selection.items():
            values[bank] = {}
            # TPM2_PCR_Read returns at most 8 digests per call.
            for start in range(0, len(indices), 8):
                chunk = indices[start : start + 8]
                with tpm_errors(f"reading PCRs {bank}:{chunk}"):
                    _, _, digests = self.esapi.pcr_read(
                        TPML_PCR_SELECTION.parse(_selection_string({bank: chunk}))
                    )
                got = [bytes(d) for d in digests]
                if len(got) != len(chunk):
                    raise BackendError(f"PCR bank {bank} is not allocated on this TPM")
                values[bank].update(zip(chunk, got, strict=True))
        return values

    def pcr_extend(self, index: int, digests: Mapping[str, bytes]) -> None:
        allocated = self.banks()
        values = []
        for bank, digest in digests.items():
            if bank not in _BANK_ALGS:
                raise ValueError(f"unknown PCR bank {bank!r}")
            if len(digest) != _DIGEST_SIZES[bank]:
                raise ValueError(f"a {bank} digest has {_DIGEST_SIZES[bank]} bytes")
            if bank not in allocated:
                # The TPM would silently ignore it.
                raise BackendError(f"PCR bank {bank} is not allocated on this TPM")
            values.append(TPMT_HA(hashAlg=_BANK_ALGS[bank], digest=TPMU_HA(**{bank: digest})))
        if not values:
            raise ValueError("no digests to extend")
        with tpm_errors(f"extending PCR {index}"):
            self.esapi.pcr_extend(ESYS_TR.PCR0 + index, TPML_DIGEST_VALUES(values))

    def pcr_reset(self, index: int) -> None:
        with tpm_errors(f"resetting PCR {index}"):
            self.esapi.pcr_reset(ESYS_TR.PCR0 + index)

    def quote(
        self, blob: AKBlob, nonce: bytes, selection: Mapping[str, tuple[int, ...]]
    ) -> QuoteResult:
        tpml = TPML_PCR_SELECTION.parse(_selection_string(selection))
        with self.ak(blob) as ak:
            for _ in range(_QUOTE_ATTEMPTS):
                with tpm_errors("quoting"):
                    quoted, signature = self.esapi.quote(ak, tpml, nonce)
                message = bytes(quoted)
                values = self.pcr_read(selection)
                # The quote and the read are two commands: only hand out values
                # that are the ones the TPM signed (a PCR may move in between).
                attest = _unmarshal(TPMS_ATTEST, message, "quote")
                h = hashlib.sha256()
                for bank, indices in selection.items():
                    for i in indices:
                        h.update(values[bank][i])
                if hmac.compare_digest(bytes(attest.attested.quote.pcrDigest), h.digest()):
                    return QuoteResult(message, bytes(signature.marshal()), values)
        raise BackendError(f"PCRs changed during the quote {_QUOTE_ATTEMPTS} times in a row")

    def nv_certify(
        self, blob: AKBlob, index: int, nonce: bytes, size: int = 8, offset: int = 0
    ) -> tuple[bytes, bytes]:
        with self.ak(blob) as ak, self._nv(index, "certifying") as (nvh, reader):
            attest, signature = self.esapi.nv_certify(
                ak,
                nvh,
                nonce,
                TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL),
                size,
                offset,
                auth_handle=reader,
            )
        return bytes(attest), bytes(signature.marshal())

    # -- NV extend indices ------------------------------------------------------
    def nv_extend_define(self, index: int) -> bytes:
        want = NVPublic.extend_index(index)
        if self.nv_defined(index):
            with tpm_errors(f"reading NV index 0x{index:08x}"):
                nvh = self.esapi.tr_from_tpmpublic(index)
                with self.closing_tr(nvh):
                    nvpub, _ = self.esapi.nv_read_public(nvh)
            have = NVPublic.unmarshal(bytes(nvpub.nvPublic.marshal())).with_written(False)
            if have != want:
                raise BackendError(f"NV index 0x{index:08x} is already defined differently")
            return want.marshal()
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=index,
                nameAlg=TPM2_ALG.SHA256,
                attributes=want.attributes,
                authPolicy=b"",
                dataSize=want.data_size,
            )
        )
        with tpm_errors(f"defining NV extend index 0x{index:08x}"):
            nvh = self.esapi.nv_define_space(None, public, auth_handle=ESYS_TR.OWNER)
            self.esapi.tr_close(nvh)
        return want.marshal()

    def nv_extend(self, index: int, digest: bytes) -> None:
        with self._nv(index, "extending") as (nvh, _):
            self.esapi.nv_extend(nvh, digest, auth_handle=nvh)

    def nv_extend_read(self, index: int) -> bytes | None:
        with self._nv(index, "reading") as (nvh, reader):
            nvpub, _ = self.esapi.nv_read_public(nvh)
            if not int(nvpub.nvPublic.attributes) & TPMA_NV.WRITTEN:
                return None
            return bytes(self.esapi.nv_read(nvh, int(nvpub.nvPublic.dataSize), 0,
                                            auth_handle=reader))  # fmt: skip

    # -- NV counters ------------------------------------------------------------
    def _increment_policy(self, session: Any) -> None:
        with tpm_errors("building the counter policy"):
            self.esapi.policy_command_code(session, TPM2_CC.NV_Increment)
            self.esapi.policy_auth_value(session)

    def nv_counter_define(self, index: int, auth: bytes | None) -> None:
        attributes = _COUNTER_ATTRS
        policy = b""
        if auth is not None:
            # Only a holder of ``auth`` may increment (PolicyCommandCode(NV_Increment)
            # AND PolicyAuthValue, dictionary-attack protected); anyone may read via
            # the owner hierarchy.
            attributes = (
                TPMA_NV.OWNERREAD | TPMA_NV.POLICYWRITE | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT)
            )
            with self.session(TPM2_SE.TRIAL) as trial:
                self._increment_policy(trial)
                with tpm_errors("reading the policy digest"):
                    policy = bytes(self.esapi.policy_get_digest(trial))
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=index,
                nameAlg=TPM2_ALG.SHA256,
                attributes=attributes,
                authPolicy=policy,
                dataSize=8,
            )
        )
        with tpm_errors(f"defining NV counter 0x{index:08x}"):
            nvh = self.esapi.nv_define_space(auth, public, auth_handle=ESYS_TR.OWNER)
            self.esapi.tr_close(nvh)

    @contextmanager
    def _nv(self, index: int, what: str) -> Iterator[tuple[Any, Any]]:
        """``(ESYS_TR, read authorization handle)`` of an NV counter for the block."""
        with tpm_errors(f"{what} NV counter 0x{index:08x}"):
            nvh = self.esapi.tr_from_tpmpublic(index)
            with self.closing_tr(nvh):
                nvpub, _ = self.esapi.nv_read_public(nvh)
                attrs = int(nvpub.nvPublic.attributes)
                yield nvh, (nvh if attrs & TPMA_NV.AUTHREAD else ESYS_TR.OWNER)

    def _read_counter(self, nvh: Any, reader: Any) -> int:
        # A counter never incremented fails with TPM_RC_NV_UNINITIALIZED, as on
        # every TPM (and the software TPM): there is no value to report yet.
        return int.from_bytes(bytes(self.esapi.nv_read(nvh, 8, 0, auth_handle=reader)))

    def nv_counter_increment(self, index: int, auth: bytes | None) -> int:
        with self._nv(index, "incrementing") as (nvh, reader):
            if reader is nvh:  # an open counter (own empty auth)
                self.esapi.nv_increment(nvh, auth_handle=nvh)
                return self._read_counter(nvh, reader)
            self.esapi.tr_set_auth(nvh, auth or b"")
            with self.session(TPM2_SE.POLICY) as sess:
                self._increment_policy(sess)
                try:
                    self.esapi.nv_increment(nvh, auth_handle=nvh, session1=sess)
                except TSS2_Exception as exc:
                    if base_rc(int(exc.rc)) in _AUTH_FAILURES:
                        raise VerificationError(
                            f"NV counter 0x{index:08x}: wrong auth value ({exc})"
                        ) from exc
                    raise
            return self._read_counter(nvh, reader)

    def nv_counter_read(self, index: int) -> int:
        with self._nv(index, "reading") as (nvh, reader):
            return self._read_counter(nvh, reader)

    def nv_counter_undefine(self, index: int) -> None:
        with tpm_errors(f"undefining NV index 0x{index:08x}"):
            nvh = self.esapi.tr_from_tpmpublic(index)
            # UndefineSpace removes the ESAPI metadata as well.
            self.esapi.nv_undefine_space(nvh, auth_handle=ESYS_TR.OWNER)

    # -- sealing ---------------------------------------------------------------
    @contextmanager
    def srk(self) -> Iterator[Any]:
        template = TPM2B_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=_SRK_ATTRS)
        with self.primary("srk-ecc-p256", template, ESYS_TR.OWNER) as (handle, _):
            yield handle

    def _pcr_policy(
        self, session: Any, selection: Mapping[str, tuple[int, ...]], digest: bytes, auth: bool
    ) -> None:
        with tpm_errors("building the PCR policy"):
            self.esapi.policy_pcr(
                session,
                TPM2B_DIGEST(digest),
                TPML_PCR_SELECTION.parse(_selection_string(selection)),
            )
            if auth:
                self.esapi.policy_auth_value(session)

    def seal(
        self, secret: bytes, selection: Mapping[str, tuple[int, ...]], auth: bytes | None
    ) -> SealedBlob:
        attrs = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
        policy = b""
        if selection:
            values = self.pcr_read(selection)
            pcr_digest = hashlib.sha256(
                b"".join(values[bank][i] for bank, idx in selection.items() for i in idx)
            ).digest()
            with self.session(TPM2_SE.TRIAL) as trial:
                self._pcr_policy(trial, selection, pcr_digest, auth is not None)
                with tpm_errors("reading the policy digest"):
                    policy = bytes(self.esapi.policy_get_digest(trial))
        else:
            attrs |= TPMA_OBJECT.USERWITHAUTH
        area = TPMT_PUBLIC.parse("keyedhash", objectAttributes=attrs, nameAlg="sha256")
        area.authPolicy = TPM2B_DIGEST(policy)
        public = TPM2B_PUBLIC(publicArea=area)
        sensitive = TPM2B_SENSITIVE_CREATE(
            sensitive=TPMS_SENSITIVE_CREATE(userAuth=auth or b"", data=secret)
        )
        with self.srk() as srk, self.session(TPM2_SE.HMAC, salt_key=srk) as sess:
            with tpm_errors("sealing"):
                private, created, *_ = self.esapi.create(srk, sensitive, public, session1=sess)
        return SealedBlob(
            public=bytes(created.marshal()),
            private=bytes(private.marshal()),
            pcrs=dict(selection),
            auth=auth is not None,
        )

    def unseal(self, blob: SealedBlob, auth: bytes | None) -> bytes:
        public = _unmarshal(TPM2B_PUBLIC, blob.public, "sealed public")
        private = _unmarshal(TPM2B_PRIVATE, blob.private, "sealed private")
        with self.srk() as srk:
            with tpm_errors("loading the sealed object"):
                handle = self.esapi.load(srk, private, public)
            with self.transient(handle):
                with tpm_errors("setting the auth value"):
                    # Only an object sealed with an auth value gets one: a policy session
                    # without PolicyAuthValue leaves it out of the parameter-encryption
                    # key, and a stray auth here would decrypt the secret to garbage.
                    self.esapi.tr_set_auth(handle, (auth or b"") if blob.auth else b"")
                kind = TPM2_SE.POLICY if blob.pcrs else TPM2_SE.HMAC
                # Salted to the SRK: the secret comes back encrypted, never in the clear.
                with self.session(kind, salt_key=srk) as sess:
                    if blob.pcrs:
                        # An empty digest makes the TPM use the PCRs' current values.
                        self._pcr_policy(sess, blob.pcrs, b"", blob.auth)
                    try:
                        return bytes(self.esapi.unseal(handle, session1=sess))
                    except TSS2_Exception as exc:
                        if base_rc(int(exc.rc)) in _AUTH_FAILURES:
                            raise VerificationError(
                                "unseal refused: the PCR policy or auth value does not match"
                                f" ({exc})"
                            ) from exc
                        raise BackendError(f"unsealing: {exc}", code=int(exc.rc)) from exc

    # -- signed PCR policies (TPM2_PolicyAuthorize) ----------------------------
    def nv_name(self, index: int) -> bytes:
        with tpm_errors(f"reading the name of NV index 0x{index:08x}"):
            nvh = self.esapi.tr_from_tpmpublic(index)
            with self.closing_tr(nvh):
                _, name = self.esapi.nv_read_public(nvh)
                return bytes(name.marshal())[2:]  # TPM2B_NAME body

    def seal_authorized(self, secret: bytes, auth_policy: bytes) -> tuple[bytes, bytes]:
        """Create a sealed object whose only authorization is ``auth_policy``."""
        attrs = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
        area = TPMT_PUBLIC.parse("keyedhash", objectAttributes=attrs, nameAlg="sha256")
        area.authPolicy = TPM2B_DIGEST(auth_policy)
        public = TPM2B_PUBLIC(publicArea=area)
        sensitive = TPM2B_SENSITIVE_CREATE(sensitive=TPMS_SENSITIVE_CREATE(data=secret))
        with self.srk() as srk, self.session(TPM2_SE.HMAC, salt_key=srk) as sess:
            with tpm_errors("sealing"):
                private, created, *_ = self.esapi.create(srk, sensitive, public, session1=sess)
        return bytes(created.marshal()), bytes(private.marshal())

    def _authorized_session(
        self, session: Any, signed: SignedPolicy, key: Any, name: bytes
    ) -> None:
        policy = signed.policy
        with tpm_errors("verifying the policy signature"):
            signature = _unmarshal(TPMT_SIGNATURE, signed.signature, "policy signature")
        a_hash = authorize_hash(policy.digest(), signed.policy_ref)
        try:
            ticket = self.esapi.verify_signature(key, TPM2B_DIGEST(a_hash), signature)
        except TSS2_Exception as exc:
            if base_rc(int(exc.rc)) in (
                int(TPM2_RC.SIGNATURE),
                int(TPM2_RC.SCHEME),
                int(TPM2_RC.ATTRIBUTES),
                int(TPM2_RC.KEY),
            ):
                raise SignatureError(
                    f"the PCR policy is not signed by the authority ({exc})"
                ) from exc
            raise BackendError(f"TPM2_VerifySignature: {exc}", code=int(exc.rc)) from exc
        with tpm_errors("TPM2_PolicyPCR"):
            # An empty digest: the TPM uses the PCRs' current values.
            self.esapi.policy_pcr(
                session,
                TPM2B_DIGEST(b""),
                TPML_PCR_SELECTION.parse(_selection_string(policy.selection)),
            )
        if policy.nv_name:
            try:
                nvh = self.esapi.tr_from_tpmpublic(policy.nv_index)
            except TSS2_Exception as exc:
                raise PolicyError(
                    f"policy counter 0x{policy.nv_index:08x} unusable ({exc})",
                    violations=["policy-nv"],
                ) from exc
            with self.closing_tr(nvh):
                try:
                    self.esapi.policy_nv(
                        nvh,
                        nvh,
                        session,
                        TPM2B_OPERAND(version_operand(policy.version)),
                        TPM2_EO.UNSIGNED_LE,
                        0,
                    )
                except TSS2_Exception as exc:
                    if base_rc(int(exc.rc)) == int(TPM2_RC.POLICY):
                        raise PolicyError(
                            f"policy version {policy.version} was revoked ({exc})",
                            violations=["policy-nv"],
                        ) from exc
                    raise BackendError(f"TPM2_PolicyNV: {exc}", code=int(exc.rc)) from exc
        try:
            self.esapi.policy_authorize(
                session,
                TPM2B_DIGEST(policy.digest()),
                TPM2B_NAME(name),
                ticket,
                TPM2B_NONCE(signed.policy_ref),
            )
        except TSS2_Exception as exc:
            if base_rc(int(exc.rc)) == int(TPM2_RC.VALUE):
                raise PolicyError(
                    f"PCR values differ from those the signed policy approves ({exc})",
                    violations=["pcr-policy"],
                ) from exc
            raise BackendError(f"TPM2_PolicyAuthorize: {exc}", code=int(exc.rc)) from exc

    def unseal_authorized(
        self, public: bytes, private: bytes, signed: SignedPolicy, authority: bytes
    ) -> bytes:
        pub = _unmarshal(TPM2B_PUBLIC, public, "sealed public")
        priv = _unmarshal(TPM2B_PRIVATE, private, "sealed private")
        key_public = _unmarshal(TPM2B_PUBLIC, authority, "authority public key")
        with self.srk() as srk:
            with tpm_errors("loading the sealed object"):
                handle = self.esapi.load(srk, priv, pub)
            with self.transient(handle):
                try:
                    key = self.esapi.load_external(key_public, hierarchy=ESYS_TR.OWNER)
                except TSS2_Exception as exc:
                    raise MalformedInputError(
                        f"the TPM does not load the policy authority key ({exc})"
                    ) from exc
                with self.transient(key):
                    with tpm_errors("reading the authority's name"):
                        name = bytes(self.esapi.tr_get_name(key).marshal())[2:]
                    with self.session(TPM2_SE.POLICY, salt_key=srk) as sess:
                        self._authorized_session(sess, signed, key, name)
                        try:
                            return bytes(self.esapi.unseal(handle, session1=sess))
                        except TSS2_Exception as exc:
                            if base_rc(int(exc.rc)) in _AUTH_FAILURES:
                                raise PolicyError(
                                    f"unseal refused: the policy is not this object's ({exc})",
                                    violations=["policy-authority"],
                                ) from exc
                            raise BackendError(f"unsealing: {exc}", code=int(exc.rc)) from exc

    def trial_digest(self, steps: Any) -> bytes:
        """A trial session's digest after ``steps(session)`` (for cross-checks)."""
        with self.session(TPM2_SE.TRIAL) as trial:
            with tpm_errors("trial policy"):
                steps(self.esapi, trial)
                return bytes(self.esapi.policy_get_digest(trial))
