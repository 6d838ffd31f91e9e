"""Reference-value policies over verified event logs and verified IMA lists.

Policies are explicit objects: rules compose with :class:`AllOf` and
:class:`AnyOf`; the policy that accepts everything is named
:class:`UnsafeNoPolicy`. ``check`` takes only verified input and raises
:class:`~trustedge.errors.PolicyError` listing **every** violated rule.

The same rules load from a JSON document (:func:`load_policy`)::

    {"version": 1, "rules": [
        {"rule": "secure_boot"},
        {"rule": "event_digests", "pcr": 4, "bank": "sha256", "digests": ["..."]},
        {"rule": "boot_applications", "bank": "sha256", "digests": ["..."]},
        {"rule": "pcr_values", "pcr": 0, "bank": "sha256", "values": ["..."]},
        {"rule": "measurements", "pcr": 9, "bank": "sha256", "digests": ["..."]},
        {"rule": "db", "required": ["<sha256 of a cert or a hash entry>"], "forbidden": [],
         "allowed": ["<optional: every entry db may hold>"]},
        {"rule": "dbx", "required": ["..."]},
        {"rule": "kernel_cmdline", "required": ["regex"], "forbidden": ["regex"],
         "measurements": ["<digest of a PCR12 credential archive>"]},
        {"rule": "any_of", "rules": [...]}
    ]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Protocol

from trustedge.errors import (
    MalformedInputError,
    PolicyError,
    SignatureError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from trustedge.measuredboot._decode import SignatureList
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.classify import ClassifiedLog, classify
from trustedge.measuredboot.events import BANK_SIZES
from trustedge.measuredboot.ima import ImaEntries, ImaEntry, VerifiedImaLog
from trustedge.measuredboot.imasig import ImaKeyring, verify_ima_signature
from trustedge.measuredboot.replay import VerifiedEventLog
from trustedge.measuredboot.secureboot import (
    SecureBootState,
    boot_applications,
    kernel_cmdlines,
    secure_boot_state,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "BootApplications",
    "BootFacts",
    "EventDigests",
    "EventLogPolicy",
    "EventLogRule",
    "IMA_MODIFIED_KINDS",
    "ImaRuntimePolicy",
    "ImaViolation",
    "ImaViolationKind",
    "KernelCmdline",
    "Measurements",
    "PcrValues",
    "RequireSecureBoot",
    "SignatureDatabase",
    "UnsafeNoPolicy",
    "boot_facts",
    "load_ima_policy",
    "load_policy",
]


@dataclass(frozen=True)
class BootFacts:
    """What a verified log proves, computed once per appraisal (:func:`boot_facts`).

    ``classified`` is the one-rule classification of every verified event;
    ``secure_boot`` the Secure Boot state read from it, or the
    :class:`~trustedge.errors.VerificationError` that says why it is unknown.
    """

    classified: ClassifiedLog
    secure_boot: SecureBootState | VerificationError

    @property
    def log(self) -> VerifiedEventLog:
        return self.classified.log

    def secure_boot_state(self) -> SecureBootState:
        """The Secure Boot state; raises the VerificationError when it is unknown."""
        if isinstance(self.secure_boot, VerificationError):
            raise self.secure_boot
        return self.secure_boot


def boot_facts(log: VerifiedEventLog, *, workarounds: Collection[Workaround] = ()) -> BootFacts:
    """Classify ``log`` and read its Secure Boot state, once (pure)."""
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("boot_facts needs a VerifiedEventLog")
    classified = classify(log, workarounds=workarounds)
    sb: SecureBootState | VerificationError
    try:
        sb = secure_boot_state(log, workarounds=workarounds, classified=classified)
    except VerificationError as exc:
        sb = exc
    return BootFacts(classified, sb)


class _Context:
    """The facts shared by the rules of one check."""

    def __init__(self, facts: BootFacts) -> None:
        self.facts = facts
        self.log = facts.log
        self.classified = facts.classified

    def secure_boot(self) -> SecureBootState:
        return self.facts.secure_boot_state()


def _facts_for(
    log: VerifiedEventLog, facts: BootFacts | None, workarounds: Collection[Workaround]
) -> BootFacts:
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("policies check only a VerifiedEventLog")
    if facts is None:
        return boot_facts(log, workarounds=workarounds)
    if facts.log is not log:
        raise ValueError("facts were computed for another log")
    return facts


class EventLogRule(Protocol):
    """One rule: returns the violations it finds (empty when satisfied)."""

    def violations(self, ctx: _Context) -> list[str]: ...


@dataclass(frozen=True)
class EventLogPolicy:
    """A checkable policy: all ``rules`` must hold."""

    rules: tuple[EventLogRule, ...]
    workarounds: frozenset[Workaround] = frozenset()

    def check(self, log: VerifiedEventLog, *, facts: BootFacts | None = None) -> None:
        """Raise :class:`PolicyError` with every violation, or return None.

        ``facts`` (from :func:`boot_facts` with this policy's workarounds) saves
        classifying the log again when the caller already did.
        """
        ctx = _Context(_facts_for(log, facts, self.workarounds))
        found = AllOf(self.rules).violations(ctx)
        if found:
            raise PolicyError(
                f"{len(found)} policy violation(s): " + "; ".join(found), violations=found
            )


@dataclass(frozen=True)
class UnsafeNoPolicy:
    """Accepts every verified log. Named so because it checks nothing."""

    workarounds: frozenset[Workaround] = frozenset()

    def check(self, log: VerifiedEventLog, *, facts: BootFacts | None = None) -> None:
        if not isinstance(log, VerifiedEventLog):
            raise TypeError("policies check only a VerifiedEventLog")


@dataclass(frozen=True)
class AllOf:
    """Every rule must hold; violations of all rules are reported."""

    rules: Sequence[EventLogRule]

    def violations(self, ctx: _Context) -> list[str]:
        return [v for rule in self.rules for v in rule.violations(ctx)]


@dataclass(frozen=True)
class AnyOf:
    """At least one rule must hold; otherwise all their violations are reported."""

    rules: Sequence[EventLogRule]

    def violations(self, ctx: _Context) -> list[str]:
        found: list[str] = []
        for rule in self.rules:
            result = rule.violations(ctx)
            if not result:
                return []
            found.extend(result)
        return [f"none of {len(self.rules)} alternatives holds: " + "; ".join(found)]


def _sb_or_violation(ctx: _Context, what: str) -> SecureBootState | str:
    try:
        return ctx.secure_boot()
    except VerificationError as exc:
        return f"{what}: Secure Boot state unavailable ({exc})"


@dataclass(frozen=True)
class RequireSecureBoot:
    """Secure Boot must be logged as enabled (and not in debug mode).

    ``enabled=False`` pins the opposite (a golden state with Secure Boot off, as a
    Keylime refstate without Secure Boot requires): a boot with it on is a violation.
    """

    enabled: bool = True

    def violations(self, ctx: _Context) -> list[str]:
        sb = _sb_or_violation(ctx, "secure_boot")
        if isinstance(sb, str):
            return [sb]
        out = []
        if not self.enabled:
            if sb.enabled:
                out.append("secure_boot: SecureBoot is enabled, the policy pins it off")
            return out
        if not sb.enabled:
            out.append("secure_boot: SecureBoot is not enabled")
        if sb.debug_mode:
            out.append("secure_boot: firmware logged UEFI Debug Mode")
        return out


def _unverified_bank(ctx: _Context, rule: str, pcr: int, bank: str) -> list[str]:
    if pcr not in ctx.log.verified_pcrs:
        return [f"{rule}: PCR{pcr} is not verified"]
    if not ctx.classified.verified_in(pcr, bank):
        # Digests of a bank that was not compared with the quote are claims.
        return [f"{rule}: PCR{pcr} is not verified in {bank}"]
    return []


@dataclass(frozen=True)
class EventDigests:
    """Every verified event of ``pcr`` (proven or not) must have an allowed ``bank`` digest."""

    pcr: int
    bank: str
    allowed: frozenset[bytes]

    def violations(self, ctx: _Context) -> list[str]:
        unverified = _unverified_bank(ctx, "event_digests", self.pcr, self.bank)
        if unverified:
            return unverified
        out = []
        for ev in ctx.log.events_for(self.pcr):
            digest = ev.digests.get(self.bank)
            if digest is None or digest not in self.allowed:
                shown = digest.hex() if digest is not None else "none"
                out.append(
                    f"event_digests: PCR{self.pcr} event {ev.number} ({ev.type_name}) "
                    f"{self.bank} digest {shown} is not allowed"
                )
        return out


@dataclass(frozen=True)
class PcrValues:
    """The verified replayed value of ``pcr`` in ``bank`` must be one of ``allowed``.

    The strictest rule: any changed, added, dropped or reordered event of the PCR
    breaks it. Generated policies pin every PCR that is the same on all golden
    machines with it (:func:`~trustedge.measuredboot.reference.policy_from_event_logs`).
    """

    pcr: int
    bank: str
    allowed: frozenset[bytes]

    def violations(self, ctx: _Context) -> list[str]:
        unverified = _unverified_bank(ctx, "pcr_values", self.pcr, self.bank)
        if unverified:
            return unverified
        value = ctx.log.source.replay().get(self.bank, {}).get(self.pcr)
        if value is None or not any(hmac.compare_digest(value, a) for a in self.allowed):
            shown = value.hex() if value is not None else "none"
            return [f"pcr_values: PCR{self.pcr} {self.bank} value {shown} is not allowed"]
        return []


def _measurement_violations(
    ctx: _Context,
    rule: str,
    pcr: int,
    bank: str,
    allowed: frozenset[bytes],
    paths: Mapping[int, str] | None = None,
) -> list[str]:
    unverified = _unverified_bank(ctx, rule, pcr, bank)
    if unverified:
        return unverified
    out = []
    for item in ctx.classified.measurements(pcr):
        digest = item.event.digests.get(bank)
        if digest is None or digest not in allowed:
            shown = digest.hex() if digest is not None else "none"
            path = (paths or {}).get(item.event.number)
            named = f" claimed path {path}" if path else ""
            out.append(f"{rule}: {item.label()}{named} {bank} digest {shown} is not allowed")
    return out


@dataclass(frozen=True)
class Measurements:
    """Every *measurement* of ``pcr`` (each event not proven by its data, whatever
    type the log gives it) must have a ``bank`` digest in ``allowed``."""

    pcr: int
    bank: str
    allowed: frozenset[bytes]

    def violations(self, ctx: _Context) -> list[str]:
        return _measurement_violations(ctx, "measurements", self.pcr, self.bank, self.allowed)


@dataclass(frozen=True)
class BootApplications:
    """Every PCR4 measurement must have an allowed ``bank`` (Authenticode) digest.

    Every PCR4 event that is not proven by its data counts as code the
    firmware loaded, whatever type the log gives it: relabelling an
    application (as an action, a separator, an IPL or a driver) does not
    hide it.
    """

    bank: str
    allowed: frozenset[bytes]

    def violations(self, ctx: _Context) -> list[str]:
        uintn = ctx.log.spec_id.uintn_size if ctx.log.spec_id is not None else 2
        paths = {a.event_number: a.device_path for a in boot_applications(ctx.classified, uintn)}
        return _measurement_violations(ctx, "boot_applications", 4, self.bank, self.allowed, paths)


def _entry_ids(lists: Iterable[SignatureList]) -> set[bytes]:
    """Identify signature-list entries: hash entries by value, certs by SHA-256."""
    out: set[bytes] = set()
    for sl in lists:
        for sig in sl.signatures:
            out.add(sig.data)
            out.add(hashlib.sha256(sig.data).digest())
    return out


@dataclass(frozen=True)
class SignatureDatabase:
    """Required/forbidden entries of ``db`` or ``dbx`` (hashes, or SHA-256 of certificates).

    ``allowed``, when given, lists every entry the variable may hold: an entry
    outside it (a certificate someone enrolled) is a violation — Keylime's
    ``KeySubset`` semantics for db.
    """

    variable: str
    required: frozenset[bytes] = frozenset()
    forbidden: frozenset[bytes] = frozenset()
    allowed: frozenset[bytes] | None = None

    def violations(self, ctx: _Context) -> list[str]:
        if self.variable not in ("db", "dbx"):
            raise ValueError("variable must be 'db' or 'dbx'")
        sb = _sb_or_violation(ctx, self.variable)
        if isinstance(sb, str):
            return [sb]
        present = _entry_ids(sb.db if self.variable == "db" else sb.dbx)
        out = [
            f"{self.variable}: required entry {r.hex()} missing"
            for r in sorted(self.required)
            if r not in present
        ]
        out += [
            f"{self.variable}: forbidden entry {f.hex()} present"
            for f in sorted(self.forbidden)
            if f in present
        ]
        if self.allowed is not None:
            for sl in sb.db if self.variable == "db" else sb.dbx:
                for sig in sl.signatures:
                    ident = hashlib.sha256(sig.data).digest()
                    if sig.data not in self.allowed and ident not in self.allowed:
                        out.append(f"{self.variable}: entry {ident.hex()} is not allowed")
        return out


#: GRUB commands whose arguments are the kernel command line it passes on.
_GRUB_LINUX: Final = re.compile(r"^(?:grub_cmd:? )?(?:linux|linuxefi|linux16)\s+(\S.*)$", re.DOTALL)
#: PCRs whose every measurement a KernelCmdline rule requires to be a proven
#: string: GRUB's strings (8) and systemd-stub's command line (12).
_CMDLINE_STRING_PCRS: Final = (8, 12)


def _cmdline_args(line: str) -> str:
    """A command line's arguments without the kernel path and GRUB's quoting."""
    return " ".join(line.replace('"', "").split()[1:])


def checked_cmdlines(facts: ClassifiedLog) -> list[str]:
    """Every command line :class:`KernelCmdline` checks: the proven PCR 8/9/12 command
    lines, and the arguments of every proven GRUB ``linux`` command that is no logged
    line (quotes and the kernel path aside): GRUB's tags are unbound, so a tag swap
    must not hide a command line."""
    uintn = facts.log.spec_id.uintn_size if facts.log.spec_id else 2
    lines = list(kernel_cmdlines(facts, uintn))
    logged = {_cmdline_args(line) for line in lines}
    for item in facts.proven(8):
        text = item.text()
        found = _GRUB_LINUX.match(text.strip()) if text is not None else None
        if found is not None and _cmdline_args(found.group(1)) not in logged:
            lines.append(found.group(1).strip())
    return lines


@dataclass(frozen=True)
class KernelCmdline:
    """Every verified kernel command line must match all ``required`` regexes and no
    ``forbidden`` one; at least one command line must be logged.

    Command lines are read from proven strings on PCR 8, 9 and 12
    (:func:`~trustedge.measuredboot.secureboot.kernel_cmdlines`), and from the
    arguments of every proven GRUB ``linux``/``linuxefi``/``linux16`` command:
    GRUB hashes its strings without their ``kernel_cmdline``/``grub_cmd`` tag,
    so the tag is a claim and a relabelled command line must still be checked.
    ``forbidden`` patterns are also searched in every other proven string
    there. PCR8 and PCR12 hold the command line: an event there that is not
    proven text is a violation (a command line hidden behind another type or
    other data), unless its digest (in a verified bank) is in ``measurements``
    -- systemd-stub's credential and system-extension archives on PCR12.
    """

    required: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    measurements: frozenset[bytes] = frozenset()

    def violations(self, ctx: _Context) -> list[str]:
        facts = ctx.classified
        lines = checked_cmdlines(facts)
        out = []
        for pcr in _CMDLINE_STRING_PCRS:
            if pcr not in facts.verified_pcrs:
                continue
            for item in facts.measurements(pcr):
                banks = ctx.log.verified_banks[pcr]
                if any(item.event.digests.get(b) in self.measurements for b in banks):
                    continue
                out.append(f"kernel_cmdline: {item.label()} is not a proven string ({item.why})")
        if not lines:
            return [*out, "kernel_cmdline: no verified kernel command line in the log"]
        for line in lines:
            for pattern in self.required:
                if not re.search(pattern, line):
                    out.append(f"kernel_cmdline: {line!r} does not match {pattern!r}")
            for pattern in self.forbidden:
                if re.search(pattern, line):
                    out.append(f"kernel_cmdline: {line!r} matches forbidden {pattern!r}")
        if self.forbidden:
            for pcr in (8, 9, 12):
                for item in facts.proven(pcr):
                    text = item.text()
                    if text is None or text in lines:
                        continue
                    for pattern in self.forbidden:
                        if re.search(pattern, text):
                            out.append(f"kernel_cmdline: {item.label()} {text!r} matches "
                                       f"forbidden {pattern!r}")  # fmt: skip
        return out


# -- JSON documents ---------------------------------------------------------------
def _hexes(doc: Mapping[str, Any], key: str) -> frozenset[bytes]:
    values = doc.get(key, [])
    if not isinstance(values, list):
        raise MalformedInputError(f"policy field {key!r} must be a list")
    try:
        return frozenset(bytes.fromhex(str(v)) for v in values)
    except ValueError:
        raise MalformedInputError(f"policy field {key!r} holds a non-hex value") from None


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = doc.get(key, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise MalformedInputError(f"policy field {key!r} must be a list of strings")
    for pattern in values:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise MalformedInputError(f"bad regex {pattern!r}: {exc}") from None
    return tuple(values)


def _bank(doc: Mapping[str, Any]) -> str:
    bank = doc.get("bank", "sha256")
    if not isinstance(bank, str) or bank not in BANK_SIZES:  # a list is unhashable
        raise MalformedInputError(f"unknown bank {bank!r}")
    return str(bank)


def _rule(doc: Any, depth: int = 0) -> EventLogRule:
    if depth > 16:
        raise MalformedInputError("policy rules nest too deeply")
    if not isinstance(doc, dict) or not isinstance(doc.get("rule"), str):
        raise MalformedInputError("each policy rule must be an object with a 'rule' name")
    kind = doc["rule"]
    if kind == "secure_boot":
        enabled = doc.get("enabled", True)
        if not isinstance(enabled, bool):
            raise MalformedInputError("secure_boot 'enabled' must be true or false")
        return RequireSecureBoot(enabled)
    if kind == "event_digests":
        pcr = doc.get("pcr")
        if not isinstance(pcr, int) or not 0 <= pcr <= 23:
            raise MalformedInputError("event_digests needs a PCR index 0-23")
        return EventDigests(pcr, _bank(doc), _hexes(doc, "digests"))
    if kind == "pcr_values":
        pcr = doc.get("pcr")
        if isinstance(pcr, bool) or not isinstance(pcr, int) or not 0 <= pcr <= 23:
            raise MalformedInputError("pcr_values needs a PCR index 0-23")
        bank = _bank(doc)
        values = _hexes(doc, "values")
        if not values or any(len(v) != BANK_SIZES[bank] for v in values):
            raise MalformedInputError(f"pcr_values needs {bank} values of {BANK_SIZES[bank]} bytes")
        return PcrValues(pcr, bank, values)
    if kind == "measurements":
        pcr = doc.get("pcr")
        if isinstance(pcr, bool) or not isinstance(pcr, int) or not 0 <= pcr <= 23:
            raise MalformedInputError("measurements needs a PCR index 0-23")
        return Measurements(pcr, _bank(doc), _hexes(doc, "digests"))
    if kind == "boot_applications":
        return BootApplications(_bank(doc), _hexes(doc, "digests"))
    if kind in ("db", "dbx"):
        allowed = _hexes(doc, "allowed") if "allowed" in doc else None
        return SignatureDatabase(kind, _hexes(doc, "required"), _hexes(doc, "forbidden"), allowed)
    if kind == "kernel_cmdline":
        return KernelCmdline(
            _strings(doc, "required"), _strings(doc, "forbidden"), _hexes(doc, "measurements")
        )
    if kind in ("any_of", "all_of"):
        rules = doc.get("rules")
        if not isinstance(rules, list) or not rules:
            raise MalformedInputError(f"{kind} needs a non-empty 'rules' list")
        parts = tuple(_rule(r, depth + 1) for r in rules)
        return AnyOf(parts) if kind == "any_of" else AllOf(parts)
    raise UnsupportedAlgorithmError(f"unknown policy rule {kind!r}")


def _json_object(document: bytes | str) -> dict[str, Any]:
    try:
        doc = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"policy is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedInputError("policy document must be a JSON object")
    return doc


def load_policy(document: bytes | str) -> EventLogPolicy:
    """Build an :class:`EventLogPolicy` from a JSON policy document.

    Raises MalformedInputError for documents that do not follow the format and
    UnsupportedAlgorithmError for unknown rules (never silently ignored).
    """
    doc = _json_object(document)
    if doc.get("version") != 1:
        raise UnsupportedAlgorithmError(f"policy version {doc.get('version')!r}")
    rules = doc.get("rules")
    if not isinstance(rules, list):
        raise MalformedInputError("policy needs a 'rules' list")
    workarounds = doc.get("workarounds", [])
    try:
        enabled = frozenset(Workaround(w) for w in workarounds)
    except (ValueError, TypeError):
        raise MalformedInputError(f"unknown workaround in {workarounds!r}") from None
    return EventLogPolicy(tuple(_rule(r) for r in rules), enabled)


# -- IMA runtime policy --------------------------------------------------------------
class ImaViolationKind(Enum):
    """What is wrong with one IMA entry (a typed value: match on it, not on text)."""

    #: ToMToU/open-writers: the kernel could not measure the file it ran.
    MEASUREMENT_VIOLATION = "measurement-violation"
    UNDECODABLE = "undecodable"
    #: A ``boot_aggregate`` entry anywhere but entry 0.
    MISPLACED_BOOT_AGGREGATE = "misplaced-boot-aggregate"
    BUFFER_NOT_ALLOWED = "buffer-not-allowed"
    KEY_NOT_ALLOWED = "key-not-allowed"
    BAD_SIGNATURE = "bad-signature"
    MISSING_SIGNATURE = "missing-signature"
    #: The path is not in the policy (an unknown file).
    NOT_IN_POLICY = "not-in-policy"
    #: The path is in the policy with other digests (a modified file).
    DIGEST_NOT_ALLOWED = "digest-not-allowed"


#: Kinds that say a known file was modified or misused (the others: unknown content).
IMA_MODIFIED_KINDS: Final = frozenset(ImaViolationKind) - {ImaViolationKind.NOT_IN_POLICY}


@dataclass(frozen=True)
class ImaViolation:
    """One IMA entry that breaks the runtime policy."""

    kind: ImaViolationKind
    entry: int
    path: str
    detail: str

    def __str__(self) -> str:
        return f"entry {self.entry}: {self.detail}"


@dataclass(frozen=True)
class ImaRuntimePolicy:
    """What a verified IMA list may contain.

    ``digests`` maps a path to its allowed file digests; ``excludes`` are
    regexes of paths that are not checked; ``require_signatures`` demands a
    valid ``ima-sig``/``ima-modsig`` signature from ``keyring`` for every
    non-excluded file (a valid signature also admits a file that is not in
    ``digests``); ``keyrings`` maps an ``ima-buf`` keyring name to allowed
    SHA-256 digests of the measured key. Only entry 0 may be
    ``boot_aggregate`` (a later one is a violation, never a pass); its value is
    checked against the quoted PCRs separately
    (:func:`~trustedge.measuredboot.check_boot_aggregate`).
    """

    digests: Mapping[str, frozenset[bytes]] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    keyrings: Mapping[str, frozenset[bytes]] = field(default_factory=dict)
    keyring: ImaKeyring | None = None
    require_signatures: bool = False

    def check(self, log: VerifiedImaLog) -> None:
        """Raise :class:`PolicyError` listing every entry that breaks the policy
        (``violations`` holds their texts; :meth:`violations` the typed values)."""
        found = self.violations(log)
        if found:
            texts = [str(v) for v in found]
            raise PolicyError(
                f"{len(found)} IMA policy violation(s): " + "; ".join(texts[:20]),
                violations=texts,
            )

    def violations(self, log: VerifiedImaLog) -> list[ImaViolation]:
        """Every entry of ``log`` that breaks the policy, as typed values (pure)."""
        if not isinstance(log, VerifiedImaLog):
            raise TypeError("IMA policies check only a VerifiedImaLog")
        exclude = re.compile("|".join(f"(?:{p})" for p in self.excludes)) if self.excludes else None
        found: list[ImaViolation] = []
        # The common case first: a measured (not violation), decoded, unsigned
        # or unchecked-signature entry whose digest the policy allows; anything
        # else takes the full rules of _entry_violation.
        allowed_for = self.digests.get
        quick = not self.require_signatures
        no_keyring = self.keyring is None
        entries = log.entries
        if quick and isinstance(entries, ImaEntries):
            # Straight from the columns: an ImaEntry is built only for the other entries.
            # (An ima-ng entry has no signature field, so the keyring plays no part here.)
            for i, path, digest in entries.allow_list_rows():
                if path is not None and path != "boot_aggregate":
                    allowed = allowed_for(path)
                    if allowed is not None and digest in allowed:
                        continue
                problem = self._entry_violation(entries[i], exclude)
                if problem is not None:
                    found.append(problem)
            return found
        for entry in entries:
            if quick and entry.decoded_path is not None and entry.template_name != "ima-buf":
                allowed = allowed_for(entry.decoded_path)
                if (
                    allowed is not None
                    and entry.decoded_digest in allowed
                    and (no_keyring or not entry.decoded_signature)
                    and not entry.is_violation
                    and entry.decoded_path != "boot_aggregate"
                ):
                    continue
            problem = self._entry_violation(entry, exclude)
            if problem is not None:
                found.append(problem)
        return found

    def _entry_violation(
        self, entry: ImaEntry, exclude: re.Pattern[str] | None
    ) -> ImaViolation | None:
        n = entry.number
        kind = ImaViolationKind
        if entry.is_violation:
            return ImaViolation(kind.MEASUREMENT_VIOLATION, n, "",
                                "measurement violation (ToMToU/open-writers)")  # fmt: skip
        try:
            fields = entry.fields()
        except MalformedInputError as exc:
            return ImaViolation(kind.UNDECODABLE, n, "", f"undecodable template data ({exc})")
        path = fields.path
        if path == "boot_aggregate" and entry.template_name != "ima-buf":
            if n == 0:
                return None  # its value is checked against the quoted PCRs
            return ImaViolation(kind.MISPLACED_BOOT_AGGREGATE, n, path,
                                "boot_aggregate is only valid as entry 0")  # fmt: skip
        if entry.template_name == "ima-buf":
            allowed_keys = self.keyrings.get(path)
            if allowed_keys is None:
                if exclude is not None and exclude.match(path):
                    return None
                return ImaViolation(kind.BUFFER_NOT_ALLOWED, n, path,
                                    f"buffer {path!r} not allowed")  # fmt: skip
            if hashlib.sha256(fields.buffer).digest() not in allowed_keys:
                return ImaViolation(kind.KEY_NOT_ALLOWED, n, path,
                                    f"key in keyring {path!r} not allowed")  # fmt: skip
            return None
        if exclude is not None and exclude.match(path):
            return None
        signed = False
        if self.keyring is not None and fields.signature:
            try:
                verify_ima_signature(fields.digest, fields.signature, self.keyring)
                signed = True
            except (SignatureError, UnsupportedAlgorithmError) as exc:
                return ImaViolation(kind.BAD_SIGNATURE, n, path, f"{path}: {exc}")
        if self.require_signatures and not signed:
            return ImaViolation(kind.MISSING_SIGNATURE, n, path, f"{path}: no valid signature")
        allowed = self.digests.get(path)
        if signed and allowed is None:
            return None
        if allowed is None:
            return ImaViolation(kind.NOT_IN_POLICY, n, path, f"{path} is not in the policy")
        if fields.digest not in allowed:
            return ImaViolation(kind.DIGEST_NOT_ALLOWED, n, path,
                                f"{path} digest {fields.digest.hex()} not allowed")  # fmt: skip
        return None


def load_ima_policy(
    document: bytes | str, *, keyring: ImaKeyring | None = None
) -> ImaRuntimePolicy:
    """Load a runtime policy in Keylime's JSON layout (``digests``, ``excludes``,
    ``keyrings``), plus ``require_signatures`` (bool). Raises MalformedInputError."""
    doc = _json_object(document)
    raw_digests = doc.get("digests", {})
    raw_keyrings = doc.get("keyrings", {})
    if not isinstance(raw_digests, dict) or not isinstance(raw_keyrings, dict):
        raise MalformedInputError("'digests' and 'keyrings' must be objects")
    digests = {str(path): _hexes({"d": values}, "d") for path, values in raw_digests.items()}
    keyrings = {str(name): _hexes({"d": values}, "d") for name, values in raw_keyrings.items()}
    require = doc.get("require_signatures", False)
    if not isinstance(require, bool):
        raise MalformedInputError("'require_signatures' must be true or false")
    return ImaRuntimePolicy(digests, _strings(doc, "excludes"), keyrings, keyring, require)
