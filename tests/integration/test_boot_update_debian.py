"""A boot-chain update made of real Debian EFI binaries.

``release create`` states each component's Authenticode digest; it must be what
``pesign -h`` prints for the payload (what firmware extends into PCR4). The
device installs the update (recomputing every measurement on ~10 MB of real
kernel), and the predicted PCR4 equals the replay of the log firmware would
write when it boots shim -> the new GRUB -> the new kernel.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from tests.debian_efi import debian_efi_binaries
from tests.integration.test_authenticode_peers import _pesign
from tests.integration.test_sealed_update_e2e import CLASS, RELEASE_KEY, VENDOR, boot_log
from trustedge.measuredboot import parse_event_log
from trustedge.ota import FileStateStore, FileSystemDevice, KeySet, Updater
from trustedge.ota.bootchain import boot_measurements, predict_update
from trustedge.ota.release import create_envelope, sign_envelope
from trustedge.ota.updater import verify_envelope

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    return debian_efi_binaries()


def test_real_shim_grub_kernel_update(binaries: dict[str, Path], tmp_path: Path) -> None:
    shim = binaries["shimx64.efi.signed"].read_bytes()
    old_loader = binaries["fbx64.efi.signed"].read_bytes()  # stand-ins for the old chain
    old_kernel = binaries["mmx64.efi.signed"].read_bytes()
    grub_path = binaries["grubx64.efi.signed"]
    kernel_path = next(p for n, p in binaries.items() if n.startswith("vmlinuz-"))
    # the current boot, as firmware logs it
    log = parse_event_log(boot_log(shim, old_loader, old_kernel))
    verified = log.verify(log.replay())

    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": 5,
        "components": [
            {"install-id": [cid.hex()], "vendor-id": VENDOR, "class-id": CLASS,
             "file": str(path), "uri": f"#{role}",
             "boot-measurement": {"role": role, "banks": ["sha256", "sha1"]}}
            for cid, path, role in ((b"loader", grub_path, "loader"),
                                    (b"kernel", kernel_path, "kernel"))
        ],
    }  # fmt: skip
    payloads = {"#loader": grub_path.read_bytes(), "#kernel": kernel_path.read_bytes()}
    env = sign_envelope(create_envelope(spec, payloads=payloads), [RELEASE_KEY])
    trust = KeySet.of([RELEASE_KEY.public_key()])
    manifest = verify_envelope(env, trust, now=NOW, max_envelope=len(env)).manifest
    stated = boot_measurements(manifest)
    for comp, path in (((b"loader",), grub_path), ((b"kernel",), kernel_path)):
        for bank in ("sha256", "sha1"):
            assert stated[comp].authenticode[bank] == _pesign(path, bank), (path.name, bank)

    prediction = predict_update(manifest, verified)
    # the next boot's PCR4 from pesign's digests of what boots (not from trustedge's)
    action = hashlib.sha256(b"Calling EFI Application from Boot Option").digest()
    pcr4 = hashlib.sha256(bytes(32) + action).digest()  # then the PCR4 separator, the apps
    pcr4 = hashlib.sha256(pcr4 + hashlib.sha256(bytes(4)).digest()).digest()
    for path in (binaries["shimx64.efi.signed"], grub_path, kernel_path):
        pcr4 = hashlib.sha256(pcr4 + _pesign(path, "sha256")).digest()
    assert prediction.next["sha256"][4] == pcr4
    assert json.dumps(prediction.to_json())  # the CLI's JSON view of it

    device = FileSystemDevice(
        tmp_path / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
    )
    result = Updater(trust, FileStateStore(tmp_path / "state"), device,
                     max_envelope=len(env)).apply(env, now=NOW)  # fmt: skip
    fh = device.read((b"kernel",), result.slots[1])
    assert fh is not None and fh.read() == kernel_path.read_bytes()
