"""The vendored event-log corpus as fleets produce it: data-digest checks and decoded fields.

Every crypto-agile and SHA-1 log of ``tests/data/third_party/eventlog`` is parsed; the
tests count outcomes over the whole corpus, so a rule that starts calling a producer
convention a mismatch (or stops seeing a genuine one) fails here.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest

from tests.vectors import third_party_dir
from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    DataCheck,
    EventLog,
    Workaround,
    check_event_data,
    decode_event,
    parse_event_log,
)

FOLDERS = (
    "go-attestation",
    "go-eventlog",
    "ima-evm-utils",
    "keylime",
    "tcglog-parser",
    "tpm2-tools",
    "tpm2-tss",
)


@cache
def corpus() -> tuple[tuple[str, EventLog], ...]:
    """(folder/name, parsed log) for every event log of the corpus that parses."""
    base = third_party_dir() / "eventlog"
    out = []
    for folder in FOLDERS:
        expected = json.loads((base / folder / "expected.json").read_text())
        for name in expected["logs"]:
            path = base / folder / name
            if not path.is_file():
                continue  # "identical bytes to ..." entries: stored once elsewhere
            try:
                log = parse_event_log(
                    path.read_bytes(), workarounds={Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT}
                )
            except MalformedInputError:
                continue  # bogus/empty inputs and ACPI tables (test_measuredboot_shared)
            out.append((f"{folder}/{name}", log))
    return tuple(out)


def _checks() -> Counter[tuple[str, int, str, DataCheck]]:
    """(log, event number, type, outcome) for every event, each bank's outcome once."""
    out: Counter[tuple[str, int, str, DataCheck]] = Counter()
    for name, log in corpus():
        for ev in log.unverified_events:
            for bank in ev.digests:
                out[(name, ev.number, ev.type_name, check_event_data(ev, bank, ccel=log.ccel))] += 1
    return out


def test_corpus_is_complete() -> None:
    assert len(corpus()) >= 38
    assert sum(len(log.unverified_events) for _, log in corpus()) > 2000


def test_no_false_data_digest_mismatches() -> None:
    """0 MISMATCH over the corpus; the genuine deviations are pinned by name.

    Before producer conventions were classified, 300 events (750 event x bank checks)
    of this corpus were MISMATCH: GRUB PCR9 files, shim PCR14 MOK variables, RHEL
    ``grub_cmd`` strings, systemd-boot's odd-length command line and the CCEL
    equivalents.
    """
    checks = _checks()
    mismatches = sorted({key[:3] for key in checks if key[3] is DataCheck.MISMATCH})
    assert mismatches == []
    # Genuine: the spec says EV_EFI_VARIABLE_DRIVER_CONFIG hashes the whole
    # UEFI_VARIABLE_DATA; this TPM 1.2 log hashes VariableData only.
    genuine = sorted(
        key[:3]
        for key in checks
        if key[3] is DataCheck.MATCH_VARIABLE_DATA_ONLY
        and key[2] != "EV_EFI_VARIABLE_BOOT"  # both styles are common there
    )
    assert genuine == [
        ("go-eventlog/legacydata/linux_tpm12.eventlog.bin", n, "EV_EFI_VARIABLE_DRIVER_CONFIG")
        for n in range(6, 11)
    ]


def test_producer_conventions_are_not_matches() -> None:
    counts: Counter[DataCheck] = Counter()
    by_pcr: dict[DataCheck, set[tuple[bool, int]]] = {}
    for name, log in corpus():
        for ev in log.unverified_events:
            if ev.type_name != "EV_IPL" or not ev.digests:
                continue
            result = check_event_data(ev, next(iter(ev.digests)), ccel=log.ccel)
            counts[result] += 1
            by_pcr.setdefault(result, set()).add((log.ccel, ev.pcr))
    assert counts[DataCheck.MISMATCH] == 0 and counts[DataCheck.OPAQUE] == 0
    # GRUB files on PCR9 (RTMR2 in CCEL), shim MOK variables on PCR14 (RTMR2).
    assert by_pcr[DataCheck.DIGEST_OF_FILE] == {(False, 9), (True, 3)}
    assert by_pcr[DataCheck.DIGEST_OF_VARIABLE] == {(False, 14), (True, 3)}
    assert counts[DataCheck.DIGEST_OF_FILE] == 214
    assert counts[DataCheck.DIGEST_OF_VARIABLE] == 35
    assert counts[DataCheck.MATCH_MISSING_FINAL_BYTE] == 2  # arch-linux sd-boot, twice


@pytest.mark.parametrize("ccel", [False, True])
def test_without_the_ccel_flag_nothing_becomes_a_mismatch(ccel: bool) -> None:
    """A caller that does not pass ``ccel`` gets OPAQUE, never MISMATCH, for RTMR events."""
    for _name, log in corpus():
        if not log.ccel:
            continue
        for ev in log.unverified_events:
            for bank in ev.digests:
                assert check_event_data(ev, bank, ccel=ccel) is not DataCheck.MISMATCH


