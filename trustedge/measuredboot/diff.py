"""Explain a mismatch: which PCR and which event first diverges.

Replay proves or disproves a whole PCR; an operator needs to know *where* it
went wrong ("PCR4: event 23 \\EFI\\BOOT\\grubx64.efi digest differs", not only
"PCR4 mismatch"). Two pure functions:

* :func:`diff_event_logs` compares a log with a reference log (a known-good
  boot of the same image), PCR by PCR, event by event, in one hash bank both
  carry, and reports the first event whose digest differs, the first extra
  or missing event, and events whose type or data differ under the same
  digest;
* :func:`explain_mismatch` compares a log with PCR values (from a verified
  quote, or expected values): for each PCR whose replay differs it says
  whether a prefix of the log reaches the value (the log runs ahead: the
  first event past it is named), whether one logged event is not in the PCR
  (logged twice, or never extended), whether two neighbours are swapped, or
  that no such simple change explains it.

Everything here is an *explanation*, for humans: the logs are unverified and
the labels (paths, texts, names) are claims. Decisions never rest on it. No
I/O, no clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from trustedge.measuredboot._decode import decode_event
from trustedge.measuredboot.events import BANK_SIZES, Event, bank_hasher
from trustedge.measuredboot.replay import EventLog, initial_pcr_value, register_name

__all__ = ["Divergence", "DivergenceKind", "diff_event_logs", "explain_mismatch"]

#: Banks tried in this order when two logs (or a log and PCR values) share several.
_BANK_PREFERENCE: Final = ("sha256", "sha384", "sha512", "sm3_256", "sha1")
#: The search for one dropped or swapped event is quadratic in a PCR's events; a
#: hostile log must not buy CPU with it: at most this many hash operations per
#: :func:`explain_mismatch` call go into it (about 0.1 s), beyond that a PCR is
#: reported as ``VALUE_DIFFERS``.
SEARCH_BUDGET: Final = 1 << 17
_NO_ACTION: Final = 0x03
_LABEL_CHARS: Final = 80


class DivergenceKind(Enum):
    """How a PCR's events diverge."""

    #: Same position in both logs, different digests.
    DIGEST_DIFFERS = "digest-differs"
    #: The log has an event where the reference has none (the log is longer).
    EXTRA_EVENT = "extra-event"
    #: The reference has an event where the log has none (the log is shorter).
    MISSING_EVENT = "missing-event"
    #: Same digest, but the logged type or data differ (neither is bound by the digest).
    LABEL_DIFFERS = "label-differs"
    #: A prefix of the log replays to the PCR value: the events from here on are not in it.
    NOT_IN_PCR = "not-in-pcr"
    #: Without this one event the log replays to the PCR value.
    EVENT_NOT_EXTENDED = "event-not-extended"
    #: With this event and the next one swapped the log replays to the PCR value.
    EVENTS_SWAPPED = "events-swapped"
    #: No prefix and no single dropped or swapped event explains the PCR value.
    VALUE_DIFFERS = "value-differs"
    #: The log has events on this PCR but no digest in this bank.
    NOT_REPLAYABLE = "not-replayable"


