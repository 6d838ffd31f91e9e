"""Prediction equals the replay of the log with the events actually rewritten.

For every crypto-agile log of the shared corpus with a PCR4 boot chain,
hypothesis draws updates (which roles, new Authenticode digests in every
bank, a UKI's sections); the test rewrites the log itself -- the PCR4
boot application of that role gets the new digests, a UKI's section events
replace PCR11 -- serialises it with the event-log builder, parses and replays
it, and compares with :func:`predict_next_boot`.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.vectors import third_party_dir
from trustedge.measuredboot import EventType, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import BANK_SIZES, bank_hash
from trustedge.measuredboot.predict import (
    BootMeasurement,
    PlannedImage,
    UKISectionDigests,
    predict_next_boot,
)

_BASE = third_party_dir() / "eventlog"
_CHAIN_LOGS = [
    "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog",
    "go-attestation/crypto_agile_eventlog",
    "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
    "go-eventlog/tpm/arch-linux-workstation.bin",
    "go-eventlog/tpm/cos-101-amd-sev.bin",
    "go-eventlog/tpm/cos-85-amd-sev.bin",
    "go-eventlog/tpm/glinux-alex.bin",
    "go-eventlog/tpm/rhel8-uefi.bin",
    "go-eventlog/tpm/ubuntu-1804-amd-sev.bin",
    "keylime/create-mb-policy/binary_bios_measurements",
    "keylime/create-mb-policy/binary_bios_measurements-secureboot",
    "keylime/mb_log.bin",
    "tcglog-parser/binary_bios_measurements",
    "tpm2-tools/logs/event-arch-linux.bin",
    "tpm2-tools/logs/event-moklisttrusted.bin",
    "tpm2-tools/logs/event-postcode.bin",
    "tpm2-tss/binary_measurements_hcrtm.bin",
    "tpm2-tss/binary_measurements_pc_client.bin",
]
LOGS = {name: (_BASE / name).read_bytes() for name in _CHAIN_LOGS}
_IMAGE_LOAD = int(EventType.EV_EFI_BOOT_SERVICES_APPLICATION)


def _chain_numbers(data: bytes) -> list[int]:
    """The test's own reading of the chain: boot applications after the PCR4 separator."""
    out, seen = [], False
    for ev in parse_event_log(data).unverified_events:
        if ev.pcr == 4 and ev.event_type == EventType.EV_SEPARATOR:
            seen = True
        elif ev.pcr == 4 and seen and ev.event_type == _IMAGE_LOAD:
            out.append(ev.number)
    return out


def _target(chain: list[int], role: str) -> int:
    if role == "shim":
        return chain[0]
    if role in ("kernel", "uki"):
        return chain[-1]
    return chain[1] if len(chain) >= 3 else chain[0]


