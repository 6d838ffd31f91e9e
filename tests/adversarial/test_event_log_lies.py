"""A compromised device lies in its firmware event log wherever no digest reaches.

Each case is named; ``truth`` is what the device really extends into its PCRs
(from the golden boot, made bad), ``story`` the event log it presents. The
quote is genuine. Every case must end contraindicated with its reason id, on
the SoftwareTPM and on swtpm.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.adversarial.device import (
    Device,
    DeviceFactory,
    LogEvent,
    assert_caught,
    digest,
    digests,
    ev,
    find,
    golden_events,
    golden_policy,
    image_load_event,
)
from trustedge.attestation.ear import TrustTier
from trustedge.measuredboot import BootApplications, EventLogPolicy
from trustedge.measuredboot import EventType as T

Events = list[LogEvent]
APP = T.EV_EFI_BOOT_SERVICES_APPLICATION
BOOTKIT_PATH = r"\EFI\tools\loader.efi"
GOLDEN_APP_PATH = r"\EFI\BOOT\BOOTX64.EFI"
BOOTKIT = ev(4, APP, image_load_event(BOOTKIT_PATH), b"bootkit image (Authenticode)")
POLICY = "boot-policy-violation"
REPLAY = "firmware-log-mismatch"
SECURE_BOOT = "secure-boot-violation"


def with_bootkit(events: Events | None = None) -> Events:
    """The golden boot with the bootkit loaded right after the boot loader."""
    out = list(golden_events() if events is None else events)
    out.insert(find(out, 4, APP) + 1, BOOTKIT)
    return out


def relabelled(etype: int, data: bytes, at: int | None = None) -> tuple[Events, Events]:
    """The bootkit really runs; the log gives its record type ``etype`` and ``data``."""
    truth = with_bootkit()
    story = list(truth)
    i = story.index(BOOTKIT) if at is None else at
    story[i] = story[i]._replace(event_type=etype, data=data)
    return truth, story


def variable(guid: str, name: str, value: bytes) -> bytes:
    """UEFI_VARIABLE_DATA."""
    import uuid

    wide = name.encode("utf-16-le")
    return (
        uuid.UUID(guid).bytes_le
        + (len(name)).to_bytes(8, "little")
        + len(value).to_bytes(8, "little")
        + wide
        + value
    )


EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SHIM_LOCK = "605dab50-e046-4300-abb6-3dd810dd8b23"


@dataclass(frozen=True)
class Case:
    name: str
    attack: Callable[[], tuple[Events, Events]]
    reason: str
    detail: str = ""
    tier: TrustTier = TrustTier.CONTRAINDICATED


def _separator_data() -> bytes:
    return b"\x00\x00\x00\x00"


def _gpt_data() -> bytes:
    events = golden_events()
    return events[find(events, 5, T.EV_EFI_GPT_EVENT)].data


def _relabel_cases() -> list[Case]:
    """Issue 14 finding 1: the bootkit hidden by relabelling its record's type."""
    table = [
        ("efi-action", T.EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
        ("action", T.EV_ACTION, b"Calling EFI Application from Boot Option"),
        ("separator", T.EV_SEPARATOR, _separator_data()),
        ("separator-error", T.EV_SEPARATOR, b"\x01\x00\x00\x00"),
        ("ipl", T.EV_IPL, b"grub_cmd: linux /vmlinuz root=/dev/sda1 ro\x00"),
        ("compact-hash", T.EV_COMPACT_HASH, b"\x00" * 4),
        ("event-tag", T.EV_EVENT_TAG, b"\x34\x12\x00\x00\x02\x00\x00\x00ok"),
        ("gpt-event", T.EV_EFI_GPT_EVENT, _gpt_data()),
        ("gpt-event2", T.EV_EFI_GPT_EVENT2, _gpt_data()),
        ("post-code", T.EV_POST_CODE, b"POST CODE"),
        ("handoff-tables", T.EV_EFI_HANDOFF_TABLES, bytes(8)),
        ("boot-services-driver", T.EV_EFI_BOOT_SERVICES_DRIVER, image_load_event(BOOTKIT_PATH)),
        ("runtime-services-driver", T.EV_EFI_RUNTIME_SERVICES_DRIVER, image_load_event("x")),
        ("platform-firmware-blob", T.EV_EFI_PLATFORM_FIRMWARE_BLOB, bytes(16)),
        ("s-crtm-version", T.EV_S_CRTM_VERSION, "1.02".encode("utf-16-le") + b"\0\0"),
        (
            "variable-driver-config",
            T.EV_EFI_VARIABLE_DRIVER_CONFIG,
            variable(EFI_GLOBAL, "SecureBoot", b"\x01"),
        ),
        ("variable-boot", T.EV_EFI_VARIABLE_BOOT, variable(EFI_GLOBAL, "Boot0001", bytes(8))),
        (
            "variable-authority",
            T.EV_EFI_VARIABLE_AUTHORITY,
            variable(SHIM_LOCK, "Shim", b"0\x82\x01\x00"),
        ),
        ("unknown-type", 0x7FFFFFF0, b"nothing to see here"),
    ]
    cases = [
        Case(
            f"bootkit-relabelled-as-{name}",
            functools.partial(relabelled, etype, data),
            POLICY,
            "not allowed",
        )
        for name, etype, data in table
    ]
    # EV_NO_ACTION is not replayed: the bootkit's digest is then missing from PCR4.
    cases.append(
        Case("bootkit-relabelled-as-no-action", lambda: relabelled(T.EV_NO_ACTION, b""), REPLAY)
    )
    return cases


def _bootkit_named_as_golden() -> tuple[Events, Events]:
    truth = [
        e if e is not BOOTKIT else e._replace(data=image_load_event(GOLDEN_APP_PATH))
        for e in with_bootkit()
    ]
    return truth, truth


def _bootkit_replaces_the_loader_under_its_name() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 4, APP)
    truth = list(events)
    truth[i] = events[i]._replace(digests=BOOTKIT.digests)
    story = list(truth)
    return truth, story


