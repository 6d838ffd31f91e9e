"""KernelCmdline reads only digest-bound command lines (issue 14: PCR12, GRUB tags, RHEL)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trustedge.errors import PolicyError
from trustedge.measuredboot import (
    EventLogPolicy,
    EventType,
    KernelCmdline,
    VerifiedEventLog,
    classify,
    load_policy,
    parse_event_log,
)
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.reference import policy_from_event_logs, self_verified

IPL = EventType.EV_IPL


def sha(data: bytes) -> dict[str, bytes]:
    return {"sha256": hashlib.sha256(data).digest()}


def wide(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\x00\x00"


def uki_boot(credentials: bytes = b"golden credentials cpio") -> list[LogEvent]:
    """systemd-stub: the command line (hashed as logged) and a credentials archive."""
    return [
        LogEvent(12, IPL, wide("root=/dev/sda1 ro quiet")),
        LogEvent(12, IPL, wide("Credentials initrd"), sha(credentials)),
    ]


def verified(events: list[LogEvent]) -> VerifiedEventLog:
    return self_verified(parse_event_log(build_event_log(events)))


def test_an_unproven_pcr12_event_is_a_hidden_command_line() -> None:
    log = verified(uki_boot())
    with pytest.raises(PolicyError, match=r"PCR12 event 2 .* is not a proven string"):
        EventLogPolicy((KernelCmdline(required=(r"\bro\b",)),)).check(log)


def test_allowed_pcr12_measurements_pass_and_others_do_not() -> None:
    allowed = frozenset({hashlib.sha256(b"golden credentials cpio").digest()})
    rule = KernelCmdline(required=(r"\bro\b",), measurements=allowed)
    EventLogPolicy((rule,)).check(verified(uki_boot()))
    with pytest.raises(PolicyError, match="PCR12"):
        EventLogPolicy((rule,)).check(verified(uki_boot(b"other credentials")))


def test_the_json_rule_takes_measurements() -> None:
    digest = hashlib.sha256(b"golden credentials cpio").hexdigest()
    doc = {"version": 1, "rules": [{"rule": "kernel_cmdline", "required": ["ro"],
                                    "measurements": [digest]}]}  # fmt: skip
    load_policy(json.dumps(doc)).check(verified(uki_boot()))


def test_a_policy_generated_from_a_uki_boot_affirms_it() -> None:
    log = verified(uki_boot())
    generated = policy_from_event_logs([log])
    rule = next(r for r in generated.document["rules"] if r["rule"] == "kernel_cmdline")
    assert rule["measurements"] == [hashlib.sha256(b"golden credentials cpio").hexdigest()]
    policy = load_policy(json.dumps(generated.document))
    policy.check(log)
    with pytest.raises(PolicyError):
        policy.check(verified(uki_boot(b"other credentials")))


def test_grub_tags_are_claims_linux_arguments_are_checked() -> None:
    """GRUB hashes its strings without the tag: the log may swap them."""
    good, evil = b"/vmlinuz root=/dev/sda1 ro", b"/vmlinuz root=/dev/sda1 rw"
    events = [
        LogEvent(8, IPL, b"kernel_cmdline: " + good + b"\x00", sha(good)),  # really a grub_cmd
        LogEvent(8, IPL, b"grub_cmd: linux " + evil + b"\x00", sha(b"linux " + evil)),
        LogEvent(8, IPL, b"grub_cmd: " + evil + b"\x00", sha(evil)),  # really the cmdline
    ]
    log = verified(events)
    with pytest.raises(PolicyError, match="does not match"):
        EventLogPolicy((KernelCmdline(required=(r"\bro\b",)),)).check(log)


def test_linux_arguments_equal_to_the_logged_line_modulo_quotes_are_not_a_new_line() -> None:
    line = b'/boot/vmlinuz.signed root=/dev/dm-0 "dm=1 vroot none ro"'
    events = [
        LogEvent(8, IPL, b"grub_cmd: linux /boot/vmlinuz root=/dev/dm-0 dm=1 vroot none ro\x00",
                 sha(b"linux /boot/vmlinuz root=/dev/dm-0 dm=1 vroot none ro")),
        LogEvent(8, IPL, b"kernel_cmdline: " + line + b"\x00", sha(line)),
    ]  # fmt: skip
    exact = r"^/boot/vmlinuz\.signed root=/dev/dm-0 \"dm=1 vroot none ro\"$"
    EventLogPolicy((KernelCmdline(required=(exact,)),)).check(verified(events))


def test_rhel_grub_strings_are_proven(third_party: Path) -> None:
    """RHEL's "grub_cmd <cmd>" / "grub_kernel_cmdline <line>" (space, no colon) hash the
    text after the tag: every PCR8 event is proven and the command line is read."""
    raw = third_party / "eventlog/keylime/rhel8-uefi.bin"
    if not raw.exists():
        raw = next(third_party.rglob("rhel8-uefi.bin"))
    log = self_verified(parse_event_log(raw.read_bytes()))
    facts = classify(log)
    assert facts.proven(8) and not facts.measurements(8)
    EventLogPolicy((KernelCmdline(required=(r"\bro\b", r"crashkernel=auto")),)).check(log)
