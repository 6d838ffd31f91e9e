"""The one rule of appraisal: only digest-bound data drives a decision.

PCR replay proves a sequence of (PCR, digest) pairs and nothing else: an
event's *type*, its data and every name or path in it are claims of the log
(go-attestation ``docs/event-log-disclosure.md``). :func:`classify` sorts
every verified event into one of two kinds:

* **proven** -- the claimed type is one whose digest the PC Client spec
  defines as a hash of the event data (separators, actions, EFI variables,
  GPT, IPL strings), :func:`~trustedge.measuredboot.check_event_data` says
  the data hash to the digest with a result in :data:`PROVEN_CHECKS`, the
  bound bytes have the form that type defines (4 bytes for a separator,
  text for an action or IPL string, a well-formed ``UEFI_VARIABLE_DATA`` for
  a variable) and the type belongs on that PCR. Its type and bound bytes are
  facts. The form and PCR checks matter: anyone can present the bytes an
  Authenticode hash covers as "data", so a digest that is the hash of a PE
  image must never pass as an action, an IPL string or a variable;
* **measurement** -- everything else: the digest of loaded code or opaque
  content. Only the digest is a fact; the type and data are labels.

Rules (:mod:`trustedge.measuredboot.policy`) and the Secure Boot state
(:mod:`trustedge.measuredboot.secureboot`) read their facts from a
:class:`ClassifiedLog` only: on any PCR a rule covers, every measurement must
match an allowed digest, whatever type the log gives it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from typing import Final

from trustedge.errors import MalformedInputError
from trustedge.measuredboot._decode import UefiVariable, decode_uefi_variable
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.consistency import GRUB_PREFIXES, DataCheck, check_event_data
from trustedge.measuredboot.events import Event, EventType, bank_hash
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = [
    "DATA_HASHED_TYPES",
    "PROVEN_CHECKS",
    "ClassifiedEvent",
    "ClassifiedLog",
    "EventKind",
    "classify",
]

#: The only data-check results that prove an event (any other value, including
#: ones added later for producer conventions, leaves the event a measurement).
#: ``MATCH_VARIABLE_DATA_ONLY`` is deliberately absent: the variable's GUID
#: and name are then not bound, and any digest ``H(X)`` can be presented as a
#: variable whose content is ``X``.
PROVEN_CHECKS: Final = frozenset({DataCheck.MATCH, DataCheck.MATCH_TRAILING_BYTE})

_ANY: Final = frozenset(range(0, 24))
#: Types whose digest the spec defines as a hash of the data, and the PCRs they
#: may prove anything on (PC Client PFP placement, with the producers seen in
#: the wild: Windows separators on 12-14, systemd and GRUB strings on 8/9/12).
DATA_HASHED_TYPES: Final[dict[int, frozenset[int]]] = {
    EventType.EV_SEPARATOR: _ANY,
    EventType.EV_ACTION: _ANY,
    EventType.EV_EFI_ACTION: _ANY,
    EventType.EV_IPL: _ANY,
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: frozenset({1, 3, 5, 7}),
    EventType.EV_EFI_VARIABLE_BOOT: frozenset({1, 7}),
    EventType.EV_EFI_VARIABLE_BOOT2: frozenset({1, 7}),
    EventType.EV_EFI_VARIABLE_AUTHORITY: frozenset({7}),
    EventType.EV_EFI_GPT_EVENT: frozenset({5}),
    EventType.EV_EFI_GPT_EVENT2: frozenset({5}),
}
_TEXT_TYPES: Final = frozenset({EventType.EV_ACTION, EventType.EV_EFI_ACTION, EventType.EV_IPL})
_VARIABLE_TYPES: Final = frozenset(
    {
        EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
        EventType.EV_EFI_VARIABLE_BOOT,
        EventType.EV_EFI_VARIABLE_BOOT2,
        EventType.EV_EFI_VARIABLE_AUTHORITY,
    }
)
_GPT_SIGNATURE: Final = b"EFI PART"


class EventKind(Enum):
    """What a verified event is, by the one rule (see the module docstring)."""

    #: Type and bound bytes are facts.
    PROVEN = "proven"
    #: Only the digest is a fact: loaded code or opaque content.
    MEASUREMENT = "measurement"


@dataclass(frozen=True)
class ClassifiedEvent:
    """One verified event and what it proves.

    ``bank`` is the verified bank the proof was made in; ``check`` the
    data-check result in that bank; ``content`` the bytes the digest covers
    (only for proven events, else empty); ``why`` says why a measurement is
    not proven (empty for proven events).
    """

    event: Event
    bank: str
    check: DataCheck
    kind: EventKind
    content: bytes = b""
    why: str = ""

    @property
    def proven(self) -> bool:
        return self.kind is EventKind.PROVEN

    @property
    def proven_type(self) -> int | None:
        """The event type, when proven; ``None`` for a measurement."""
        return self.event.event_type if self.proven else None

    @property
    def digest(self) -> bytes:
        """The event's digest in the verified bank (the one fact of a measurement)."""
        return self.event.digests[self.bank]

    def text(self) -> str | None:
        """The bound bytes as text, for a proven action or IPL string; else ``None``."""
        if not self.proven or self.event.event_type not in _TEXT_TYPES:
            return None
        return _as_text(self.content)

    def variable(self) -> UefiVariable | None:
        """The bound ``UEFI_VARIABLE_DATA``, for a proven variable event; else ``None``."""
        if not self.proven or self.event.event_type not in _VARIABLE_TYPES:
            return None
        return decode_uefi_variable(self.content)

    def label(self) -> str:
        """How messages name the event: number, PCR and the (claimed) type."""
        ev = self.event
        claimed = "" if self.proven else "claimed "
        return f"PCR{ev.pcr} event {ev.number} ({claimed}{ev.type_name})"