def test_decoding_never_fails_silently_on_the_corpus() -> None:
    """Every event decodes; the few raw ones are the types without a structure."""
    raw: Counter[str] = Counter()
    for _name, log in corpus():
        uintn = log.spec_id.uintn_size if log.spec_id else 2
        for ev in log.unverified_events:
            decoded = decode_event(ev, uintn_size=uintn)
            if decoded.kind == "raw":
                raw[ev.type_name] += 1
                assert decoded.fields["data"] == ev.data
    assert "EV_IPL" not in raw


# -- kernel command lines --------------------------------------------------------
#: Every log of the corpus with a kernel command line, and the events that carry it:
#: GRUB upstream ("kernel_cmdline: "), RHEL/Fedora/RHCOS ("grub_kernel_cmdline "),
#: systemd-boot on PCR8 (odd-length UTF-16, one byte lost) and on PCR12 (no initrd=).
CMDLINE_EVENTS = {
    "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog": [(71, 8)],
    "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog": [(96, 8)],
    "go-eventlog/tpm/rhel8-uefi.bin": [(78, 8)],
    "go-eventlog/tpm/ubuntu-1804-amd-sev.bin": [(83, 8)],
    "go-eventlog/tpm/arch-linux-workstation.bin": [(24, 8)],
    "go-eventlog/tpm/cos-85-amd-sev.bin": [(43, 8)],
    "go-eventlog/tpm/cos-93-amd-sev.bin": [(43, 8)],
    "go-eventlog/tpm/cos-101-amd-sev.bin": [(46, 8)],
    "go-eventlog/ccel/cos-113-intel-tdx.bin": [(41, 3)],
    "go-eventlog/ccel/cos-113-intel-tdx-dupe-separator.bin": [(41, 3)],
    "go-eventlog/ccel/cos-113-intel-tdx-dupe-separator-unpadded.bin": [(41, 3)],
    "ima-evm-utils/sample-binary_bios_measurements-pcrs-8-9": [(158, 8)],
    "keylime/create-mb-policy/binary_bios_measurements": [(118, 8)],
    "keylime/create-mb-policy/binary_bios_measurements-secureboot": [(94, 8)],
    "keylime/mb_log.bin": [(97, 8)],
    "tcglog-parser/binary_bios_measurements": [(112, 8)],
    "tpm2-tools/logs/event-arch-linux.bin": [(24, 8)],
    "tpm2-tools/logs/event-bootorder.bin": [(94, 8)],
    "tpm2-tools/logs/event-gce-ubuntu-2104-log.bin": [(102, 8)],
    "tpm2-tools/logs/event-moklisttrusted.bin": [(92, 8)],
    "tpm2-tools/logs/event-postcode.bin": [(55, 8)],
    "tpm2-tools/logs/event-sd-boot-fedora37.bin": [(23, 12), (24, 12)],
    "tpm2-tss/binary_measurements_hcrtm.bin": [(198, 8)],
}

_BOUND = (DataCheck.MATCH, DataCheck.MATCH_MISSING_FINAL_BYTE)


def test_kernel_cmdlines_extracted_on_every_log_that_has_one() -> None:
    found: dict[str, list[tuple[int, int]]] = {}
    for name, log in corpus():
        for ev in log.unverified_events:
            fields = decode_event(ev, ccel=log.ccel).fields
            if "kernel_cmdline" not in fields:
                continue
            found.setdefault(name, []).append((ev.number, ev.pcr))
            # Each one is digest-bound in every bank the event carries.
            for bank in ev.digests:
                assert check_event_data(ev, bank, ccel=log.ccel) in _BOUND, (name, ev.number)
    assert found == CMDLINE_EVENTS
    # A log with a GRUB or systemd-boot PCR8/12 string but no command line would be a gap.
    for name, log in corpus():
        if name in CMDLINE_EVENTS:
            continue
        for ev in log.unverified_events:
            if ev.type_name == "EV_IPL" and ev.pcr in (8, 12):
                pytest.fail(f"{name} #{ev.number}: EV_IPL on PCR{ev.pcr} without a cmdline")


def _log(name: str) -> EventLog:
    return dict(corpus())[name]


def test_cmdlines_match_go_eventlog() -> None:
    base = third_party_dir() / "eventlog" / "go-eventlog"
    expected = json.loads((base / "expected.json").read_text())["logs"]
    checked = 0
    for name, entry in expected.items():
        want = entry.get("expected_from_source", {}).get(
            "linux_kernel_cmdline (GRUB, incl. trailing NUL)"
        )
        if want is None:
            continue
        log = _log(f"go-eventlog/{name}")
        got = [
            decode_event(ev).fields.get("kernel_cmdline") for ev in log.unverified_events
        ]
        assert want.rstrip("\x00") in got
        checked += 1
    assert checked == 3


