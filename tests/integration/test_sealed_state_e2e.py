"""The OTA state's MAC key sealed to the release's signed PCR policies, end to end, on swtpm
and on the software TPM.

Provision: the device boots shim -> GRUB -> kernel, provisions its policy counter, seals the
rollback state's MAC key to PolicyAuthorize under the release key with the release's policy
for this chain, and writes a fresh NV-counter state. A signed SUIT update replaces GRUB and
the kernel; the release predicts the next boot from the device's log and signs that policy
for the next version; the device stages it and installs the update. Then "reboots" (the TPM
restarts, PCRs extended from the log of the chain that boots): the state store opens under
the new chain, under the old one before confirm (a fallback), never under an unapproved
component; after confirm the old chain cannot open it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.test_sealed_update_e2e import (
    CLASS,
    COUNTER,
    EVIL,
    GRUB1,
    GRUB2,
    KERNEL,
    KERNEL1,
    KERNEL2,
    LOADER,
    NOW,
    REF,
    RELEASE_KEY,
    SHIM,
    VENDOR,
    Machine,
    _update,
)
from tests.integration.test_sealed_update_e2e import machine as machine
from trustedge.errors import AccessDeniedError, MalformedInputError, PolicyError
from trustedge.hazmat.tpm2.policy import authority_public
from trustedge.ota import FileSystemDevice, KeySet, Updater
from trustedge.ota.bootchain import PolicyCounter, predict_update, sign_pcr_policy
from trustedge.ota.sealedstate import SealedStateKey
from trustedge.ota.updater import component_key, verify_envelope

STATE_COUNTER = 0x01500C02
AUTHORITY = authority_public(RELEASE_KEY.public_key()).marshal_tpm2b()


def _policy(machine: Machine, values: object, version: int) -> bytes:
    counter = PolicyCounter(machine.tpm, COUNTER)
    return sign_pcr_policy(
        values,  # type: ignore[arg-type]
        RELEASE_KEY,
        nv_index=COUNTER,
        nv_name=counter.name,
        version=version,
        policy_ref=REF,
    ).encode()


def _device(tmp_path: Path) -> FileSystemDevice:
    device = FileSystemDevice(
        tmp_path / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
    )
    for comp, img in ((LOADER, GRUB1), (KERNEL, KERNEL1)):
        slot_dir = tmp_path / "device" / comp[0].hex()
        slot_dir.mkdir(parents=True, exist_ok=True)
        (slot_dir / "slot0").write_bytes(img)
    return device


def _open(machine: Machine, state: Path) -> tuple[SealedStateKey, Updater]:
    """What the device does at every boot: unseal the state key, open the store."""
    key = SealedStateKey(state, machine.tpm, authority=AUTHORITY)
    store = key.open_store(STATE_COUNTER)
    trust = KeySet.of([RELEASE_KEY.public_key()])
    return key, Updater(trust, store, _device_of(state))


def _device_of(state: Path) -> FileSystemDevice:
    return FileSystemDevice(
        state.parent / "device",
        vendor_id=uuid.UUID(VENDOR).bytes,
        class_id=uuid.UUID(CLASS).bytes,
    )


def test_state_key_follows_the_signed_chain(machine: Machine, tmp_path: Path) -> None:
    state = tmp_path / "state"
    device = _device(tmp_path)
    # -- manufacturing: policy counter, the release's policy for this chain, sealed state
    machine.boot(SHIM, GRUB1, KERNEL1)
    v0 = PolicyCounter(machine.tpm, COUNTER).provision()
    current = machine.verified_log()
    old_policy = _policy(machine, current.source.replay(), v0)
    key = SealedStateKey.provision(
        state, machine.tpm, authority=AUTHORITY, policy=old_policy, policy_ref=REF
    )
    store = key.provision_store(STATE_COUNTER)
    assert store.load().generation == PolicyCounter(machine.tpm, STATE_COUNTER).version
    with pytest.raises(PolicyError, match="already has a sealed key"):
        SealedStateKey.provision(state, machine.tpm, authority=AUTHORITY, policy=old_policy)
    # the MAC key is on no disk: the state files are MAC'd with what only the TPM releases
    mac_key = key.unseal()
    assert all(mac_key not in p.read_bytes() for p in state.iterdir())

    # -- release: the update and the policy of its predicted chain (version v0 + 1)
    update = _update(tmp_path)
    trust = KeySet.of([RELEASE_KEY.public_key()])
    manifest = verify_envelope(update, trust, now=NOW).manifest
    prediction = predict_update(manifest, current, device=device)
    new_policy = _policy(machine, prediction.next, v0 + 1)

    # -- device: stage the policy, install (pending)
    result = key.apply(Updater(trust, store, device), update, new_policy, now=NOW)
    assert key.policies() == (old_policy, new_policy)
    assert store.load().has_pending

    # -- reboot into the new chain: the store opens with the new signed policy
    machine.boot(SHIM, GRUB2, KERNEL2)
    _, updater = _open(machine, state)
    assert updater.store.load().has_pending
    # ... not with the old one alone
    stale = SealedStateKey(state, machine.tpm, authority=AUTHORITY)
    (state / "state-key.pending").rename(tmp_path / "pending")
    with pytest.raises(AccessDeniedError, match="refused to unseal the OTA state key"):
        stale.open_store(STATE_COUNTER)
    (tmp_path / "pending").rename(state / "state-key.pending")

    # -- before confirm the old chain still opens it (A/B fallback)
    machine.boot(SHIM, GRUB1, KERNEL1)
    key, updater = _open(machine, state)
    assert updater.store.load().has_pending
    with pytest.raises(PolicyError, match="not the pending update"):  # confirm on the old chain
        key.confirm(updater, PolicyCounter(machine.tpm, COUNTER), result.components)
    assert PolicyCounter(machine.tpm, COUNTER).version == v0  # nothing revoked
    assert updater.store.load().has_pending  # nothing confirmed

    # -- an unapproved component: no policy unseals, the store refuses to open
    machine.boot(SHIM, GRUB2, EVIL)
    with pytest.raises(AccessDeniedError, match="PCR values differ"):
        _open(machine, state)

    # -- confirm on the new chain: floors rise, the counter revokes the old chain's policy
    machine.boot(SHIM, GRUB2, KERNEL2)
    key, updater = _open(machine, state)
    confirmed = key.confirm(updater, PolicyCounter(machine.tpm, COUNTER), result.components)
    assert not confirmed.has_pending
    assert PolicyCounter(machine.tpm, COUNTER).version == v0 + 1
    assert key.policies() == (new_policy,)
    key.confirm(updater, PolicyCounter(machine.tpm, COUNTER), result.components)  # retried
    assert PolicyCounter(machine.tpm, COUNTER).version == v0 + 1
    machine.boot(SHIM, GRUB2, KERNEL2)
    _, updater = _open(machine, state)
    assert updater.store.load().component(component_key(LOADER)).floor == 2

    # -- the old chain after confirm: even with its old policy back on disk, refused
    machine.boot(SHIM, GRUB1, KERNEL1)
    (state / "state-key.pending").write_bytes(old_policy)  # an attacker restores it
    with pytest.raises(AccessDeniedError, match="revoked"):
        _open(machine, state)


def test_provision_refuses_a_policy_that_does_not_unseal(machine: Machine, tmp_path: Path) -> None:
    machine.boot(SHIM, GRUB1, KERNEL1)
    v0 = PolicyCounter(machine.tpm, COUNTER).provision()
    values = machine.verified_log().source.replay()
    other = {"sha256": {**values["sha256"], 4: bytes(32)}}
    with pytest.raises(PolicyError, match="does not unseal"):
        SealedStateKey.provision(
            tmp_path, machine.tpm, authority=AUTHORITY, policy=_policy(machine, other, v0)
        )
    assert not (tmp_path / "state-key.sealed").exists()
    with pytest.raises(MalformedInputError):
        SealedStateKey.provision(tmp_path, machine.tpm, authority=AUTHORITY, policy=b"junk")
    with pytest.raises(PolicyError, match="provision it first"):
        SealedStateKey(tmp_path, machine.tpm, authority=AUTHORITY).open_store(STATE_COUNTER)


def test_revert_drops_the_staged_policy(machine: Machine, tmp_path: Path) -> None:
    state = tmp_path / "state"
    device = _device(tmp_path)
    machine.boot(SHIM, GRUB1, KERNEL1)
    v0 = PolicyCounter(machine.tpm, COUNTER).provision()
    current = machine.verified_log()
    old_policy = _policy(machine, current.source.replay(), v0)
    key = SealedStateKey.provision(
        state, machine.tpm, authority=AUTHORITY, policy=old_policy, policy_ref=REF
    )
    store = key.provision_store(STATE_COUNTER)
    update = _update(tmp_path)
    trust = KeySet.of([RELEASE_KEY.public_key()])
    manifest = verify_envelope(update, trust, now=NOW).manifest
    new_policy = _policy(machine, predict_update(manifest, current).next, v0 + 1)
    result = key.apply(Updater(trust, store, device), update, new_policy, now=NOW)

    machine.boot(SHIM, GRUB1, KERNEL1)  # the new chain failed: back on the old one
    key, updater = _open(machine, state)
    reverted = key.revert(updater, result.components)
    assert not reverted.has_pending and key.policies() == (old_policy,)
    assert PolicyCounter(machine.tpm, COUNTER).version == v0
    machine.boot(SHIM, GRUB2, KERNEL2)  # the reverted chain no longer opens the state
    with pytest.raises(AccessDeniedError):
        _open(machine, state)
    machine.boot(SHIM, GRUB1, KERNEL1)
    assert _open(machine, state)[1].store.load().component(component_key(LOADER)).floor == 0