@dataclass(frozen=True)
class ClassifiedLog:
    """Every verified event of a log, classified (made by :func:`classify`)."""

    log: VerifiedEventLog
    events: tuple[ClassifiedEvent, ...]

    @property
    def verified_pcrs(self) -> frozenset[int]:
        return self.log.verified_pcrs

    def verified_in(self, pcr: int, bank: str) -> bool:
        """True when ``pcr`` replayed to a quoted value in ``bank``."""
        return bank in self.log.verified_banks.get(pcr, ())

    def for_pcr(self, pcr: int) -> tuple[ClassifiedEvent, ...]:
        return tuple(c for c in self.events if c.event.pcr == pcr)

    def measurements(self, pcr: int) -> tuple[ClassifiedEvent, ...]:
        """The unproven events of ``pcr``: digests of code or opaque content."""
        return tuple(c for c in self.events if c.event.pcr == pcr and not c.proven)

    def proven(self, pcr: int, *types: int) -> tuple[ClassifiedEvent, ...]:
        """The proven events of ``pcr`` (of ``types``, when given)."""
        return tuple(
            c
            for c in self.events
            if c.event.pcr == pcr and c.proven and (not types or c.event.event_type in types)
        )


def classify(log: VerifiedEventLog, *, workarounds: Collection[Workaround] = ()) -> ClassifiedLog:
    """Classify every verified event of ``log`` (see the module docstring).

    ``workarounds`` is accepted for symmetry with the other appraisal steps;
    no workaround makes an event proven. Synthetic events a workaround added
    (``offset == -1``) are proven only when they pass the same checks.
    """
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("classify needs a VerifiedEventLog")
    del workarounds  # no workaround widens what proves an event
    out = []
    for ev in log.events:
        bank = log.verified_banks[ev.pcr][0]
        out.append(_classify_event(ev, bank))
    return ClassifiedLog(log, tuple(out))


def _classify_event(ev: Event, bank: str) -> ClassifiedEvent:
    etype = ev.event_type
    pcrs = DATA_HASHED_TYPES.get(etype)
    if pcrs is None:
        return ClassifiedEvent(ev, bank, DataCheck.NOT_APPLICABLE, EventKind.MEASUREMENT,
                               why="its type does not bind the data")  # fmt: skip
    check = check_event_data(ev, bank)
    if check not in PROVEN_CHECKS:
        return ClassifiedEvent(ev, bank, check, EventKind.MEASUREMENT,
                               why=f"data check {check.value}")  # fmt: skip
    if ev.pcr not in pcrs:
        return ClassifiedEvent(ev, bank, check, EventKind.MEASUREMENT,
                               why=f"{ev.type_name} does not belong on PCR{ev.pcr}")  # fmt: skip
    content = _bound_bytes(ev, bank, check)
    if content is None or not _has_form(etype, content):
        return ClassifiedEvent(ev, bank, check, EventKind.MEASUREMENT,
                               why=f"bound bytes are not a {ev.type_name}")  # fmt: skip
    return ClassifiedEvent(ev, bank, check, EventKind.PROVEN, content)


def _bound_bytes(ev: Event, bank: str, check: DataCheck) -> bytes | None:
    """The exact bytes the digest is a hash of."""
    digest = ev.digests[bank]
    data = ev.data
    if check is DataCheck.MATCH_TRAILING_BYTE:
        candidates: tuple[bytes, ...] = (data[:-1],)
    else:
        text = data.rstrip(b"\x00")
        candidates = (data, text)
        if ev.event_type == EventType.EV_IPL:
            # GRUB hashes the string without its tag ("grub_cmd: ", RHEL's
            # "grub_cmd "): the bound bytes are then the untagged string, and
            # the tag is a claim (see secureboot.kernel_cmdlines).
            for prefix in GRUB_PREFIXES:
                if text.startswith(prefix):
                    candidates += (text[len(prefix) :], data[len(prefix) :])
    for candidate in candidates:
        if hmac.compare_digest(bank_hash(bank, candidate), digest):
            return candidate
    return None


def _has_form(etype: int, content: bytes) -> bool:
    if etype == EventType.EV_SEPARATOR:
        return len(content) == 4
    if etype in _TEXT_TYPES:
        return _as_text(content) is not None
    if etype in _VARIABLE_TYPES:
        try:
            decode_uefi_variable(content)
        except MalformedInputError:
            return False
        return True
    if etype in (EventType.EV_EFI_GPT_EVENT, EventType.EV_EFI_GPT_EVENT2):
        return content.startswith(_GPT_SIGNATURE)
    return False


def _printable(text: str) -> bool:
    return bool(text) and all(ch.isprintable() or ch in "\t\n\r" for ch in text)


def _as_text(content: bytes) -> str | None:
    """Printable text (UTF-8, or UTF-16LE as systemd-boot logs it); else None.

    A PE image's Authenticode hash covers its binary headers, so bytes that
    decode as printable text cannot be what a digest of loaded code hashes.
    """
    raw = content.rstrip(b"\x00") if len(content) % 2 else content
    if len(raw) >= 2 and len(raw) % 2 == 0 and raw[1::2].count(0) == len(raw) // 2:
        try:
            wide = raw.decode("utf-16-le").rstrip("\x00")
        except UnicodeDecodeError:
            wide = ""
        if _printable(wide):
            return wide
    try:
        text = content.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return None
    if b"\x00" in content.rstrip(b"\x00"):
        return None
    return text if _printable(text) else None
