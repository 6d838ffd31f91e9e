"""YAML view of an event log in the layout of ``tpm2_eventlog --eventlog-version=2``.

Existing tooling (Keylime's measured-boot policies, scripts) reads this layout,
so field names, number formats and nesting follow tpm2-tools 5.x. Device paths
are printed as hex (as a tpm2-tools build without libefivar does). The text is
written directly (no YAML library): every value comes from the bounded
decoders, and strings are escaped the way tpm2-tools escapes them.
"""

from __future__ import annotations

from typing import Final

from trustedge._binary import Reader
from trustedge.errors import MalformedInputError
from trustedge.measuredboot._decode import (
    EFI_GLOBAL_VARIABLE_GUID,
    SHIM_LOCK_GUID,
    decode_uefi_variable,
    format_guid,
)
from trustedge.measuredboot.events import Event
from trustedge.measuredboot.replay import EventLog

__all__ = ["to_tpm2_eventlog_yaml"]

_HEX_EVENT_TYPES: Final = frozenset(
    {0x00, 0x03, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0E, 0x0F, 0x10, 0x11, 0x12}
)
_BLOB_TYPES: Final = frozenset({0x01, 0x80000008})
_VARIABLE_TYPES: Final = frozenset({0x80000001, 0x80000002, 0x8000000C, 0x800000E0})
_IMAGE_TYPES: Final = frozenset({0x80000003, 0x80000004, 0x80000005})
_ACTION_TYPES: Final = frozenset({0x05, 0x80000007})


def _q(text: str) -> str:
    return '"' + text + '"'


def _escape(raw: bytes) -> str:
    """tpm2-tools' string escaping: C escapes, a leading space as \\x20."""
    out = []
    for i, b in enumerate(raw):
        if b == 0:
            out.append("\\0")
        elif b == 0x5C:
            out.append("\\\\")
        elif b == 0x22:
            out.append('\\"')
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x20 and i == 0:
            out.append("\\x20")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def to_tpm2_eventlog_yaml(log: EventLog, *, version: int = 2) -> str:
    """Render ``log`` (unverified) like ``tpm2_eventlog --eventlog-version=VERSION``.

    Version 2 decodes EFI variables (signature lists, boot entries, SecureBoot);
    version 1 prints variable data as hex. Deliberate differences: records
    with PCR index 0xFFFFFFFF are printed (tpm2-tools refuses them), SHA-1
    format logs are printed as a YAML list (tpm2-tools 5.x repeats mapping
    keys), undecodable data is printed as hex, and the replayed ``pcrs`` follow
    trustedge's replay rules (StartupLocality, H-CRTM).
    """
    if version not in (1, 2):
        raise ValueError("version must be 1 or 2")
    lines = ["---", f"version: {version}", "events:"]
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    for ev in log.unverified_events:
        lines.extend(_event_lines(ev, log, uintn, version))
    pcrs = log.replay()
    lines.append("pcrs:")
    if any(pcrs.values()):
        for bank, values in pcrs.items():
            if not values:
                continue
            lines.append(f"  {bank}:")
            lines.extend(f"    {pcr:<2} : 0x{value.hex()}" for pcr, value in values.items())
    return "\n".join(lines) + "\n"


def _event_lines(ev: Event, log: EventLog, uintn: int, version: int) -> list[str]:
    out = [f"- EventNum: {ev.number}", f"  PCRIndex: {ev.pcr}", f"  EventType: {ev.type_name}"]
    if ev.number == 0 and log.spec_id is not None:
        out.append(f"  Digest: {_q(bytes(20).hex())}")
        out.append(f"  EventSize: {len(ev.data)}")
        out.extend(_spec_id_lines(log))
        return out
    out.append(f"  DigestCount: {len(ev.digests)}")
    out.append("  Digests:")
    for bank, digest in ev.digests.items():
        out.append(f"  - AlgorithmId: {bank}")
        out.append(f"    Digest: {_q(digest.hex())}")
    out.append(f"  EventSize: {len(ev.data)}")
    try:
        out.extend(_data_lines(ev, uintn, version))
    except MalformedInputError:
        out.append(f"  Event: {_q(ev.data.hex())}")
    return out


