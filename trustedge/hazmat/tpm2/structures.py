"""TPM 2.0 attestation structures: marshal and strict unmarshal.

.. warning:: hazmat. Parsing gives *unverified* structures; use
   ``trustedge.attestation.verify_quote`` to check a quote.

Every ``unmarshal`` reads through the bounded :class:`~trustedge._binary.Reader`,
caps every sized field at the TPM's own maximum, rejects values a TPM never
produces (a ``TPMI_YES_NO`` other than 0/1, an unknown attestation type,
duplicate PCR banks) and rejects trailing bytes. The only exceptions out of
a parser are :class:`~trustedge.errors.MalformedInputError` and its subclass
:class:`~trustedge.errors.LimitExceededError`. ``marshal()`` gives back the
exact bytes that were parsed.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, NamedTuple

from trustedge._binary import Reader, Writer
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.hazmat.tpm2.constants import (
    MAX_DIGEST_SIZE,
    TPMST,
    TPMAlg,
    hash_alg_by_id,
    hash_alg_by_name,
)

__all__ = [
    "MAX_ATTEST_SIZE",
    "Attest",
    "AttestInfo",
    "CertifyInfo",
    "ClockInfo",
    "CommandAuditInfo",
    "CreationInfo",
    "NVCertifyInfo",
    "NVDigestCertifyInfo",
    "PCRSelection",
    "PCRSelectionList",
    "QuoteFields",
    "QuoteInfo",
    "SessionAuditInfo",
    "Signature",
    "TimeAttestInfo",
    "marshal_digest_list",
    "pcr_indices",
    "read_quote_fields",
    "unmarshal_digest_list",
]

#: ``sizeof(TPMT_HA)``: the cap of TPM2B_NAME and TPM2B_DATA.
MAX_NAME_SIZE: Final = 2 + MAX_DIGEST_SIZE
#: ``sizeof(TPMS_ATTEST)`` upper bound (TPM2B_ATTEST cap used by real TPMs).
MAX_ATTEST_SIZE: Final = 2304
#: Caps of the other sized buffers (TPM 2.0 reference implementation values, generous).
MAX_RSA_BYTES: Final = 512
MAX_ECC_BYTES: Final = 128
MAX_NV_BUFFER: Final = 2048
#: ``HASH_COUNT`` and ``PCR_SELECT_MAX`` (32 PCRs).
MAX_PCR_BANKS: Final = 16
MAX_SIZEOF_SELECT: Final = 4
#: A TPML_DIGEST holds at most 8 digests.
MAX_DIGEST_LIST: Final = 8

_ATTEST_TYPES: Final = frozenset(int(t) for t in TPMST)
_MAGIC_TYPE: Final = struct.Struct(">IH")
#: TPMS_CLOCK_INFO (clock, resetCount, restartCount, safe) then firmwareVersion.
_CLOCK_FW: Final = struct.Struct(">QIIBQ")
_BANK_HEAD: Final = struct.Struct(">HB")
_SIG_HEAD: Final = struct.Struct(">HHH")
#: TPMS_CLOCK_INFO, firmwareVersion and a quote's TPML_PCR_SELECTION.count.
_CLOCK_FW_COUNT: Final = struct.Struct(">QIIBQI")
#: The set bits of each byte value, ascending (PCR indices of one pcrSelect byte).
_BITS: Final = tuple(tuple(i for i in range(8) if byte >> i & 1) for byte in range(256))


@lru_cache(maxsize=1024)
def pcr_indices(select: bytes) -> tuple[int, ...]:
    """The PCR indices a pcrSelect bitmap selects, ascending (PCR i = byte i/8, bit i%8);
    memoised, so the few bitmaps a verifier sees are decoded once."""
    bits = _BITS
    return tuple(8 * k + i for k, byte in enumerate(select) for i in bits[byte])


def _yes_no(r: Reader, what: str) -> bool:
    value = r.u8(what)
    if value > 1:
        raise MalformedInputError(f"{what} is {value}", offset=r.offset - 1, expected="0 or 1")
    return value == 1


def _name(r: Reader, what: str) -> bytes:
    return r.bytes_u16be(what, max_len=MAX_NAME_SIZE)


def _digest(r: Reader, what: str) -> bytes:
    return r.bytes_u16be(what, max_len=MAX_DIGEST_SIZE)


# ---------------------------------------------------------------------------
# PCR selections and digest lists
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PCRSelection:
    """``TPMS_PCR_SELECTION``: one bank and a bitmap (PCR i = byte i/8, bit i%8)."""

    hash_alg: int
    select: bytes

    @property
    def indices(self) -> tuple[int, ...]:
        """Selected PCR indices, ascending (the order the TPM hashes them in)."""
        return pcr_indices(self.select)

    @property
    def bank(self) -> str:
        """The bank name (``"sha256"``); raises UnsupportedAlgorithmError for others."""
        return hash_alg_by_id(self.hash_alg).name

    @classmethod
    def from_indices(cls, bank: str, indices: Sequence[int], *, size: int = 3) -> PCRSelection:
        """Build a selection; ``size`` is sizeofSelect (3 on PC-client TPMs)."""
        alg = hash_alg_by_name(bank).alg
        size = max(size, (max(indices, default=0) // 8) + 1)
        if size > MAX_SIZEOF_SELECT:
            raise ValueError(f"PCR index {max(indices)} out of range")
        bitmap = bytearray(size)
        for i in indices:
            if i < 0:
                raise ValueError(f"negative PCR index {i}")
            bitmap[i // 8] |= 1 << (i % 8)
        return cls(int(alg), bytes(bitmap))

    def marshal(self, w: Writer) -> None:
        w.u16be(self.hash_alg).bytes_u8(self.select)


@dataclass(frozen=True)
class PCRSelectionList:
    """``TPML_PCR_SELECTION``: banks in the order given (no bank twice)."""

    selections: tuple[PCRSelection, ...]

    @classmethod
    def from_mapping(
        cls, selection: Mapping[str, Sequence[int]], *, size: int = 3
    ) -> PCRSelectionList:
        """From ``{"sha256": [0, 1, 2]}`` (bank order kept)."""
        return cls(tuple(PCRSelection.from_indices(b, i, size=size) for b, i in selection.items()))

    def to_mapping(self) -> dict[str, tuple[int, ...]]:
        """``{bank: indices}``; raises UnsupportedAlgorithmError for an unknown bank."""
        return {s.bank: s.indices for s in self.selections}

    def pcr_order(self) -> list[tuple[str, int]]:
        """``(bank, index)`` in the order a TPM concatenates PCR values."""
        return [(s.bank, i) for s in self.selections for i in s.indices]

    def marshal(self, w: Writer | None = None) -> bytes:
        out = w if w is not None else Writer()
        out.u32be(len(self.selections))
        for s in self.selections:
            s.marshal(out)
        return out.getvalue()

    @classmethod
    def read(cls, r: Reader) -> PCRSelectionList:
        count = r.count(r.u32be("TPML_PCR_SELECTION.count"), MAX_PCR_BANKS, "PCR banks")
        return cls.read_banks(r, count)

    @classmethod
    def read_banks(cls, r: Reader, count: int) -> PCRSelectionList:
        """The ``count`` TPMS_PCR_SELECTIONs after the count (no bank twice)."""
        seen: set[int] = set()
        items = []
        for _ in range(count):
            alg, size = r.read_struct(_BANK_HEAD, "TPMS_PCR_SELECTION")
            if alg in seen:
                raise MalformedInputError(
                    f"bank 0x{alg:04x} selected twice", offset=r.offset - 3, expected="unique banks"
                )
            seen.add(alg)
            if size > MAX_SIZEOF_SELECT:
                raise LimitExceededError(
                    f"length {size} exceeds the limit of {MAX_SIZEOF_SELECT}",
                    offset=r.offset, expected="pcrSelect",
                )  # fmt: skip
            items.append(PCRSelection(alg, r.read(size, "pcrSelect")))
        return cls(tuple(items))

    @classmethod
    def unmarshal(cls, data: bytes) -> PCRSelectionList:
        r = Reader(data, max_size=4 + MAX_PCR_BANKS * (3 + MAX_SIZEOF_SELECT))
        out = cls.read(r)
        r.expect_end("end of TPML_PCR_SELECTION")
        return out


def marshal_digest_list(digests: Sequence[bytes]) -> bytes:
    """``TPML_DIGEST``."""
    w = Writer().u32be(len(digests))
    for d in digests:
        w.bytes_u16be(d)
    return w.getvalue()


def read_digest_list(r: Reader) -> tuple[bytes, ...]:
    count = r.count(r.u32be("TPML_DIGEST.count"), MAX_DIGEST_LIST, "digests")
    return tuple(_digest(r, "TPM2B_DIGEST") for _ in range(count))


def unmarshal_digest_list(data: bytes) -> tuple[bytes, ...]:
    """Strictly parse a ``TPML_DIGEST``."""
    r = Reader(data, max_size=4 + MAX_DIGEST_LIST * (2 + MAX_DIGEST_SIZE))
    out = read_digest_list(r)
    r.expect_end("end of TPML_DIGEST")
    return out


# ---------------------------------------------------------------------------
# TPMS_ATTEST
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ClockInfo:
    """``TPMS_CLOCK_INFO``: clock (ms), resetCount, restartCount, safe."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool

    def marshal(self, w: Writer) -> None:
        w.u64be(self.clock).u32be(self.reset_count).u32be(self.restart_count).u8(int(self.safe))

    @classmethod
    def read(cls, r: Reader) -> ClockInfo:
        return cls(r.u64be("clock"), r.u32be("resetCount"), r.u32be("restartCount"),
                   _yes_no(r, "safe"))  # fmt: skip


