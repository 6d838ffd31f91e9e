"""Reference values nobody writes by hand: boot policies from golden event logs.

:func:`policy_from_event_logs` turns one or more *verified* golden logs (the
machines an operator vouches for) into an event-log policy document in the
:func:`~trustedge.measuredboot.load_policy` format, and a report of what varies
between them. The rules it emits read only digest-bound facts (the one rule of
:mod:`trustedge.measuredboot.classify`):

- ``pcr_values`` for every PCR whose replayed value is the same in every log:
  the strongest rule, any changed, added, dropped or reordered event breaks it;
- ``event_digests`` for a PCR that differs between the logs (a NIC MAC in PCR1,
  a machine-specific boot entry): every event of that PCR must carry one of the
  digests seen there, and the report names the positions that vary;
- ``secure_boot`` when every log booted with Secure Boot on, ``db``/``dbx``
  requiring the entries every log has (a dbx that loses a revocation fails),
  ``boot_applications`` (the Authenticode digests of PCR4) and
  ``kernel_cmdline`` (the command lines seen, anchored and escaped).

The function is pure: the caller parses and verifies the logs (against their
quotes, or against their own replay when the golden machines are trusted as
a whole — :func:`self_verified`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trustedge.errors import MalformedInputError, VerificationError
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.classify import ClassifiedLog, classify
from trustedge.measuredboot.events import BANK_SIZES
from trustedge.measuredboot.policy import _entry_ids, checked_cmdlines
from trustedge.measuredboot.replay import EventLog, VerifiedEventLog
from trustedge.measuredboot.secureboot import (
    SecureBootState,
    secure_boot_state,
)

__all__ = ["GeneratedPolicy", "PcrVariation", "policy_from_event_logs", "self_verified"]

#: PCRs a generated boot policy covers by default: firmware, boot loader and
#: kernel measurements (PCR 10 is IMA's, 11-15 are OS-defined and covered
#: only when asked for).
DEFAULT_PCRS = tuple(range(10))


@dataclass(frozen=True)
class PcrVariation:
    """A PCR whose events differ between the golden logs.

    ``counts`` is the number of events per log; ``positions`` the 0-based event
    positions (within the PCR) whose digest differs between logs of equal
    length, each with the digest per log and the type the first log claims.
    """

    pcr: int
    counts: tuple[int, ...]
    positions: tuple[tuple[int, str, tuple[str | None, ...]], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "pcr": self.pcr,
            "events_per_log": list(self.counts),
            "differing_positions": [
                {"position": pos, "claimed_type": name, "digests": list(digests)}
                for pos, name, digests in self.positions
            ],
        }

    def describe(self) -> str:
        if len(set(self.counts)) > 1:
            return f"PCR{self.pcr}: {'/'.join(map(str, self.counts))} events in the logs"
        shown = ", ".join(f"event {pos} ({name})" for pos, name, _ in self.positions[:4])
        more = f" and {len(self.positions) - 4} more" if len(self.positions) > 4 else ""
        return f"PCR{self.pcr}: {shown}{more} differ between the logs"


@dataclass(frozen=True)
class GeneratedPolicy:
    """A generated event-log policy document and what the generator saw."""

    document: dict[str, Any]
    bank: str
    stable_pcrs: tuple[int, ...]
    varying: tuple[PcrVariation, ...]
    missing_pcrs: tuple[int, ...]
    logs: int
    notes: tuple[str, ...]

    def report(self) -> dict[str, Any]:
        return {
            "logs": self.logs,
            "bank": self.bank,
            "pinned_pcrs": list(self.stable_pcrs),
            "varying_pcrs": [v.to_json() for v in self.varying],
            "pcrs_not_in_every_log": list(self.missing_pcrs),
            "notes": list(self.notes),
        }


def self_verified(
    log: EventLog, *, bank: str = "sha256", workarounds: Collection[Workaround] = ()
) -> VerifiedEventLog:
    """Verify a golden log against its own replay in ``bank``.

    Only for logs the operator vouches for as a whole (a golden image booted
    on a machine they control): it proves the log is self-consistent, not
    that a TPM measured it. Appraisal always verifies against a quote.
    """
    values = log.replay().get(bank)
    if not values:
        raise MalformedInputError(f"the log has no replayable {bank} PCRs")
    return log.verify({bank: values}, workarounds=workarounds)


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def _cmdline_pattern(lines: Collection[str]) -> str:
    alternatives = "|".join(re.escape(line) for line in sorted(lines))
    return f"^(?:{alternatives})$"


def _variation(pcr: int, per_log: Sequence[Sequence[tuple[str, bytes | None]]]) -> PcrVariation:
    counts = tuple(len(events) for events in per_log)
    positions: list[tuple[int, str, tuple[str | None, ...]]] = []
    if len(set(counts)) == 1:
        for pos in range(counts[0]):
            digests = tuple(_hex(events[pos][1]) for events in per_log)
            if len(set(digests)) > 1:
                positions.append((pos, per_log[0][pos][0], digests))
    return PcrVariation(pcr, counts, tuple(positions))


def policy_from_event_logs(
    logs: Sequence[VerifiedEventLog],
    *,
    bank: str = "sha256",
    pcrs: Sequence[int] = DEFAULT_PCRS,
    workarounds: Collection[Workaround] = (),
) -> GeneratedPolicy:
    """Generate a boot policy that every one of ``logs`` satisfies (pure).

    Raises :class:`~trustedge.errors.MalformedInputError` when ``logs`` is empty
    or a log was not verified in ``bank``.
    """
    if bank not in BANK_SIZES:
        raise MalformedInputError(f"unknown bank {bank!r}")
    if not logs:
        raise MalformedInputError("policy generation needs at least one golden log")
    for log in logs:
        if not isinstance(log, VerifiedEventLog):
            raise TypeError("policy generation takes only verified event logs")
    classified: list[ClassifiedLog] = [classify(log, workarounds=workarounds) for log in logs]
    rules: list[dict[str, Any]] = []
    notes: list[str] = []
    stable: list[int] = []
    varying: list[PcrVariation] = []
    missing: list[int] = []
    for pcr in sorted(set(pcrs)):
        in_all = all(c.verified_in(pcr, bank) and c.log.events_for(pcr) for c in classified)
        if not in_all:
            if any(log.events_for(pcr) for log in logs):
                missing.append(pcr)
            continue
        values = {log.source.replay()[bank][pcr] for log in logs}
        if len(values) == 1:
            stable.append(pcr)
            rules.append({"rule": "pcr_values", "pcr": pcr, "bank": bank,
                          "values": [next(iter(values)).hex()]})  # fmt: skip
            continue
        per_log = [
            [(ev.type_name, ev.digests.get(bank)) for ev in log.events_for(pcr)] for log in logs
        ]
        varying.append(_variation(pcr, per_log))
        digests = sorted({d.hex() for events in per_log for _, d in events if d is not None})
        rules.append({"rule": "event_digests", "pcr": pcr, "bank": bank, "digests": digests})
    if missing:
        notes.append(
            "PCRs with events in some logs but not verified with events in all: "
            + ", ".join(map(str, missing))
            + " (not covered)"
        )
    rules.extend(_secure_boot_rules(logs, classified, bank, workarounds, notes))
    document: dict[str, Any] = {"version": 1, "rules": rules}
    if workarounds:
        document["workarounds"] = sorted(w.value for w in workarounds)
    notes.extend(v.describe() for v in varying)
    return GeneratedPolicy(
        document=document,
        bank=bank,
        stable_pcrs=tuple(stable),
        varying=tuple(varying),
        missing_pcrs=tuple(missing),
        logs=len(logs),
        notes=tuple(notes),
    )


def _secure_boot_rules(
    logs: Sequence[VerifiedEventLog],
    classified: Sequence[ClassifiedLog],
    bank: str,
    workarounds: Collection[Workaround],
    notes: list[str],
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    states: list[SecureBootState] = []
    for c in classified:
        log = c.log
        try:
            states.append(secure_boot_state(log, workarounds=workarounds, classified=c))
        except VerificationError as exc:
            notes.append(f"Secure Boot state unknown in a log ({exc}): no Secure Boot rules")
            states = []
            break
    if states:
        if all(s.enabled for s in states):
            rules.append({"rule": "secure_boot"})
        else:
            notes.append("Secure Boot is off in at least one log: no secure_boot rule")
        for name in ("db", "dbx"):
            common = set.intersection(*(_entry_ids(getattr(s, name)) for s in states))
            # _entry_ids lists hash entries by value and certificates by value and
            # SHA-256: require the 32-byte identifiers only (hashes, certificate digests).
            required = sorted(x.hex() for x in common if len(x) == 32)
            if required:
                rules.append({"rule": name, "required": required})
    if all(c.verified_in(4, bank) for c in classified):
        apps = {
            d.hex()
            for c in classified
            for item in c.measurements(4)
            if (d := item.event.digests.get(bank)) is not None
        }
        if apps:
            rules.append({"rule": "boot_applications", "bank": bank, "digests": sorted(apps)})
    lines: set[str] = set()
    every_log_has_one = True
    for c in classified:
        found = checked_cmdlines(c)
        every_log_has_one &= bool(found)
        lines.update(found)
    pcr8_opaque = any(c.measurements(8) for c in classified)
    if lines and every_log_has_one and pcr8_opaque:
        notes.append(
            "PCR8 holds measurements that are not proven strings: no kernel_cmdline rule "
            "(PCR8 is pinned by its value or digests instead)"
        )
    elif lines and every_log_has_one:
        rule: dict[str, Any] = {"rule": "kernel_cmdline", "required": [_cmdline_pattern(lines)]}
        # systemd-stub's credential/sysext archives on PCR12 are measurements the
        # rule would otherwise report as hidden command lines: allow the golden ones
        stub = {
            d.hex()
            for c in classified
            for item in c.measurements(12)
            if (d := item.event.digests.get(bank)) is not None
        }
        if stub:
            rule["measurements"] = sorted(stub)
        rules.append(rule)
    elif lines:
        notes.append("a kernel command line is logged in some logs only: no kernel_cmdline rule")
    return rules


def policy_document_pcrs(document: Mapping[str, Any]) -> tuple[int, ...]:
    """The PCRs a generated document pins or lists (for the appraisal policy's quote selection)."""
    out = {r["pcr"] for r in document.get("rules", []) if isinstance(r, dict) and "pcr" in r}
    return tuple(sorted(out))


# -- comparing and explaining policies -------------------------------------------------------
def _rule_key(rule: Mapping[str, Any]) -> tuple[str, int, str]:
    pcr = rule.get("pcr", -1)
    if isinstance(pcr, bool) or not isinstance(pcr, int):
        raise MalformedInputError("a rule's 'pcr' must be an integer")
    return (str(rule.get("rule")), pcr, str(rule.get("bank", "")))


def _values(rule: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for key in ("values", "digests", "required", "forbidden", "allowed"):
        items = rule.get(key)
        if isinstance(items, list):
            out.update(f"{key}:{v}" for v in items)
    return out


def _strs(value: Any, what: str) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedInputError(f"{what}: digests must be a list of hex strings")
    return set(value)


def diff_policies(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed from ``old`` to ``new`` (boot rule documents or runtime policies), one
    line per change; empty when they allow the same (pure)."""
    out: list[str] = []
    if "digests" in old or "digests" in new:
        a, b = old.get("digests", {}), new.get("digests", {})
        if not isinstance(a, dict) or not isinstance(b, dict):
            raise MalformedInputError("runtime policy 'digests' must be objects")
        for path in sorted(set(a) | set(b)):
            was, now = _strs(a.get(path, []), path), _strs(b.get(path, []), path)
            if not was:
                out.append(f"+ {path}: {', '.join(sorted(now))}")
            elif not now:
                out.append(f"- {path}")
            elif was != now:
                out.append(f"~ {path}: -{sorted(was - now)} +{sorted(now - was)}")
        was_ex = _strs(old.get("excludes", []), "excludes")
        now_ex = _strs(new.get("excludes", []), "excludes")
        out += [f"- excludes {e}" for e in sorted(was_ex - now_ex)]
        out += [f"+ excludes {e}" for e in sorted(now_ex - was_ex)]
        return out
    rules_a, rules_b = old.get("rules", []), new.get("rules", [])
    if not isinstance(rules_a, list) or not isinstance(rules_b, list):
        raise MalformedInputError("a boot policy has a 'rules' list")
    by_a = {_rule_key(r): r for r in rules_a if isinstance(r, dict)}
    by_b = {_rule_key(r): r for r in rules_b if isinstance(r, dict)}
    for key in sorted(set(by_a) | set(by_b)):
        name = key[0] + (f" PCR{key[1]}" if key[1] >= 0 else "") + (f" {key[2]}" if key[2] else "")
        if key not in by_b:
            out.append(f"- rule {name}")
        elif key not in by_a:
            out.append(f"+ rule {name}")
        else:
            was, now = _values(by_a[key]), _values(by_b[key])
            out += [f"~ {name}: - {v}" for v in sorted(was - now)]
            out += [f"~ {name}: + {v}" for v in sorted(now - was)]
    return out


def policy_from_prediction(
    prediction: Any, *, bank: str = "sha256", window: bool = False
) -> dict[str, Any]:
    """A boot policy pinning the PCR values an update will produce (``pcr_values``, pure).

    ``prediction`` is a :class:`~trustedge.measuredboot.predict.Prediction` of a verified
    log and an authenticated update. With ``window`` both the current and the predicted
    value of each PCR are allowed (the device may report before or after its reboot);
    PCRs the prediction cannot compute in ``bank`` are left out and listed by the caller
    from ``prediction.unpredictable``.
    """
    nxt = prediction.next.get(bank, {})
    cur = prediction.current.get(bank, {})
    if not nxt:
        raise MalformedInputError(f"the prediction has no {bank} values")
    rules: list[dict[str, Any]] = []
    for pcr in sorted(nxt):
        values = {nxt[pcr].hex()}
        if window and pcr in cur:
            values.add(cur[pcr].hex())
        rules.append({"rule": "pcr_values", "pcr": pcr, "bank": bank, "values": sorted(values)})
    return {"version": 1, "rules": rules}
