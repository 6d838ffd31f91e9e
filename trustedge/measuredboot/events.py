"""Event types, hash banks and the event record of TCG PC Client event logs.

Everything here describes *unverified* data: an :class:`Event` is what the log
says was measured. Only :meth:`trustedge.measuredboot.EventLog.verify` turns
events into verified ones (see :class:`trustedge.measuredboot.VerifiedEventLog`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final, NamedTuple

from trustedge.errors import UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.constants import HASH_ALGS

__all__ = [
    "BANK_BY_ALG_ID",
    "BANK_SIZES",
    "BANKS",
    "Event",
    "EventType",
    "SpecIdEvent",
    "bank_hash",
    "bank_hasher",
    "event_type_name",
]


class EventType(IntEnum):
    """Event types of the TCG PC Client Platform Firmware Profile (PFP)."""

    EV_PREBOOT_CERT = 0x00000000
    EV_POST_CODE = 0x00000001
    EV_UNUSED = 0x00000002
    EV_NO_ACTION = 0x00000003
    EV_SEPARATOR = 0x00000004
    EV_ACTION = 0x00000005
    EV_EVENT_TAG = 0x00000006
    EV_S_CRTM_CONTENTS = 0x00000007
    EV_S_CRTM_VERSION = 0x00000008
    EV_CPU_MICROCODE = 0x00000009
    EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
    EV_TABLE_OF_DEVICES = 0x0000000B
    EV_COMPACT_HASH = 0x0000000C
    EV_IPL = 0x0000000D
    EV_IPL_PARTITION_DATA = 0x0000000E
    EV_NONHOST_CODE = 0x0000000F
    EV_NONHOST_CONFIG = 0x00000010
    EV_NONHOST_INFO = 0x00000011
    EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
    EV_POST_CODE2 = 0x00000013
    EV_EFI_EVENT_BASE = 0x80000000
    EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
    EV_EFI_VARIABLE_BOOT = 0x80000002
    EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
    EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
    EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
    EV_EFI_GPT_EVENT = 0x80000006
    EV_EFI_ACTION = 0x80000007
    EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
    EV_EFI_HANDOFF_TABLES = 0x80000009
    EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
    EV_EFI_HANDOFF_TABLES2 = 0x8000000B
    EV_EFI_VARIABLE_BOOT2 = 0x8000000C
    EV_EFI_GPT_EVENT2 = 0x8000000D
    EV_EFI_HCRTM_EVENT = 0x80000010
    EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
    EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
    EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2
    EV_EFI_SPDM_DEVICE_POLICY = 0x800000E3
    EV_EFI_SPDM_DEVICE_AUTHORITY = 0x800000E4


_NAMES: Final[dict[int, str]] = {int(t): t.name for t in EventType}


def event_type_name(event_type: int) -> str:
    """The PFP name of ``event_type`` (``"EV_SEPARATOR"``), or ``"0x%08x"`` if unknown."""
    name = _NAMES.get(event_type)
    return name if name is not None else f"0x{event_type:08x}"


#: Hash banks trustedge replays, by name, with their digest sizes.
BANK_SIZES: Final[dict[str, int]] = {h.name: h.digest_size for h in HASH_ALGS}

#: Bank names in canonical order.
BANKS: Final[tuple[str, ...]] = tuple(BANK_SIZES)

#: TPM_ALG_ID -> bank name.
BANK_BY_ALG_ID: Final[dict[int, str]] = {h.alg.value: h.name for h in HASH_ALGS}

_HASHLIB_NAME: Final[dict[str, str]] = {h.name: h.hashlib_name for h in HASH_ALGS}


def bank_hasher(bank: str) -> Callable[[bytes], Any]:
    """A hashlib-style constructor ``data -> hash object`` for ``bank``.

    Raises :class:`~trustedge.errors.UnsupportedAlgorithmError` when the
    interpreter's OpenSSL lacks the algorithm (SM3 on some builds).
    """
    name = _HASHLIB_NAME.get(bank)
    if name is None:
        raise UnsupportedAlgorithmError(f"unknown hash bank {bank!r}")
    ctor: Callable[[bytes], Any] | None = getattr(hashlib, name, None)
    if ctor is not None:
        return ctor
    try:
        empty = hashlib.new(name)
    except ValueError as exc:
        raise UnsupportedAlgorithmError(f"hash {bank} is not available here") from exc

    # Copying a fresh object skips hashlib.new's name lookup (half the cost of
    # an SM3 PCR extend).
    def new(data: bytes) -> Any:
        h = empty.copy()
        h.update(data)
        return h

    return new


def bank_hash(bank: str, data: bytes) -> bytes:
    """The ``bank`` digest of ``data`` (see :func:`bank_hasher`)."""
    digest: bytes = bank_hasher(bank)(data).digest()
    return digest


class Event(NamedTuple):
    """One record of an event log, exactly as logged (unverified).

    ``number`` counts records from 0 (the Spec ID record included), ``offset``
    is the byte offset of the record, ``digests`` maps bank name to the digest
    the log carries for that bank (banks may be missing: per-event digest
    counts can be smaller than the Spec ID list), ``data`` is the raw event
    data. Decode ``data`` with :func:`trustedge.measuredboot.decode_event`.
    """

    number: int
    offset: int
    pcr: int
    event_type: int
    digests: dict[str, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        """The PFP name of the event type."""
        return event_type_name(self.event_type)


class SpecIdEvent(NamedTuple):
    """The decoded ``Spec ID Event03`` header of a crypto-agile log."""

    signature: str
    platform_class: int
    spec_version_major: int
    spec_version_minor: int
    spec_errata: int
    uintn_size: int
    #: bank name -> digest size, for the banks trustedge knows.
    algorithms: dict[str, int]
    vendor_info: bytes
    #: TPM_ALG_ID -> digest size for every declared algorithm (known or not).
    digest_sizes: dict[int, int]