@dataclass(frozen=True)
class QuoteInfo:
    """``TPMS_QUOTE_INFO`` (type ATTEST_QUOTE)."""

    pcr_select: PCRSelectionList
    pcr_digest: bytes

    def marshal(self, w: Writer) -> None:
        self.pcr_select.marshal(w)
        w.bytes_u16be(self.pcr_digest)

    @classmethod
    def read(cls, r: Reader) -> QuoteInfo:
        return cls(PCRSelectionList.read(r), _digest(r, "pcrDigest"))


@dataclass(frozen=True)
class CertifyInfo:
    """``TPMS_CERTIFY_INFO`` (type ATTEST_CERTIFY)."""

    name: bytes
    qualified_name: bytes

    def marshal(self, w: Writer) -> None:
        w.bytes_u16be(self.name).bytes_u16be(self.qualified_name)

    @classmethod
    def read(cls, r: Reader) -> CertifyInfo:
        return cls(_name(r, "name"), _name(r, "qualifiedName"))


@dataclass(frozen=True)
class CreationInfo:
    """``TPMS_CREATION_INFO`` (type ATTEST_CREATION)."""

    object_name: bytes
    creation_hash: bytes

    def marshal(self, w: Writer) -> None:
        w.bytes_u16be(self.object_name).bytes_u16be(self.creation_hash)

    @classmethod
    def read(cls, r: Reader) -> CreationInfo:
        return cls(_name(r, "objectName"), _digest(r, "creationHash"))


