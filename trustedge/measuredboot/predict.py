"""Predict the next boot's PCR values from a verified event log and a pending update.

The update says what each new boot-chain image will measure
(:class:`BootMeasurement`: its Authenticode digests for PCR4, a UKI's section
digests for PCR11, the file digests GRUB extends into PCR9, the
``EV_EFI_VARIABLE_AUTHORITY`` entry that verifies it for PCR7); the device's
current log says where in the chain each image sits. :func:`predict_next_boot`
rewrites the verified events accordingly and replays them:

* **PCR4** -- the boot application being replaced is found by the digest of the
  image it replaces (the device knows that image) or else by its role, counting
  the PCR4 measurements after the PCR4 separator: ``shim`` is the first,
  ``kernel``/``uki`` the last, ``loader`` the second of three or more (the first
  of fewer). Its digests are replaced by the new image's Authenticode digests.
* **PCR11** -- a ``uki`` replaces every PCR11 event of the firmware log (only
  systemd-stub measures there before userspace) by its section measurements
  (name with NUL, then contents), in the stub's order.
* **PCR9** -- a GRUB file measurement (``EV_IPL``, ``H(file)``) is replaced
  when its digest is the current file's (given by the device).
* **PCR7** -- an authority the firmware has not logged yet replaces the
  authority logged between the previous stage and this one (or is inserted
  there); one already logged changes nothing (firmware logs each authority
  once). A :class:`VariableUpdate` replaces the proven ``db``/``dbx``/...
  variable event of the same name.

Pure: no I/O, no clock. Only verified events are used, and a PCR is predicted
only in the banks it was verified in and every new event has a digest for.
The prediction is a claim of whoever signed the update until the device
boots and its quote matches (:mod:`trustedge.attestation` appraises that).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from trustedge import _cbor
from trustedge.errors import MalformedInputError, PolicyError, VerificationError
from trustedge.measuredboot._decode import decode_uefi_variable
from trustedge.measuredboot.authenticode import parse_pe_image
from trustedge.measuredboot.classify import ClassifiedLog, classify
from trustedge.measuredboot.events import BANK_SIZES, Event, EventType, bank_hash, bank_hasher
from trustedge.measuredboot.replay import PCRValues, VerifiedEventLog, initial_pcr_value
from trustedge.measuredboot.uki import extend_phases, uki_measurements

__all__ = [
    "BOOT_ROLES",
    "BootMeasurement",
    "BootReference",
    "EventChange",
    "PlannedImage",
    "Prediction",
    "UKISectionDigests",
    "VariableUpdate",
    "predict_next_boot",
]

#: Roles of boot-chain images, in chain order.
BOOT_ROLES: Final = ("shim", "loader", "kernel", "uki")
BootRole = Literal["shim", "loader", "kernel", "uki"]
#: Largest image :meth:`BootMeasurement.of_image` measures (a UKI with initrd fits).
MAX_IMAGE: Final = 512 << 20

_FILE_ROLES: Final = frozenset({"kernel", "uki"})
_IMAGE_LOAD: Final = frozenset(
    {
        EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
        EventType.EV_EFI_BOOT_SERVICES_DRIVER,
        EventType.EV_EFI_RUNTIME_SERVICES_DRIVER,
    }
)


def _check_digests(digests: Mapping[str, bytes], what: str) -> dict[str, bytes]:
    out = {}
    for bank, value in digests.items():
        size = BANK_SIZES.get(bank)
        if size is None:
            raise MalformedInputError(f"{what}: unknown bank {bank!r}")
        if not isinstance(value, bytes) or len(value) != size:
            raise MalformedInputError(f"{what}: a {bank} digest is {size} bytes")
        out[bank] = value
    return out


def _same(a: Mapping[str, bytes], b: Mapping[str, bytes]) -> bool:
    """Equal in every bank both have (at least one), constant-time per digest."""
    common = set(a) & set(b)
    return bool(common) and all(hmac.compare_digest(a[k], b[k]) for k in sorted(common))


@dataclass(frozen=True)
class UKISectionDigests:
    """One measured UKI section: its name and the digest of its contents per bank."""

    name: str
    digests: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not self.name.startswith(".") or not self.name.isascii() or len(self.name) > 8:
            raise MalformedInputError(f"bad UKI section name {self.name!r}")
        object.__setattr__(self, "digests", _check_digests(self.digests, self.name))


@dataclass(frozen=True)
class BootMeasurement:
    """What a boot-chain image measures when it boots.

    ``authenticode`` (PCR4) per bank; ``uki_sections`` (PCR11) for a UKI;
    ``file_digests`` (PCR9, GRUB's ``H(file)``) for a kernel or UKI; ``path``
    where the device installs it (a label); ``authority`` the
    ``UEFI_VARIABLE_DATA`` the firmware logs in PCR7 for the db entry that
    verifies it (None: the same as now); ``variables`` the new values
    (``UEFI_VARIABLE_DATA``) of Secure Boot variables the update sets along
    with the image (a dbx revoking the old loader, a db entry, SbatLevel).
    Carried in a signed SUIT manifest these are the signer's claims;
    :meth:`check_image` recomputes what the image determines.
    """

    role: str
    authenticode: Mapping[str, bytes]
    uki_sections: tuple[UKISectionDigests, ...] = ()
    file_digests: Mapping[str, bytes] = field(default_factory=dict)
    path: str | None = None
    authority: bytes | None = None
    variables: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in BOOT_ROLES:
            raise MalformedInputError(f"boot role must be one of {', '.join(BOOT_ROLES)}")
        if not self.authenticode:
            raise MalformedInputError("a boot measurement needs an Authenticode digest")
        object.__setattr__(self, "authenticode", _check_digests(self.authenticode, "authenticode"))
        object.__setattr__(self, "file_digests", _check_digests(self.file_digests, "file"))
        if bool(self.uki_sections) != (self.role == "uki"):
            raise MalformedInputError("UKI sections go with (and only with) role 'uki'")
        if self.authority is not None:
            decode_uefi_variable(self.authority)  # must be UEFI_VARIABLE_DATA
        if len(self.variables) > 8:
            raise MalformedInputError("at most 8 variables per boot measurement")
        for var in self.variables:
            decode_uefi_variable(var)

    @property
    def banks(self) -> tuple[str, ...]:
        return tuple(sorted(self.authenticode))

    @classmethod
    def of_image(
        cls,
        image: bytes,
        role: str,
        *,
        banks: Sequence[str] = ("sha256",),
        path: str | None = None,
        authority: bytes | None = None,
        variables: Sequence[bytes] = (),
    ) -> BootMeasurement:
        """Measure ``image`` (a PE/COFF boot application or UKI) in ``banks``.

        Raises MalformedInputError for a malformed image (or a ``uki`` that
        is not one), UnsupportedAlgorithmError for an unknown bank or UKI
        section.
        """
        if len(image) > MAX_IMAGE:
            raise MalformedInputError(f"boot image larger than {MAX_IMAGE} bytes")
        if not banks:
            raise ValueError("measure in at least one bank")
        pe = parse_pe_image(image)
        authenticode = {bank: pe.authenticode(bank) for bank in banks}
        sections: tuple[UKISectionDigests, ...] = ()
        if role == "uki":
            per_bank = {bank: uki_measurements(pe, bank) for bank in banks}
            first = per_bank[banks[0]]
            sections = tuple(
                UKISectionDigests(s.name, {b: per_bank[b][i].data_digest for b in banks})
                for i, s in enumerate(first)
            )
        files = (
            {bank: bank_hash(bank, bytes(image)) for bank in banks} if role in _FILE_ROLES else {}
        )
        return cls(role, authenticode, sections, files, path, authority, tuple(variables))

    def check_image(self, image: bytes) -> None:
        """Recompute every stated measurement from ``image``; raise
        :class:`~trustedge.errors.VerificationError` naming the first that differs."""
        try:
            got = BootMeasurement.of_image(
                image,
                self.role,
                banks=self.banks,
                path=self.path,
                authority=self.authority,
                variables=self.variables,
            )
        except MalformedInputError as exc:
            raise VerificationError(f"{self.role} image cannot be measured: {exc}") from exc
        if not _all_equal(got.authenticode, self.authenticode):
            raise VerificationError(
                f"{self.role} image: Authenticode digest differs from the manifest"
            )
        if self.file_digests and not _all_equal(got.file_digests, self.file_digests):
            raise VerificationError(f"{self.role} image: file digest differs from the manifest")
        if len(got.uki_sections) != len(self.uki_sections) or any(
            a.name != b.name or not _all_equal(a.digests, b.digests)
            for a, b in zip(got.uki_sections, self.uki_sections, strict=True)
        ):
            raise VerificationError(f"{self.role} image: UKI sections differ from the manifest")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "authenticode": {k: v.hex() for k, v in self.authenticode.items()},
        }
        if self.uki_sections:
            out["uki_sections"] = [
                {"name": s.name, "digests": {k: v.hex() for k, v in s.digests.items()}}
                for s in self.uki_sections
            ]
        if self.file_digests:
            out["file_digests"] = {k: v.hex() for k, v in self.file_digests.items()}
        if self.path is not None:
            out["path"] = self.path
        if self.authority is not None:
            out["authority"] = self.authority.hex()
        if self.variables:
            out["variables"] = [v.hex() for v in self.variables]
        return out


def _all_equal(a: Mapping[str, bytes], b: Mapping[str, bytes]) -> bool:
    return set(a) == set(b) and all(hmac.compare_digest(a[k], b[k]) for k in sorted(a))


@dataclass(frozen=True)
class PlannedImage:
    """A new boot image and, when the device knows them, the measurements of
    the image it replaces (``current``: Authenticode per bank; ``current_file``:
    the file digest GRUB logged in PCR9; ``current_path``: the path GRUB names it
    by, replaced by the new image's ``path`` in GRUB's PCR8/PCR9 strings)."""

    measurement: BootMeasurement
    current: Mapping[str, bytes] | None = None
    current_file: Mapping[str, bytes] | None = None
    current_path: str | None = None


@dataclass(frozen=True)
class VariableUpdate:
    """A new value of a Secure Boot variable measured into PCR7 (``db``, ``dbx``,
    ``KEK``, ``PK``, ``SbatLevel``...): its full ``UEFI_VARIABLE_DATA``."""

    data: bytes

    @property
    def name(self) -> str:
        return decode_uefi_variable(self.data).name


@dataclass(frozen=True)
class EventChange:
    """One rewritten event: ``replace``/``remove`` name the current event,
    ``insert`` a new one (``event_number`` -1) placed before ``before``."""

    action: Literal["replace", "insert", "remove"]
    pcr: int
    event_number: int
    old: Mapping[str, bytes]
    new: Mapping[str, bytes]
    reason: str
    before: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "pcr": self.pcr,
            "event_number": self.event_number,
            "old": {k: v.hex() for k, v in self.old.items()},
            "new": {k: v.hex() for k, v in self.new.items()},
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Prediction:
    """Current and predicted PCR values (bank -> PCR -> value) of the verified PCRs.

    ``events`` are the predicted log's measured events in order (inserted ones
    numbered -1); ``unpredictable`` the (bank, PCR) pairs some new event has
    no digest for (left out of ``next``).
    """

    current: PCRValues
    next: PCRValues
    changes: tuple[EventChange, ...]
    events: tuple[Event, ...]
    unpredictable: frozenset[tuple[str, int]] = frozenset()
    previous: tuple[Event, ...] = ()
    #: systemd-pcrphase strings extended into PCR11 of ``next`` after the stub (not log
    #: events: userspace measures them, the firmware log does not show them).
    phases: tuple[str, ...] = ()

    def changed(self) -> dict[str, dict[int, tuple[bytes, bytes]]]:
        """bank -> PCR -> (current, predicted) for every PCR whose value changes."""
        out: dict[str, dict[int, tuple[bytes, bytes]]] = {}
        for bank, values in self.next.items():
            for pcr, value in values.items():
                old = self.current.get(bank, {}).get(pcr)
                if old is None or old != value:
                    out.setdefault(bank, {})[pcr] = (old or b"", value)
        return out

    def to_json(self) -> dict[str, Any]:
        pcrs: dict[str, dict[str, Any]] = {}
        for bank in sorted(set(self.current) | set(self.next)):
            cur, nxt = self.current.get(bank, {}), self.next.get(bank, {})
            for pcr in sorted(set(cur) | set(nxt)):  # PCR11 of a new UKI: only predicted
                new, old = nxt.get(pcr), cur.get(pcr)
                pcrs.setdefault(bank, {})[str(pcr)] = {
                    "current": None if old is None else old.hex(),
                    "next": None if new is None else new.hex(),
                    "changed": new is None or new != old,
                }
        return {
            "pcrs": pcrs,
            "changes": [c.to_json() for c in self.changes],
            "unpredictable": [f"{b}:{p}" for b, p in sorted(self.unpredictable)],
            "phases": list(self.phases),
        }


_Slot = list[Event | None]


def predict_next_boot(
    log: VerifiedEventLog,
    images: Iterable[BootMeasurement | PlannedImage] = (),
    *,
    variables: Iterable[VariableUpdate] = (),
    phases: Sequence[str] = (),
) -> Prediction:
    """The PCR values the next boot produces when ``images`` replace their
    predecessors in the boot chain of ``log`` and ``variables`` get new values.

    ``phases`` (systemd-pcrphase strings, e.g. ``("enter-initrd",)``: where the secret is
    unsealed) are extended into the predicted PCR11 after the UKI's sections, as
    ``systemd-measure calculate --phase`` does; they need a PCR11 the update defines (a
    ``uki``), else PolicyError.

    Raises :class:`~trustedge.errors.PolicyError` when an image has no place
    in the verified chain (PCR4 not verified, no chain, the image it replaces
    not found, two images in one place) or a variable is not logged, and
    :class:`~trustedge.errors.MalformedInputError` for malformed inputs.
    """
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("predict_next_boot needs a VerifiedEventLog")
    planned = [i if isinstance(i, PlannedImage) else PlannedImage(i) for i in images]
    facts = classify(log)
    events: list[Event] = list(log.events)
    position = {ev.number: i for i, ev in enumerate(events)}
    # inserted[i]: events to place before events[i] (len(events): at the end)
    inserted: dict[int, list[Event]] = {}
    removed: set[int] = set()
    replaced: dict[int, Event] = {}
    changes: list[EventChange] = []
    verified = log.verified_banks

    chain = _chain(facts, verified)
    placed: dict[int, PlannedImage] = {}  # chain index -> image
    for img in planned:
        m = img.measurement
        if 4 not in verified:
            raise PolicyError("PCR4 is not verified by the log: the boot chain is unknown")
        at = _locate(chain, img)
        if at in placed:
            raise PolicyError(
                f"two images replace the same boot application (event {chain[at].number})"
            )
        placed[at] = img
        old = chain[at]
        new = old._replace(digests=dict(m.authenticode))
        replaced[old.number] = new
        changes.append(
            EventChange(
                "replace", 4, old.number, old.digests, new.digests, f"{m.role}: boot application"
            )
        )
    for at, img in sorted(placed.items()):
        m = img.measurement
        idx = position[chain[at].number]
        if m.uki_sections:
            _uki(events, idx, m, removed, inserted, changes)
        if img.current_file and m.file_digests:
            _grub_file(events, img, verified, replaced, changes)
        if img.current_path and m.path and img.current_path != m.path:
            _grub_strings(events, img.current_path, m.path, verified, replaced, changes)
        if m.authority is not None:
            prev = position[chain[at - 1].number] if at > 0 else -1
            _authority(events, facts, prev, idx, m, verified, replaced, inserted, changes)
    stated = [VariableUpdate(v) for img in planned for v in img.measurement.variables]
    for var in (*variables, *stated):
        _variable(facts, var, replaced, changes)

    out: list[Event] = []
    for i, ev in enumerate(events):
        out.extend(inserted.get(i, ()))
        if ev.number in removed:
            continue
        out.append(replaced.get(ev.number, ev))
    out.extend(inserted.get(len(events), ()))
    current = _replay(events, verified, log.source.pcr0_locality())[0]
    nxt, missing = _replay(out, verified, log.source.pcr0_locality())
    if phases:
        with_11 = [bank for bank, values in nxt.items() if 11 in values]
        if not with_11:
            raise PolicyError("boot phases extend PCR11, which only an update with a uki predicts")
        for bank in with_11:
            nxt[bank][11] = extend_phases(bank, nxt[bank][11], phases)
    return Prediction(
        current, nxt, tuple(changes), tuple(out), missing, tuple(events), tuple(phases)
    )


def _chain(facts: ClassifiedLog, verified: Mapping[int, list[str]]) -> list[Event]:
    """PCR4 measurements after the PCR4 separator (the boot applications)."""
    if 4 not in verified:
        return []
    out: list[Event] = []
    seen_separator = False
    for item in facts.for_pcr(4):
        if item.proven and item.event.event_type == EventType.EV_SEPARATOR:
            seen_separator = True
            continue
        if seen_separator and not item.proven:
            out.append(item.event)
    return out


def _locate(chain: Sequence[Event], img: PlannedImage) -> int:
    m = img.measurement
    if not chain:
        raise PolicyError("the verified log has no boot applications after the PCR4 separator")
    if img.current is not None:
        current = _check_digests(img.current, "current image")
        found = [i for i, ev in enumerate(chain) if _same(ev.digests, current)]
        if not found:
            raise PolicyError(f"{m.role}: the image it replaces is not in the verified boot chain")
        return found[-1]
    n = len(chain)
    if m.role == "shim":
        return 0
    if m.role in ("kernel", "uki"):
        return n - 1
    return 1 if n >= 3 else 0


def _uki(
    events: Sequence[Event],
    idx: int,
    m: BootMeasurement,
    removed: set[int],
    inserted: dict[int, list[Event]],
    changes: list[EventChange],
) -> None:
    for ev in events:
        if ev.pcr == 11 and ev.number not in removed:
            removed.add(ev.number)
            changes.append(
                EventChange("remove", 11, ev.number, ev.digests, {}, "uki: old stub measurement")
            )
    banks = sorted(m.authenticode)
    new: list[Event] = []
    for sec in m.uki_sections:
        label = sec.name.encode("ascii") + b"\x00"
        new.append(
            Event(-1, -1, 11, EventType.EV_IPL, {b: bank_hash(b, label) for b in banks}, label)
        )
        new.append(Event(-1, -1, 11, EventType.EV_IPL, dict(sec.digests), label))
    for ev in new:
        changes.append(
            EventChange("insert", 11, -1, {}, ev.digests, f"uki: section {ev.data[:-1].decode()}")
        )
    # after the UKI's own PCR4 event (log order; only the order within PCR11 matters)
    inserted.setdefault(idx + 1, []).extend(new)


def _grub_file(
    events: Sequence[Event],
    img: PlannedImage,
    verified: Mapping[int, list[str]],
    replaced: dict[int, Event],
    changes: list[EventChange],
) -> None:
    if 9 not in verified or img.current_file is None:
        return
    current = _check_digests(img.current_file, "current file")
    m = img.measurement
    for ev in events:
        if ev.pcr == 9 and _same(ev.digests, current):
            if ev.number in replaced:
                raise PolicyError(f"two images replace the file measured by event {ev.number}")
            new = ev._replace(digests=dict(m.file_digests))
            replaced[ev.number] = new
            changes.append(
                EventChange(
                    "replace",
                    9,
                    ev.number,
                    ev.digests,
                    new.digests,
                    f"{m.role}: file GRUB measures",
                )
            )


#: How GRUB builds hash the strings they log in PCR8 (data, what is hashed): the
#: whole data, without its trailing NUL, or without the subsystem prefix
#: (upstream GRUB: "grub_cmd: ", "kernel_cmdline: ", ...).
_PREFIXES: Final = (b"grub_cmd: ", b"kernel_cmdline: ", b"module_cmdline: ", b"grub_cmd ",
                    b"grub_kernel_cmdline ")  # fmt: skip


def _string_forms(data: bytes) -> list[bytes]:
    forms = [data, data.rstrip(b"\0")]
    for prefix in _PREFIXES:
        if data.startswith(prefix):
            forms.append(data[len(prefix) :].rstrip(b"\0"))
    return forms


def _grub_strings(
    events: Sequence[Event],
    old_path: str,
    new_path: str,
    verified: Mapping[int, list[str]],
    replaced: dict[int, Event],
    changes: list[EventChange],
) -> None:
    """GRUB names the kernel in PCR8 commands (``linux PATH ...``, the kernel command
    line) and as the PCR9 file event's data. A PCR8 string is re-hashed the way its
    current digest was made; one whose digest is no known form of its text leaves
    that bank unpredictable (the digest is dropped, never guessed)."""
    old, new = old_path.encode(), new_path.encode()
    for ev in events:
        if ev.pcr not in (8, 9) or ev.event_type != EventType.EV_IPL or old not in ev.data:
            continue
        if ev.pcr not in verified:
            continue
        base = replaced.get(ev.number, ev)
        data = base.data.replace(old, new)
        if ev.pcr == 9:  # the digest is the file's; only the label changes
            replaced[ev.number] = base._replace(data=data)
            continue
        digests = {}
        forms_old = _string_forms(base.data)
        forms_new = _string_forms(data)
        for bank, digest in base.digests.items():
            for form_old, form_new in zip(forms_old, forms_new, strict=True):
                if hmac.compare_digest(bank_hash(bank, form_old), digest):
                    digests[bank] = bank_hash(bank, form_new)
                    break
        new_ev = base._replace(data=data, digests=digests)
        replaced[ev.number] = new_ev
        changes.append(
            EventChange(
                "replace", 8, ev.number, base.digests, digests, "GRUB string names the new path"
            )
        )


def _authority(
    events: Sequence[Event],
    facts: ClassifiedLog,
    prev: int,
    idx: int,
    m: BootMeasurement,
    verified: Mapping[int, list[str]],
    replaced: dict[int, Event],
    inserted: dict[int, list[Event]],
    changes: list[EventChange],
) -> None:
    if 7 not in verified or m.authority is None:
        return
    banks = sorted(verified[7])
    digests = {b: bank_hash(b, m.authority) for b in banks}
    authorities = [item.event for item in facts.proven(7, EventType.EV_EFI_VARIABLE_AUTHORITY)]
    if any(_same(ev.digests, digests) for ev in authorities):
        return  # already logged: firmware logs each authority once
    position = {ev.number: i for i, ev in enumerate(events)}
    between = [ev for ev in authorities if prev < position[ev.number] < idx]
    if between:
        old = between[-1]
        new = old._replace(digests=digests, data=m.authority)
        replaced[old.number] = new
        changes.append(
            EventChange("replace", 7, old.number, old.digests, digests, f"{m.role}: new authority")
        )
        return
    new = Event(-1, -1, 7, EventType.EV_EFI_VARIABLE_AUTHORITY, digests, m.authority)
    inserted.setdefault(idx, []).append(new)
    changes.append(EventChange("insert", 7, -1, {}, digests, f"{m.role}: new authority"))


def _variable(
    facts: ClassifiedLog,
    var: VariableUpdate,
    replaced: dict[int, Event],
    changes: list[EventChange],
) -> None:
    name = var.name
    for item in facts.proven(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG):
        v = item.variable()
        if v is not None and v.name == name:
            old = item.event
            banks = facts.log.verified_banks[7]
            new = old._replace(digests={b: bank_hash(b, var.data) for b in banks}, data=var.data)
            replaced[old.number] = new
            changes.append(
                EventChange("replace", 7, old.number, old.digests, new.digests, f"variable {name}")
            )
            return
    raise PolicyError(f"variable {name!r} is not a proven PCR7 event of this log")


def _replay(
    events: Sequence[Event], verified: Mapping[int, list[str]], locality: int
) -> tuple[PCRValues, frozenset[tuple[str, int]]]:
    """Replay the verified PCRs in their verified banks, and PCR11 when every
    event on it is a new one (a UKI's: they define it wholly)."""
    out: PCRValues = {}
    missing: set[tuple[str, int]] = set()
    banks = sorted({b for bs in verified.values() for b in bs})
    per_pcr: dict[int, list[Event]] = {}
    for ev in events:
        per_pcr.setdefault(ev.pcr, []).append(ev)
    pcrs = set(verified)
    pcr11 = per_pcr.get(11, [])
    if pcr11 and all(ev.number == -1 for ev in pcr11):
        pcrs.add(11)
    for bank in banks:
        h = bank_hasher(bank)
        for pcr in sorted(pcrs):
            if pcr in verified and bank not in verified[pcr]:
                continue
            value = initial_pcr_value(bank, pcr, locality=locality)
            for ev in per_pcr.get(pcr, ()):
                d = ev.digests.get(bank)
                if d is None:
                    missing.add((bank, pcr))
                    break
                value = h(value + d).digest()
            else:
                out.setdefault(bank, {})[pcr] = value
    return out, frozenset(missing)


_REF_LIMITS: Final = _cbor.DecodeLimits(max_size=1 << 20, max_depth=6, max_items=100_000)
_MAX_REF_EVENTS: Final = 4096


@dataclass(frozen=True)
class BootReference:
    """Reference values for a device's next appraisal, made from a :class:`Prediction`.

    For each PCR, the sequences of ``bank`` event digests a boot may show:
    the predicted chain and, while the update is not confirmed, the current one
    (a fallback boot). ``labels`` name the predicted events that change (for
    messages). A verified log matching none is a violation naming the first
    diverging event. Encodes to deterministic CBOR for a verifier's store.
    """

    bank: str
    expected: Mapping[int, tuple[tuple[bytes, ...], ...]]

    def __post_init__(self) -> None:
        size = BANK_SIZES.get(self.bank)
        if size is None:
            raise MalformedInputError(f"unknown bank {self.bank!r}")
        for pcr, alternatives in self.expected.items():
            if not 0 <= pcr <= 23 or not alternatives:
                raise MalformedInputError("a reference names PCRs 0-23, each with alternatives")
            for seq in alternatives:
                if len(seq) > _MAX_REF_EVENTS or any(len(d) != size for d in seq):
                    raise MalformedInputError(f"PCR{pcr}: reference digests are {size} bytes")

    @classmethod
    def from_prediction(
        cls, prediction: Prediction, *, bank: str = "sha256", keep_current: bool = True
    ) -> BootReference:
        """Every PCR ``prediction`` predicts in ``bank``: the predicted events and
        (``keep_current``) the current ones."""
        expected: dict[int, tuple[tuple[bytes, ...], ...]] = {}
        for pcr in sorted(prediction.next.get(bank, {})):
            new = tuple(ev.digests[bank] for ev in prediction.events if ev.pcr == pcr)
            alternatives = [new]
            if keep_current and pcr in prediction.current.get(bank, {}):
                old = tuple(ev.digests[bank] for ev in prediction.previous if ev.pcr == pcr)
                if old != new:
                    alternatives.append(old)
            expected[pcr] = tuple(alternatives)
        return cls(bank, expected)

    def confirmed(self) -> BootReference:
        """Only the predicted chain (after ``update confirm``: no fallback any more)."""
        return BootReference(self.bank, {p: alts[:1] for p, alts in self.expected.items()})

    def violations(self, log: VerifiedEventLog, pcrs: Iterable[int] | None = None) -> list[str]:
        """Why ``log`` is not a boot this reference allows (empty: it is).

        ``pcrs`` limits the check to the PCRs the verifier quoted (default: every
        PCR of the reference); each of them must be verified in the reference's bank.
        """
        wanted = None if pcrs is None else frozenset(pcrs)
        out = []
        for pcr, alternatives in sorted(self.expected.items()):
            if wanted is not None and pcr not in wanted:
                continue
            if self.bank not in log.verified_banks.get(pcr, ()):
                out.append(f"next-boot reference: PCR{pcr} is not verified in {self.bank}")
                continue
            events = log.events_for(pcr)
            seen = tuple(ev.digests.get(self.bank, b"") for ev in events)
            if seen in alternatives:
                continue
            best, at = alternatives[0], -1
            for alt in alternatives:
                common = next(
                    (i for i, (a, b) in enumerate(zip(alt, seen, strict=False)) if a != b),
                    min(len(alt), len(seen)),
                )
                if common > at:
                    best, at = alt, common
            if at < len(seen):
                ev = events[at]
                want = best[at].hex() if at < len(best) else "no event"
                out.append(
                    f"next-boot reference: PCR{pcr} event {ev.number} ({ev.type_name}) "
                    f"{self.bank} digest {seen[at].hex()} is not the predicted {want}"
                )
            else:
                out.append(
                    f"next-boot reference: PCR{pcr} ends after {len(seen)} events; "
                    f"the prediction has {len(best)} (next {best[at].hex()})"
                )
        return out

    def check(self, log: VerifiedEventLog, pcrs: Iterable[int] | None = None) -> None:
        """Raise :class:`~trustedge.errors.PolicyError` listing :meth:`violations`."""
        found = self.violations(log, pcrs)
        if found:
            raise PolicyError("; ".join(found), violations=found)

    def encode(self) -> bytes:
        doc = {
            "bank": self.bank,
            "pcrs": {pcr: [list(seq) for seq in alts] for pcr, alts in self.expected.items()},
        }
        return _cbor.encode(doc)

    @classmethod
    def decode(cls, data: bytes) -> BootReference:
        """Parse a stored reference (untrusted bytes: MalformedInputError)."""
        doc = _cbor.decode(data, limits=_REF_LIMITS, canonical=True)
        if not isinstance(doc, dict) or set(doc) != {"bank", "pcrs"}:
            raise MalformedInputError("a boot reference is {bank, pcrs}")
        bank, pcrs = doc["bank"], doc["pcrs"]
        if not isinstance(bank, str) or not isinstance(pcrs, dict):
            raise MalformedInputError("a boot reference is {bank: text, pcrs: map}")
        expected: dict[int, tuple[tuple[bytes, ...], ...]] = {}
        for pcr, alts in pcrs.items():
            if isinstance(pcr, bool) or not isinstance(pcr, int) or not isinstance(alts, list):
                raise MalformedInputError("reference PCRs map integers to lists")
            seqs = []
            for seq in alts:
                if not isinstance(seq, list) or not all(isinstance(d, bytes) for d in seq):
                    raise MalformedInputError("a reference sequence is a list of digests")
                seqs.append(tuple(seq))
            expected[pcr] = tuple(seqs)
        return cls(bank, expected)
