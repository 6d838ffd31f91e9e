"""TPM 2.0 NV index public areas (``TPMS_NV_PUBLIC``), their attributes and names.

.. warning:: hazmat. These are raw building blocks for NV indices; the
   model-load measurements built on them live in
   ``trustedge.attestation.modellog``.

An NV index's *name* is ``nameAlg || H_nameAlg(TPMS_NV_PUBLIC)``. The name
covers the attributes, including ``TPMA_NV_WRITTEN``, so a verifier that
knows how an index was defined computes the one name a TPM reports in
``TPM2_NV_Certify`` once the index has been written (:func:`expected_name`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

from trustedge._binary import Reader, Writer
from trustedge.hazmat.tpm2.constants import MAX_DIGEST_SIZE, TPMAlg, hash_alg_by_id

__all__ = [
    "EXTEND_ATTRIBUTES",
    "NV_COUNTER_ATTRIBUTES",
    "NVPublic",
    "TPMANV",
    "TPMNT",
]


class TPMANV(enum.IntFlag):
    """``TPMA_NV`` bits (TPM 2.0 Part 2, 13.4)."""

    PPWRITE = 0x00000001
    OWNERWRITE = 0x00000002
    AUTHWRITE = 0x00000004
    POLICYWRITE = 0x00000008
    POLICY_DELETE = 0x00000400
    WRITELOCKED = 0x00000800
    WRITEALL = 0x00001000
    WRITEDEFINE = 0x00002000
    WRITE_STCLEAR = 0x00004000
    GLOBALLOCK = 0x00008000
    PPREAD = 0x00010000
    OWNERREAD = 0x00020000
    AUTHREAD = 0x00040000
    POLICYREAD = 0x00080000
    NO_DA = 0x02000000
    ORDERLY = 0x04000000
    CLEAR_STCLEAR = 0x08000000
    READLOCKED = 0x10000000
    WRITTEN = 0x20000000
    PLATFORMCREATE = 0x40000000
    READ_STCLEAR = 0x80000000


class TPMNT(enum.IntEnum):
    """``TPM_NT``: the index type in bits 7:4 of ``TPMA_NV``."""

    ORDINARY = 0x0
    COUNTER = 0x1
    BITS = 0x2
    EXTEND = 0x4
    PIN_FAIL = 0x8
    PIN_PASS = 0x9


_NT_SHIFT: Final = 4
_NT_MASK: Final = 0xF0

#: An extend index for measurements: written with the index's own auth (which
#: may be empty), read by the index auth or the owner, no dictionary-attack
#: lockout, and cleared (WRITTEN dropped, value back to zeros) only by a TPM
#: Reset or Restart -- like a PCR, but no command resets it while the TPM runs.
EXTEND_ATTRIBUTES: Final = int(
    TPMANV.AUTHWRITE
    | TPMANV.AUTHREAD
    | TPMANV.OWNERREAD
    | TPMANV.NO_DA
    | TPMANV.CLEAR_STCLEAR
    | (TPMNT.EXTEND << _NT_SHIFT)
)
#: The counters ``Tpm2Backend.nv_counter_define`` creates (open auth).
NV_COUNTER_ATTRIBUTES: Final = int(
    TPMANV.OWNERREAD
    | TPMANV.OWNERWRITE
    | TPMANV.AUTHREAD
    | TPMANV.AUTHWRITE
    | TPMANV.NO_DA
    | (TPMNT.COUNTER << _NT_SHIFT)
)


@dataclass(frozen=True)
class NVPublic:
    """``TPMS_NV_PUBLIC``: index handle, nameAlg, attributes, authPolicy, dataSize."""

    index: int
    name_alg: int
    attributes: int
    auth_policy: bytes = b""
    data_size: int = 32

    @property
    def type(self) -> int:
        """The ``TPM_NT`` of the index."""
        return (self.attributes & _NT_MASK) >> _NT_SHIFT

    @property
    def written(self) -> bool:
        return bool(self.attributes & TPMANV.WRITTEN)

    def with_written(self, written: bool = True) -> NVPublic:
        """The same public area with ``TPMA_NV_WRITTEN`` set (or cleared)."""
        attrs = self.attributes | TPMANV.WRITTEN if written else self.attributes & ~TPMANV.WRITTEN
        return replace(self, attributes=int(attrs))

    def marshal(self) -> bytes:
        w = Writer().u32be(self.index).u16be(self.name_alg).u32be(self.attributes)
        return w.bytes_u16be(self.auth_policy).u16be(self.data_size).getvalue()

    @classmethod
    def unmarshal(cls, data: bytes) -> NVPublic:
        """Strictly parse a ``TPMS_NV_PUBLIC`` (no trailing bytes)."""
        r = Reader(data, max_size=16 + MAX_DIGEST_SIZE)
        out = cls(
            r.u32be("nvIndex"),
            r.u16be("nameAlg"),
            r.u32be("attributes"),
            r.bytes_u16be("authPolicy", max_len=MAX_DIGEST_SIZE),
            r.u16be("dataSize"),
        )
        r.expect_end("end of TPMS_NV_PUBLIC")
        return out

    def name(self) -> bytes:
        """The index name: nameAlg (2 bytes) || H_nameAlg(TPMS_NV_PUBLIC)."""
        return self.name_alg.to_bytes(2, "big") + hash_alg_by_id(self.name_alg).digest(
            self.marshal()
        )

    @classmethod
    def extend_index(cls, index: int, name_alg: int = int(TPMAlg.SHA256)) -> NVPublic:
        """The public area of a measurement extend index (:data:`EXTEND_ATTRIBUTES`,
        empty policy, one digest of ``name_alg``), as defined -- not yet written."""
        size = hash_alg_by_id(name_alg).digest_size
        return cls(index, name_alg, EXTEND_ATTRIBUTES, b"", size)

    def expected_name(self) -> bytes:
        """The name a TPM reports for this index once it has been written."""
        return self.with_written(True).name()
