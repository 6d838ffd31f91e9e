"""trustedge.ota: signed OTA manifests (SUIT) with rollback protection.

Safe entry point: :class:`Updater` (authenticate with a :class:`TrustRoot` or
pinned :class:`KeySet`, check rollback state, install into A/B slots, confirm).
The rules live in :class:`UpdateRules` and :class:`RollbackState` (no I/O) and
:class:`TrustRoot`; the updater only stores state and drives the device.
"""

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
