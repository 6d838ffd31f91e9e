"""The OTA state's MAC key, held by the TPM and sealed to the release's signed PCR policies.

:class:`~trustedge.ota.rollback.NVCounterStateStore` MACs the rollback state and takes its
generation from an NV counter; the MAC key must not be readable from the disk, or whoever can
write the disk forges a state (a lowered floor) with the counter's generation.
:class:`SealedStateKey` keeps that key the way envelope KEKs are kept (ADR 0009, ADR 0020): 32
random bytes sealed with ``TPM2_PolicyAuthorize`` under the release authority, so only a boot
chain the release signed a PCR policy for unseals it, and a policy version in an NV counter
(PolicyNV) revokes older chains.

Files, next to the state copies in the state directory:

* ``state-key.sealed`` -- the sealed blob (created once by :meth:`SealedStateKey.provision`;
  useless without that TPM);
* ``state-key.policy`` -- the signed policy of the confirmed boot chain;
* ``state-key.pending`` -- the signed policy of a pending update's chain (from the release,
  staged *before* the update installs, so that the new chain can open the state after the
  reboot; promoted at confirm).

The flow (:meth:`SealedStateKey.apply`, :meth:`~SealedStateKey.confirm`,
:meth:`~SealedStateKey.revert` wrap :class:`~trustedge.ota.updater.Updater`): before the
update commits both policies unseal (the new chain, or a fallback to the old one); at confirm
the policy counter advances to the new policy's version, which revokes the old one -- only
once the TPM has shown that the pending policy unseals in this boot, so a confirm on the wrong
chain never locks the device out of its own state.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from trustedge._fs import atomic_write, create_exclusive, fsync_directory
from trustedge.errors import (
    AccessDeniedError,
    LimitExceededError,
    MalformedInputError,
    PolicyError,
    VerificationError,
)
from trustedge.hazmat.tpm2.policy import SignedPolicy
from trustedge.hazmat.tpmbackend import TPMBackend, unseal_with_policies
from trustedge.ota.rollback import NVCounterStateStore, RollbackState

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from trustedge.ota.bootchain import PolicyCounter
    from trustedge.ota.updater import Updater, UpdateResult

__all__ = ["KEY_FILES", "SealedStateKey"]

_BLOB: Final = "state-key.sealed"
_CURRENT: Final = "state-key.policy"
_PENDING: Final = "state-key.pending"
#: The files a sealed state key consists of (in the state directory).
KEY_FILES: Final = (_BLOB, _CURRENT, _PENDING)
_MAX_FILE: Final = 4096
_KEY_SIZE: Final = 32


def _read(path: Path) -> bytes | None:
    """A key file (bounded), or None when absent."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_FILE + 1)
    except FileNotFoundError:
        return None
    if len(data) > _MAX_FILE:
        raise LimitExceededError(f"{path} is larger than {_MAX_FILE} bytes")
    return data