@dataclass(frozen=True)
class NVCertifyInfo:
    """``TPMS_NV_CERTIFY_INFO`` (type ATTEST_NV)."""

    index_name: bytes
    offset: int
    nv_contents: bytes

    def marshal(self, w: Writer) -> None:
        w.bytes_u16be(self.index_name).u16be(self.offset).bytes_u16be(self.nv_contents)

    @classmethod
    def read(cls, r: Reader) -> NVCertifyInfo:
        return cls(
            _name(r, "indexName"),
            r.u16be("offset"),
            r.bytes_u16be("nvContents", max_len=MAX_NV_BUFFER),
        )


@dataclass(frozen=True)
class NVDigestCertifyInfo:
    """``TPMS_NV_DIGEST_CERTIFY_INFO`` (type ATTEST_NV_DIGEST)."""

    index_name: bytes
    nv_digest: bytes

    def marshal(self, w: Writer) -> None:
        w.bytes_u16be(self.index_name).bytes_u16be(self.nv_digest)

    @classmethod
    def read(cls, r: Reader) -> NVDigestCertifyInfo:
        return cls(_name(r, "indexName"), _digest(r, "nvDigest"))


@dataclass(frozen=True)
class TimeAttestInfo:
    """``TPMS_TIME_ATTEST_INFO`` (type ATTEST_TIME)."""

    time: int
    clock_info: ClockInfo
    firmware_version: int

    def marshal(self, w: Writer) -> None:
        w.u64be(self.time)
        self.clock_info.marshal(w)
        w.u64be(self.firmware_version)

    @classmethod
    def read(cls, r: Reader) -> TimeAttestInfo:
        return cls(r.u64be("time"), ClockInfo.read(r), r.u64be("firmwareVersion"))


