"""The trustedge-boot-measurement SUIT parameter: computed by release create,
covered by the signature, recomputed by the device before a slot commits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.pe import build_pe
from tests.unit.ota.conftest import CLASS, NOW, VENDOR, Releases
from trustedge import _cbor
from trustedge.errors import MalformedInputError, SignatureError, VerificationError
from trustedge.measuredboot.predict import BootMeasurement
from trustedge.ota import FileSystemDevice, KeySet, Updater
from trustedge.ota.bootchain import boot_measurements
from trustedge.ota.release import compile_spec, create_envelope, sign_envelope
from trustedge.ota.suit import authenticate, decode_envelope
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.codec import (
    Command,
    decode_boot_measurement,
    encode_boot_measurement,
    encode_envelope,
    encode_manifest,
)
from trustedge.ota.suit.inspect import summary

LOADER = build_pe(((".text", b"\x90" * 300 + b"\xc3"), (".data", b"loader v2")))
OTHER = build_pe(((".text", b"\x90" * 300 + b"\xc3"), (".data", b"evil loader")))
LIMITS = _cbor.DecodeLimits(max_size=1 << 16)


def spec(tmp: Path, image: bytes, **bm: Any) -> dict[str, Any]:
    (tmp / "grubx64.efi").write_bytes(image)
    return {
        "manifest-version": 1,
        "manifest-sequence-number": 2,
        "components": [
            {
                "install-id": ["00"],
                "vendor-id": VENDOR,
                "class-id": CLASS,
                "file": "grubx64.efi",
                "uri": "#loader",
                "boot-measurement": {"role": "loader", "banks": ["sha256", "sha1"], **bm},
            }
        ],
    }


def test_release_create_computes_the_measurement(tmp_path: Path) -> None:
    manifest = compile_spec(spec(tmp_path, LOADER, path="/EFI/debian/grubx64.efi"), base=tmp_path)
    (bm,) = boot_measurements(manifest).values()
    assert bm == BootMeasurement.of_image(
        LOADER, "loader", banks=("sha256", "sha1"), path="/EFI/debian/grubx64.efi"
    )
    assert decode_boot_measurement(encode_boot_measurement(bm), LIMITS) == bm
    text = json.dumps(summary(manifest))
    assert "trustedge-boot-measurement" in text and bm.authenticode["sha256"].hex() in text


def test_measurement_needs_the_payload_file(tmp_path: Path) -> None:
    s = spec(tmp_path, LOADER)
    comp = s["components"][0]
    del comp["file"]
    comp["install-digest"] = {"algorithm-id": "sha256", "digest-bytes": "00" * 32}
    comp["install-size"] = 1
    with pytest.raises(MalformedInputError, match="needs its 'file'"):
        compile_spec(s, base=tmp_path)
    with pytest.raises(MalformedInputError, match="unknown keys"):
        compile_spec(spec(tmp_path, LOADER, digest="00"), base=tmp_path)
    with pytest.raises(MalformedInputError):
        compile_spec(spec(tmp_path, b"not a PE image"), base=tmp_path)


@pytest.mark.parametrize(
    "item",
    [
        {1: "loader"},
        {1: "loader", 2: {"sha256": b"\0" * 32}, 9: 1},
        {1: 7, 2: {"sha256": b"\0" * 32}},
        {1: "loader", 2: {"sha256": b"\0" * 31}},
        {1: "loader", 2: {"md5": b"\0" * 16}},
        {1: "loader", 2: {}},
        {1: "uki", 2: {"sha256": b"\0" * 32}},
        {1: "loader", 2: {"sha256": b"\0" * 32}, 3: [[".linux", {"sha256": b"\0" * 32}]]},
        {1: "loader", 2: {"sha256": b"\0" * 32}, 6: b"short"},
        {1: "loader", 2: {"sha256": b"\0" * 32}, 5: b"path"},
    ],
    ids=[
        "no-digests",
        "unknown-key",
        "role-not-text",
        "short-digest",
        "unknown-bank",
        "empty-digests",
        "uki-no-sections",
        "sections-not-uki",
        "authority-not-variable",
        "path-not-text",
    ],
)
def test_malformed_parameter_rejected(item: dict[Any, Any]) -> None:
    with pytest.raises(MalformedInputError):
        decode_boot_measurement(_cbor.encode(item), LIMITS)


def _updater(tmp: Path, releases: Releases) -> tuple[Updater, FileSystemDevice]:
    import uuid

    from trustedge.ota import FileStateStore

    device = FileSystemDevice(
        tmp / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
    )
    trust = KeySet.of([releases.keys[0].public_key()])
    return Updater(trust, FileStateStore(tmp / "state"), device), device


def test_device_installs_a_matching_image(tmp_path: Path, releases: Releases) -> None:
    env = create_envelope(spec(tmp_path, LOADER), base=tmp_path, payloads={"#loader": LOADER})
    env = sign_envelope(env, [releases.keys[0]])
    updater, device = _updater(tmp_path, releases)
    result = updater.apply(env, now=NOW)
    fh = device.read((b"\x00",), result.slots[0])
    assert fh is not None and fh.read() == LOADER


def test_device_refuses_an_image_that_measures_otherwise(
    tmp_path: Path, releases: Releases
) -> None:
    """A signed manifest whose stated measurement is not its payload's: the
    digest matches, the measurement does not, the slot is never committed."""
    manifest = compile_spec(spec(tmp_path, LOADER), base=tmp_path)
    wrong = BootMeasurement.of_image(OTHER, "loader", banks=("sha256", "sha1"))

    def swap(seq: tuple[Command, ...]) -> tuple[Command, ...]:
        out = []
        for c in seq:
            if c.id == n.DIR_OVERRIDE_PARAMETERS and n.P_BOOT_MEASUREMENT in c.arg:
                c = Command(c.id, {**c.arg, n.P_BOOT_MEASUREMENT: wrong})
            out.append(c)
        return tuple(out)

    bad = dataclasses.replace(manifest, shared_sequence=swap(manifest.shared_sequence))
    raw, members = encode_manifest(bad)
    env = sign_envelope(
        encode_envelope(raw, members=members, payloads={"#loader": LOADER}), [releases.keys[0]]
    )
    updater, device = _updater(tmp_path, releases)
    with pytest.raises(VerificationError, match="Authenticode digest differs"):
        updater.apply(env, now=NOW)
    assert device.read((b"\x00",), 1) is None
    assert device.read((b"\x00",), 0) is None


def test_signature_covers_the_parameter(tmp_path: Path, releases: Releases) -> None:
    env = sign_envelope(
        create_envelope(spec(tmp_path, LOADER), base=tmp_path, payloads={"#loader": LOADER}),
        [releases.keys[0]],
    )
    bm = BootMeasurement.of_image(LOADER, "loader", banks=("sha256", "sha1"))
    good = encode_boot_measurement(bm)
    other = encode_boot_measurement(
        BootMeasurement.of_image(OTHER, "loader", banks=("sha256", "sha1"))
    )
    assert good in env
    forged = env.replace(good, other)
    keys = KeySet.of([releases.keys[0].public_key()])
    with pytest.raises((SignatureError, MalformedInputError)):
        authenticate(decode_envelope(forged), keys)


def test_release_states_variables_the_update_sets(tmp_path: Path) -> None:
    import uuid as _uuid

    db = _uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f").bytes_le
    name = "dbx".encode("utf-16-le")
    dbx = db + (3).to_bytes(8, "little") + (4).to_bytes(8, "little") + name + b"\x01\x02\x03\x04"
    manifest = compile_spec(spec(tmp_path, LOADER, variables=[dbx.hex()]), base=tmp_path)
    (bm,) = boot_measurements(manifest).values()
    assert bm.variables == (dbx,)
    assert decode_boot_measurement(encode_boot_measurement(bm), LIMITS) == bm
    with pytest.raises(MalformedInputError):
        compile_spec(spec(tmp_path, LOADER, variables=["zz"]), base=tmp_path)
    with pytest.raises(MalformedInputError):  # present but empty: not the canonical encoding
        decode_boot_measurement(
            _cbor.encode({1: "loader", 2: {"sha256": bytes(32)}, 7: []}), LIMITS
        )