def _reorder_within_pcr4() -> tuple[Events, Events]:
    truth = with_bootkit()
    story = list(truth)
    i = story.index(BOOTKIT)
    story[i - 1], story[i] = story[i], story[i - 1]
    return truth, story


def _moved_to_head() -> tuple[Events, Events]:
    # the bootkit's record moved to the head of the log: before PCR4's first event
    truth = with_bootkit()
    story = [BOOTKIT, *(e for e in truth if e is not BOOTKIT)]
    return truth, story


def _moved_to_tail() -> tuple[Events, Events]:
    # moved to the end of the log: PCR4's own order is kept, only the order
    # across PCRs changes (which no digest binds and no decision may read)
    truth = with_bootkit()
    story = [*(e for e in truth if e is not BOOTKIT), BOOTKIT]
    return truth, story


def _move_to_other_pcr(pcr: int) -> Callable[[], tuple[Events, Events]]:
    def attack() -> tuple[Events, Events]:
        truth = with_bootkit()
        story = [e._replace(pcr=pcr) if e is BOOTKIT else e for e in truth]
        return truth, story

    return attack


def _duplicate_allowed_app() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 4, APP)
    story = list(events)
    story.insert(i + 1, events[i])
    return events, story


def _drop_bootkit() -> tuple[Events, Events]:
    truth = with_bootkit()
    return truth, [e for e in truth if e is not BOOTKIT]


def _drop_all_pcr4() -> tuple[Events, Events]:
    truth = with_bootkit()
    return truth, [e for e in truth if e.pcr != 4]


def _bootkit_on_pcr2() -> tuple[Events, Events]:
    # an option ROM driver loaded from a malicious PCI card
    events = golden_events()
    driver = ev(2, T.EV_EFI_BOOT_SERVICES_DRIVER, image_load_event("PciRoot"), b"rom")
    events.insert(find(events, 2, T.EV_SEPARATOR), driver)
    story = [e._replace(event_type=T.EV_SEPARATOR, data=bytes(4)) if e is driver else e
             for e in events]  # fmt: skip
    return events, story


