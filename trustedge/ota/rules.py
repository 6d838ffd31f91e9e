"""The OTA update rules: one state machine without I/O.

python-tuf keeps every trust decision in ``TrustedMetadataSet`` (bytes in,
verified metadata out, the reference time fixed by the caller, no I/O) and
leaves downloads and persistence to ``Updater``. trustedge splits an update
the same way: :class:`UpdateRules` (this module) and
:class:`~trustedge.ota.rollback.RollbackState` take bytes, ``now`` and the
recorded state, and return a verified manifest or the next state -- or raise;
:class:`~trustedge.ota.updater.Updater` only reads and writes state through
its :class:`~trustedge.ota.rollback.StateStore` (``trustedge._fs``) and
drives the device.

The rules, in the order :class:`~trustedge.ota.updater.Updater` applies them:

1. :meth:`UpdateRules.authenticate`: the envelope's size is capped before
   decoding; a :class:`TrustRoot` must be fresh at ``now``; the SUIT_Digest
   must match the manifest; every COSE_Sign1 block is verified **once**
   against the keys of every firmware role, and the verified key ids are then
   mapped to roles: at least one firmware-role key must have signed before the
   manifest is parsed (once), then every role the manifest's components need
   must reach its threshold;
2. :meth:`UpdateRules.admit`: the trust root is not older than the one the
   device adopted; no update is pending confirmation; per component the
   rollback floor (:meth:`RollbackState.check`) and the optional
   ``max_seq_jump``; the manifest has an install sequence. It returns the
   *pending* state that the updater saves once the image is written;
3. :meth:`RollbackState.confirm` / :meth:`RollbackState.abandon` settle the
   pending state; they need no keys, because what was authenticated at apply
   time (the sequence number and manifest digest per component) is what
   :meth:`admit` recorded, and the store writes it atomically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from trustedge import _cbor
from trustedge.cose import PublicKey
from trustedge.errors import PolicyError, RollbackError, SignatureError
from trustedge.ota.rollback import RollbackState
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.auth import (
    AuthenticatedManifest,
    KeySet,
    authenticate,
    check_threshold,
    decode_verified,
    verified_signers,
)
from trustedge.ota.suit.codec import DEFAULT_MAX_ENVELOPE, decode_envelope
from trustedge.ota.trustroot import TrustRoot

__all__ = ["UpdateRules", "component_key", "firmware_keys"]

_FIRMWARE: Final = "firmware"


def component_key(component: tuple[bytes, ...]) -> bytes:
    """The rollback-state key of a SUIT component id: its CBOR encoding."""
    return _cbor.encode(list(component))


def firmware_keys(root: TrustRoot) -> dict[bytes, PublicKey]:
    """Every key of the ``firmware`` role and of the per-component ``firmware/...`` roles."""
    keys: dict[bytes, PublicKey] = {}
    for name, role in root.roles.items():
        if name == _FIRMWARE or name.startswith(_FIRMWARE + "/"):
            keys.update({kid: root.keys[kid] for kid in role.keys})
    return keys


@dataclass(frozen=True)
class UpdateRules:
    """What a device accepts: its ``trust`` and its limits. Pure: no I/O, no clock.

    ``trust`` is a :class:`TrustRoot` (roles, thresholds, expiry) or a
    :class:`KeySet` (keys pinned directly, no expiry). ``max_envelope`` caps
    the envelope before decoding; ``legacy_install`` accepts pre-draft-29
    numbering (install = 17); ``max_seq_jump`` (optional) caps how far one
    update may move a floor (fast-forward damage limit).
    """

    trust: TrustRoot | KeySet
    max_envelope: int = DEFAULT_MAX_ENVELOPE
    legacy_install: bool = False
    max_seq_jump: int | None = None

    _firmware_keys: Mapping[bytes, PublicKey] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _role_keys: Mapping[str, KeySet] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.max_seq_jump is not None and self.max_seq_jump < 0:
            raise ValueError("max_seq_jump must be at least 0")
        if isinstance(self.trust, TrustRoot):
            # the trust root is immutable: its firmware keys are gathered once
            object.__setattr__(self, "_firmware_keys", firmware_keys(self.trust))
            roles = {name: self.trust.keyset(name) for name in self.trust.roles}
            object.__setattr__(self, "_role_keys", roles)

    def authenticate(self, envelope: bytes, *, now: int) -> AuthenticatedManifest:
        """Rule 1: size cap, trust-root freshness at ``now``, signatures, thresholds.

        With a :class:`TrustRoot`, every component's role (its own
        ``firmware/<id>`` role, else ``firmware``) must reach its threshold;
        the returned ``signers`` are the verified keys of those roles. Raises
        SignatureError, ExpiredError, MalformedInputError / LimitExceededError.
        """
        env = decode_envelope(
            envelope, max_size=self.max_envelope, legacy_install=self.legacy_install
        )
        trust = self.trust
        if isinstance(trust, KeySet):
            return authenticate(env, trust)
        trust.check_fresh(now)
        verified, digest = verified_signers(env, self._firmware_keys)
        # Which roles apply depends on the components, which are inside the
        # manifest: only a firmware-role key holder's bytes are parsed at all.
        if not verified:
            raise SignatureError("no trusted firmware key signed this manifest")
        manifest = decode_verified(env)
        signers: frozenset[bytes] = frozenset()
        # each role once, in component order (as TrustRoot.keysets_for)
        names = dict.fromkeys(trust.role_for(component_key(c)) for c in manifest.components)
        for name in names:
            signers |= check_threshold(verified, self._role_keys[name])
        return AuthenticatedManifest(manifest, env, signers, digest)

    def admit(self, state: RollbackState, auth: AuthenticatedManifest) -> RollbackState:
        """Rule 2: may ``auth`` be installed on a device in ``state``? The pending state.

        Raises RollbackError (a trust root older than the adopted one, a
        sequence below a floor or equal to it for another manifest),
        PolicyError (an update pending confirmation, a jump past
        ``max_seq_jump``, no install sequence).
        """
        m = auth.manifest
        if isinstance(self.trust, TrustRoot) and self.trust.version < state.trust_root_version:
            raise RollbackError("trust root is older than the one this device adopted")
        if state.has_pending:
            raise PolicyError("an update is pending confirmation; confirm or revert it first")
        cids = [component_key(c) for c in m.components]
        for cid in cids:
            state.check(cid, m.sequence_number, auth.digest)
            floor = state.component(cid).floor
            if self.max_seq_jump is not None and m.sequence_number - floor > self.max_seq_jump:
                raise PolicyError(
                    f"sequence {m.sequence_number} jumps more than {self.max_seq_jump} past {floor}"
                )
        if n.INSTALL not in m.sequences and n.INSTALL not in m.severed:
            raise PolicyError("manifest has no install sequence")
        return state.begin(cids, m.sequence_number, auth.digest)
