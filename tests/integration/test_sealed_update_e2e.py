"""Updates that keep sealed keys, end to end, on swtpm and on the software TPM.

A device boots shim -> GRUB -> kernel (its TPM's PCRs extended from the event
log of that boot), seals an envelope key to TPM2_PolicyAuthorize under the
release key and holds the release's signed policy for the current chain. A
signed SUIT update replaces GRUB and the kernel; the release side predicts the
next boot's PCRs from the device's log and the update's boot measurements and
signs that policy for the next policy version. Then "reboots": the TPM restarts
(same seeds and NV, PCRs reset) and its PCRs are extended from the log of the
chain that actually boots.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.pe import build_pe
from trustedge import envelope
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import AccessDeniedError, PolicyError
from trustedge.hazmat.tpm2.policy import authority_public
from trustedge.measuredboot import EventType, parse_event_log
from trustedge.measuredboot.authenticode import authenticode_digest
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.ota import FileStateStore, FileSystemDevice, KeySet, Updater
from trustedge.ota.bootchain import PolicyCounter, predict_update, sign_pcr_policy
from trustedge.ota.release import create_envelope, sign_envelope
from trustedge.ota.updater import verify_envelope

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
NOW = 1_800_000_000
COUNTER = 0x01500C01
REF = b"trustedge/boot"
RELEASE_KEY = ec.derive_private_key(0x7E1EA5E, ec.SECP256R1())
LOADER, KERNEL = (b"loader",), (b"kernel",)


def image(name: bytes) -> bytes:
    return build_pe(((".text", b"\x90" * 200 + b"\xc3"), (".data", name * 8)))


SHIM, GRUB1, KERNEL1 = image(b"shim 15.8"), image(b"grub 2.06"), image(b"linux 6.1")
GRUB2, KERNEL2, EVIL = image(b"grub 2.12"), image(b"linux 6.12"), image(b"rootkit")


def boot_log(*chain: bytes) -> bytes:
    """The event log firmware writes when it boots ``chain`` (sha256 bank)."""
    sb = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c").bytes_le
    var = sb + (10).to_bytes(8, "little") + (1).to_bytes(8, "little")
    var += "SecureBoot".encode("utf-16-le") + b"\x01"
    events = [
        LogEvent(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, var),
        LogEvent(7, EventType.EV_SEPARATOR, bytes(4)),
        LogEvent(4, EventType.EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
        LogEvent(4, EventType.EV_SEPARATOR, bytes(4)),
    ]
    for app in chain:
        digest = {"sha256": authenticode_digest(app)}
        events.append(LogEvent(4, EventType.EV_EFI_BOOT_SERVICES_APPLICATION, b"", digest))
    return build_event_log(events, banks=("sha256",))


@dataclass
class Machine:
    """A TPM that can be power-cycled, and what booted last."""

    tpm: Any
    restart: Callable[[], Any]
    log: bytes = b""

    def boot(self, *chain: bytes) -> None:
        self.tpm = self.restart()
        self.log = boot_log(*chain)
        for ev in parse_event_log(self.log).unverified_events:
            if ev.event_type != EventType.EV_NO_ACTION:
                self.tpm.pcr_extend(ev.pcr, ev.digests)

    def verified_log(self) -> Any:
        log = parse_event_log(self.log)
        return log.verify(self.tpm.pcr_read({"sha256": [4, 7]}))


@pytest.fixture(params=["software", "swtpm"])
def machine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Machine]:
    if request.param == "software":
        soft = SoftwareTPM(tmp_path / "soft")

        def reboot_soft() -> Any:
            soft.reboot()
            return soft

        yield Machine(soft, reboot_soft)
        return
    from trustedge.attestation.backends.tpm2 import Tpm2Backend  # type: ignore[import-not-found]

    swtpm = request.getfixturevalue("swtpm_factory")().start()
    box: dict[str, Any] = {"tpm": Tpm2Backend(swtpm.tcti)}

    def reboot_swtpm() -> Any:
        box["tpm"].close()
        swtpm.restart()  # same state (seeds, NV counter), PCRs back to zero
        box["tpm"] = Tpm2Backend(swtpm.tcti)
        return box["tpm"]

    try:
        yield Machine(box["tpm"], reboot_swtpm)
    finally:
        box["tpm"].close()


def _update(tmp: Path) -> bytes:
    (tmp / "grubx64.efi").write_bytes(GRUB2)
    (tmp / "vmlinuz.efi").write_bytes(KERNEL2)

    def comp(cid: bytes, file: str, role: str) -> dict[str, Any]:
        return {
            "install-id": [cid.hex()],
            "vendor-id": VENDOR,
            "class-id": CLASS,
            "file": file,
            "uri": f"#{role}",
            "boot-measurement": {"role": role, "banks": ["sha256"]},
        }

    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": 2,
        "components": [
            comp(LOADER[0], "grubx64.efi", "loader"),
            comp(KERNEL[0], "vmlinuz.efi", "kernel"),
        ],
    }
    env = create_envelope(spec, base=tmp, payloads={"#loader": GRUB2, "#kernel": KERNEL2})
    return sign_envelope(env, [RELEASE_KEY])


def _kek(machine: Machine, sealed: bytes, *policies: bytes) -> envelope.TPMSealedKEK:
    authority = authority_public(RELEASE_KEY.public_key()).marshal_tpm2b()
    return envelope.TPMSealedKEK(machine.tpm, sealed, authority=authority, policies=policies)


def test_update_keeps_the_sealed_key(machine: Machine, tmp_path: Path) -> None:
    authority = authority_public(RELEASE_KEY.public_key()).marshal_tpm2b()
    # -- manufacturing: first boot, counter, sealed key, the policy of this chain
    machine.boot(SHIM, GRUB1, KERNEL1)
    counter = PolicyCounter(machine.tpm, COUNTER)
    v0 = counter.provision()
    current = machine.verified_log()
    old_policy = sign_pcr_policy(
        current.source.replay(), RELEASE_KEY, nv_index=COUNTER, nv_name=counter.name,
        version=v0, policy_ref=REF,
    ).encode()  # fmt: skip
    kek = envelope.TPMSealedKEK.create_authorized(
        machine.tpm, authority=authority, policy_ref=REF, policies=[old_policy]
    )
    secret = envelope.seal(b"disk key material", [kek])
    device = FileSystemDevice(
        tmp_path / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
    )
    for comp, img in ((LOADER, GRUB1), (KERNEL, KERNEL1)):
        slot_dir = tmp_path / "device" / comp[0].hex()
        slot_dir.mkdir(parents=True, exist_ok=True)
        (slot_dir / "slot0").write_bytes(img)

    # -- release: a signed update for GRUB and the kernel; its predicted policy
    update = _update(tmp_path)
    trust = KeySet.of([RELEASE_KEY.public_key()])
    manifest = verify_envelope(update, trust, now=NOW).manifest
    by_role = predict_update(manifest, current)  # release side: placed by role
    by_image = predict_update(manifest, current, device=device)  # device: by its images
    assert by_role.next == by_image.next
    assert by_role.next["sha256"][4] != by_role.current["sha256"][4]
    new_policy = sign_pcr_policy(
        by_role.next, RELEASE_KEY, nv_index=COUNTER, nv_name=counter.name,
        version=counter.next_version(), policy_ref=REF,
    ).encode()  # fmt: skip

    # -- device: apply (pending), reboot into the new chain
    updater = Updater(trust, FileStateStore(tmp_path / "state"), device)
    result = updater.apply(update, now=NOW)
    with pytest.raises(PolicyError, match="pending"):  # the active slot is the new image now
        predict_update(manifest, current, device=device)
    machine.boot(SHIM, GRUB2, KERNEL2)
    assert machine.tpm.pcr_read({"sha256": [4]})["sha256"][4] == by_role.next["sha256"][4]
    policies = (old_policy, new_policy)
    assert envelope.open(secret, [_kek(machine, kek.sealed, *policies)]) == b"disk key material"
    with pytest.raises(AccessDeniedError):
        envelope.open(secret, [_kek(machine, kek.sealed, old_policy)])

    # -- before confirm the old chain still unseals (fallback boot)
    machine.boot(SHIM, GRUB1, KERNEL1)
    assert envelope.open(secret, [_kek(machine, kek.sealed, *policies)]) == b"disk key material"

    # -- a chain with a component nobody approved: refused by every policy
    machine.boot(SHIM, GRUB2, EVIL)
    with pytest.raises(AccessDeniedError):
        envelope.open(secret, [_kek(machine, kek.sealed, *policies)])

    # -- confirm: the floors rise and the policy counter revokes the old chain
    machine.boot(SHIM, GRUB2, KERNEL2)
    updater.confirm(result.components)
    counter = PolicyCounter(machine.tpm, COUNTER)  # the TPM of this boot
    assert counter.advance() == counter.version == v0 + 1
    assert envelope.open(secret, [_kek(machine, kek.sealed, *policies)]) == b"disk key material"
    machine.boot(SHIM, GRUB1, KERNEL1)  # a downgraded boot chain
    with pytest.raises(AccessDeniedError, match="revoked"):
        envelope.open(secret, [_kek(machine, kek.sealed, *policies)])


def test_unpredictable_pcr_is_not_signed(machine: Machine) -> None:
    machine.boot(SHIM, GRUB1, KERNEL1)
    values = machine.verified_log().source.replay()
    with pytest.raises(PolicyError, match="no value"):
        sign_pcr_policy(
            values, RELEASE_KEY, selection={"sha256": (4, 9)}, nv_index=COUNTER,
            nv_name=b"\x00\x0b" + bytes(32), version=1,
        )  # fmt: skip