def _evil_firmware_relabelled() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 0, T.EV_EFI_PLATFORM_FIRMWARE_BLOB2)
    truth = list(events)
    truth[i] = events[i]._replace(digests=digests(b"implanted DXE volume"))
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_SEPARATOR, data=bytes(4))
    return truth, story


def _evil_firmware_same_label() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 0, T.EV_EFI_PLATFORM_FIRMWARE_BLOB2)
    truth = list(events)
    truth[i] = events[i]._replace(digests=digests(b"implanted DXE volume"))
    return truth, truth


def _evil_kernel_same_path() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 9, T.EV_IPL)
    truth = list(events)
    truth[i] = events[i]._replace(digests=digests(b"vmlinuz with a rootkit"))
    return truth, truth


def _evil_kernel_relabelled_as_action() -> tuple[Events, Events]:
    truth, _ = _evil_kernel_same_path()
    i = find(truth, 9, T.EV_IPL)
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_EFI_ACTION, data=b"Kernel loaded")
    return truth, story


def _moklist_changed() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 14, T.EV_IPL)
    truth = list(events)
    truth[i] = events[i]._replace(digests=digests(b"MokList with the attacker's key"))
    return truth, truth


def _secure_boot(value: bytes) -> Events:
    events = golden_events()
    i = find(events, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)
    var = variable(EFI_GLOBAL, "SecureBoot", value)
    events[i] = ev(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, var)
    return events


def _secure_boot_off_data_changed() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    good = golden_events()
    i = find(truth, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)
    story = list(truth)
    story[i] = truth[i]._replace(data=good[i].data)  # SecureBoot=1, digest of SecureBoot=0
    return truth, story


def _secure_boot_off_relabelled_authority() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    i = find(truth, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_EFI_VARIABLE_AUTHORITY)
    return truth, story


def _secure_boot_off_story_on_unquoted_pcr() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    fake = ev(15, T.EV_EFI_VARIABLE_DRIVER_CONFIG, variable(EFI_GLOBAL, "SecureBoot", b"\x01"))
    return truth, [*truth, fake]


def _secure_boot_off_event_renumbered_to_pcr15() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    i = find(truth, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)
    story = list(truth)
    story[i] = truth[i]._replace(pcr=15)
    return truth, story


def _secure_boot_on_appended_without_separator() -> tuple[Events, Events]:
    """Firmware that never closed PCR7 (no separator, no SecureBoot variable);
    the OS extends a SecureBoot=1 variable afterwards (PCR7 is extendable)."""
    sb = variable(EFI_GLOBAL, "SecureBoot", b"\x01")
    events = golden_events()
    dropped = {find(events, 7, T.EV_SEPARATOR), find(events, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)}
    truth = [e for i, e in enumerate(events) if i not in dropped]
    truth.append(ev(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, sb))
    return truth, truth


def _secure_boot_logged_twice() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    on = ev(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, variable(EFI_GLOBAL, "SecureBoot", b"\x01"))
    truth.insert(find(truth, 7, T.EV_SEPARATOR), on)
    return truth, truth


def _pcr7_extra(data: bytes, etype: int = T.EV_EFI_ACTION) -> Events:
    events = golden_events()
    events.insert(find(events, 7, T.EV_SEPARATOR), ev(7, etype, data))
    return events


def _debug_mode_hidden_as_separator() -> tuple[Events, Events]:
    truth = _pcr7_extra(b"UEFI Debug Mode")
    i = truth.index(ev(7, T.EV_EFI_ACTION, b"UEFI Debug Mode"))
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_SEPARATOR, data=bytes(4))
    return truth, story


def _dma_protection_disabled_text_changed() -> tuple[Events, Events]:
    truth = _pcr7_extra(b"DMA Protection Disabled")
    i = truth.index(ev(7, T.EV_EFI_ACTION, b"DMA Protection Disabled"))
    story = list(truth)
    story[i] = truth[i]._replace(data=b"DMA Protection Enabled")
    return truth, story


