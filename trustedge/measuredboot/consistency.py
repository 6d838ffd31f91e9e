"""Digest-vs-data checks: does an event's digest hash its own data?

PCR replay proves only the sequence of (PCR, digest) pairs; the event type and
data are not covered. For the types whose digest the spec defines as a hash of
the data, re-hashing binds the data to the PCR. Appraisal must not trust the
decoded data of an event whose check is ``MISMATCH``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from enum import Enum
from typing import Final, NamedTuple

from trustedge._binary import Reader
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.events import Event, bank_hash

__all__ = ["DataCheck", "DataCheckResult", "check_event_data", "check_events"]

_SEPARATOR: Final = 0x04
_ACTION: Final = 0x05
_IPL: Final = 0x0D
_EFI_DRIVER_CONFIG: Final = 0x80000001
_EFI_BOOT: Final = 0x80000002
_EFI_GPT: Final = 0x80000006
_EFI_ACTION: Final = 0x80000007
_EFI_BOOT2: Final = 0x8000000C
_EFI_GPT2: Final = 0x8000000D
_EFI_AUTHORITY: Final = 0x800000E0

#: Event types whose digest is checked.
CHECKED_TYPES: Final = frozenset(
    {
        _SEPARATOR,
        _ACTION,
        _IPL,
        _EFI_DRIVER_CONFIG,
        _EFI_BOOT,
        _EFI_BOOT2,
        _EFI_GPT,
        _EFI_GPT2,
        _EFI_ACTION,
        _EFI_AUTHORITY,
    }
)


class DataCheck(Enum):
    """Outcome of a digest-vs-data check."""

    MATCH = "match"
    #: EFI variable event whose digest hashes only VariableData (seen in the
    #: wild for EV_EFI_VARIABLE_BOOT; GUID and name are then not bound).
    MATCH_VARIABLE_DATA_ONLY = "match-variable-data-only"
    #: The digest covers all but the last byte of the data: shim's
    #: EV_EFI_VARIABLE_AUTHORITY events carry one extra byte (go-attestation #157).
    MATCH_TRAILING_BYTE = "match-trailing-byte"
    MISMATCH = "mismatch"
    NOT_APPLICABLE = "not-applicable"
    NO_DIGEST = "no-digest"


class DataCheckResult(NamedTuple):
    """The check of one event in one bank."""

    event: Event
    bank: str
    result: DataCheck


def check_event_data(event: Event, bank: str) -> DataCheck:
    """Check ``event``'s ``bank`` digest against its data (see :class:`DataCheck`).

    Separators, actions, GPT and EFI variable events (both digest styles seen
    in the wild), and IPL strings (GRUB's prefix-stripped form, NUL-trimmed
    strings) are checked; other types are NOT_APPLICABLE.
    """
    etype = event.event_type
    if etype not in CHECKED_TYPES:
        return DataCheck.NOT_APPLICABLE
    digest = event.digests.get(bank)
    if digest is None:
        return DataCheck.NO_DIGEST
    data = event.data

    def same(candidate: bytes) -> bool:
        return hmac.compare_digest(bank_hash(bank, candidate), digest)

    if same(data):
        return DataCheck.MATCH
    if etype in (_EFI_DRIVER_CONFIG, _EFI_BOOT, _EFI_BOOT2, _EFI_AUTHORITY):
        value = _variable_data(data)
        if value is not None and same(value):
            return DataCheck.MATCH_VARIABLE_DATA_ONLY
        if etype == _EFI_AUTHORITY and data and same(data[:-1]):
            return DataCheck.MATCH_TRAILING_BYTE
        return DataCheck.MISMATCH
    if etype == _IPL:
        for candidate in _ipl_candidates(data):
            if same(candidate):
                return DataCheck.MATCH
    return DataCheck.MISMATCH


def check_events(events: Iterable[Event], bank: str) -> list[DataCheckResult]:
    """:func:`check_event_data` for every event (NOT_APPLICABLE ones included)."""
    return [DataCheckResult(ev, bank, check_event_data(ev, bank)) for ev in events]


def _variable_data(data: bytes) -> bytes | None:
    r = Reader(data)
    try:
        r.skip(16, "VariableName")
        name_len = r.u64le("UnicodeNameLength")
        data_len = r.u64le("VariableDataLength")
        r.skip(2 * name_len if name_len < (1 << 20) else r.remaining + 1, "UnicodeName")
        return r.read(data_len, "VariableData")
    except MalformedInputError:
        return None


def _ipl_candidates(data: bytes) -> list[bytes]:
    text = data.rstrip(b"\x00")
    out = [text]
    for prefix in (b"grub_cmd: ", b"kernel_cmdline: ", b"grub_kernel_cmdline "):
        if text.startswith(prefix):
            out.append(text[len(prefix) :])
    return out
