"""The updater: the I/O shell around the OTA rules.

:class:`Updater` ties the pieces together for one device; every decision is
made by the no-I/O rules (:class:`~trustedge.ota.rules.UpdateRules`,
:class:`~trustedge.ota.rollback.RollbackState`), the updater reads and
writes state only through its :class:`~trustedge.ota.rollback.StateStore`
(``trustedge._fs``) and drives the :class:`~trustedge.ota.device.Device`:

1. the envelope's size is capped before decoding (endless data);
2. the trust root must be fresh at ``now`` (indefinite freeze) and the
   manifest authenticated by a threshold of its firmware role, or by a plain
   :class:`KeySet` -- each signature verified once;
3. the rollback rules accept the sequence number for every component
   (optional ``max_seq_jump``), nothing is pending, the manifest installs;
4. the processor runs payload-fetch, install and validate into the inactive
   slots; only then is ``pending`` saved and the slots marked pending;
5. :func:`confirm` (after the new image booted) raises the floors, or
   :func:`revert` drops the pending install.

Every rejection raises a :class:`~trustedge.errors.VerificationError` subclass
(or MalformedInputError for input that does not parse) and leaves state and
active slots untouched.

:func:`confirm` and :func:`revert` take no keys: they act only on the pending
state that :meth:`Updater.apply` saved atomically after authenticating the
manifest (sequence number and manifest digest per component). They add no
outside bytes to the state; confirming only raises floors to what was
authenticated, reverting only drops the pending entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from trustedge.envelope import Identity
from trustedge.errors import PolicyError
from trustedge.ota.device import Device
from trustedge.ota.rollback import RollbackState, StateStore
from trustedge.ota.rules import UpdateRules, component_key
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.auth import AuthenticatedManifest, KeySet
from trustedge.ota.suit.codec import DEFAULT_MAX_ENVELOPE
from trustedge.ota.suit.processor import Processor
from trustedge.ota.trustroot import TrustRoot

__all__ = ["UpdateResult", "Updater", "component_key", "confirm", "revert", "verify_envelope"]


def verify_envelope(
    envelope: bytes,
    trust: TrustRoot | KeySet,
    *,
    now: int,
    max_envelope: int = DEFAULT_MAX_ENVELOPE,
    legacy_install: bool = False,
) -> AuthenticatedManifest:
    """Cap the size, check the trust root's expiry, authenticate
    (:meth:`UpdateRules.authenticate`).

    With a :class:`TrustRoot`, every component's role (its own
    ``firmware/<id>`` role, else ``firmware``) must reach its threshold; the
    returned ``signers`` are the union. Raises SignatureError, ExpiredError,
    MalformedInputError / LimitExceededError.
    """
    rules = UpdateRules(trust, max_envelope=max_envelope, legacy_install=legacy_install)
    return rules.authenticate(envelope, now=now)


def confirm(
    store: StateStore,
    device: Device,
    components: Sequence[tuple[bytes, ...]] | None = None,
) -> RollbackState:
    """The new image booted and is healthy: raise floors, keep the new slots.

    ``components`` defaults to the pending ones recorded in ``store``. If
    power was lost between saving ``pending`` and marking the device's slot
    pending, the new image never booted: the pending state is dropped (floors
    unchanged) and PolicyError asks for the update to be applied again.
    """
    state = store.load()
    comps = state.pending_components if components is None else tuple(components)
    if state.has_pending and any(device.pending_slot(c) is None for c in comps):
        store.save(state.abandon())
        raise PolicyError("the pending install never reached the device; apply it again")
    new = store.save(state.confirm())
    for comp in comps:
        device.confirm(comp)
    return new


def revert(
    store: StateStore,
    device: Device,
    components: Sequence[tuple[bytes, ...]] | None = None,
) -> RollbackState:
    """The new image failed: drop pending state, the old slots stay active.

    ``components`` defaults to the pending ones recorded in ``store``.
    """
    state = store.load()
    comps = state.pending_components if components is None else tuple(components)
    new = store.save(state.abandon())
    for comp in comps:
        device.revert(comp)
    return new


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
    caps how far one update may move a floor (fast-forward damage limit); the
    rules themselves are :attr:`rules` (:class:`UpdateRules`, no I/O).
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
        self.rules = UpdateRules(
            trust,
            max_envelope=max_envelope,
            legacy_install=legacy_install,
            max_seq_jump=max_seq_jump,
        )
        self.decrypt = dict(decrypt or {})
        self.store = store
        self.device = device

    @property
    def trust(self) -> TrustRoot | KeySet:
        """The trust root (or pinned key set) manifests are authenticated with."""
        return self.rules.trust

    def verify(self, envelope: bytes, *, now: int) -> AuthenticatedManifest:
        """Steps 1-2 only: size cap, trust-root freshness, authentication."""
        return self.rules.authenticate(envelope, now=now)

    def adopt_trust_root(self, root: TrustRoot) -> RollbackState:
        """Record a (verified, newer) trust root and apply its floor resets."""
        state = self.store.load()
        new = state.apply_floor_reset(root.version, root.floor_reset)
        if new is not state:
            new = self.store.save(new)
        self.rules = replace(self.rules, trust=root)
        return new

    def apply(
        self, envelope: bytes, *, now: int, payloads: Mapping[str, bytes] | None = None
    ) -> UpdateResult:
        """Verify and install ``envelope``; see the module docstring for the order."""
        auth = self.rules.authenticate(envelope, now=now)
        pending = self.rules.admit(self.store.load(), auth)
        m = auth.manifest
        proc = Processor(
            auth, self.device, now=now, payloads=payloads, mode="update", decrypt=self.decrypt
        )
        if proc.has(n.PAYLOAD_FETCH):
            proc.run(n.PAYLOAD_FETCH)
        proc.run(n.INSTALL)
        if proc.has(n.VALIDATE):
            proc.run(n.VALIDATE)
        new_state = self.store.save(pending)
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

    def confirm(self, components: Sequence[tuple[bytes, ...]] | None = None) -> RollbackState:
        """:func:`confirm` on this updater's store and device."""
        return confirm(self.store, self.device, components)

    def revert(self, components: Sequence[tuple[bytes, ...]] | None = None) -> RollbackState:
        """:func:`revert` on this updater's store and device."""
        return revert(self.store, self.device, components)