def _db_changed_after_separator_reordered() -> tuple[Events, Events]:
    # a db update measured after the separator, presented before it
    events = golden_events()
    db = ev(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, variable(EFI_GLOBAL, "db", b"attacker"))
    sep = find(events, 7, T.EV_SEPARATOR)
    truth = list(events)
    truth.insert(sep + 1, db)
    story = list(events)
    story.insert(sep, db)
    return truth, story


def _db_changed_after_separator() -> tuple[Events, Events]:
    events = golden_events()
    db = ev(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, variable(EFI_GLOBAL, "db", b"attacker"))
    events.insert(find(events, 7, T.EV_SEPARATOR) + 1, db)
    return events, events


def _authority_data_changed() -> tuple[Events, Events]:
    # the bootkit is signed by the attacker's certificate; the log names the vendor's
    truth = with_bootkit()
    i = find(truth, 7, T.EV_EFI_VARIABLE_AUTHORITY)
    evil = variable(SHIM_LOCK, "Shim", b"0\x82\x01\x00attacker certificate")
    good = truth[i].data
    truth[i] = ev(7, T.EV_EFI_VARIABLE_AUTHORITY, evil)
    story = list(truth)
    story[i] = truth[i]._replace(data=good)
    story[story.index(BOOTKIT)] = BOOTKIT._replace(event_type=T.EV_EFI_ACTION, data=b"x")
    return truth, story


def _pcr7_variable_as_no_action() -> tuple[Events, Events]:
    truth = _secure_boot(b"\x00")
    i = find(truth, 7, T.EV_EFI_VARIABLE_DRIVER_CONFIG)
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_NO_ACTION)
    return truth, story


def _cmdline(events: Events, text: bytes, pcr: int = 8) -> tuple[Events, int]:
    i = find(events, 8, T.EV_IPL, 1)  # "kernel_cmdline: ..."
    out = list(events)
    out[i] = ev(pcr, T.EV_IPL, b"kernel_cmdline: " + text + b"\x00")
    return out, i


def _cmdline_data_changed() -> tuple[Events, Events]:
    truth, i = _cmdline(golden_events(), b"/vmlinuz root=/dev/sda1 ro init=/bin/sh")
    good = golden_events()
    story = list(truth)
    story[i] = truth[i]._replace(data=good[i].data)
    return truth, story


def _cmdline_relabelled_as_action() -> tuple[Events, Events]:
    truth, i = _cmdline(golden_events(), b"/vmlinuz root=/dev/sda1 ro init=/bin/sh")
    story = list(truth)
    story[i] = truth[i]._replace(event_type=T.EV_EFI_ACTION, data=b"Measured GRUB config")
    return truth, story


def _cmdline_retagged_as_grub_command() -> tuple[Events, Events]:
    # digest over the whole string: the "kernel_cmdline: " tag is then bound, and
    # the presented tag differs -- the data no longer hashes to the digest
    truth, i = _cmdline(golden_events(), b"/vmlinuz root=/dev/sda1 ro init=/bin/sh")
    story = list(truth)
    story[i] = truth[i]._replace(data=b"grub_cmd: /vmlinuz root=/dev/sda1 ro init=/bin/sh\x00")
    return truth, story


def _cmdline_proven_forbidden() -> tuple[Events, Events]:
    truth, _ = _cmdline(golden_events(), b"/vmlinuz root=/dev/sda1 ro ima_appraise=off")
    return truth, truth


def _cmdline_proven_missing_required() -> tuple[Events, Events]:
    truth, _ = _cmdline(golden_events(), b"/vmlinuz root=/dev/sda1 rw")
    grub = find(truth, 8, T.EV_IPL, 0)
    truth[grub] = ev(8, T.EV_IPL, b"grub_cmd: linux /vmlinuz root=/dev/sda1 rw\x00")
    return truth, truth