@dataclass(frozen=True)
class Divergence:
    """Where one PCR of a log first diverges (see :class:`DivergenceKind`).

    ``event`` is the log's event there (``None`` when the log has none),
    ``reference`` the reference log's event at that position (``None`` when
    compared with PCR values, or when the reference has none); ``position``
    counts that PCR's measured events from 0. ``register`` is the label
    (``"PCR4"``, ``"RTMR0"`` for CCEL logs).
    """

    pcr: int
    bank: str
    kind: DivergenceKind
    register: str
    position: int | None = None
    event: Event | None = None
    reference: Event | None = None
    label: str = ""
    count: int = 0

    def __str__(self) -> str:
        where = self.register
        k = DivergenceKind
        if self.kind is k.DIGEST_DIFFERS:
            return f"{where}: event {_num(self.event)} {self.label} {self.bank} digest differs"
        if self.kind is k.EXTRA_EVENT:
            return f"{where}: event {_num(self.event)} {self.label} is not in the reference log"
        if self.kind is k.MISSING_EVENT:
            return (
                f"{where}: reference event {_num(self.reference)} {self.label} is missing "
                "from the log"
            )
        if self.kind is k.LABEL_DIFFERS:
            return (
                f"{where}: event {_num(self.event)} has the reference's digest but another "
                f"type or data ({self.label}; not bound by the digest)"
            )
        if self.kind is k.NOT_IN_PCR:
            more = f" and {self.count - 1} later event(s) are" if self.count > 1 else " is"
            return (
                f"{where}: event {_num(self.event)} {self.label}{more} not in the {self.bank} "
                "PCR value (the log runs ahead of it)"
            )
        if self.kind is k.EVENT_NOT_EXTENDED:
            return (
                f"{where}: event {_num(self.event)} {self.label} is logged but not in the "
                f"{self.bank} PCR value (logged twice, or never extended)"
            )
        if self.kind is k.EVENTS_SWAPPED:
            return (
                f"{where}: event {_num(self.event)} {self.label} and the next one are in the "
                f"other order in the {self.bank} PCR value"
            )
        if self.kind is k.NOT_REPLAYABLE:
            return f"{where}: the log has no {self.bank} digest for every event"
        return (
            f"{where}: no prefix of the log's {self.count} event(s) replays to the {self.bank} "
            "PCR value (an event differs, is missing, or the value is not this log's)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pcr": self.pcr,
            "register": self.register,
            "bank": self.bank,
            "kind": self.kind.value,
            "position": self.position,
            "event": None if self.event is None else self.event.number,
            "reference_event": None if self.reference is None else self.reference.number,
            "label": self.label,
            "message": str(self),
        }


def _num(ev: Event | None) -> str:
    return "?" if ev is None else str(ev.number)


def event_label(ev: Event, *, uintn_size: int = 2) -> str:
    """A short human label for an event: its file path, text, variable name or type
    (as the log claims; never a fact)."""
    fields = decode_event(ev, uintn_size=uintn_size).fields
    path = fields.get("device_path")
    if isinstance(path, str) and path:
        tail = path.rsplit("/", 1)[-1]
        return _clip(tail if "\\" in tail else path)
    variable = fields.get("variable")
    name = getattr(variable, "name", None)
    if isinstance(name, str) and name:
        return _clip(f"{ev.type_name} {name}")
    for key in ("text", "description"):
        value = fields.get(key)
        if isinstance(value, str) and value:
            return _clip(repr(value))
    return ev.type_name


def _clip(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 3] + "..."


def _measured(log: EventLog) -> dict[int, list[Event]]:
    out: dict[int, list[Event]] = {}
    for ev in log.unverified_events:
        if ev.event_type != _NO_ACTION:
            out.setdefault(ev.pcr, []).append(ev)
    return out


def _common_bank(a: Sequence[str], b: Sequence[str]) -> str | None:
    for bank in _BANK_PREFERENCE:
        if bank in a and bank in b:
            return bank
    return next((x for x in a if x in b), None)


def diff_event_logs(log: EventLog, reference: EventLog) -> tuple[Divergence, ...]:
    """The first divergence of each PCR between ``log`` and ``reference``.

    Events are compared by position within their PCR (the order replay
    depends on), in the first bank of ``sha256, sha384, sha512, sm3_256, sha1``
    both logs carry. Per PCR: the first position whose digests differ, else
    the first extra or missing event, else the first event whose type or
    data differ under the same digest. Empty when the logs measure the same
    (type and data included). Raises ``ValueError`` when the logs share no bank.
    """
    bank = _common_bank(log.banks, reference.banks)
    if bank is None:
        raise ValueError(
            f"the logs share no hash bank ({', '.join(log.banks)} vs {', '.join(reference.banks)})"
        )
    mine, theirs = _measured(log), _measured(reference)
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    ref_uintn = reference.spec_id.uintn_size if reference.spec_id is not None else 2
    out = []
    for pcr in sorted(set(mine) | set(theirs)):
        a, b = mine.get(pcr, []), theirs.get(pcr, [])
        reg = register_name(pcr, ccel=log.ccel) if pcr <= 23 else f"0x{pcr:x}"
        found = _first_divergence(a, b, bank)
        if found is None:
            continue
        kind, i = found
        ev = a[i] if i < len(a) else None
        ref = b[i] if i < len(b) else None
        if kind is DivergenceKind.MISSING_EVENT:
            assert ref is not None
            label = event_label(ref, uintn_size=ref_uintn)
        else:
            assert ev is not None
            label = event_label(ev, uintn_size=uintn)
            if kind is DivergenceKind.LABEL_DIFFERS and ref is not None:
                label = f"{event_label(ref, uintn_size=ref_uintn)} -> {label}"
        out.append(Divergence(pcr, bank, kind, reg, i, ev, ref, label))
    return tuple(out)