@st.composite
def updates(draw: st.DrawFn) -> tuple[str, list[BootMeasurement]]:
    name = draw(st.sampled_from(sorted(LOGS)))
    banks = parse_event_log(LOGS[name]).banks
    roles = draw(
        st.lists(
            st.sampled_from(["shim", "loader", "kernel", "uki"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    chain = _chain_numbers(LOGS[name])
    if "kernel" in roles and "uki" in roles:
        roles.remove("uki")
    # one image per boot application: keep roles that land on distinct events
    kept: dict[int, str] = {}
    for role in roles:
        kept.setdefault(_target(chain, role), role)
    out = []
    for role in kept.values():
        digests = {
            b: draw(st.binary(min_size=BANK_SIZES[b], max_size=BANK_SIZES[b])) for b in banks
        }
        sections: tuple[UKISectionDigests, ...] = ()
        if role == "uki":
            names = draw(
                st.lists(
                    st.sampled_from([".linux", ".osrel", ".cmdline", ".initrd"]),
                    min_size=1,
                    unique=True,
                )
            )
            sections = tuple(
                UKISectionDigests(
                    n,
                    {
                        b: draw(st.binary(min_size=BANK_SIZES[b], max_size=BANK_SIZES[b]))
                        for b in banks
                    },
                )
                for n in names
            )
        out.append(BootMeasurement(role, digests, sections))
    return name, out


def _rewrite(data: bytes, images: list[BootMeasurement]) -> bytes:
    log = parse_event_log(data)
    chain = _chain_numbers(data)
    targets = {_target(chain, m.role): m for m in images}
    uki = next((m for m in images if m.role == "uki"), None)
    events: list[LogEvent] = []
    for ev in log.unverified_events[1:]:  # the builder writes its own Spec ID header
        if uki is not None and ev.pcr == 11:
            continue
        digests = (
            dict(targets[ev.number].authenticode) if ev.number in targets else dict(ev.digests)
        )
        events.append(LogEvent(ev.pcr, ev.event_type, ev.data, digests))
        if uki is not None and ev.number == _target(chain, "uki"):
            for sec in uki.uki_sections:
                label = sec.name.encode() + b"\0"
                events.append(
                    LogEvent(11, 0x0D, label, {b: bank_hash(b, label) for b in log.banks})
                )
                events.append(LogEvent(11, 0x0D, label, dict(sec.digests)))
    return build_event_log(events, banks=log.banks)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(updates())
def test_prediction_equals_replay_of_rewritten_log(case: tuple[str, list[BootMeasurement]]) -> None:
    name, images = case
    log = parse_event_log(LOGS[name])
    verified = log.verify(log.replay())
    prediction = predict_next_boot(verified, images)
    rewritten = parse_event_log(_rewrite(LOGS[name], images)).replay()
    assert not prediction.unpredictable
    for bank, values in prediction.next.items():
        for pcr, value in values.items():
            assert rewritten[bank][pcr] == value, (name, bank, pcr)
    # every PCR the rewrite changed is predicted, and PCR4 always changes
    for bank in log.banks:
        assert prediction.next[bank][4] != prediction.current[bank][4]
        for pcr, value in rewritten[bank].items():
            if pcr in verified.verified_pcrs or pcr == 11:
                assert prediction.next[bank][pcr] == value
    assert Path(name).name  # the case names its log in failures


def _pcr9_files(data: bytes) -> list[dict[str, bytes]]:
    return [
        dict(ev.digests)
        for ev in parse_event_log(data).unverified_events
        if ev.pcr == 9 and ev.event_type == 0x0D
    ]


@st.composite
def device_updates(draw: st.DrawFn) -> tuple[str, list[PlannedImage]]:
    """Images placed by the digest of the image they replace (what a device knows),
    with GRUB's PCR9 file digest where the log has one."""
    name = draw(st.sampled_from(sorted(LOGS)))
    log = parse_event_log(LOGS[name])
    banks = log.banks
    by_number = {ev.number: ev for ev in log.unverified_events}
    chain = _chain_numbers(LOGS[name])
    distinct: dict[tuple[bytes, ...], int] = {}
    for number in chain:  # the last event with a digest is the one a digest names
        distinct[tuple(by_number[number].digests[b] for b in banks)] = number
    picked = draw(st.lists(st.sampled_from(sorted(distinct.values())), min_size=1, unique=True))
    files = _pcr9_files(LOGS[name])
    out = []
    for number in picked:
        new = {b: draw(st.binary(min_size=BANK_SIZES[b], max_size=BANK_SIZES[b])) for b in banks}
        current_file = draw(st.sampled_from(files)) if files and draw(st.booleans()) else None
        if current_file is not None:
            files = [f for f in files if f != current_file]  # one image per file
        new_file = (
            {b: draw(st.binary(min_size=BANK_SIZES[b], max_size=BANK_SIZES[b])) for b in banks}
            if current_file is not None
            else {}
        )
        m = BootMeasurement("kernel", new, file_digests=new_file)
        out.append(PlannedImage(m, dict(by_number[number].digests), current_file))
    return name, out


def _rewrite_by_digest(data: bytes, images: list[PlannedImage]) -> bytes:
    log = parse_event_log(data)
    chain = _chain_numbers(data)
    by_number = {ev.number: ev for ev in log.unverified_events}
    targets = {}
    for img in images:
        assert img.current is not None
        last = [n for n in chain if by_number[n].digests == img.current][-1]
        targets[last] = dict(img.measurement.authenticode)
    files: dict[bytes, dict[str, bytes]] = {}
    for img in images:
        if img.current_file is not None:
            key = b"".join(img.current_file[b] for b in sorted(img.current_file))
            files[key] = dict(img.measurement.file_digests)
    events: list[LogEvent] = []
    for ev in log.unverified_events[1:]:
        digests = dict(ev.digests)
        if ev.number in targets:
            digests = targets[ev.number]
        elif ev.pcr == 9:
            key = b"".join(digests[b] for b in sorted(digests))
            digests = files.get(key, digests)
        events.append(LogEvent(ev.pcr, ev.event_type, ev.data, digests))
    return build_event_log(events, banks=log.banks)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(device_updates())
def test_device_placed_prediction_equals_replay(case: tuple[str, list[PlannedImage]]) -> None:
    name, images = case
    log = parse_event_log(LOGS[name])
    prediction = predict_next_boot(log.verify(log.replay()), images)
    rewritten = parse_event_log(_rewrite_by_digest(LOGS[name], images)).replay()
    for bank, values in prediction.next.items():
        for pcr, value in values.items():
            assert rewritten[bank][pcr] == value, (name, bank, pcr)


_DB = bytes.fromhex("cbb219d73a3d9645a3bcdad00e67656f")  # EFI_IMAGE_SECURITY_DATABASE_GUID, LE


def _authority(data: bytes) -> bytes:
    name = "db".encode("utf-16-le")
    return _DB + (2).to_bytes(8, "little") + len(data).to_bytes(8, "little") + name + data


@st.composite
def authority_updates(draw: st.DrawFn) -> tuple[str, BootMeasurement]:
    """One image whose new authority (the db entry that verifies it) the firmware
    has not logged yet: it replaces the authority logged for that stage, or is added."""
    name = draw(st.sampled_from(sorted(LOGS)))
    banks = parse_event_log(LOGS[name]).banks
    role = draw(st.sampled_from(["shim", "loader", "kernel"]))
    digests = {b: draw(st.binary(min_size=BANK_SIZES[b], max_size=BANK_SIZES[b])) for b in banks}
    cert = draw(st.binary(min_size=16, max_size=64))
    return name, BootMeasurement(role, digests, authority=_authority(cert))


def _rewrite_authority(data: bytes, m: BootMeasurement) -> bytes:
    assert m.authority is not None
    log = parse_event_log(data)
    chain = _chain_numbers(data)
    target = _target(chain, m.role)
    at = chain.index(target)
    prev = chain[at - 1] if at > 0 else -1
    auths = [
        ev.number
        for ev in log.unverified_events
        if ev.pcr == 7 and ev.event_type == EventType.EV_EFI_VARIABLE_AUTHORITY
    ]
    between = [n for n in auths if prev < n < target]
    new_auth = LogEvent(7, EventType.EV_EFI_VARIABLE_AUTHORITY, m.authority,
                        {b: bank_hash(b, m.authority) for b in log.banks})  # fmt: skip
    events: list[LogEvent] = []
    for ev in log.unverified_events[1:]:
        if ev.number == target:
            if not between:
                events.append(new_auth)
            events.append(LogEvent(ev.pcr, ev.event_type, ev.data, dict(m.authenticode)))
        elif between and ev.number == between[-1]:
            events.append(new_auth)
        else:
            events.append(LogEvent(ev.pcr, ev.event_type, ev.data, dict(ev.digests)))
    return build_event_log(events, banks=log.banks)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(authority_updates())
def test_new_authority_prediction_equals_replay(case: tuple[str, BootMeasurement]) -> None:
    name, m = case
    log = parse_event_log(LOGS[name])
    verified = log.verify(log.replay())
    prediction = predict_next_boot(verified, [m])
    rewritten = parse_event_log(_rewrite_authority(LOGS[name], m)).replay()
    for bank, values in prediction.next.items():
        for pcr, value in values.items():
            assert rewritten[bank][pcr] == value, (name, bank, pcr)
    if 7 in verified.verified_pcrs:
        assert prediction.next[log.banks[-1]][7] != prediction.current[log.banks[-1]][7]