def _grub_tags_swapped() -> tuple[Events, Events]:
    """GRUB hashes its strings without the tag: the attacker's grub.cfg runs a
    harmless command whose text is a good command line, and the log swaps the
    two tags, so the real command line (without ``ro``) reads as a command."""
    good, evil = b"/vmlinuz root=/dev/sda1 ro", b"/vmlinuz root=/dev/sda1 rw"
    events = [e for e in golden_events() if e.pcr != 8]
    at = find(events, 4, APP) + 1
    truth = list(events)
    truth[at:at] = [
        ev(8, T.EV_IPL, b"grub_cmd: " + good + b"\x00", good),
        ev(8, T.EV_IPL, b"grub_cmd: linux " + evil + b"\x00", b"linux " + evil),
        ev(8, T.EV_IPL, b"kernel_cmdline: " + evil + b"\x00", evil),
    ]
    story = list(truth)
    story[at] = truth[at]._replace(data=b"kernel_cmdline: " + good + b"\x00")
    story[at + 2] = truth[at + 2]._replace(data=b"grub_cmd: " + evil + b"\x00")
    return truth, story


def _stub_cmdline(text: str) -> LogEvent:
    """systemd-stub's PCR12 command line: UTF-16LE with its NUL, hashed as logged."""
    return ev(12, T.EV_IPL, text.encode("utf-16-le") + b"\x00\x00")


def _pcr12_cmdline_data_changed() -> tuple[Events, Events]:
    evil = _stub_cmdline("root=/dev/sda1 ro init=/bin/sh")
    truth = [*golden_events(), evil]
    story = [*golden_events(), evil._replace(data=_stub_cmdline("root=/dev/sda1 ro").data)]
    return truth, story


def _pcr12_cmdline_relabelled() -> tuple[Events, Events]:
    evil = _stub_cmdline("root=/dev/sda1 ro init=/bin/sh")
    truth = [*golden_events(), evil]
    story = [*golden_events(), evil._replace(event_type=T.EV_EVENT_TAG, data=b"credential")]
    return truth, story


def _pcr12_cmdline_proven_forbidden() -> tuple[Events, Events]:
    truth = [*golden_events(), _stub_cmdline("root=/dev/sda1 ro lockdown=none")]
    return truth, truth


def _grub_command_changed() -> tuple[Events, Events]:
    events = golden_events()
    i = find(events, 8, T.EV_IPL, 0)
    truth = list(events)
    truth[i] = ev(8, T.EV_IPL, b"grub_cmd: linux /vmlinuz root=/dev/sda1 ro init=/bin/sh\x00")
    story = list(truth)
    story[i] = truth[i]._replace(data=events[i].data)
    return truth, story


def _one_bank_lies(bank: str) -> tuple[Events, Events]:
    """The bootkit's ``bank`` digest in the log is the golden loader's."""
    truth = with_bootkit()
    golden_app = truth[find(truth, 4, APP)].digests
    assert golden_app is not None and BOOTKIT.digests is not None
    lie = {**BOOTKIT.digests, bank: golden_app[bank]}
    return truth, [e._replace(digests=lie) if e is BOOTKIT else e for e in truth]


def _sha256_lies_sha1_true() -> tuple[Events, Events]:
    return _one_bank_lies("sha256")


def _sha1_lies_sha256_true() -> tuple[Events, Events]:
    # the SHA-1 digest claims the golden loader; only SHA-256 is quoted
    return _one_bank_lies("sha1")