class SealedStateKey:
    """The rollback state's MAC key, sealed in ``backend`` to policies ``authority`` signs.

    ``directory`` is the state directory; ``authority`` the policy authority's
    ``TPM2B_PUBLIC`` (``hazmat.tpm2.policy.authority_public(release_key).marshal_tpm2b()``).
    A refused unseal raises :class:`~trustedge.errors.AccessDeniedError` naming why each
    policy failed (PCRs of another chain, a revoked version); the key is unsealed once per
    object.
    """

    def __init__(
        self, directory: str | os.PathLike[str], backend: TPMBackend, *, authority: bytes
    ) -> None:
        self.directory = Path(directory)
        self.backend = backend
        self.authority = authority
        self._key: bytes | None = None

    @classmethod
    def provision(
        cls,
        directory: str | os.PathLike[str],
        backend: TPMBackend,
        *,
        authority: bytes,
        policy: bytes,
        policy_ref: bytes = b"",
        rng: Callable[[int], bytes] = os.urandom,
    ) -> SealedStateKey:
        """Seal a new MAC key to ``PolicyAuthorize(authority, policy_ref)``; ``policy`` is the
        release's signed policy for the chain booted now (its version the policy counter's
        current value). The TPM must unseal the new key with it before anything is kept
        (PolicyError otherwise: no state key that nothing opens). A directory that already
        holds a sealed key is refused (PolicyError): re-provisioning would orphan its state."""
        key = cls(directory, backend, authority=authority)
        blob_path = key.directory / _BLOB
        if blob_path.exists():
            raise PolicyError(f"{blob_path} exists: this state already has a sealed key")
        SignedPolicy.decode(policy)  # MalformedInputError before the TPM sees it
        secret = rng(_KEY_SIZE)
        blob = backend.seal_authorized(secret, authority=authority, policy_ref=policy_ref)
        try:
            unsealed = backend.unseal_authorized(blob, policy, authority=authority)
        except VerificationError as exc:
            raise PolicyError(f"the policy does not unseal the new state key now: {exc}") from exc
        if not hmac.compare_digest(unsealed, secret):  # a TPM fault, never an attacker
            raise PolicyError("the TPM returned another secret than it sealed")
        key.directory.mkdir(parents=True, exist_ok=True)
        # the policy first: a kill before the blob exists leaves a re-runnable provisioning
        atomic_write(key.directory / _CURRENT, policy)
        create_exclusive(blob_path, blob)
        key._key = secret
        return key

    # -- the files ---------------------------------------------------------------------
    def _blob(self) -> bytes:
        blob = _read(self.directory / _BLOB)
        if blob is None:
            raise PolicyError(f"no sealed state key in {self.directory} (provision it first)")
        return blob

    def policies(self) -> tuple[bytes, ...]:
        """The confirmed chain's policy and, while an update is pending, the new one."""
        found = (_read(self.directory / name) for name in (_CURRENT, _PENDING))
        return tuple(p for p in found if p is not None)

    @property
    def pending(self) -> SignedPolicy | None:
        """The staged policy of a pending update (parsed, not verified), or None."""
        raw = _read(self.directory / _PENDING)
        return None if raw is None else SignedPolicy.decode(raw)

    def stage(self, policy: bytes) -> None:
        """Keep ``policy`` (the release's signed policy for an update's predicted chain) as the
        pending one. Stage it *before* the update installs: it only adds a way to unseal
        (the TPM still checks signature, PCRs and version), and the new chain needs it."""
        SignedPolicy.decode(policy)
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.directory / _PENDING, policy)

    def discard(self) -> None:
        """Drop the pending policy (the update was reverted)."""
        try:
            os.unlink(self.directory / _PENDING)
        except FileNotFoundError:
            return
        fsync_directory(self.directory)

    # -- the key -----------------------------------------------------------------------
    def unseal(self) -> bytes:
        """The MAC key; AccessDeniedError when no held policy unseals it in this boot."""
        if self._key is None:
            blob = self._blob()
            try:
                key = unseal_with_policies(
                    self.backend, blob, self.policies(), authority=self.authority
                )
            except VerificationError as exc:
                raise AccessDeniedError(
                    f"the TPM refused to unseal the OTA state key (boot chain not approved, "
                    f"or revoked): {exc}"
                ) from exc
            if len(key) != _KEY_SIZE:
                raise MalformedInputError("the sealed object does not hold a 32-byte state key")
            self._key = key
        return self._key

    def open_store(self, index: int) -> NVCounterStateStore:
        """The rollback state store (generation counter ``index``) MAC'd with the unsealed key;
        AccessDeniedError when this boot chain may not open it."""
        return NVCounterStateStore(self.directory, self.backend, index, self.unseal())

    def provision_store(self, index: int) -> NVCounterStateStore:
        """:meth:`open_store` after defining the generation counter and writing a fresh state."""
        store = self.open_store(index)
        store.provision()
        return store

    # -- the update flow ---------------------------------------------------------------
    def apply(
        self,
        updater: Updater,
        envelope: bytes,
        policy: bytes,
        *,
        now: int,
        payloads: Mapping[str, bytes] | None = None,
    ) -> UpdateResult:
        """Stage ``policy`` (the update's predicted chain, signed by the release), then
        :meth:`Updater.apply <trustedge.ota.updater.Updater.apply>` the envelope."""
        self.stage(policy)
        return updater.apply(envelope, now=now, payloads=payloads)

    def confirm(
        self,
        updater: Updater,
        counter: PolicyCounter,
        components: tuple[tuple[bytes, ...], ...] = (),
    ) -> RollbackState:
        """The new chain booted: check that its policy unseals the key *now* (PolicyError
        otherwise, nothing changed), raise the floors (:meth:`Updater.confirm`), advance the
        policy counter to the pending version (the old chain's policy is revoked) and make
        the pending policy the current one. Repeating it after a crash finishes the step."""
        pending = self.pending
        if pending is None:
            state = updater.confirm(components)
            return state
        if pending.policy.nv_index != counter.index:
            raise PolicyError(
                f"the pending policy names NV index {pending.policy.nv_index:#x}, "
                f"not the policy counter {counter.index:#x}"
            )
        raw = _read(self.directory / _PENDING)
        assert raw is not None
        try:
            self.backend.unseal_authorized(self._blob(), raw, authority=self.authority)
        except VerificationError as exc:
            raise PolicyError(
                f"the booted chain is not the pending update's (its policy does not unseal): {exc}"
            ) from exc
        state = updater.confirm(components)
        counter.advance_to(pending.policy.version)
        atomic_write(self.directory / _CURRENT, raw)
        self.discard()
        return state

    def revert(
        self, updater: Updater, components: tuple[tuple[bytes, ...], ...] = ()
    ) -> RollbackState:
        """The new chain failed: :meth:`Updater.revert`, then drop the pending policy."""
        state = updater.revert(components)
        self.discard()
        return state
