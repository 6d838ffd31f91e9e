"""trustedge.ota: signed OTA manifests (SUIT) with rollback protection.

Safe entry point: :class:`Updater` (authenticate with a :class:`TrustRoot` or
pinned :class:`KeySet`, check rollback state, install into A/B slots, confirm).
The rules live in :class:`UpdateRules` and :class:`RollbackState` (no I/O) and
:class:`TrustRoot`; the updater only stores state and drives the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export

if TYPE_CHECKING:
    from trustedge.ota.device import Device, FileSystemDevice, SlotWriter
    from trustedge.ota.rollback import (
        ComponentState,
        FileStateStore,
        NVCounter,
        NVCounterStateStore,
        RollbackState,
        StateStore,
    )
    from trustedge.ota.rules import UpdateRules
    from trustedge.ota.suit import AuthenticatedManifest, KeySet, authenticate, decode_envelope
    from trustedge.ota.trustroot import Role, TrustRoot, build_trust_root
    from trustedge.ota.updater import Updater, UpdateResult, component_key

__all__ = [
    "AuthenticatedManifest",
    "ComponentState",
    "Device",
    "FileStateStore",
    "FileSystemDevice",
    "KeySet",
    "NVCounter",
    "NVCounterStateStore",
    "Role",
    "RollbackState",
    "SlotWriter",
    "StateStore",
    "TrustRoot",
    "UpdateResult",
    "UpdateRules",
    "Updater",
    "authenticate",
    "build_trust_root",
    "component_key",
    "decode_envelope",
]

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "Device": "trustedge.ota.device",
    "FileSystemDevice": "trustedge.ota.device",
    "SlotWriter": "trustedge.ota.device",
    "ComponentState": "trustedge.ota.rollback",
    "FileStateStore": "trustedge.ota.rollback",
    "NVCounter": "trustedge.ota.rollback",
    "NVCounterStateStore": "trustedge.ota.rollback",
    "RollbackState": "trustedge.ota.rollback",
    "StateStore": "trustedge.ota.rollback",
    "UpdateRules": "trustedge.ota.rules",
    "AuthenticatedManifest": "trustedge.ota.suit",
    "KeySet": "trustedge.ota.suit",
    "authenticate": "trustedge.ota.suit",
    "decode_envelope": "trustedge.ota.suit",
    "Role": "trustedge.ota.trustroot",
    "TrustRoot": "trustedge.ota.trustroot",
    "build_trust_root": "trustedge.ota.trustroot",
    "Updater": "trustedge.ota.updater",
    "UpdateResult": "trustedge.ota.updater",
    "component_key": "trustedge.ota.updater",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