CASES = [
    *_relabel_cases(),
    Case("bootkit-logged-under-the-golden-loader-path", _bootkit_named_as_golden, POLICY,
         GOLDEN_APP_PATH),
    Case("bootkit-replaces-the-golden-loader", _bootkit_replaces_the_loader_under_its_name,
         POLICY, "not allowed"),
    Case("events-reordered-within-pcr4", _reorder_within_pcr4, REPLAY, "other order"),
    Case("bootkit-record-moved-to-the-head-of-the-log", _moved_to_head, REPLAY, "sha256:4"),
    Case("bootkit-record-moved-to-the-end-of-the-log", _moved_to_tail, POLICY, BOOTKIT_PATH),
    Case("bootkit-record-moved-to-pcr5", _move_to_other_pcr(5), REPLAY,
         BOOTKIT_PATH + " is logged but not in the sha256 PCR value"),
    Case("bootkit-record-moved-to-unquoted-pcr11", _move_to_other_pcr(11), REPLAY, "sha256:4"),
    Case("bootkit-record-moved-to-drtm-pcr17", _move_to_other_pcr(17), REPLAY, "sha256:4"),
    Case("allowed-loader-duplicated-in-the-log", _duplicate_allowed_app, REPLAY,
         "log runs ahead"),
    Case("bootkit-record-dropped", _drop_bootkit, REPLAY, "sha256:4"),
    Case("every-pcr4-record-dropped", _drop_all_pcr4, POLICY, "PCR4 is not verified"),
    Case("option-rom-driver-relabelled-as-separator", _bootkit_on_pcr2, POLICY, "PCR2"),
    Case("implanted-firmware-volume", _evil_firmware_same_label, POLICY, "PCR0"),
    Case("implanted-firmware-relabelled-as-separator", _evil_firmware_relabelled, POLICY, "PCR0"),
    Case("rootkit-kernel-under-the-golden-path", _evil_kernel_same_path, POLICY, "PCR9"),
    Case("rootkit-kernel-relabelled-as-action", _evil_kernel_relabelled_as_action, POLICY, "PCR9"),
    Case("moklist-with-attacker-key", _moklist_changed, POLICY, "PCR14"),
    Case("secure-boot-off-data-says-on", _secure_boot_off_data_changed, SECURE_BOOT),
    Case("secure-boot-off-relabelled-as-authority", _secure_boot_off_relabelled_authority,
         SECURE_BOOT, "off"),
    Case("secure-boot-on-claimed-on-unquoted-pcr15", _secure_boot_off_story_on_unquoted_pcr,
         SECURE_BOOT, "off"),
    Case("secure-boot-variable-renumbered-to-pcr15", _secure_boot_off_event_renumbered_to_pcr15,
         REPLAY, "sha256:7"),
    Case("secure-boot-variable-relabelled-as-no-action", _pcr7_variable_as_no_action, REPLAY),
    Case("secure-boot-on-appended-to-an-unclosed-pcr7",
         _secure_boot_on_appended_without_separator, SECURE_BOOT, "no separator"),
    Case("secure-boot-variable-logged-twice", _secure_boot_logged_twice, SECURE_BOOT, "twice"),
    Case("debug-mode-relabelled-as-separator", _debug_mode_hidden_as_separator, SECURE_BOOT),
    Case("dma-protection-disabled-text-changed", _dma_protection_disabled_text_changed,
         SECURE_BOOT),
    Case("db-update-after-separator-shown-before-it", _db_changed_after_separator_reordered,
         REPLAY, "in the other order"),
    Case("db-update-after-separator", _db_changed_after_separator, SECURE_BOOT, "after"),
    Case("authority-certificate-swapped", _authority_data_changed, SECURE_BOOT),
    Case("kernel-cmdline-pcr8-data-changed", _cmdline_data_changed, POLICY, "PCR8"),
    Case("kernel-cmdline-pcr8-relabelled-as-action", _cmdline_relabelled_as_action, POLICY,
         "PCR8"),
    Case("kernel-cmdline-pcr8-retagged-as-grub-command", _cmdline_retagged_as_grub_command,
         POLICY, "PCR8"),
    Case("kernel-cmdline-pcr8-forbidden-option", _cmdline_proven_forbidden, POLICY,
         "ima_appraise=off"),
    Case("kernel-cmdline-pcr8-required-option-dropped", _cmdline_proven_missing_required,
         POLICY, "does not match"),
    Case("grub-command-pcr8-data-changed", _grub_command_changed, POLICY, "PCR8"),
    Case("grub-tags-swapped-to-hide-the-command-line", _grub_tags_swapped, POLICY,
         "does not match"),
    Case("kernel-cmdline-pcr12-data-changed", _pcr12_cmdline_data_changed, POLICY, "PCR12"),
    Case("kernel-cmdline-pcr12-relabelled-as-event-tag", _pcr12_cmdline_relabelled, POLICY,
         "PCR12"),
    Case("kernel-cmdline-pcr12-forbidden-option", _pcr12_cmdline_proven_forbidden, POLICY,
         "lockdown=none"),
    Case("sha256-digest-lies-sha1-true", _sha256_lies_sha1_true, REPLAY, "sha256:4"),
    Case("sha1-digest-claims-the-golden-loader", _sha1_lies_sha256_true, POLICY, "not allowed"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_event_log_lie_is_caught(case: Case, device: Device) -> None:
    truth, story = case.attack()
    device.boot(truth, story)
    outcome = device.appraise()
    assert_caught(outcome, case.reason, case.tier)
    if case.detail:
        text = " ".join(outcome.appraisal.reasons)
        assert case.detail in text, outcome.appraisal.reasons


def test_policy_in_an_unquoted_bank_does_not_trust_the_log(make_device: DeviceFactory) -> None:
    """The SHA-1 digests of the log claim the golden loader; the policy's allowlist is in
    SHA-1 but the quote covers SHA-256 only: SHA-1 digests are claims."""
    events = golden_events()
    sha1_apps = frozenset(e.digests["sha1"] for e in events if e.pcr == 4 and e.digests)
    policy = golden_policy(boot=EventLogPolicy((BootApplications("sha1", sha1_apps),)))
    device = make_device(policy)
    truth, story = _sha1_lies_sha256_true()
    device.boot(truth, story)
    assert_caught(device.appraise(), POLICY, TrustTier.CONTRAINDICATED)
    assert "not verified in sha1" in " ".join(device.appraise().appraisal.reasons)


def test_golden_digest_as_a_relabelled_measurement_is_still_just_a_digest() -> None:
    """Sanity of the suite itself: the bootkit's digest is not one the policy allows."""
    assert digest(b"bootkit image (Authenticode)") == BOOTKIT.digests["sha256"]  # type: ignore[index]
    policy = golden_policy()
    assert isinstance(policy.boot, EventLogPolicy)
    apps = next(r for r in policy.boot.rules if isinstance(r, BootApplications))
    assert BOOTKIT.digests["sha256"] not in apps.allowed  # type: ignore[index]


# -- whole-log lies ----------------------------------------------------------------------
def _no_log(device: Device) -> None:
    device.eventlog.unlink()
    device.attester.eventlog_path = None


def _empty_log(device: Device) -> None:
    device.present([])


def _truncated_log(device: Device) -> None:
    data = device.eventlog.read_bytes()
    device.eventlog.write_bytes(data[: len(data) - 7])


def _sha1_only_log(device: Device) -> None:
    """The log carries only SHA-1 digests; the quote covers SHA-256."""
    sha1 = [e._replace(digests={"sha1": (e.digests or {})["sha1"]}) for e in device.truth]
    device.present(sha1, banks=("sha1",))


def _golden_log_over_bootkit(device: Device) -> None:
    """The bootkit ran; the device presents the golden log as it was recorded earlier."""
    device.present(golden_events())


WHOLE_LOG = [
    ("event-log-withheld", _no_log, REPLAY),
    # PCRs without logged events are unverified (IMA-like software may extend them)
    ("event-log-empty", _empty_log, POLICY),
    ("event-log-truncated-mid-record", _truncated_log, REPLAY),
    ("event-log-in-an-unquoted-bank-only", _sha1_only_log, POLICY),
    ("golden-log-presented-over-a-bootkit-boot", _golden_log_over_bootkit, REPLAY),
]


@pytest.mark.parametrize(
    ("name", "lie", "reason"), WHOLE_LOG, ids=[name for name, _, _ in WHOLE_LOG]
)
def test_whole_log_lie_is_caught(
    name: str, lie: Callable[[Device], None], reason: str, device: Device
) -> None:
    device.boot(with_bootkit())
    lie(device)
    assert_caught(device.appraise(), reason, TrustTier.CONTRAINDICATED)