def _spec_id_lines(log: EventLog) -> list[str]:
    spec = log.spec_id
    assert spec is not None
    out = [
        "  SpecID:",
        f"  - Signature: {spec.signature}",
        f"    platformClass: {spec.platform_class}",
        f"    specVersionMinor: {spec.spec_version_minor}",
        f"    specVersionMajor: {spec.spec_version_major}",
        f"    specErrata: {spec.spec_errata}",
        f"    uintnSize: {spec.uintn_size}",
        f"    numberOfAlgorithms: {len(spec.digest_sizes)}",
        "    Algorithms:",
    ]
    names = {
        0x0004: "sha1",
        0x000B: "sha256",
        0x000C: "sha384",
        0x000D: "sha512",
        0x0012: "sm3_256",
    }
    for i, (alg, size) in enumerate(spec.digest_sizes.items()):
        out.append(f"    - Algorithm[{i}]:")
        out.append(f"      algorithmId: {names.get(alg, f'0x{alg:x}')}")
        out.append(f"      digestSize: {size}")
    out.append(f"    vendorInfoSize: {len(spec.vendor_info)}")
    if spec.vendor_info:
        out.append(f"    vendorInfo: {_q(spec.vendor_info.hex())}")
    return out


def _data_lines(ev: Event, uintn: int, version: int) -> list[str]:
    etype = ev.event_type
    data = ev.data
    if etype in _BLOB_TYPES and len(data) == 16:
        r = Reader(data)
        return ["  Event:", f"    BlobBase: 0x{r.u64le():x}", f"    BlobLength: 0x{r.u64le():x}"]
    if etype in _ACTION_TYPES:
        return ["  Event: |-", f"    {data.decode('ascii', 'backslashreplace')}"]
    if etype == 0x0D:
        return ["  Event:", f"    String: {_q(_escape(data))}"]
    if etype in _VARIABLE_TYPES:
        return _variable_lines(ev) if version == 2 else _variable_lines_v1(ev)
    if etype in _IMAGE_TYPES:
        return _image_lines(data, uintn)
    if etype in (0x80000006, 0x8000000D) and version == 2:
        return _gpt_lines(data)
    return [f"  Event: {_q(data.hex())}"]


def _variable_lines_v1(ev: Event) -> list[str]:
    var = decode_uefi_variable(ev.data)
    out = [
        "  Event:",
        f"    VariableName: {var.guid}",
        f"    UnicodeNameLength: {var.unicode_name_length}",
        f"    VariableDataLength: {len(var.data)}",
        f"    UnicodeName: {var.name}",
    ]
    if var.data:
        out.append(f"    VariableData: {_q(var.data.hex())}")
    return out