def _first_divergence(
    a: Sequence[Event], b: Sequence[Event], bank: str
) -> tuple[DivergenceKind, int] | None:
    label_at: int | None = None
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        dx, dy = x.digests.get(bank), y.digests.get(bank)
        if dx is None or dy is None or not hmac.compare_digest(dx, dy):
            return DivergenceKind.DIGEST_DIFFERS, i
        if label_at is None and (x.event_type != y.event_type or x.data != y.data):
            label_at = i
    if len(a) > len(b):
        return DivergenceKind.EXTRA_EVENT, len(b)
    if len(b) > len(a):
        return DivergenceKind.MISSING_EVENT, len(a)
    if label_at is not None:
        return DivergenceKind.LABEL_DIFFERS, label_at
    return None


def explain_mismatch(
    log: EventLog, pcrs: Mapping[str, Mapping[int, bytes]]
) -> tuple[Divergence, ...]:
    """Explain every (bank, PCR) of ``pcrs`` whose value the log's replay does not reach.

    ``pcrs`` is bank -> PCR -> value (e.g. a verified quote's). PCRs without
    logged events, banks the log does not carry and values that match are
    skipped, as :meth:`EventLog.verify` does; only one bank is explained per
    PCR (the first of ``sha256, sha384, sha512, sm3_256, sha1``). Values of
    the wrong size raise ``ValueError``.
    """
    measured = _measured(log)
    locality = log.pcr0_locality()
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    order = [b for b in _BANK_PREFERENCE if b in pcrs] + [
        b for b in pcrs if b not in _BANK_PREFERENCE
    ]
    done: set[int] = set()
    budget = [SEARCH_BUDGET]
    out = []
    for bank in order:
        if bank not in BANK_SIZES:
            raise ValueError(f"unknown bank {bank!r}")
        for pcr, value in sorted(pcrs[bank].items()):
            if len(value) != BANK_SIZES[bank]:
                raise ValueError(f"{bank} PCR {pcr}: value must be {BANK_SIZES[bank]} bytes")
            events = measured.get(pcr)
            if not events or pcr in done or bank not in log.banks:
                continue
            reg = register_name(pcr, ccel=log.ccel)
            start = initial_pcr_value(bank, pcr, locality=locality)
            found = _explain(events, bank, start, bytes(value), budget)
            if found is None:
                continue
            done.add(pcr)
            kind, i = found
            ev = events[i] if i is not None else None
            label = event_label(ev, uintn_size=uintn) if ev is not None else ""
            count = len(events) - i if kind is DivergenceKind.NOT_IN_PCR and i is not None else 0
            if kind is DivergenceKind.VALUE_DIFFERS:
                count = len(events)
            out.append(Divergence(pcr, bank, kind, reg, i, ev, None, label, count))
    return tuple(out)


def _explain(
    events: Sequence[Event], bank: str, start: bytes, want: bytes, budget: list[int]
) -> tuple[DivergenceKind, int | None] | None:
    digests = [ev.digests.get(bank) for ev in events]
    if any(d is None for d in digests):
        return DivergenceKind.NOT_REPLAYABLE, None
    ds = [d for d in digests if d is not None]
    new = bank_hasher(bank)
    cmp = hmac.compare_digest
    running = [start]
    for d in ds:
        running.append(new(running[-1] + d).digest())
    if cmp(running[-1], want):
        return None
    for i in range(len(ds)):
        if cmp(running[i], want):
            return DivergenceKind.NOT_IN_PCR, i
    cost = len(ds) * len(ds)  # both searches together: about n^2 hash operations
    if cost <= budget[0]:
        budget[0] -= cost
        for i in range(len(ds)):  # one event logged but not extended
            value = running[i]
            for d in ds[i + 1 :]:
                value = new(value + d).digest()
            if cmp(value, want):
                return DivergenceKind.EVENT_NOT_EXTENDED, i
        for i in range(len(ds) - 1):  # two neighbours in the other order
            value = new(new(running[i] + ds[i + 1]).digest() + ds[i]).digest()
            for d in ds[i + 2 :]:
                value = new(value + d).digest()
            if cmp(value, want):
                return DivergenceKind.EVENTS_SWAPPED, i
    return DivergenceKind.VALUE_DIFFERS, None
