"""Boot-chain updates: the measurements a manifest states, and the next boot's PCRs.

A SUIT component that replaces a boot-chain file carries the trustedge
custom parameter ``trustedge-boot-measurement`` (-257, ADR 0008) in its
override-parameters, so the manifest's signature covers it; the processor
recomputes it from the payload before the slot commits and refuses a
mismatch. :func:`boot_measurements` reads those parameters out of an
authenticated manifest; :func:`predict_update` feeds them, with the device's
verified event log, to :func:`trustedge.measuredboot.predict.predict_next_boot`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge.errors import MalformedInputError, PolicyError
from trustedge.hazmat.tpm2.policy import PCRPolicy, SignedPolicy, sign_policy
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.measuredboot.authenticode import parse_pe_image
from trustedge.measuredboot.events import bank_hash
from trustedge.measuredboot.predict import (
    MAX_IMAGE,
    BootMeasurement,
    PlannedImage,
    Prediction,
    predict_next_boot,
)
from trustedge.measuredboot.replay import VerifiedEventLog
from trustedge.ota.device import Device
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.codec import CommandSequence, Manifest

__all__ = [
    "DEFAULT_POLICY_PCRS",
    "PolicyCounter",
    "boot_measurements",
    "current_image",
    "predict_update",
    "sign_pcr_policy",
]

#: The PCRs a signed boot policy covers by default: the boot chain (4) and Secure
#: Boot (7), which an update's boot measurements predict. Firmware (0-3) and
#: GRUB's command strings (8) are not predicted from an update.
DEFAULT_POLICY_PCRS: Final[Mapping[str, tuple[int, ...]]] = {"sha256": (4, 7)}


def boot_measurements(manifest: Manifest) -> dict[tuple[bytes, ...], BootMeasurement]:
    """Component id -> the boot measurement its parameters state (components
    without one are left out). A component whose try-each branches state
    different measurements is refused (MalformedInputError)."""
    found: dict[int, list[BootMeasurement]] = {}
    ncomp = len(manifest.components)

    def walk(seq: CommandSequence, current: tuple[int, ...]) -> tuple[int, ...]:
        for cmd in seq:
            if cmd.id == n.DIR_SET_COMPONENT_INDEX:
                arg = cmd.arg
                current = (
                    tuple(range(ncomp))
                    if arg is True
                    else (arg if isinstance(arg, tuple) else (arg,))
                )
            elif cmd.id == n.DIR_OVERRIDE_PARAMETERS:
                bm = cmd.arg.get(n.P_BOOT_MEASUREMENT)
                if bm is not None:
                    for idx in current:
                        found.setdefault(idx, []).append(bm)
            elif cmd.id == n.DIR_TRY_EACH:
                for branch in cmd.arg:
                    walk(branch, current)
        return current

    walk(manifest.shared_sequence, (0,))
    for seq in manifest.sequences.values():
        walk(seq, (0,))
    out = {}
    for idx, items in sorted(found.items()):
        if any(bm != items[0] for bm in items[1:]):
            raise MalformedInputError(
                f"component {idx} states different boot measurements (per slot): "
                "predict each slot's update on its own"
            )
        out[manifest.components[idx]] = items[0]
    return out


def current_image(
    device: Device, component: tuple[bytes, ...], measurement: BootMeasurement
) -> PlannedImage:
    """``measurement`` with the measurements of the image it replaces: the
    device's active slot, when it holds a PE image (else role placement).

    Predict before the update installs: with an update pending, the active slot
    is the new image, so this refuses (PolicyError) rather than mispredict."""
    if device.pending_slot(component) is not None:
        raise PolicyError("an update is pending on this device: predict before applying it")
    fh = device.read(component, device.active_slot(component))
    if fh is None:
        return PlannedImage(measurement)
    with fh:
        data = fh.read(MAX_IMAGE + 1)
    try:
        pe = parse_pe_image(data)
    except MalformedInputError:
        return PlannedImage(measurement)
    banks = measurement.banks
    current = {b: pe.authenticode(b) for b in banks}
    current_file = {b: bank_hash(b, data) for b in banks} if measurement.file_digests else None
    return PlannedImage(measurement, current, current_file)


def predict_update(
    manifest: Manifest,
    log: VerifiedEventLog,
    *,
    device: Device | None = None,
    current: Mapping[tuple[bytes, ...], PlannedImage] | None = None,
    phases: Sequence[str] = (),
) -> Prediction:
    """The next boot's PCR values after ``manifest`` (authenticated) installs.

    With ``device`` the images being replaced are read from its active slots
    (placed by digest); ``current`` gives them explicitly; otherwise images
    are placed by role; ``phases`` are the systemd-pcrphase strings PCR11 is predicted at.
    Raises what :func:`~trustedge.measuredboot.predict.predict_next_boot` raises.
    """
    planned: list[PlannedImage] = []
    for comp, bm in boot_measurements(manifest).items():
        if current is not None and comp in current:
            planned.append(current[comp])
        elif device is not None:
            planned.append(current_image(device, comp, bm))
        else:
            planned.append(PlannedImage(bm))
    return predict_next_boot(log, planned, phases=phases)


def sign_pcr_policy(
    values: Mapping[str, Mapping[int, bytes]],
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    selection: Mapping[str, Sequence[int]] = DEFAULT_POLICY_PCRS,
    nv_index: int,
    nv_name: bytes,
    version: int,
    policy_ref: bytes = b"",
) -> SignedPolicy:
    """Sign the PCR policy for ``values`` (e.g. :attr:`Prediction.next` of an
    update, or the current boot's verified values) at ``selection``, valid while
    the device's policy counter ``nv_index`` (name ``nv_name``) is at most
    ``version``. Raises PolicyError when a selected PCR has no (predictable) value."""
    try:
        policy = PCRPolicy.from_values(
            values, selection, nv_index=nv_index, nv_name=nv_name, version=version
        )
    except ValueError as exc:
        raise PolicyError(f"cannot sign a policy: {exc}") from exc
    return sign_policy(policy, key, policy_ref=policy_ref)


@dataclass(frozen=True)
class PolicyCounter:
    """The device's policy-version counter (an NV counter in its TPM).

    Policies signed for version ``v`` unseal while the counter is at most
    ``v``: :meth:`next_version` is what the policy of a pending update gets;
    :meth:`advance` (at ``update confirm``) revokes every older policy.
    """

    backend: TPMBackend
    index: int

    def provision(self) -> int:
        """Define and initialise the counter; returns the current version."""
        self.backend.nv_counter_define(self.index)
        return self.backend.nv_counter_increment(self.index)

    @property
    def version(self) -> int:
        return self.backend.nv_counter_read(self.index)

    @property
    def name(self) -> bytes:
        return self.backend.nv_name(self.index)

    def next_version(self) -> int:
        return self.version + 1

    def advance(self) -> int:
        """Revoke the policies of the current version (after the new chain is confirmed)."""
        return self.backend.nv_counter_increment(self.index)

    def advance_to(self, version: int) -> int:
        """Revoke every policy below ``version`` (the confirmed update's), never more:
        repeating it (a retried confirm) leaves the policy of ``version`` valid."""
        current = self.version
        while current < version:
            current = self.advance()
        return current