def _variable_lines(ev: Event) -> list[str]:
    var = decode_uefi_variable(ev.data)
    out = [
        "  Event:",
        f"    VariableName: {var.guid}",
        f"    UnicodeNameLength: {var.unicode_name_length}",
        f"    VariableDataLength: {len(var.data)}",
        f"    UnicodeName: {var.name}",
    ]
    if not var.data and var.name not in ("PK", "KEK", "db", "dbx", "SecureBoot"):
        return out
    value = var.data
    name = var.name
    if var.guid == EFI_GLOBAL_VARIABLE_GUID and name == "SecureBoot":
        enabled = "Yes" if value == b"\x01" else "No"
        return [*out, "    VariableData:", f"      Enabled: '{enabled}'"]
    if ev.event_type == 0x800000E0:
        if var.guid == SHIM_LOCK_GUID and name == "SbatLevel":
            return [*out, "    VariableData:", f"      String: {_q(_escape(value))}"]
        if var.guid == SHIM_LOCK_GUID and name == "MokListTrusted" and len(value) == 1:
            return [*out, "    VariableData:", f"      Enabled: '{'Yes' if value[0] else 'No'}'"]
        r = Reader(value)
        owner = format_guid(r.read(16))
        return [
            *out,
            "    VariableData:",
            f"    - SignatureOwner: {owner}",
            f"      SignatureData: {r.rest().hex()}",
        ]
    if name in ("PK", "KEK", "db", "dbx") and ev.event_type == 0x80000001:
        return [*out, "    VariableData:", *_siglist_lines(value)]
    if var.guid == EFI_GLOBAL_VARIABLE_GUID and name == "BootOrder" and ev.event_type == 0x80000002:
        r = Reader(value)
        entries = [f"    - Boot{r.u16le():04X}" for _ in range(len(value) // 2)]
        r.expect_end()
        return [*out, "    VariableData:", *entries]
    if (
        var.guid == EFI_GLOBAL_VARIABLE_GUID
        and ev.event_type == 0x80000002
        and len(name) == 8
        and name.startswith("Boot")
    ):
        return [*out, "    VariableData:", *_load_option_lines(value)]
    if var.guid == EFI_GLOBAL_VARIABLE_GUID and len(value) == 1 and ev.event_type == 0x80000001:
        return [*out, f"    VariableData: {_q(value.hex())}"]
    return [*out, f"    VariableData: {_q(value.hex())}"]


def _siglist_lines(value: bytes) -> list[str]:
    r = Reader(value)
    out: list[str] = []
    while not r.at_end():
        sig_type = format_guid(r.read(16))
        list_size = r.u32le()
        header_size = r.u32le()
        sig_size = r.u32le()
        out += [
            f"    - SignatureType: {sig_type}",
            f"      SignatureListSize: {list_size}",
            f"      SignatureHeaderSize: {header_size}",
            f"      SignatureSize: {sig_size}",
            "      Keys:",
        ]
        r.skip(header_size)
        body = list_size - 28 - header_size
        if sig_size < 16 or body < 0 or body % sig_size:
            raise MalformedInputError("bad EFI_SIGNATURE_LIST", offset=r.offset)
        for _ in range(body // sig_size):
            owner = format_guid(r.read(16))
            out.append(f"      - SignatureOwner: {owner}")
            out.append(f"        SignatureData: {r.read(sig_size - 16).hex()}")
    return out


def _load_option_lines(value: bytes) -> list[str]:
    r = Reader(value)
    attributes = r.u32le()
    path_len = r.u16le()
    chars = bytearray()
    while True:
        ch = r.read(2)
        if ch == b"\x00\x00":
            break
        chars += ch
    desc = chars.decode("utf-16-le", "replace")
    return [
        f"      Enabled: '{'Yes' if attributes & 1 else 'No'}'",
        f"      FilePathListLength: {path_len}",
        f"      Description: {_q(desc)}",
        f"      DevicePath: '{r.rest().hex()}'",
    ]


def _image_lines(data: bytes, uintn: int) -> list[str]:
    r = Reader(data)
    read = r.u64le if uintn == 2 else r.u32le
    location, length, link, path_len = read(), read(), read(), read()
    # tpm2-tools prints every byte after the header, also when firmware logged
    # LengthOfDevicePath smaller than what follows (seen with option ROMs).
    path = r.read(path_len) + r.rest()
    return [
        "  Event:",
        f"    ImageLocationInMemory: 0x{location:x}",
        f"    ImageLengthInMemory: {length}",
        f"    ImageLinkTimeAddress: 0x{link:x}",
        f"    LengthOfDevicePath: {path_len}",
        f"    DevicePath: '{path.hex()}'",
    ]


def _gpt_lines(data: bytes) -> list[str]:
    r = Reader(data)
    sig = r.read(8)
    out = [
        "  Event:",
        "    Header:",
        f"      Signature: {_q(sig.decode('ascii', 'replace'))}",
        f"      Revision: 0x{r.u32le():x}",
    ]
    header_size = r.u32le()
    out += [
        f"      HeaderSize: {header_size}",
        f"      HeaderCRC32: 0x{r.u32le():x}",
    ]
    r.skip(4)
    out += [
        f"      MyLBA: 0x{r.u64le():x}",
        f"      AlternateLBA: 0x{r.u64le():x}",
        f"      FirstUsableLBA: 0x{r.u64le():x}",
        f"      LastUsableLBA: 0x{r.u64le():x}",
        f"      DiskGUID: {format_guid(r.read(16))}",
        f"      PartitionEntryLBA: 0x{r.u64le():x}",
        f"      NumberOfPartitionEntry: {r.u32le()}",
    ]
    entry_size = r.u32le()
    out += [
        f"      SizeOfPartitionEntry: {entry_size}",
        f"      PartitionEntryArrayCRC32: 0x{r.u32le():x}",
    ]
    if header_size > 92:
        r.skip(header_size - 92)
    count = r.count(r.u64le(), 4096)
    out += [f"    NumberOfPartitions: {count}", "    Partitions:"]
    for _ in range(count):
        e = r.sub(entry_size)
        out += [
            f"    - PartitionTypeGUID: {format_guid(e.read(16))}",
            f"      UniquePartitionGUID: {format_guid(e.read(16))}",
            f"      StartingLBA: 0x{e.u64le():x}",
            f"      EndingLBA: 0x{e.u64le():x}",
            f"      Attributes: 0x{e.u64le():x}",
        ]
        name = e.read(72).decode("utf-16-le", "replace").split("\x00", 1)[0]
        out.append(f"      PartitionName: {_q(name)}")
    return out
