"""Secure Boot state from **verified** PCR7 (and PCR4/8/9/12/14) events.

Only a :class:`~trustedge.measuredboot.VerifiedEventLog` is accepted, and
every fact comes from its classification
(:mod:`trustedge.measuredboot.classify`): event types and data are not
covered by PCR digests, so a PCR7 event counts only when it is *proven* (its
type binds its data and the data hash to its digest) and of a type the PC
Client spec puts there; anything else fails (event-type substitution). Boot
applications are every PCR4 measurement, whatever type the log claims.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from trustedge.errors import VerificationError
from trustedge.measuredboot._decode import (
    EFI_GLOBAL_VARIABLE_GUID,
    EFI_IMAGE_SECURITY_DATABASE_GUID,
    SHIM_LOCK_GUID,
    SignatureList,
    UefiVariable,
    decode_event,
    decode_uefi_variable,
)
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.classify import ClassifiedEvent, ClassifiedLog, classify
from trustedge.measuredboot.consistency import DataCheck
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = [
    "BootApplication",
    "SecureBootState",
    "boot_applications",
    "kernel_cmdlines",
    "secure_boot_state",
]

_NO_ACTION: Final = 0x03
_SEPARATOR: Final = 0x04
_IPL: Final = 0x0D
_EFI_DRIVER_CONFIG: Final = 0x80000001
_EFI_APP: Final = 0x80000003
_EFI_ACTION: Final = 0x80000007
_EFI_AUTHORITY: Final = 0x800000E0
_EFI_BOOT: Final = 0x80000002

_PCR7_TYPES: Final = frozenset(
    {_SEPARATOR, _EFI_DRIVER_CONFIG, _EFI_AUTHORITY, _EFI_ACTION, _EFI_BOOT, 0x8000000C}
)
_PCR7_ACTIONS: Final = frozenset({b"UEFI Debug Mode", b"DMA Protection Disabled"})
_IMAGE_LOAD: Final = frozenset({_EFI_APP, 0x80000004, 0x80000005})
_TEXT_TYPES: Final = (_IPL, 0x05, _EFI_ACTION)
_CMDLINE_PCRS: Final = (8, 9, 12)


@dataclass(frozen=True)
class BootApplication:
    """A PCR4 measurement: code the firmware loaded (digests are Authenticode hashes).

    ``digests`` holds the verified banks' digests (the facts); ``device_path``,
    ``event_number`` and ``claimed_type`` are what the log says (labels).
    """

    digests: dict[str, bytes]
    device_path: str
    event_number: int = -1
    claimed_type: str = "EV_EFI_BOOT_SERVICES_APPLICATION"

    def to_json(self) -> dict[str, Any]:
        return {
            "digests": {k: v.hex() for k, v in self.digests.items()},
            "device_path": self.device_path,
            "event_number": self.event_number,
            "claimed_type": self.claimed_type,
        }


@dataclass(frozen=True)
class SecureBootState:
    """What verified PCR7 (and boot PCRs) say about Secure Boot and what booted.

    ``enabled`` is the logged SecureBoot variable (``False`` when absent or
    empty); ``pk``/``kek``/``db``/``dbx`` the signature lists logged before the
    PCR7 separator; ``authorities`` the EV_EFI_VARIABLE_AUTHORITY variables
    logged after it (the db entries that verified images, shim's entries);
    ``boot_applications`` the PCR4 applications; ``kernel_cmdlines`` command
    lines from EV_IPL events whose digest matches their text; ``mok_variables`` the
    shim MOK variables measured into PCR14; ``variables`` every PCR7 config variable by name.
    """

    enabled: bool
    pk: tuple[SignatureList, ...] = ()
    kek: tuple[SignatureList, ...] = ()
    db: tuple[SignatureList, ...] = ()
    dbx: tuple[SignatureList, ...] = ()
    authorities: tuple[UefiVariable, ...] = ()
    deployed_mode: bool | None = None
    audit_mode: bool | None = None
    debug_mode: bool = False
    dma_protection_disabled: bool = False
    boot_applications: tuple[BootApplication, ...] = ()
    kernel_cmdlines: tuple[str, ...] = ()
    mok_variables: tuple[str, ...] = ()
    sbat_level: str | None = None
    variables: dict[str, UefiVariable] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "pk": [s.to_json() for s in self.pk],
            "kek": [s.to_json() for s in self.kek],
            "db": [s.to_json() for s in self.db],
            "dbx": [s.to_json() for s in self.dbx],
            "authorities": [a.to_json() for a in self.authorities],
            "deployed_mode": self.deployed_mode,
            "audit_mode": self.audit_mode,
            "debug_mode": self.debug_mode,
            "dma_protection_disabled": self.dma_protection_disabled,
            "boot_applications": [a.to_json() for a in self.boot_applications],
            "kernel_cmdlines": list(self.kernel_cmdlines),
            "mok_variables": list(self.mok_variables),
            "sbat_level": self.sbat_level,
        }


def secure_boot_state(
    log: VerifiedEventLog,
    *,
    workarounds: Collection[Workaround] = (),
    classified: ClassifiedLog | None = None,
) -> SecureBootState:
    """Extract the Secure Boot state from a verified log, by the one rule.

    Every fact comes from :func:`~trustedge.measuredboot.classify.classify`
    (pass ``classified`` when it was already computed for ``log``): PCR7 must
    be verified and hold only *proven* events of the types the PC Client spec
    puts there; the variables, authorities, actions and command lines are
    read from bound bytes only; ``boot_applications`` are the PCR4
    measurements (every unproven PCR4 event, whatever type the log gives it).

    Raises :class:`~trustedge.errors.VerificationError` when PCR7 is not
    verified, holds an unproven event (its data does not hash to its digest,
    or its type does not bind the data), an unexpected type or action, a
    configuration variable after the separator or twice, or no separator. An
    EFI configuration variable hashed over VariableData only (name and GUID
    unbound) is accepted only with
    :attr:`Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY`, which trusts the logged
    name.
    """
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("secure_boot_state needs a VerifiedEventLog")
    if 7 not in log.verified_pcrs:
        raise VerificationError("PCR7 is not verified: Secure Boot state unknown")
    facts = classified if classified is not None else classify(log, workarounds=workarounds)
    if facts.log is not log:
        raise ValueError("classified is not the classification of this log")
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    config: dict[str, UefiVariable] = {}
    authorities: list[UefiVariable] = []
    debug = dma = False
    separator_seen = False
    for item in facts.for_pcr(7):
        ev = item.event
        var = _pcr7_fact(item, workarounds)
        if ev.event_type == _SEPARATOR:
            separator_seen = True
        elif ev.event_type == _EFI_ACTION:
            debug |= item.content == b"UEFI Debug Mode"
            dma |= item.content == b"DMA Protection Disabled"
        elif ev.event_type == _EFI_DRIVER_CONFIG and var is not None:
            if separator_seen:
                raise VerificationError(
                    f"event {ev.number}: EFI configuration variable after the PCR7 separator"
                )
            if var.name in config:  # firmware measures each once: which one is in force?
                raise VerificationError(
                    f"event {ev.number}: EFI configuration variable {var.name!r} logged twice"
                )
            config[var.name] = var
        elif ev.event_type == _EFI_AUTHORITY and var is not None:
            authorities.append(var)
    if not separator_seen:
        # Without it nothing tells the firmware's configuration from events
        # software extended later (the OS can extend PCR7 too).
        raise VerificationError("PCR7 has no separator: Secure Boot configuration not closed")

    def lists(name: str, guid: str) -> tuple[SignatureList, ...]:
        var = config.get(name)
        if var is None or var.guid != guid or not isinstance(var.decoded, tuple):
            return ()
        return var.decoded

    def flag(name: str) -> bool | None:
        var = config.get(name)
        if var is None or var.guid != EFI_GLOBAL_VARIABLE_GUID or len(var.data) != 1:
            return None
        return var.data[0] == 1

    sbat = None
    for var in authorities:
        if var.guid == SHIM_LOCK_GUID and var.name == "SbatLevel":
            sbat = var.data.rstrip(b"\x00").decode("utf-8", "replace")
    # shim measures MokList/MokListX/MokListTrusted into PCR14 as EV_IPL events
    # whose data is the variable name and whose digest hashes the contents: the
    # names are labels of measurements, not facts.
    mok_names = tuple(
        ev.data.split(b"\x00", 1)[0].decode("ascii", "replace")
        for ev in (c.event for c in facts.measurements(14))
        if ev.event_type == _IPL and ev.data.startswith(b"Mok")
    )
    return SecureBootState(
        enabled=bool(flag("SecureBoot")),
        pk=lists("PK", EFI_GLOBAL_VARIABLE_GUID),
        kek=lists("KEK", EFI_GLOBAL_VARIABLE_GUID),
        db=lists("db", EFI_IMAGE_SECURITY_DATABASE_GUID),
        dbx=lists("dbx", EFI_IMAGE_SECURITY_DATABASE_GUID),
        authorities=tuple(authorities),
        deployed_mode=flag("DeployedMode"),
        audit_mode=flag("AuditMode"),
        debug_mode=debug,
        dma_protection_disabled=dma,
        boot_applications=boot_applications(facts, uintn),
        kernel_cmdlines=kernel_cmdlines(facts, uintn),
        mok_variables=mok_names,
        sbat_level=sbat,
        variables=config,
    )


def _pcr7_fact(item: ClassifiedEvent, workarounds: Collection[Workaround]) -> UefiVariable | None:
    """Check one PCR7 event; return its bound variable (None for other types)."""
    ev = item.event
    if ev.event_type not in _PCR7_TYPES:
        raise VerificationError(f"event {ev.number}: unexpected {ev.type_name} in PCR7")
    if not item.proven:
        if (
            item.check is DataCheck.MATCH_VARIABLE_DATA_ONLY
            and ev.event_type == _EFI_DRIVER_CONFIG
            and Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY in workarounds
        ):
            return decode_uefi_variable(ev.data, base_offset=ev.offset)
        raise VerificationError(
            f"event {ev.number} ({ev.type_name}): not proven by its {item.bank} digest ({item.why})"
        )
    if ev.event_type == _EFI_ACTION and item.content not in _PCR7_ACTIONS:
        raise VerificationError(f"event {ev.number}: unexpected EFI action in PCR7")
    return item.variable()


def boot_applications(facts: ClassifiedLog, uintn: int = 2) -> tuple[BootApplication, ...]:
    """Every PCR4 measurement, whatever type the log gives it (empty when PCR4 is
    not verified). The device path is decoded from image-load events only and is
    a label: the digest is the fact."""
    if 4 not in facts.verified_pcrs:
        return ()
    out = []
    for item in facts.measurements(4):
        ev = item.event
        path = ""
        if ev.event_type in _IMAGE_LOAD:
            decoded = decode_event(ev, uintn_size=uintn).fields.get("device_path", "")
            path = decoded if isinstance(decoded, str) else ""
        digests = {b: d for b, d in ev.digests.items() if b in facts.log.verified_banks[4]}
        out.append(BootApplication(digests, path, ev.number, ev.type_name))
    return tuple(out)


def kernel_cmdlines(facts: ClassifiedLog, uintn: int = 2) -> tuple[str, ...]:
    """Kernel command lines from proven strings on PCR 8, 9 and 12.

    Any proven text event counts, whatever text type (IPL, action) the log
    gives it: relabelling a command line must not hide it.
    """
    out = []
    for pcr in _CMDLINE_PCRS:
        for item in facts.proven(pcr, *_TEXT_TYPES):
            as_ipl = item.event._replace(event_type=_IPL)
            cmdline = decode_event(as_ipl, uintn_size=uintn).fields.get("kernel_cmdline")
            if isinstance(cmdline, str):
                out.append(cmdline)
    return tuple(out)
