"""Replay of an event log into PCR values, and verification against quoted PCRs.

Replay rules (PC Client PFP; DESIGN.md §Measured boot):

* ``PCR_new = H_bank(PCR_old || digest_bank)`` per bank, in log order;
* every EV_NO_ACTION record is skipped (including PCR index 0xFFFFFFFF);
* PCR0 starts at ``00..0L`` where ``L`` is the StartupLocality byte, or at
  ``00..04`` when an EV_EFI_HCRTM_EVENT is logged on PCR0;
* PCR 17-22 start at all-ones (DRTM), every other PCR at all-zero (the one rule:
  :func:`trustedge.hazmat.tpm2.pcr.pcr_reset_value`);
* an event without a digest for a bank makes that (bank, PCR) unreplayable.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from trustedge.errors import ReplayMismatchError
from trustedge.hazmat.tpm2.pcr import pcr_reset_value
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.events import BANK_SIZES, Event, SpecIdEvent, bank_hash, bank_hasher

__all__ = ["EventLog", "PCRValues", "VerifiedEventLog", "initial_pcr_value", "register_name"]

#: bank name -> PCR index -> value.
PCRValues = dict[str, dict[int, bytes]]

_EV_NO_ACTION: Final = 0x00000003
_EV_EFI_ACTION: Final = 0x80000007
_EV_EFI_HCRTM_EVENT: Final = 0x80000010
_STARTUP_LOCALITY: Final = b"StartupLocality\x00"
_EBS_ACTIONS: Final = (
    b"Exit Boot Services Invocation",
    b"Exit Boot Services Returned with Success",
)


def register_name(index: int, *, ccel: bool = False) -> str:
    """How to label the ``pcr`` field of an event: ``"PCR7"``, or for a CCEL log
    (where it is a TDX measurement-register index) ``"MRTD"``/``"RTMR0"``-``"RTMR3"``."""
    if not ccel:
        return f"PCR{index}"
    if index == 0:
        return "MRTD"
    if 1 <= index <= 4:
        return f"RTMR{index - 1}"
    return f"MR{index}"


def initial_pcr_value(bank: str, pcr: int, *, locality: int = 0) -> bytes:
    """The reset value of ``pcr`` in ``bank`` (``locality`` applies to PCR0 only)."""
    return _reset_value(bank, pcr, locality)


@lru_cache(maxsize=1024)
def _reset_value(bank: str, pcr: int, locality: int) -> bytes:
    # Cached: replay asks for it for every (bank, PCR) of every log.
    return pcr_reset_value(bank, pcr, locality=locality)


class EventLog:
    """A parsed, **unverified** firmware event log.

    Made by :func:`trustedge.measuredboot.parse_event_log`. Nothing in it is
    trusted until :meth:`verify` matched its replay against PCR values that
    came from a verified quote; policy code takes only the
    :class:`VerifiedEventLog` that :meth:`verify` returns.
    """

    __slots__ = ("_events", "_grouped", "_no_action", "_replay", "_unreplayable", "spec_id")

    def __init__(self, events: Sequence[Event], *, spec_id: SpecIdEvent | None) -> None:
        self._events = tuple(events)
        #: The decoded Spec ID header (``None`` for SHA-1 format logs).
        self.spec_id = spec_id
        self._replay: PCRValues | None = None
        self._unreplayable: frozenset[tuple[str, int]] = frozenset()
        self._grouped: dict[int, list[Event]] | None = None
        self._no_action: list[Event] = []

    def _by_pcr(self) -> dict[int, list[Event]]:
        """Measured events grouped by PCR (one pass; EV_NO_ACTION kept aside)."""
        if self._grouped is None:
            grouped: dict[int, list[Event]] = {}
            no_action = self._no_action
            for ev in self._events:
                if ev.event_type == _EV_NO_ACTION:
                    no_action.append(ev)
                    continue
                group = grouped.get(ev.pcr)
                if group is None:
                    grouped[ev.pcr] = [ev]
                else:
                    group.append(ev)
            self._grouped = grouped
        return self._grouped

    # -- what the log claims --------------------------------------------
    @property
    def unverified_events(self) -> tuple[Event, ...]:
        """Every record, in log order, as logged (claims, not facts)."""
        return self._events

    @property
    def format(self) -> str:
        """``"crypto-agile"`` or ``"sha1"``."""
        return "sha1" if self.spec_id is None else "crypto-agile"

    @property
    def ccel(self) -> bool:
        """True for a Confidential Computing event log (TDX CCEL).

        Its Spec ID record sits on index 1 and every ``pcr`` field is a
        measurement-register index (1-4 = RTMR0-3, see :func:`register_name`);
        replay and verification treat the indices like PCRs.
        """
        events = self._events
        return self.spec_id is not None and bool(events) and events[0].pcr == 1

    def register_name(self, index: int) -> str:
        """The label of register ``index`` in this log (``"PCR7"`` or ``"RTMR0"``)."""
        return register_name(index, ccel=self.ccel)

    @property
    def banks(self) -> tuple[str, ...]:
        """Hash banks the log carries digests for (known banks only)."""
        if self.spec_id is None:
            return ("sha1",)
        return tuple(self.spec_id.algorithms)

    @property
    def startup_locality(self) -> int | None:
        """The StartupLocality byte when the log has that EV_NO_ACTION record."""
        self._by_pcr()
        for ev in self._no_action:
            if ev.pcr == 0 and len(ev.data) >= 17 and ev.data[:16] == _STARTUP_LOCALITY:
                return ev.data[16]
        return None

    @property
    def hcrtm(self) -> bool:
        """True when an EV_EFI_HCRTM_EVENT is logged on PCR0."""
        return any(ev.event_type == _EV_EFI_HCRTM_EVENT for ev in self._by_pcr().get(0, ()))

    def pcr0_locality(self) -> int:
        """The locality PCR0 replays from: 4 after H-CRTM, else StartupLocality or 0."""
        if self.hcrtm:
            return 4
        return self.startup_locality or 0

    # -- replay ------------------------------------------------------------
    def replay(self) -> PCRValues:
        """Replay every bank: bank -> PCR index -> value.

        Only PCRs with at least one measured (non EV_NO_ACTION) event appear;
        a (bank, PCR) for which some event lacks that bank's digest is left
        out (see :attr:`unreplayable`). The result is a fresh copy.
        """
        if self._replay is None:
            self._replay, self._unreplayable = _replay(
                self._by_pcr(), self.banks, self.pcr0_locality()
            )
        return {bank: dict(values) for bank, values in self._replay.items()}

    @property
    def unreplayable(self) -> frozenset[tuple[str, int]]:
        """(bank, PCR) pairs some event has no digest for (cannot be replayed)."""
        self.replay()
        return self._unreplayable

    def measured_pcrs(self) -> frozenset[int]:
        """PCR indices with at least one measured event."""
        return frozenset(self._by_pcr())

    # -- verification ------------------------------------------------------
    def verify(
        self,
        pcrs: Mapping[str, Mapping[int, bytes]],
        *,
        workarounds: Collection[Workaround] = (),
    ) -> VerifiedEventLog:
        """Check the replay against ``pcrs`` (bank -> PCR -> value from a verified quote).

        Each supplied value of a PCR that has events in the log must equal the
        replayed value (constant-time compare). Supplied values of PCRs without
        logged events are accepted when they equal the reset value (the PCR
        is then verified and empty) and otherwise ignored (something outside
        the firmware log, e.g. IMA, extended them). Banks the log has no
        digests for are ignored.

        Returns a :class:`VerifiedEventLog` holding only the events of the
        PCRs that matched. Raises :class:`~trustedge.errors.ReplayMismatchError`
        listing every (bank, PCR) that did not match, or when no supplied
        value could be checked at all. ``workarounds`` enables entries of the
        quirk table (:data:`~trustedge.measuredboot.WORKAROUNDS`) that apply
        at verification time.
        """
        replayed = self.replay()
        measured = self.measured_pcrs()
        locality = self.pcr0_locality()
        log_banks = set(self.banks)
        mismatches: list[tuple[str, int]] = []
        verified: dict[int, list[str]] = {}
        synthetic: list[Event] = []
        for bank, values in pcrs.items():
            if bank not in BANK_SIZES:
                raise ValueError(f"unknown bank {bank!r}")
            for pcr, value in values.items():
                if not isinstance(value, (bytes, bytearray)) or len(value) != BANK_SIZES[bank]:
                    raise ValueError(f"{bank} PCR {pcr}: value must be {BANK_SIZES[bank]} bytes")
                if pcr not in measured:
                    if hmac.compare_digest(initial_pcr_value(bank, pcr, locality=locality), value):
                        verified.setdefault(pcr, []).append(bank)
                    continue
                if bank not in log_banks:
                    continue
                got = replayed.get(bank, {}).get(pcr)
                if got is not None and hmac.compare_digest(got, bytes(value)):
                    verified.setdefault(pcr, []).append(bank)
                    continue
                extra = _try_workarounds(got, bank, pcr, bytes(value), workarounds)
                if extra is not None:
                    verified.setdefault(pcr, []).append(bank)
                    synthetic.extend(extra)
                    continue
                mismatches.append((bank, pcr))
        if mismatches:
            listed = ", ".join(f"{bank}:{pcr}" for bank, pcr in sorted(mismatches))
            raise ReplayMismatchError(
                f"event log replay does not match PCRs {listed}", mismatches=sorted(mismatches)
            )
        if not verified:
            raise ReplayMismatchError("no supplied PCR value can be checked against this log")
        return VerifiedEventLog(self, verified, _number_synthetic(synthetic, len(self._events)))


def _replay(
    per_pcr: Mapping[int, Sequence[Event]], banks: Sequence[str], locality: int
) -> tuple[PCRValues, frozenset[tuple[str, int]]]:
    out: PCRValues = {}
    missing: set[tuple[str, int]] = set()
    in_order = sorted(per_pcr.items())
    for bank in banks:
        new = bank_hasher(bank)
        values: dict[int, bytes] = {}
        for pcr, evs in in_order:
            value = _reset_value(bank, pcr, locality)
            try:
                for ev in evs:
                    value = new(value + ev.digests[bank]).digest()
            except KeyError:
                missing.add((bank, pcr))
                continue
            values[pcr] = value
        out[bank] = values
    return out, frozenset(missing)


def _try_workarounds(
    got: bytes | None, bank: str, pcr: int, want: bytes, workarounds: Collection[Workaround]
) -> list[Event] | None:
    if got is None or pcr != 5 or Workaround.MISSING_EXIT_BOOT_SERVICES not in workarounds:
        return None
    value = got
    for text in _EBS_ACTIONS:
        value = bank_hash(bank, value + bank_hash(bank, text))
    if not hmac.compare_digest(value, want):
        return None
    return [
        Event(-1, -1, 5, _EV_EFI_ACTION, {bank: bank_hash(bank, text)}, text)
        for text in _EBS_ACTIONS
    ]


def _number_synthetic(events: list[Event], first_index: int) -> tuple[Event, ...]:
    """Merge the per-bank synthetic events into one event per action text."""
    merged: dict[bytes, dict[str, bytes]] = {}
    for ev in events:
        merged.setdefault(ev.data, {}).update(ev.digests)
    return tuple(
        Event(first_index + i, -1, 5, _EV_EFI_ACTION, digests, text)
        for i, (text, digests) in enumerate(merged.items())
    )


@dataclass(frozen=True)
class VerifiedEventLog:
    """Events whose PCR replay matched verified PCR values.

    Only events of PCRs in :attr:`verified_pcrs` are here (no EV_NO_ACTION
    records); :attr:`synthetic_events` are the events a workaround added
    (they carry ``offset == -1``). :attr:`verified_banks` says, per PCR,
    which banks were compared: digests of other banks are not proven.
    """

    source: EventLog = field(repr=False)
    verified_banks: dict[int, list[str]]
    synthetic_events: tuple[Event, ...] = ()

    @property
    def verified_pcrs(self) -> frozenset[int]:
        """PCR indices whose replay matched."""
        return frozenset(self.verified_banks)

    @property
    def events(self) -> tuple[Event, ...]:
        """Verified measured events in log order, then synthetic ones."""
        pcrs = self.verified_pcrs
        logged = tuple(
            ev
            for ev in self.source.unverified_events
            if ev.event_type != _EV_NO_ACTION and ev.pcr in pcrs
        )
        return logged + self.synthetic_events

    def events_for(self, pcr: int) -> tuple[Event, ...]:
        """Verified events of one PCR (empty when the PCR was not verified)."""
        return tuple(ev for ev in self.events if ev.pcr == pcr)

    @property
    def spec_id(self) -> SpecIdEvent | None:
        """The log's Spec ID header."""
        return self.source.spec_id

    @property
    def ccel(self) -> bool:
        """True for a CCEL (TDX) log: ``pcr`` fields are RTMR indices (:attr:`EventLog.ccel`)."""
        return self.source.ccel
