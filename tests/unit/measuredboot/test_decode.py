"""Event-data decoders on the generated full-boot log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge.errors import MalformedInputError
from trustedge.measuredboot import DataCheck, check_event_data, decode_event, parse_event_log
from trustedge.measuredboot._decode import decode_device_path, decode_signature_lists, format_guid
from trustedge.measuredboot.secureboot import secure_boot_state

ROOT = Path(__file__).resolve().parents[3]


def _full_log():  # type: ignore[no-untyped-def]
    doc = json.loads((ROOT / "vectors/measuredboot/eventlog.json").read_text())
    return parse_event_log(bytes.fromhex(doc["testGroups"][0]["tests"][0]["log"]))


def test_decoded_kinds() -> None:
    log = _full_log()
    kinds = {ev.type_name: decode_event(ev).kind for ev in log.unverified_events}
    assert kinds["EV_NO_ACTION"] in ("startup_locality", "spec_id", "raw")
    assert kinds["EV_EFI_VARIABLE_DRIVER_CONFIG"] == "uefi_variable"
    assert kinds["EV_EFI_BOOT_SERVICES_APPLICATION"] == "image_load"
    assert kinds["EV_EFI_GPT_EVENT"] == "gpt"
    assert kinds["EV_EFI_PLATFORM_FIRMWARE_BLOB2"] == "firmware_blob2"
    assert kinds["EV_EFI_HANDOFF_TABLES"] == "handoff_tables"
    assert kinds["EV_EVENT_TAG"] == "event_tag"
    assert kinds["EV_SEPARATOR"] == "separator"
    assert log.startup_locality == 3


def test_device_path_and_gpt_text() -> None:
    log = _full_log()
    app = next(
        e for e in log.unverified_events if e.type_name == "EV_EFI_BOOT_SERVICES_APPLICATION"
    )
    assert decode_event(app).summary == (
        "PciRoot(0x0)/Pci(0x3,0x0)/HD(1,GPT,c359e798-596a-42b6-b6f6-eca290429d99,0x800,0x64000)"
        "/\\EFI\\BOOT\\BOOTX64.EFI"
    )
    gpt = next(e for e in log.unverified_events if e.type_name == "EV_EFI_GPT_EVENT")
    fields = decode_event(gpt).fields
    assert fields["partitions"][0]["name"] == "EFI System"
    assert check_event_data(gpt, "sha256") is DataCheck.MATCH


def test_grub_strings_and_secure_boot() -> None:
    log = _full_log()
    verified = log.verify(log.replay())
    state = secure_boot_state(verified)
    assert state.enabled is True
    assert len(state.db) == 1 and state.db[0].type_name == "EFI_CERT_X509"
    assert len(state.dbx[0].signatures) == 2
    assert state.kernel_cmdlines == ("/vmlinuz root=/dev/sda1 ro",)
    assert [a.name for a in state.authorities] == ["db"]


def test_bad_data_is_reported_not_raised() -> None:
    log = _full_log()
    ev = next(e for e in log.unverified_events if e.type_name == "EV_EFI_GPT_EVENT")
    broken = ev._replace(data=ev.data[:50])
    decoded = decode_event(broken)
    assert decoded.kind == "raw" and decoded.error
    assert check_event_data(broken, "sha256") is DataCheck.MISMATCH


def test_helpers_reject_garbage() -> None:
    with pytest.raises(MalformedInputError):
        decode_signature_lists(b"\x00" * 30)
    with pytest.raises(MalformedInputError):
        decode_device_path(b"\x01\x01\x02\x00")
    assert format_guid(bytes(16)) == "00000000-0000-0000-0000-000000000000"
    with pytest.raises(ValueError):
        format_guid(b"")