def test_rhel_grub_commands() -> None:
    log = _log("go-eventlog/tpm/rhel8-uefi.bin")
    commands = [
        decode_event(ev).fields.get("grub_command")
        for ev in log.unverified_events
        if ev.pcr == 8
    ]
    assert commands[0] == "set pager=1"
    assert sum(c is not None for c in commands) == 50 - 1  # every PCR8 event but the cmdline
    assert "initrd (hd0,gpt2)/boot/initramfs-4.18.0-240.22.1.el8_3.x86_64.img" in commands
    kernel = decode_event(log.unverified_events[76]).fields
    assert kernel["grub_linuxefi"] == "Kernel"
    assert check_event_data(log.unverified_events[76], "sha256") is DataCheck.DIGEST_OF_FILE


def test_systemd_boot_odd_length_cmdline() -> None:
    ev = _log("tpm2-tools/logs/event-arch-linux.bin").unverified_events[24]
    assert len(ev.data) % 2 == 1
    fields = decode_event(ev).fields
    assert fields["lost_final_byte"] is True and fields["encoding"] == "utf-16-le"
    assert fields["kernel_cmdline"].startswith("initrd=\\intel-ucode.img initrd=")
    assert fields["kernel_cmdline"].endswith("=off")
    assert check_event_data(ev, "sha256") is DataCheck.MATCH_MISSING_FINAL_BYTE


# -- Secure Boot authorities, shim, Windows, tags ----------------------------------
def test_variable_authorities_decode_with_subject_and_issuer() -> None:
    seen: Counter[str] = Counter()
    for _name, log in corpus():
        for ev in log.unverified_events:
            if ev.type_name != "EV_EFI_VARIABLE_AUTHORITY":
                continue
            var = decode_event(ev).fields["variable"]
            assert var.decoded is not None, (_name, ev.number)
            seen[type(var.decoded).__name__] += 1
            as_json = var.to_json()["decoded"]
            if hasattr(var.decoded, "certificate"):
                assert as_json["subject"] and as_json["issuer"]
    assert seen["SignatureData"] >= 15  # firmware's "db": owner GUID + certificate
    assert seen["DerCertificate"] >= 15  # shim's "Shim"/"MokList": bare DER
    db = decode_event(_log("go-attestation/sb_cert_eventlog").unverified_events[8])
    entry = db.fields["variable"].decoded
    assert entry.owner == "d281fad2-8d88-47a4-9792-5baa47bb1b89"
    assert entry.to_json()["subject"].startswith("CN=Microsoft Corporation UEFI CA 2011,")
    shim = decode_event(_log("go-eventlog/tpm/rhel8-uefi.bin").unverified_events[27])
    assert "Red Hat" in shim.fields["variable"].decoded.to_json()["issuer"]


def test_moklist_names_cut_at_the_first_nul() -> None:
    ev = _log("ima-evm-utils/sample-binary_bios_measurements-pcrs-8-9").unverified_events[41]
    assert ev.data == b"MokList\x00j"
    decoded = decode_event(ev)
    assert decoded.summary == "MokList" and decoded.fields["trailing"] == b"j"
    assert check_event_data(ev, "sha256") is DataCheck.DIGEST_OF_VARIABLE


def test_windows_wbcl_separators() -> None:
    log = _log("go-attestation/windows_gcp_shielded_vm.eventlog.bin")
    seps = [decode_event(ev) for ev in log.unverified_events if ev.type_name == "EV_SEPARATOR"]
    assert [d.fields["meaning"] for d in seps[-3:]] == ["Windows (WBCL)"] * 3
    assert all(d.fields["meaning"] != "unknown" for d in seps)


def test_linux_initrd_event_tag() -> None:
    ev = _log("tpm2-tools/logs/event-sd-boot-fedora37.bin").unverified_events[25]
    decoded = decode_event(ev)
    assert decoded.fields["tag_name"] == "Linux initrd"
    assert decoded.fields["description"] == "Linux initrd"
    assert decoded.summary == "tag 0x8f3b22ec (Linux initrd)"


def test_ccel_logs_label_rtmrs() -> None:
    ccel = [log for name, log in corpus() if "/ccel/" in name]
    assert len(ccel) == 3 and all(log.ccel for log in ccel)
    assert not any(log.ccel for name, log in corpus() if "/ccel/" not in name)
    log = ccel[0]
    assert {log.register_name(ev.pcr) for ev in log.unverified_events} == {
        "RTMR0",
        "RTMR1",
        "RTMR2",
    }
    assert log.register_name(0) == "MRTD" and log.register_name(4) == "RTMR3"
