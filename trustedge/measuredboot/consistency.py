"""Digest-vs-data checks: does an event's digest hash its own data?

PCR replay proves only the sequence of (PCR, digest) pairs; the event type and
data are not covered. For the types whose digest the spec defines as a hash of
the data, re-hashing binds the data to the PCR. Appraisal must not trust the
decoded data of an event whose check is ``MISMATCH``.

Only where a rule says the digest hashes the data can a failed re-hash be a
``MISMATCH``. Producers that log a *name* and measure something else (GRUB's
PCR9 file events, shim's PCR14 MOK variables, systemd-stub's PCR11 sections
and PCR12 cpio archives) get their own outcome, and an ``EV_IPL`` event no
rule covers is ``OPAQUE``: none of these is a match, so their data proves
nothing about what was measured.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Final, NamedTuple

from trustedge._binary import Reader
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.events import Event, bank_hash

__all__ = [
    "CCEL_PCR_GROUPS",
    "DataCheck",
    "DataCheckResult",
    "check_event_data",
    "check_events",
]

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
    #: The digest is of the data plus one NUL byte: systemd-boot logged an
    #: odd-length UTF-16 command line, one byte shorter than what it hashed.
    #: Every logged byte is covered; the lost byte is the terminator's high byte.
    MATCH_MISSING_FINAL_BYTE = "match-missing-final-byte"
    #: A rule says the digest hashes the data, and it does not.
    MISMATCH = "mismatch"
    #: EV_IPL whose data names a file and whose digest is of the file (GRUB's
    #: PCR9 events, RHEL's ``grub_linuxefi Kernel``, systemd-stub's PCR11 UKI
    #: sections and PCR12 cpio archives). Not a match: the name is a claim.
    DIGEST_OF_FILE = "digest-of-file"
    #: EV_IPL whose data names a shim variable (``MokList``, ``MokListX``,
    #: ``MokListTrusted``, ...) and whose digest is of the variable's content
    #: (shim, PCR14). Not a match: the name is a claim.
    DIGEST_OF_VARIABLE = "digest-of-variable"
    #: EV_IPL on a register no producer rule covers: the digest is of
    #: something the log does not carry. Not a match.
    OPAQUE = "opaque"
    NOT_APPLICABLE = "not-applicable"
    NO_DIGEST = "no-digest"


#: CCEL (TDX) measurement-register index -> the TPM PCRs it stands for
#: (UEFI spec 2.10 s.38.4.1: MR index 1 = RTMR0 = PCR 1,7; 2 = RTMR1 = PCR 2-6;
#: 3 = RTMR2 = PCR 8-15; 4 = RTMR3 = PCR 16+; 0 = MRTD = PCR0).
CCEL_PCR_GROUPS: Final[dict[int, frozenset[int]]] = {
    0: frozenset({0}),
    1: frozenset({1, 7}),
    2: frozenset(range(2, 7)),
    3: frozenset(range(8, 16)),
    4: frozenset(range(16, 24)),
}

#: GRUB's EV_IPL tags: the digest is of the text after the tag (with or
#: without its NUL). Upstream writes ``"grub_cmd: "``/``"kernel_cmdline: "``,
#: RHEL/Fedora/RHCOS builds ``"grub_cmd "``/``"grub_kernel_cmdline "``.
GRUB_PREFIXES: Final = (b"grub_cmd: ", b"kernel_cmdline: ", b"grub_kernel_cmdline ", b"grub_cmd ")

#: Variables shim measures into PCR14 by name (the digest is of the content).
SHIM_PCR14_VARIABLES: Final = frozenset(
    {b"MokList", b"MokListX", b"MokListTrusted", b"MokListRT", b"MokListXRT", b"MokSBState"}
)

#: systemd-stub's PCR12 descriptions of cpio archives it built and measured.
SYSTEMD_STUB_ARCHIVES: Final = frozenset(
    {
        "Credentials initrd",
        "Global credentials initrd",
        "System extension initrd",
        "Configuration extension initrd",
        "PCR signature initrd",
        "PCR public key initrd",
    }
)


class DataCheckResult(NamedTuple):
    """The check of one event in one bank."""

    event: Event
    bank: str
    result: DataCheck


def check_event_data(event: Event, bank: str, *, ccel: bool = False) -> DataCheck:
    """Check ``event``'s ``bank`` digest against its data (see :class:`DataCheck`).

    Separators, actions, GPT and EFI variable events (both digest styles seen
    in the wild), and IPL strings (GRUB's prefix-stripped forms, NUL-trimmed
    strings, systemd-boot's UTF-16 command lines) are checked; other types
    are NOT_APPLICABLE. An EV_IPL event that does not hash its data is a
    MISMATCH only on PCR8 and for UTF-16 text on PCR12 (GRUB and
    systemd-boot hash the text they log there); elsewhere it is
    DIGEST_OF_FILE, DIGEST_OF_VARIABLE or OPAQUE by producer convention.
    ``ccel`` says the log is a CCEL log, whose ``pcr`` field is a
    measurement-register index (:data:`CCEL_PCR_GROUPS`).
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
        return _check_ipl(event.pcr, data, same, ccel)
    return DataCheck.MISMATCH


def check_events(
    events: Iterable[Event], bank: str, *, ccel: bool = False
) -> list[DataCheckResult]:
    """:func:`check_event_data` for every event (NOT_APPLICABLE ones included)."""
    return [DataCheckResult(ev, bank, check_event_data(ev, bank, ccel=ccel)) for ev in events]


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


def _check_ipl(pcr: int, data: bytes, same: Callable[[bytes], bool], ccel: bool) -> DataCheck:
    # Digest-bound forms first: a match is a match on any register.
    text = data.rstrip(b"\x00")
    if text != data and same(text):
        return DataCheck.MATCH
    for prefix in GRUB_PREFIXES:
        if data.startswith(prefix):
            body = data[len(prefix) :]
            if same(body) or same(body.rstrip(b"\x00")):
                return DataCheck.MATCH
            break
    utf16 = _looks_utf16(data)
    if utf16 and len(data) % 2 and same(data + b"\x00"):
        return DataCheck.MATCH_MISSING_FINAL_BYTE
    # Not bound: which producer convention says what the digest is of.
    pcrs = CCEL_PCR_GROUPS.get(pcr, frozenset()) if ccel else frozenset({pcr})
    name = data.split(b"\x00", 1)[0]
    if 14 in pcrs and name in SHIM_PCR14_VARIABLES:
        return DataCheck.DIGEST_OF_VARIABLE
    if 8 in pcrs and (not ccel or utf16 or data.startswith(GRUB_PREFIXES)):
        return DataCheck.MISMATCH
    if 12 in pcrs and utf16:
        if _utf16_text(data) in SYSTEMD_STUB_ARCHIVES:
            return DataCheck.DIGEST_OF_FILE
        return DataCheck.MISMATCH
    if (9 in pcrs and (not ccel or name[:1] in (b"/", b"(") or name.startswith(b"grub_"))) or (
        11 in pcrs and not ccel
    ):
        return DataCheck.DIGEST_OF_FILE
    return DataCheck.OPAQUE


def _looks_utf16(data: bytes) -> bool:
    """UTF-16LE ASCII text (every odd byte zero), possibly missing its last byte."""
    return len(data) >= 2 and data[1::2].count(0) == len(data) // 2 and data[0] != 0


def _utf16_text(data: bytes) -> str:
    even = data + b"\x00" if len(data) % 2 else data
    return even.decode("utf-16-le", "replace").split("\x00", 1)[0]