@dataclass(frozen=True)
class SessionAuditInfo:
    """``TPMS_SESSION_AUDIT_INFO`` (type ATTEST_SESSION_AUDIT)."""

    exclusive_session: bool
    session_digest: bytes

    def marshal(self, w: Writer) -> None:
        w.u8(int(self.exclusive_session)).bytes_u16be(self.session_digest)

    @classmethod
    def read(cls, r: Reader) -> SessionAuditInfo:
        return cls(_yes_no(r, "exclusiveSession"), _digest(r, "sessionDigest"))


@dataclass(frozen=True)
class CommandAuditInfo:
    """``TPMS_COMMAND_AUDIT_INFO`` (type ATTEST_COMMAND_AUDIT)."""

    audit_counter: int
    digest_alg: int
    audit_digest: bytes
    command_digest: bytes

    def marshal(self, w: Writer) -> None:
        w.u64be(self.audit_counter).u16be(self.digest_alg)
        w.bytes_u16be(self.audit_digest).bytes_u16be(self.command_digest)

    @classmethod
    def read(cls, r: Reader) -> CommandAuditInfo:
        return cls(
            r.u64be("auditCounter"),
            r.u16be("digestAlg"),
            _digest(r, "auditDigest"),
            _digest(r, "commandDigest"),
        )


AttestInfo = (
    QuoteInfo
    | CertifyInfo
    | CreationInfo
    | NVCertifyInfo
    | NVDigestCertifyInfo
    | TimeAttestInfo
    | SessionAuditInfo
    | CommandAuditInfo
)

_INFO_BY_TYPE: Final[dict[int, type[AttestInfo]]] = {
    TPMST.ATTEST_QUOTE: QuoteInfo,
    TPMST.ATTEST_CERTIFY: CertifyInfo,
    TPMST.ATTEST_CREATION: CreationInfo,
    TPMST.ATTEST_NV: NVCertifyInfo,
    TPMST.ATTEST_NV_DIGEST: NVDigestCertifyInfo,
    TPMST.ATTEST_TIME: TimeAttestInfo,
    TPMST.ATTEST_SESSION_AUDIT: SessionAuditInfo,
    TPMST.ATTEST_COMMAND_AUDIT: CommandAuditInfo,
}


