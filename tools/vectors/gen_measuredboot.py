#!/usr/bin/env python3
"""Generate vectors/measuredboot/*.json: synthetic event logs and IMA lists.

Deterministic: every input is built here from fixed values. ``--check``
regenerates in memory and exits 1 when a committed file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from trustedge.errors import MalformedInputError  # noqa: E402
from trustedge.measuredboot import EventType, parse_event_log, parse_ima_log  # noqa: E402
from trustedge.measuredboot.build import (  # noqa: E402
    LogEvent,
    build_event_log,
    build_ima_entry,
    build_sha1_log,
)

OUT = ROOT / "vectors" / "measuredboot"
T = EventType


def _guid(text: str) -> bytes:
    parts = text.split("-")
    return (
        int(parts[0], 16).to_bytes(4, "little")
        + int(parts[1], 16).to_bytes(2, "little")
        + int(parts[2], 16).to_bytes(2, "little")
        + bytes.fromhex(parts[3] + parts[4])
    )


GLOBAL = _guid("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_DB = _guid("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
X509 = _guid("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
SHA256_SIG = _guid("c1c41626-504c-4092-aca9-41f936934328")


def _var(guid: bytes, name: str, value: bytes) -> bytes:
    return (
        guid
        + len(name).to_bytes(8, "little")
        + len(value).to_bytes(8, "little")
        + name.encode("utf-16-le")
        + value
    )


def _siglist(sig_type: bytes, owner: bytes, entries: list[bytes]) -> bytes:
    size = 16 + len(entries[0])
    body = b"".join(owner + e for e in entries)
    return sig_type + (28 + len(body)).to_bytes(4, "little") + bytes(4) + size.to_bytes(4, "little") + body


def _device_path() -> bytes:
    pci_root = bytes([2, 1, 12, 0]) + (0x0A0341D0).to_bytes(4, "little") + bytes(4)
    pci = bytes([1, 1, 6, 0, 0, 3])
    hd = (
        bytes([4, 1, 42, 0])
        + (1).to_bytes(4, "little")
        + (2048).to_bytes(8, "little")
        + (409600).to_bytes(8, "little")
        + _guid("c359e798-596a-42b6-b6f6-eca290429d99")
        + bytes([2, 2])
    )
    path = "\\EFI\\BOOT\\BOOTX64.EFI\x00".encode("utf-16-le")
    file_node = bytes([4, 4]) + (4 + len(path)).to_bytes(2, "little") + path
    return pci_root + pci + hd + file_node + bytes([0x7F, 0xFF, 4, 0])


def _image_load() -> bytes:
    dp = _device_path()
    return (
        (0x7E000000).to_bytes(8, "little")
        + (0x1A000).to_bytes(8, "little")
        + bytes(8)
        + len(dp).to_bytes(8, "little")
        + dp
    )


def _gpt() -> bytes:
    header = (
        b"EFI PART"
        + (0x10000).to_bytes(4, "little")
        + (92).to_bytes(4, "little")
        + bytes(8)
        + (1).to_bytes(8, "little")
        + (0xFFFFF).to_bytes(8, "little")
        + (34).to_bytes(8, "little")
        + (0xFFFDE).to_bytes(8, "little")
        + _guid("01234567-89ab-cdef-0123-456789abcdef")
        + (2).to_bytes(8, "little")
        + (128).to_bytes(4, "little")
        + (128).to_bytes(4, "little")
        + bytes(4)
    )
    entry = (
        _guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
        + _guid("11111111-2222-3333-4444-555555555555")
        + (2048).to_bytes(8, "little")
        + (411647).to_bytes(8, "little")
        + bytes(8)
        + "EFI System".encode("utf-16-le").ljust(72, b"\x00")
    )
    return header + (1).to_bytes(8, "little") + entry


def _full_boot() -> list[LogEvent]:
    cert = b"0\x82\x01\x00" + bytes(range(60))
    db = _siglist(X509, GLOBAL, [cert])
    dbx = _siglist(SHA256_SIG, GLOBAL, [bytes(range(32)), bytes(range(1, 33))])
    return [
        LogEvent(0, T.EV_NO_ACTION, b"StartupLocality\x00\x03"),
        LogEvent(0, T.EV_S_CRTM_VERSION, "1.02".encode("utf-16-le") + b"\x00\x00"),
        LogEvent(0, T.EV_EFI_PLATFORM_FIRMWARE_BLOB, (0x820000).to_bytes(8, "little") * 2),
        LogEvent(
            0,
            T.EV_EFI_PLATFORM_FIRMWARE_BLOB2,
            b"\x05DXEFV" + (0x900000).to_bytes(8, "little") + (0xB00000).to_bytes(8, "little"),
        ),
        LogEvent(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, _var(GLOBAL, "SecureBoot", b"\x01")),
        LogEvent(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, _var(GLOBAL, "PK", b"")),
        LogEvent(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, _var(GLOBAL, "KEK", b"")),
        LogEvent(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, _var(IMAGE_DB, "db", db)),
        LogEvent(7, T.EV_EFI_VARIABLE_DRIVER_CONFIG, _var(IMAGE_DB, "dbx", dbx)),
        LogEvent(1, T.EV_EFI_HANDOFF_TABLES, (1).to_bytes(8, "little") + GLOBAL + bytes(8)),
        LogEvent(1, T.EV_EFI_VARIABLE_BOOT, _var(GLOBAL, "BootOrder", b"\x01\x00\x00\x00")),
        LogEvent(4, T.EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
        *[LogEvent(pcr, T.EV_SEPARATOR, bytes(4)) for pcr in range(8)],
        LogEvent(5, T.EV_EFI_GPT_EVENT, _gpt()),
        LogEvent(7, T.EV_EFI_VARIABLE_AUTHORITY, _var(IMAGE_DB, "db", GLOBAL + cert)),
        LogEvent(
            4,
            T.EV_EFI_BOOT_SERVICES_APPLICATION,
            _image_load(),
            {"sha1": bytes(range(20)), "sha256": bytes(range(32))},
        ),
        LogEvent(8, T.EV_IPL, b"grub_cmd: linux /vmlinuz root=/dev/sda1 ro\x00"),
        LogEvent(8, T.EV_IPL, b"kernel_cmdline: /vmlinuz root=/dev/sda1 ro\x00"),
        LogEvent(5, T.EV_EFI_ACTION, b"Exit Boot Services Invocation"),
        LogEvent(5, T.EV_EFI_ACTION, b"Exit Boot Services Returned with Success"),
        LogEvent(17, T.EV_EVENT_TAG, (0x1234).to_bytes(4, "little") + (2).to_bytes(4, "little") + b"ok"),
        LogEvent(0xFFFFFFFF, T.EV_NO_ACTION, b"windows-style record"),
    ]


def _replay_json(data: bytes) -> dict[str, dict[str, str]]:
    log = parse_event_log(data)
    return {b: {str(k): v.hex() for k, v in vals.items()} for b, vals in log.replay().items() if vals}


def _valid(comment: str, data: bytes, flags: list[str]) -> dict[str, Any]:
    log = parse_event_log(data)
    return {
        "comment": comment,
        "flags": flags,
        "log": data.hex(),
        "result": "valid",
        "records": len(log.unverified_events),
        "types": [ev.type_name for ev in log.unverified_events],
        "replay": _replay_json(data),
    }


def _invalid(comment: str, data: bytes, flags: list[str]) -> dict[str, Any]:
    try:
        parse_event_log(data)
    except MalformedInputError as exc:
        return {
            "comment": comment,
            "flags": flags,
            "log": data.hex(),
            "result": "invalid",
            "error": type(exc).__name__,
            "offset": exc.offset,
        }
    raise SystemExit(f"generator bug: {comment} parsed")


def eventlog_vectors() -> dict[str, Any]:
    full = build_event_log(_full_boot(), banks=("sha1", "sha256"))
    all_banks = build_event_log(
        [LogEvent(0, T.EV_S_CRTM_CONTENTS, b"crtm"), LogEvent(2, T.EV_SEPARATOR, bytes(4))],
        banks=("sha1", "sha256", "sha384", "sha512", "sm3_256"),
    )
    hcrtm = build_event_log(
        [LogEvent(0, T.EV_EFI_HCRTM_EVENT, b"HCRTM"), LogEvent(0, T.EV_SEPARATOR, bytes(4))],
        banks=("sha256",),
    )
    fewer = build_event_log(
        [
            LogEvent(0, T.EV_POST_CODE, b"POST CODE", {"sha256": bytes(32)}),
            LogEvent(1, T.EV_SEPARATOR, bytes(4)),
        ],
        banks=("sha1", "sha256"),
    )
    sha1 = build_sha1_log(
        [LogEvent(0, T.EV_S_CRTM_VERSION, b"v1"), LogEvent(4, T.EV_SEPARATOR, bytes(4))]
    )
    padded = build_event_log([LogEvent(1, T.EV_SEPARATOR, bytes(4))]) + b"\xff" * 300
    zeros = build_event_log([LogEvent(1, T.EV_SEPARATOR, bytes(4))]) + bytes(64)
    valid = [
        _valid("every event type family, locality 3, PCR 17, 0xFFFFFFFF record", full, ["Full"]),
        _valid("all five banks", all_banks, ["AllBanks"]),
        _valid("H-CRTM: PCR0 starts at 00..04", hcrtm, ["HCRTM"]),
        _valid("event with fewer digests than declared", fewer, ["DigestCount"]),
        _valid("SHA-1 format log", sha1, ["Sha1Log"]),
        _valid("trailing 0xFF fill", padded, ["Padding"]),
        _valid("trailing zero fill", zeros, ["Padding"]),
    ]
    spec_only = build_event_log([], banks=("sha256",))
    bad_alg = bytearray(full)
    bad_alg[len(build_event_log([], banks=("sha1", "sha256"))) + 12] = 0x0E
    invalid = [
        _invalid("empty input", b"", ["Truncated"]),
        _invalid("truncated first record", full[:20], ["Truncated"]),
        _invalid("truncated event data", full[: len(full) - 5], ["Truncated"]),
        _invalid("EventSize beyond the 1 MiB limit", spec_only + bytes(4) + (4).to_bytes(4, "little")
                 + bytes(4) + (0x7FFFFFFF).to_bytes(4, "little"), ["Limit"]),
        _invalid("undeclared digest algorithm", bytes(bad_alg), ["Algorithm"]),
        _invalid("PCR index 24 on a measured event", build_sha1_log(
            [LogEvent(24, T.EV_SEPARATOR, bytes(4))]), ["PcrIndex"]),
        _invalid("trailing garbage", sha1 + b"\x01\x02\x03", ["Trailing"]),
        _invalid("Spec ID version 1.2", spec_only[:52] + b"\x01" + spec_only[53:], ["SpecId"]),
        _invalid("DigestCount larger than declared", spec_only + bytes(8) + (3).to_bytes(4, "little"),
                 ["DigestCount"]),
    ]
    tests = [{"tcId": i, **t} for i, t in enumerate(valid + invalid, 1)]
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": "TCG PC Client event log: parse and replay",
        "source": "synthetic logs built by the generator",
        "generator": "tools/vectors/gen_measuredboot.py",
        "notes": {
            "Full": "one log with most event types; StartupLocality 3; PCR17 starts at all-ones",
            "AllBanks": "sha1, sha256, sha384, sha512 and sm3_256",
            "HCRTM": "EV_EFI_HCRTM_EVENT on PCR0",
            "DigestCount": "an event without a sha1 digest: sha1 PCR0 is not replayable",
            "Sha1Log": "legacy TCG_PCR_EVENT-only log",
            "Padding": "fill after the last record is ignored",
            "Truncated": "input ends inside a record",
            "Limit": "a size beyond EventLogLimits",
            "Algorithm": "digest algorithm not in the Spec ID event",
            "PcrIndex": "PCR index > 23 outside EV_NO_ACTION",
            "Trailing": "bytes after the last record that are not fill",
            "SpecId": "unsupported Spec ID version",
        },
        "numberOfTests": len(tests),
        "testGroups": [
            {"type": "EventLogReplay", "tests": [t for t in tests if t["result"] == "valid"]},
            {"type": "EventLogMalformed", "tests": [t for t in tests if t["result"] == "invalid"]},
        ],
    }


def ima_vectors() -> dict[str, Any]:
    records = [
        build_ima_entry("boot_aggregate", bytes(32)),
        build_ima_entry("/usr/bin/sh", bytes(range(32))),
        build_ima_entry("/etc/passwd", bytes(range(32, 64)), algo="sha256"),
    ]
    ascii_lines = b"10 " + bytes(20).hex().encode() + b" ima-ng sha1:" + bytes(20).hex().encode() + b" /x\n"
    tests: list[dict[str, Any]] = []
    for n in range(1, len(records) + 1):
        data = b"".join(records[:n])
        log = parse_ima_log(data)
        tests.append(
            {
                "comment": f"binary ima-ng list of {n} entries",
                "flags": ["Binary"],
                "list": data.hex(),
                "result": "valid",
                "entries": n,
                "pcr10_sha1": log.replay("sha1").hex(),
                "pcr10_sha256": log.replay("sha256").hex(),
            }
        )
    violation_log = parse_ima_log(ascii_lines)
    tests.append(
        {
            "comment": "ASCII violation entry extends all-ones",
            "flags": ["Violation"],
            "list": ascii_lines.hex(),
            "result": "valid",
            "entries": 1,
            "pcr10_sha1": violation_log.replay("sha1").hex(),
            "pcr10_sha256": violation_log.replay("sha256").hex(),
        }
    )
    for comment, data in (
        ("truncated record", b"".join(records)[:-3]),
        ("ASCII line without newline", ascii_lines[:-1]),
        ("ASCII bad hex", ascii_lines.replace(b"sha1:00", b"sha1:zz")),
    ):
        try:
            parse_ima_log(data)
        except MalformedInputError as exc:
            tests.append(
                {
                    "comment": comment,
                    "flags": ["Malformed"],
                    "list": data.hex(),
                    "result": "invalid",
                    "error": type(exc).__name__,
                    "offset": exc.offset,
                }
            )
        else:
            raise SystemExit(f"generator bug: {comment} parsed")
    tests = [{"tcId": i, **t} for i, t in enumerate(tests, 1)]
    return {
        "schema": "trustedge-vectors/1",
        "algorithm": "Linux IMA measurement list: parse and replay into PCR10",
        "source": "synthetic lists built by the generator",
        "generator": "tools/vectors/gen_measuredboot.py",
        "notes": {
            "Binary": "binary_runtime_measurements, little-endian",
            "Violation": "all-zero template hash: PCR extended with all-ones",
            "Malformed": "must be rejected",
        },
        "numberOfTests": len(tests),
        "testGroups": [{"type": "ImaReplay", "tests": tests}],
    }


def render() -> dict[str, str]:
    files = {"eventlog.json": eventlog_vectors(), "ima.json": ima_vectors()}
    return {name: json.dumps(doc, indent=1, sort_keys=False) + "\n" for name, doc in files.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    rendered = render()
    if args.check:
        stale = [n for n, text in rendered.items() if not (OUT / n).is_file()
                 or (OUT / n).read_text(encoding="utf-8") != text]
        if stale:
            print(f"vectors/measuredboot out of date: {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
