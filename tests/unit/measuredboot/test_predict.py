"""predict_next_boot on hand-built chains: placement, PCR7 authorities and
variables, GRUB's PCR9 file, UKI PCR11, and the refusals."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.pe import build_pe
from trustedge.errors import MalformedInputError, PolicyError, VerificationError
from trustedge.measuredboot import EventType, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import bank_hash
from trustedge.measuredboot.predict import (
    BootMeasurement,
    PlannedImage,
    VariableUpdate,
    predict_next_boot,
)

DB_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
APP = EventType.EV_EFI_BOOT_SERVICES_APPLICATION
AUTH = EventType.EV_EFI_VARIABLE_AUTHORITY
CONFIG = EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
SEP = EventType.EV_SEPARATOR
BANKS = ("sha1", "sha256")


def var(guid: str, name: str, value: bytes) -> bytes:
    return (
        uuid.UUID(guid).bytes_le
        + len(name).to_bytes(8, "little")
        + len(value).to_bytes(8, "little")
        + name.encode("utf-16-le")
        + value
    )


def d(tag: bytes) -> dict[str, bytes]:
    return {b: bank_hash(b, tag) for b in BANKS}


SHIM, GRUB, KERNEL = d(b"shim"), d(b"grub"), d(b"kernel")
KERNEL_FILE = d(b"kernel file")


def chain_log(*, pcr7: bool = True) -> list[LogEvent]:
    events = [
        LogEvent(7, CONFIG, var(GLOBAL, "SecureBoot", b"\x01")),
        LogEvent(7, CONFIG, var(DB_GUID, "db", b"old db")),
        LogEvent(7, SEP, bytes(4)),
        LogEvent(4, EventType.EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
        LogEvent(4, SEP, bytes(4)),
        LogEvent(7, AUTH, var(DB_GUID, "db", b"vendor CA")),
        LogEvent(4, APP, b"shim path", SHIM),
        LogEvent(7, AUTH, var(DB_GUID, "MokListRT", b"distro CA")),
        LogEvent(4, APP, b"grub path", GRUB),
        LogEvent(9, EventType.EV_IPL, b"/boot/vmlinuz", KERNEL_FILE),
        LogEvent(4, APP, b"kernel path", KERNEL),
    ]
    return [e for e in events if pcr7 or e.pcr != 7]


def verified(events: list[LogEvent]):  # type: ignore[no-untyped-def]
    log = parse_event_log(build_event_log(events, banks=BANKS))
    return log.verify(log.replay())


def replay(events: list[LogEvent]) -> dict[str, dict[int, bytes]]:
    return parse_event_log(build_event_log(events, banks=BANKS)).replay()


def test_loader_and_kernel_replaced_by_role() -> None:
    new_grub, new_kernel = d(b"grub 2"), d(b"kernel 2")
    p = predict_next_boot(
        verified(chain_log()),
        [BootMeasurement("loader", new_grub), BootMeasurement("kernel", new_kernel)],
    )
    expect = chain_log()
    expect[8] = expect[8]._replace(digests=new_grub)
    expect[10] = expect[10]._replace(digests=new_kernel)
    assert p.next["sha256"][4] == replay(expect)["sha256"][4]
    assert p.next["sha1"][4] == replay(expect)["sha1"][4]
    assert p.next["sha256"][7] == p.current["sha256"][7]
    assert [(c.action, c.pcr, c.event_number) for c in p.changes] == [
        ("replace", 4, 9),
        ("replace", 4, 11),
    ]
    assert set(p.changed()["sha256"]) == {4}


def test_current_digest_places_the_image_and_grub_file_follows() -> None:
    new = BootMeasurement("loader", d(b"kernel 2"), file_digests=d(b"kernel file 2"))
    p = predict_next_boot(
        verified(chain_log()), [PlannedImage(new, current=KERNEL, current_file=KERNEL_FILE)]
    )
    expect = chain_log()
    expect[10] = expect[10]._replace(digests=d(b"kernel 2"))
    expect[9] = expect[9]._replace(digests=d(b"kernel file 2"))
    want = replay(expect)
    assert p.next["sha256"][4] == want["sha256"][4]
    assert p.next["sha256"][9] == want["sha256"][9] != p.current["sha256"][9]


def test_image_not_in_chain_is_refused() -> None:
    with pytest.raises(PolicyError, match="not in the verified boot chain"):
        predict_next_boot(
            verified(chain_log()),
            [PlannedImage(BootMeasurement("loader", d(b"x")), current=d(b"other"))],
        )


def test_two_images_in_one_place_are_refused() -> None:
    with pytest.raises(PolicyError, match="same boot application"):
        predict_next_boot(
            verified(chain_log()),
            [BootMeasurement("kernel", d(b"a")), BootMeasurement("uki", d(b"b"), _sections())],
        )


def test_unverified_pcr4_gives_no_prediction() -> None:
    log = parse_event_log(build_event_log(chain_log(), banks=BANKS))
    only7 = log.verify({"sha256": {7: log.replay()["sha256"][7]}})
    with pytest.raises(PolicyError, match="PCR4 is not verified"):
        predict_next_boot(only7, [BootMeasurement("loader", d(b"x"))])


def test_missing_bank_is_unpredictable_not_guessed() -> None:
    p = predict_next_boot(
        verified(chain_log()), [BootMeasurement("loader", {"sha256": d(b"g")["sha256"]})]
    )
    assert ("sha1", 4) in p.unpredictable
    assert 4 not in p.next.get("sha1", {})
    assert 4 in p.next["sha256"]


def test_new_authority_replaces_the_one_logged_for_that_stage() -> None:
    new_auth = var(DB_GUID, "MokListRT", b"new distro CA")
    p = predict_next_boot(
        verified(chain_log()), [BootMeasurement("loader", d(b"g2"), authority=new_auth)]
    )
    expect = chain_log()
    expect[7] = LogEvent(7, AUTH, new_auth)
    expect[8] = expect[8]._replace(digests=d(b"g2"))
    assert p.next["sha256"][7] == replay(expect)["sha256"][7] != p.current["sha256"][7]


def test_authority_already_logged_changes_nothing() -> None:
    same = var(DB_GUID, "db", b"vendor CA")
    p = predict_next_boot(
        verified(chain_log()), [BootMeasurement("kernel", d(b"k2"), authority=same)]
    )
    assert p.next["sha256"][7] == p.current["sha256"][7]


def test_new_authority_inserted_where_none_was_logged() -> None:
    new_auth = var(DB_GUID, "db", b"kernel signer")
    p = predict_next_boot(
        verified(chain_log()), [BootMeasurement("kernel", d(b"k2"), authority=new_auth)]
    )
    expect = chain_log()
    expect[10] = expect[10]._replace(digests=d(b"k2"))
    expect.insert(10, LogEvent(7, AUTH, new_auth))
    assert p.next["sha256"][7] == replay(expect)["sha256"][7]


def test_db_update_replaces_the_variable_event() -> None:
    new_db = var(DB_GUID, "db", b"new db")
    p = predict_next_boot(verified(chain_log()), variables=[VariableUpdate(new_db)])
    expect = chain_log()
    expect[1] = LogEvent(7, CONFIG, new_db)
    assert p.next["sha256"][7] == replay(expect)["sha256"][7]
    with pytest.raises(PolicyError, match="not a proven PCR7 event"):
        predict_next_boot(
            verified(chain_log()), variables=[VariableUpdate(var(DB_GUID, "dbx", b""))]
        )


def _sections():  # type: ignore[no-untyped-def]
    from trustedge.measuredboot.predict import UKISectionDigests

    return (UKISectionDigests(".linux", d(b"linux")), UKISectionDigests(".cmdline", d(b"cmd")))


def test_uki_defines_pcr11() -> None:
    p = predict_next_boot(verified(chain_log()), [BootMeasurement("uki", d(b"uki"), _sections())])
    value = bytes(32)
    for name, data in ((".linux", b"linux"), (".cmdline", b"cmd")):
        value = hashlib.sha256(value + hashlib.sha256(name.encode() + b"\0").digest()).digest()
        value = hashlib.sha256(value + hashlib.sha256(data).digest()).digest()
    assert p.next["sha256"][11] == value
    assert 11 not in p.current["sha256"]


def test_measurement_of_a_real_pe_and_mismatch() -> None:
    image = build_pe()
    m = BootMeasurement.of_image(image, "kernel", banks=("sha256", "sha1"))
    m.check_image(image)
    assert m.file_digests["sha256"] == hashlib.sha256(image).digest()
    other = bytearray(image)
    other[-1] ^= 1
    with pytest.raises(VerificationError):
        m.check_image(bytes(other))
    with pytest.raises(VerificationError, match="cannot be measured"):
        m.check_image(b"MZ junk")


def test_malformed_measurements() -> None:
    with pytest.raises(MalformedInputError):
        BootMeasurement("bootkit", d(b"x"))
    with pytest.raises(MalformedInputError):
        BootMeasurement("loader", {"sha256": b"short"})
    with pytest.raises(MalformedInputError):
        BootMeasurement("loader", {})
    with pytest.raises(MalformedInputError):
        BootMeasurement("loader", d(b"x"), authority=b"not a variable")


def test_two_images_replacing_one_file_are_refused() -> None:
    images = [
        PlannedImage(BootMeasurement("kernel", d(b"k2"), file_digests=d(b"f2")), current=KERNEL,
                     current_file=KERNEL_FILE),
        PlannedImage(BootMeasurement("loader", d(b"g2"), file_digests=d(b"f3")), current=GRUB,
                     current_file=KERNEL_FILE),
    ]  # fmt: skip
    with pytest.raises(PolicyError, match="replace the file"):
        predict_next_boot(verified(chain_log()), images)


def test_uki_measurement_predicts_what_systemd_stub_measures() -> None:
    """The UKI's stated sections give the PCR11 ``uki_pcr11`` computes (which equals
    ``systemd-measure calculate``, tests/integration/test_uki_systemd_measure.py)."""
    from trustedge.measuredboot.uki import uki_pcr11

    uki = build_pe(
        (
            (".osrel", b"ID=debian\n"),
            (".cmdline", b"console=ttyS0"),
            (".linux", b"\x4d\x5a kernel"),
            (".initrd", b"initrd"),
        )
    )
    m = BootMeasurement.of_image(uki, "uki", banks=("sha256", "sha1"))
    assert [s.name for s in m.uki_sections] == [".linux", ".osrel", ".cmdline", ".initrd"]
    p = predict_next_boot(verified(chain_log()), [m])
    assert p.next["sha256"][11] == uki_pcr11(uki, "sha256")
    assert p.next["sha1"][11] == uki_pcr11(uki, "sha1")
    assert p.next["sha256"][4] != p.current["sha256"][4]


def test_grub_strings_follow_a_new_kernel_path() -> None:
    """keylime's CentOS 9 log: upstream GRUB hashes its PCR8 strings without the
    "grub_cmd: " / "kernel_cmdline: " prefix; the test rewrites them that way."""
    from tests.vectors import third_party_dir

    raw = (third_party_dir() / "eventlog/keylime/mb_log.bin").read_bytes()
    log = parse_event_log(raw)
    old, new = "/vmlinuz-5.14.0-183.el9.x86_64", "/vmlinuz-5.14.0-200.el9.x86_64"
    m = BootMeasurement("kernel", {"sha256": d(b"new kernel")["sha256"]}, path=new)
    p = predict_next_boot(log.verify(log.replay()), [PlannedImage(m, current_path=old)])
    rewritten = []
    for ev in log.unverified_events[1:]:
        digests = dict(ev.digests)
        data = ev.data
        if old.encode() in data and ev.pcr in (8, 9):
            data = data.replace(old.encode(), new.encode())
            if ev.pcr == 8:
                text = data.split(b": ", 1)[1].rstrip(b"\0")
                digests = {"sha256": hashlib.sha256(text).digest()}
        rewritten.append(LogEvent(ev.pcr, ev.event_type, data, digests))
    want = parse_event_log(build_event_log(rewritten, banks=log.banks)).replay()
    assert p.next["sha256"][8] == want["sha256"][8] != p.current["sha256"][8]
    assert p.next["sha256"][9] == p.current["sha256"][9]  # PCR9 hashes the file, not its name
    assert {c.event_number for c in p.changes if c.pcr == 8} == {93, 97}


def test_grub_strings_of_unknown_form_are_unpredictable() -> None:
    from tests.vectors import third_party_dir

    raw = (third_party_dir() / "eventlog/go-eventlog/tpm/rhel8-uefi.bin").read_bytes()
    log = parse_event_log(raw)
    old = "/boot/vmlinuz-4.18.0-240.22.1.el8_3.x86_64"
    assert any(old.encode() in ev.data for ev in log.unverified_events if ev.pcr == 8)
    m = BootMeasurement("kernel", {"sha256": bytes(32)}, path="/boot/vmlinuz-4.18.0-400.el8")
    p = predict_next_boot(log.verify(log.replay()), [PlannedImage(m, current_path=old)])
    assert ("sha256", 8) in p.unpredictable and 8 not in p.next["sha256"]


def test_variables_stated_with_an_image_change_pcr7() -> None:
    new_dbx = var(DB_GUID, "db", b"db without the old CA")
    p = predict_next_boot(
        verified(chain_log()), [BootMeasurement("loader", d(b"g2"), variables=(new_dbx,))]
    )
    expect = chain_log()
    expect[1] = LogEvent(7, CONFIG, new_dbx)
    expect[8] = expect[8]._replace(digests=d(b"g2"))
    assert p.next["sha256"][7] == replay(expect)["sha256"][7] != p.current["sha256"][7]
    with pytest.raises(MalformedInputError):
        BootMeasurement("loader", d(b"g2"), variables=(b"not a variable",))


def test_boot_phases_extend_the_predicted_pcr11() -> None:
    """systemd-pcrphase strings follow the UKI's sections in PCR11 (``uki_pcr11(phases=)``,
    which equals ``systemd-measure calculate --phase``); they are not firmware-log events."""
    from trustedge.measuredboot.uki import BOOT_PHASES, uki_pcr11

    uki = build_pe(((".linux", b"\x4d\x5a kernel"), (".cmdline", b"quiet")))
    m = BootMeasurement.of_image(uki, "uki", banks=BANKS)
    log = verified(chain_log())
    plain = predict_next_boot(log, [m])
    for phases in (("enter-initrd",), BOOT_PHASES[:4]):
        p = predict_next_boot(log, [m], phases=phases)
        for bank in BANKS:
            assert p.next[bank][11] == uki_pcr11(uki, bank, phases=phases)
        assert p.events == plain.events and p.phases == phases
        assert {k: v for k, v in p.next["sha256"].items() if k != 11} == {
            k: v for k, v in plain.next["sha256"].items() if k != 11
        }
        assert p.to_json()["phases"] == list(phases)
    with pytest.raises(PolicyError, match="uki"):  # no UKI: PCR11 is not predicted
        predict_next_boot(log, [BootMeasurement("kernel", d(b"k2"))], phases=("enter-initrd",))
    for bad in ("", "a:b", "has space", "x" * 65, "ünicode"):
        with pytest.raises(MalformedInputError):
            predict_next_boot(log, [m], phases=(bad,))