@dataclass(frozen=True)
class Attest:
    """``TPMS_ATTEST``: what a TPM signs. Parsed, not verified.

    ``magic`` is kept as read (the verifier checks it); ``type`` must be a
    known attestation type and ``attested`` is the matching info structure.
    """

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    attested: AttestInfo

    def marshal(self) -> bytes:
        w = Writer().u32be(self.magic).u16be(self.type)
        w.bytes_u16be(self.qualified_signer).bytes_u16be(self.extra_data)
        self.clock_info.marshal(w)
        w.u64be(self.firmware_version)
        self.attested.marshal(w)
        return w.getvalue()

    @classmethod
    def unmarshal(cls, data: bytes) -> Attest:
        """Strictly parse a raw TPMS_ATTEST (``tpm2_quote -m``); no trailing bytes."""
        r = Reader(data, max_size=MAX_ATTEST_SIZE)
        # Fixed-size runs are read one struct at a time (one bounds check each).
        magic, type_ = r.read_struct(_MAGIC_TYPE, "magic, type")
        if type_ not in _ATTEST_TYPES:
            raise MalformedInputError(
                f"unknown attestation type 0x{type_:04x}", offset=r.offset - 2,
                expected="TPMI_ST_ATTEST",
            )  # fmt: skip
        signer = _name(r, "qualifiedSigner")
        extra = r.bytes_u16be("extraData", max_len=MAX_NAME_SIZE)
        clock_ms, resets, restarts, safe, fw = r.read_struct(_CLOCK_FW, "clockInfo, firmware")
        if safe > 1:
            raise MalformedInputError(f"safe is {safe}", offset=r.offset - 9, expected="0 or 1")
        clock = ClockInfo(clock_ms, resets, restarts, safe == 1)
        info = _INFO_BY_TYPE[type_].read(r)
        r.expect_end("end of TPMS_ATTEST")
        return cls(magic, type_, signer, extra, clock, fw, info)

    @classmethod
    def unmarshal_tpm2b(cls, data: bytes) -> Attest:
        """Parse a ``TPM2B_ATTEST`` (size-prefixed TPMS_ATTEST)."""
        r = Reader(data, max_size=2 + MAX_ATTEST_SIZE)
        body = r.bytes_u16be("TPM2B_ATTEST", max_len=MAX_ATTEST_SIZE)
        r.expect_end("end of TPM2B_ATTEST")
        return cls.unmarshal(body)


class QuoteFields(NamedTuple):
    """The fields of a TPMS_ATTEST of type ATTEST_QUOTE, as plain values (what a quote
    check needs, without building the :class:`Attest` object tree). Parsed, not verified.
    ``selections`` is ``((hashAlg, pcrSelect), ...)`` in the quote's order."""

    magic: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    selections: tuple[tuple[int, bytes], ...]
    pcr_digest: bytes


_QUOTE_MAX_SIZE: Final = MAX_ATTEST_SIZE


def read_quote_fields(data: bytes) -> QuoteFields | None:
    """Strictly parse a raw TPMS_ATTEST that is a quote, the fast way: each fixed-size run
    is one ``struct`` read of the bounded reader. Returns None when the attestation type
    is not ATTEST_QUOTE (parse it with :meth:`Attest.unmarshal` then). Accepts exactly the
    quotes :meth:`Attest.unmarshal` accepts (same caps, same checks, no trailing bytes; a
    test holds them equal) and raises MalformedInputError / LimitExceededError for the
    rest (the message may name a larger run of fields)."""
    r = Reader(data, max_size=_QUOTE_MAX_SIZE)
    magic, type_ = r.read_struct(_MAGIC_TYPE, "magic, type")
    if type_ != TPMST.ATTEST_QUOTE:
        return None
    signer = r.bytes_u16be("qualifiedSigner", max_len=MAX_NAME_SIZE)
    extra = r.bytes_u16be("extraData", max_len=MAX_NAME_SIZE)
    clock, resets, restarts, safe, fw, count = r.read_struct(_CLOCK_FW_COUNT, "clockInfo")
    if safe > 1:
        raise MalformedInputError(f"safe is {safe}", offset=r.offset - 13, expected="0 or 1")
    count = r.count(count, MAX_PCR_BANKS, "PCR banks")
    if count == 1:  # the usual quote: one bank
        alg, size = r.read_struct(_BANK_HEAD, "TPMS_PCR_SELECTION")
        if size > MAX_SIZEOF_SELECT:
            raise LimitExceededError(
                f"length {size} exceeds the limit of {MAX_SIZEOF_SELECT}",
                offset=r.offset, expected="pcrSelect",
            )  # fmt: skip
        selections: tuple[tuple[int, bytes], ...] = ((alg, r.read(size, "pcrSelect")),)
    else:
        selections = tuple(
            (s.hash_alg, s.select) for s in PCRSelectionList.read_banks(r, count).selections
        )
    digest = r.bytes_u16be("pcrDigest", max_len=MAX_DIGEST_SIZE)
    r.expect_end("end of TPMS_ATTEST")
    return QuoteFields(magic, signer, extra, clock, resets, restarts, safe == 1, fw,
                       selections, digest)  # fmt: skip


