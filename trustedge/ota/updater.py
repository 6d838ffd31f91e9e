"""The updater: authenticate, check rollback, install, and persist -- in that order.

:class:`Updater` ties the pieces together for one device:

1. the envelope's size is capped before decoding (endless data);
2. the trust root must be fresh at ``now`` (indefinite freeze) and the
   manifest authenticated by a threshold of its firmware role
   (:func:`~trustedge.ota.suit.authenticate`), or by a plain :class:`KeySet`;
3. the rollback rules (:class:`~trustedge.ota.rollback.RollbackState`) accept
   the sequence number for every component (optional ``max_seq_jump``);
4. the processor runs payload-fetch, install and validate into the inactive
   slots; only then is ``pending`` saved and the slots marked pending;
5. :meth:`Updater.confirm` (after the new image booted) raises the floors.

Every rejection raises a :class:`~trustedge.errors.VerificationError` subclass
(or MalformedInputError for input that does not parse) and leaves state and
active slots untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from trustedge import _cbor
from trustedge.envelope import Identity
from trustedge.errors import PolicyError, RollbackError
from trustedge.ota.device import Device
from trustedge.ota.rollback import RollbackState, StateStore
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.auth import AuthenticatedManifest, KeySet, authenticate
from trustedge.ota.suit.codec import DEFAULT_MAX_ENVELOPE, decode_envelope
from trustedge.ota.suit.processor import Processor
from trustedge.ota.trustroot import TrustRoot

__all__ = ["UpdateResult", "Updater", "component_key", "verify_envelope"]


def component_key(component: tuple[bytes, ...]) -> bytes:
    """The rollback-state key of a SUIT component id: its CBOR encoding."""
    return _cbor.encode(list(component))


def verify_envelope(
    envelope: bytes,
    trust: TrustRoot | KeySet,
    *,
    now: int,
    max_envelope: int = DEFAULT_MAX_ENVELOPE,
    legacy_install: bool = False,
) -> AuthenticatedManifest:
    """Cap the size, check the trust root's expiry, authenticate.

    With a :class:`TrustRoot`, every component's role (its own
    ``firmware/<id>`` role, else ``firmware``) must reach its threshold; the
    returned ``signers`` are the union. Raises SignatureError, ExpiredError,
    MalformedInputError / LimitExceededError.
    """
    env = decode_envelope(envelope, max_size=max_envelope, legacy_install=legacy_install)
    if isinstance(trust, KeySet):
        return authenticate(env, trust)
    trust.check_fresh(now)
    # Which roles apply depends on the components, which are inside the
    # manifest: first require one signature from any firmware-role key (so
    # only a trusted key holder's bytes get parsed), then every applicable
    # role's full threshold.
    auth = authenticate(env, _any_firmware_key(trust))
    signers: set[bytes] = set()
    for keys in trust.keysets_for([component_key(c) for c in auth.manifest.components]):
        signers |= authenticate(env, keys).signers
    return replace(auth, signers=frozenset(signers))


def _any_firmware_key(root: TrustRoot) -> KeySet:
    keys = {}
    for name, role in root.roles.items():
        if name == "firmware" or name.startswith("firmware/"):
            keys.update({kid: root.keys[kid] for kid in role.keys})
    return KeySet(keys, 1)


@dataclass(frozen=True)
class UpdateResult:
    """What :meth:`Updater.apply` installed."""

    sequence_number: int
    manifest_digest: bytes
    components: tuple[tuple[bytes, ...], ...]
    slots: Mapping[int, int]
    signers: frozenset[bytes]
    state: RollbackState


class Updater:
    """Applies SUIT envelopes to ``device`` with rollback state in ``store``.

    ``trust`` is a :class:`TrustRoot` (firmware role, expiry) or a
    :class:`KeySet` (keys pinned directly, no expiry). ``legacy_install``
    accepts pre-draft-29 numbering (install = 17); ``max_seq_jump`` (optional)
    caps how far one update may move a floor (fast-forward damage limit).
    ``decrypt`` maps component ids whose payloads arrive encrypted (envelopes,
    :mod:`trustedge.ota.model`) to the identities that open them.
    """

    def __init__(
        self,
        trust: TrustRoot | KeySet,
        store: StateStore,
        device: Device,
        *,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        legacy_install: bool = False,
        max_seq_jump: int | None = None,
        decrypt: Mapping[tuple[bytes, ...], Sequence[Identity]] | None = None,
    ) -> None:
        self.trust = trust
        self.decrypt = dict(decrypt or {})
        self.store = store
        self.device = device
        self.max_envelope = max_envelope
        self.legacy_install = legacy_install
        self.max_seq_jump = max_seq_jump

    def verify(self, envelope: bytes, *, now: int) -> AuthenticatedManifest:
        """Steps 1-2 only: size cap, trust-root freshness, authentication."""
        return verify_envelope(
            envelope,
            self.trust,
            now=now,
            max_envelope=self.max_envelope,
            legacy_install=self.legacy_install,
        )

    def adopt_trust_root(self, root: TrustRoot) -> RollbackState:
        """Record a (verified, newer) trust root and apply its floor resets."""
        state = self.store.load()
        new = state.apply_floor_reset(root.version, root.floor_reset)
        if new is not state:
            new = self.store.save(new)
        self.trust = root
        return new

    def apply(
        self, envelope: bytes, *, now: int, payloads: Mapping[str, bytes] | None = None
    ) -> UpdateResult:
        """Verify and install ``envelope``; see the module docstring for the order."""
        auth = self.verify(envelope, now=now)
        m = auth.manifest
        state = self.store.load()
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
        proc = Processor(
            auth, self.device, now=now, payloads=payloads, mode="update", decrypt=self.decrypt
        )
        if proc.has(n.PAYLOAD_FETCH):
            proc.run(n.PAYLOAD_FETCH)
        proc.run(n.INSTALL)
        if proc.has(n.VALIDATE):
            proc.run(n.VALIDATE)
        new_state = self.store.save(state.begin(cids, m.sequence_number, auth.digest))
        for idx, slot in proc.written.items():
            self.device.set_pending(m.components[idx], slot)
        return UpdateResult(
            m.sequence_number,
            auth.digest,
            m.components,
            dict(proc.written),
            auth.signers,
            new_state,
        )

    def confirm(self, components: tuple[tuple[bytes, ...], ...] = ()) -> RollbackState:
        """The new image booted and is healthy: raise floors, keep the new slots.

        If power was lost between saving ``pending`` and marking the device's
        slot pending, the new image never booted: the pending state is dropped
        (floors unchanged) and PolicyError asks for the update to be applied again.
        """
        state = self.store.load()
        if state.has_pending and any(self.device.pending_slot(c) is None for c in components):
            self.store.save(state.abandon())
            raise PolicyError("the pending install never reached the device; apply it again")
        new = self.store.save(state.confirm())
        for comp in components:
            self.device.confirm(comp)
        return new

    def revert(self, components: tuple[tuple[bytes, ...], ...] = ()) -> RollbackState:
        """The new image failed: drop pending state, the old slots stay active."""
        state = self.store.load()
        new = self.store.save(state.abandon())
        for comp in components:
            self.device.revert(comp)
        return new
