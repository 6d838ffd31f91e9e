"""Secure Boot state from **verified** PCR7 (and PCR4/8/9/12/14) events.

Only a :class:`~trustedge.measuredboot.VerifiedEventLog` is accepted: event
types and data are not covered by PCR digests, so the state is read only
from events whose PCR replay matched, and every PCR7 event is re-hashed
against its data. PCR7 may hold only the event types the PC Client spec
puts there; anything else fails (event-type substitution).
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
from trustedge.measuredboot.consistency import DataCheck, check_event_data
from trustedge.measuredboot.events import Event
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = ["BootApplication", "SecureBootState", "secure_boot_state"]

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


@dataclass(frozen=True)
class BootApplication:
    """An EFI application measured into PCR4 (digests are Authenticode hashes)."""

    digests: dict[str, bytes]
    device_path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "digests": {k: v.hex() for k, v in self.digests.items()},
            "device_path": self.device_path,
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
    log: VerifiedEventLog, *, workarounds: Collection[Workaround] = ()
) -> SecureBootState:
    """Extract the Secure Boot state from a verified log.

    Requires PCR7 to be verified. Raises :class:`~trustedge.errors.VerificationError`
    when PCR7 is not verified, holds an unexpected event type or action, or a
    variable's data does not hash to its digest (an EFI variable hashed over
    VariableData only is accepted just with
    :attr:`Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY`).
    """
    if not isinstance(log, VerifiedEventLog):
        raise TypeError("secure_boot_state needs a VerifiedEventLog")
    if 7 not in log.verified_pcrs:
        raise VerificationError("PCR7 is not verified: Secure Boot state unknown")
    bank = log.verified_banks[7][0]
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    config: dict[str, UefiVariable] = {}
    authorities: list[UefiVariable] = []
    debug = dma = False
    separator_seen = False
    for ev in log.events_for(7):
        _check_pcr7_event(ev, bank, workarounds)
        if ev.event_type == _SEPARATOR:
            separator_seen = True
        elif ev.event_type == _EFI_ACTION:
            debug |= ev.data == b"UEFI Debug Mode"
            dma |= ev.data == b"DMA Protection Disabled"
        elif ev.event_type == _EFI_DRIVER_CONFIG:
            var = decode_uefi_variable(ev.data, base_offset=ev.offset)
            if separator_seen:
                raise VerificationError(
                    f"event {ev.number}: EFI configuration variable after the PCR7 separator"
                )
            config[var.name] = var
        elif ev.event_type == _EFI_AUTHORITY:
            authorities.append(decode_uefi_variable(ev.data, base_offset=ev.offset))

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
    # whose data is the variable name; the contents are only in the digest.
    mok_names = tuple(
        ev.data.split(b"\x00", 1)[0].decode("ascii", "replace")
        for ev in (log.events_for(14) if 14 in log.verified_pcrs else ())
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
        boot_applications=_boot_applications(log, uintn),
        kernel_cmdlines=_kernel_cmdlines(log, uintn),
        mok_variables=mok_names,
        sbat_level=sbat,
        variables=config,
    )


def _check_pcr7_event(ev: Event, bank: str, workarounds: Collection[Workaround]) -> None:
    if ev.event_type not in _PCR7_TYPES:
        raise VerificationError(f"event {ev.number}: unexpected {ev.type_name} in PCR7")
    if ev.event_type == _EFI_ACTION and ev.data not in _PCR7_ACTIONS:
        raise VerificationError(f"event {ev.number}: unexpected EFI action in PCR7")
    result = check_event_data(ev, bank)
    if result in (DataCheck.MATCH, DataCheck.NOT_APPLICABLE):
        return
    if result == DataCheck.MATCH_TRAILING_BYTE:
        return  # shim authority events: the hashed part is what we decode
    if (
        result == DataCheck.MATCH_VARIABLE_DATA_ONLY
        and Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY in workarounds
    ):
        return
    if result == DataCheck.MATCH_VARIABLE_DATA_ONLY and ev.event_type == _EFI_BOOT:
        return
    raise VerificationError(
        f"event {ev.number} ({ev.type_name}): data does not match its {bank} digest "
        f"({result.value})"
    )


def _boot_applications(log: VerifiedEventLog, uintn: int) -> tuple[BootApplication, ...]:
    if 4 not in log.verified_pcrs:
        return ()
    out = []
    for ev in log.events_for(4):
        if ev.event_type == _EFI_APP:
            decoded = decode_event(ev, uintn_size=uintn)
            path = decoded.fields.get("device_path", "")
            out.append(BootApplication(dict(ev.digests), path if isinstance(path, str) else ""))
    return tuple(out)


def _kernel_cmdlines(log: VerifiedEventLog, uintn: int) -> tuple[str, ...]:
    out = []
    for pcr in (8, 9, 12):
        if pcr not in log.verified_pcrs:
            continue
        for ev in log.events_for(pcr):
            if ev.event_type != _IPL:
                continue
            if check_event_data(ev, log.verified_banks[pcr][0]) != DataCheck.MATCH and pcr != 12:
                continue
            fields = decode_event(ev, uintn_size=uintn).fields
            cmdline = fields.get("kernel_cmdline")
            if isinstance(cmdline, str):
                out.append(cmdline)
    return tuple(out)