# ---------------------------------------------------------------------------
# TPMT_SIGNATURE
# ---------------------------------------------------------------------------
_RSA_SIGS: Final = frozenset({TPMAlg.RSASSA, TPMAlg.RSAPSS})
_ECC_SIGS: Final = frozenset({TPMAlg.ECDSA, TPMAlg.ECDAA, TPMAlg.SM2, TPMAlg.ECSCHNORR})
MAX_SIGNATURE_SIZE: Final = 2 + 2 + 2 + MAX_RSA_BYTES + 2 * MAX_ECC_BYTES


@dataclass(frozen=True)
class Signature:
    """``TPMT_SIGNATURE`` (``tpm2_quote -s``). Parsed, not verified.

    ``sig_alg`` is the scheme; ``hash_alg`` its hash (NULL for a NULL
    signature). RSA schemes fill ``rsa``; ECC schemes ``r`` and ``s``; HMAC
    ``digest``.
    """

    sig_alg: int
    hash_alg: int
    rsa: bytes = b""
    r: bytes = b""
    s: bytes = b""
    digest: bytes = b""

    def marshal(self) -> bytes:
        w = Writer().u16be(self.sig_alg)
        if self.sig_alg == TPMAlg.NULL:
            return w.getvalue()
        w.u16be(self.hash_alg)
        if self.sig_alg in _RSA_SIGS:
            w.bytes_u16be(self.rsa)
        elif self.sig_alg in _ECC_SIGS:
            w.bytes_u16be(self.r).bytes_u16be(self.s)
        elif self.sig_alg == TPMAlg.HMAC:
            w.write(self.digest)
        else:
            raise ValueError(f"cannot marshal signature scheme 0x{self.sig_alg:04x}")
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> Signature:
        if r.remaining >= 6:  # sigAlg, hash and the first size in one bounds check
            alg, hash_id, size = r.peek_struct(_SIG_HEAD)
            if alg in _RSA_SIGS and size <= MAX_RSA_BYTES:
                r.skip(6)
                return cls(alg, hash_id, rsa=r.read(size, "signature"))
        alg = r.u16be("sigAlg")
        if alg == TPMAlg.NULL:
            return cls(alg, int(TPMAlg.NULL))
        hash_id = r.u16be("hash")
        if alg in _RSA_SIGS:
            return cls(alg, hash_id, rsa=r.bytes_u16be("signature", max_len=MAX_RSA_BYTES))
        if alg in _ECC_SIGS:
            sr = r.bytes_u16be("signatureR", max_len=MAX_ECC_BYTES)
            ss = r.bytes_u16be("signatureS", max_len=MAX_ECC_BYTES)
            return cls(alg, hash_id, r=sr, s=ss)
        if alg == TPMAlg.HMAC:
            size = _hash_size(r, hash_id)
            return cls(alg, hash_id, digest=r.read(size, "HMAC digest"))
        raise MalformedInputError(
            f"unknown signature scheme 0x{alg:04x}",
            offset=r.offset - 4,
            expected="TPMI_ALG_SIG_SCHEME",
        )

    @classmethod
    def unmarshal(cls, data: bytes) -> Signature:
        """Strictly parse a TPMT_SIGNATURE; no trailing bytes."""
        r = Reader(data, max_size=MAX_SIGNATURE_SIZE)
        sig = cls.read(r)
        r.expect_end("end of TPMT_SIGNATURE")
        return sig


def _hash_size(r: Reader, hash_id: int) -> int:
    try:
        return hash_alg_by_id(hash_id).digest_size
    except Exception:
        raise MalformedInputError(
            f"unknown hash 0x{hash_id:04x}", offset=r.offset - 2, expected="TPMI_ALG_HASH"
        ) from None
