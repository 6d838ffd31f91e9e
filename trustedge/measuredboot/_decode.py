"""Decoders of event data: EFI variables, signature lists, device paths, GPT, strings.

Every decoder reads through :class:`trustedge._binary.Reader` and raises only
:class:`~trustedge.errors.MalformedInputError`; :func:`decode_event` catches
that and returns the raw bytes with the error, so one odd event never hides
the rest of a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509

from trustedge._binary import Reader
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.consistency import (
    CCEL_PCR_GROUPS,
    SHIM_PCR14_VARIABLES,
    SYSTEMD_STUB_ARCHIVES,
)

__all__ = [
    "EFI_CERT_SHA256_GUID",
    "EFI_CERT_X509_GUID",
    "EFI_GLOBAL_VARIABLE_GUID",
    "EFI_IMAGE_SECURITY_DATABASE_GUID",
    "EVENT_TAG_NAMES",
    "SHIM_LOCK_GUID",
    "DecodedEvent",
    "DerCertificate",
    "LoadOption",
    "SignatureData",
    "SignatureList",
    "UefiVariable",
    "decode_device_path",
    "decode_device_paths",
    "decode_event",
    "decode_signature_lists",
    "decode_uefi_variable",
    "format_guid",
]

EFI_GLOBAL_VARIABLE_GUID: Final = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
EFI_IMAGE_SECURITY_DATABASE_GUID: Final = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
SHIM_LOCK_GUID: Final = "605dab50-e046-4300-abb6-3dd810dd8b23"
EFI_CERT_X509_GUID: Final = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
EFI_CERT_SHA256_GUID: Final = "c1c41626-504c-4092-aca9-41f936934328"

_GUID_NAMES: Final[dict[str, str]] = {
    EFI_GLOBAL_VARIABLE_GUID: "EFI_GLOBAL_VARIABLE",
    EFI_IMAGE_SECURITY_DATABASE_GUID: "EFI_IMAGE_SECURITY_DATABASE",
    SHIM_LOCK_GUID: "SHIM_LOCK",
    EFI_CERT_X509_GUID: "EFI_CERT_X509",
    EFI_CERT_SHA256_GUID: "EFI_CERT_SHA256",
    "3c5766e8-269c-4e34-aa14-ed776e85b3b6": "EFI_CERT_RSA2048",
    "826ca512-cf10-4ac9-b187-be01496631bd": "EFI_CERT_SHA1",
    "0b6e5233-a65c-44c9-9407-d9ab83bfc8bd": "EFI_CERT_SHA224",
    "ff3e5307-9fd0-48c9-85f1-8ad56c701e01": "EFI_CERT_SHA384",
    "093e0fae-a6c4-4f50-9f1b-d41e2b89c19a": "EFI_CERT_SHA512",
    "3bd2a492-96c0-4079-b420-fcf98ef103ed": "EFI_CERT_X509_SHA256",
    "7076876e-80c2-4ee6-aad2-28b349a6865b": "EFI_CERT_X509_SHA384",
    "446dbf63-2502-4cda-bcfa-2465d2b0fe9d": "EFI_CERT_X509_SHA512",
}

_MAX_NAME_CHARS: Final = 1024
_MAX_ITEMS: Final = 100_000


def format_guid(raw: bytes) -> str:
    """Text form of a 16-byte EFI_GUID (first three fields little-endian)."""
    if len(raw) != 16:
        raise ValueError("a GUID is 16 bytes")
    a = int.from_bytes(raw[0:4], "little")
    b = int.from_bytes(raw[4:6], "little")
    c = int.from_bytes(raw[6:8], "little")
    return f"{a:08x}-{b:04x}-{c:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


def _guid(r: Reader, what: str = "GUID") -> str:
    return format_guid(r.read(16, what))


def _utf16(raw: bytes, offset: int) -> str:
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise MalformedInputError("invalid UTF-16 text", offset=offset + exc.start) from None


def _c_string(raw: bytes) -> str:
    """ASCII/UTF-8 text without trailing NULs; undecodable bytes escaped."""
    return raw.rstrip(b"\x00").decode("utf-8", "backslashreplace")


def _load_certificate(data: bytes) -> x509.Certificate | None:
    if len(data) < 64 or data[0] != 0x30:
        return None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        return None


def _certificate_json(cert: x509.Certificate | None) -> dict[str, str]:
    if cert is None:
        return {}
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string()}


def _der_length(data: bytes) -> int | None:
    """Total length of the DER SEQUENCE at the start of ``data`` (None if it is not one)."""
    r = Reader(data)
    try:
        if r.u8("DER tag") != 0x30:
            return None
        first = r.u8("DER length")
        if first < 0x80:
            length = first
        elif 0x81 <= first <= 0x83:
            length = int.from_bytes(r.read(first & 0x7F, "DER length"), "big")
        else:
            return None
    except MalformedInputError:
        return None
    total = r.offset + length
    return total if total <= len(data) else None


@dataclass(frozen=True)
class DerCertificate:
    """A bare DER X.509 certificate (shim's ``Shim``/``MokList`` authorities)
    and any bytes logged after it."""

    data: bytes
    trailing: bytes = b""

    def certificate(self) -> x509.Certificate | None:
        """The certificate, or None when the bytes do not parse as X.509."""
        return _load_certificate(self.data)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "certificate": self.data.hex(),
            **_certificate_json(self.certificate()),
        }
        if self.trailing:
            out["trailing"] = self.trailing.hex()
        return out


@dataclass(frozen=True)
class SignatureData:
    """One EFI_SIGNATURE_DATA: owner GUID and the signature (a DER cert or a hash)."""

    owner: str
    data: bytes

    def certificate(self) -> x509.Certificate | None:
        """The entry as an X.509 certificate, or None when it is not DER X.509 (a hash)."""
        return _load_certificate(self.data)

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "data": self.data.hex(),
            **_certificate_json(self.certificate()),
        }


@dataclass(frozen=True)
class SignatureList:
    """One EFI_SIGNATURE_LIST (type GUID, header, entries)."""

    signature_type: str
    header: bytes
    signatures: tuple[SignatureData, ...]

    @property
    def type_name(self) -> str:
        return _GUID_NAMES.get(self.signature_type, self.signature_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.signature_type,
            "type_name": self.type_name,
            "header": self.header.hex(),
            "signatures": [s.to_json() for s in self.signatures],
        }


def decode_signature_lists(data: bytes, *, base_offset: int = 0) -> tuple[SignatureList, ...]:
    """Decode a concatenation of EFI_SIGNATURE_LIST structures (db, dbx, KEK, PK, MokList).

    Raises :class:`~trustedge.errors.MalformedInputError` when sizes do not add up.
    """
    r = Reader(data, base_offset=base_offset)
    out = []
    while not r.at_end():
        start = r.offset
        sig_type = _guid(r, "SignatureType")
        list_size = r.u32le("SignatureListSize")
        header_size = r.u32le("SignatureHeaderSize")
        sig_size = r.u32le("SignatureSize")
        body = list_size - 28 - header_size
        if list_size < 28 or body < 0 or sig_size < 16 or body % sig_size:
            raise MalformedInputError(
                f"inconsistent EFI_SIGNATURE_LIST sizes ({list_size}/{header_size}/{sig_size})",
                offset=start,
            )
        header = r.read(header_size, "SignatureHeader")
        sigs = []
        for _ in range(r.count(body // sig_size, _MAX_ITEMS, "signatures")):
            owner = _guid(r, "SignatureOwner")
            sigs.append(SignatureData(owner, r.read(sig_size - 16, "SignatureData")))
        out.append(SignatureList(sig_type, header, tuple(sigs)))
    return tuple(out)


@dataclass(frozen=True)
class LoadOption:
    """An EFI_LOAD_OPTION (Boot####): attributes, description, device path."""

    attributes: int
    description: str
    #: Every path of the FilePathList, as one text (see :func:`decode_device_path`).
    device_path: str
    device_path_raw: bytes
    optional_data: bytes
    #: Each device path of the (multi-instance) FilePathList on its own.
    device_paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": self.attributes,
            "description": self.description,
            "device_path": self.device_path,
            "device_paths": list(self.device_paths),
            "optional_data": self.optional_data.hex(),
        }


def _decode_load_option(data: bytes, base: int) -> LoadOption:
    r = Reader(data, base_offset=base)
    attributes = r.u32le("Attributes")
    path_len = r.u16le("FilePathListLength")
    chars = bytearray()
    while True:
        ch = r.read(2, "Description")
        if ch == b"\x00\x00":
            break
        chars += ch
        if len(chars) > 2 * _MAX_NAME_CHARS:
            raise MalformedInputError("load option description too long", offset=r.offset)
    desc = _utf16(bytes(chars), base + 6)
    path_off = r.offset
    path = r.read(path_len, "FilePathList")
    paths = decode_device_paths(path, base_offset=path_off)
    return LoadOption(attributes, desc, _join_paths(paths), path, r.rest(), paths)


@dataclass(frozen=True)
class UefiVariable:
    """UEFI_VARIABLE_DATA: GUID, UTF-16 name, data, and what the data decodes to."""

    guid: str
    name: str
    data: bytes
    unicode_name_length: int
    decoded: Any = None
    #: Bytes of the event after VariableData (shim's authorities carry some).
    trailing: bytes = b""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "guid": self.guid,
            "name": self.name,
            "data": self.data.hex(),
        }
        if self.decoded is not None:
            out["decoded"] = _jsonable(self.decoded)
        if self.trailing:
            out["trailing"] = self.trailing.hex()
        return out


def decode_uefi_variable(data: bytes, *, base_offset: int = 0) -> UefiVariable:
    """Decode UEFI_VARIABLE_DATA; the value is decoded for well-known variables.

    Raises :class:`~trustedge.errors.MalformedInputError` when lengths do not fit;
    bytes after VariableData are kept in :attr:`UefiVariable.trailing`.
    """
    r = Reader(data, base_offset=base_offset)
    guid = _guid(r, "VariableName")
    name_len = r.u64le("UnicodeNameLength")
    data_len = r.u64le("VariableDataLength")
    if name_len > _MAX_NAME_CHARS:
        raise MalformedInputError(f"UnicodeNameLength {name_len}", offset=base_offset + 16)
    name_off = r.offset
    name = _utf16(r.read(2 * name_len, "UnicodeName"), name_off).rstrip("\x00")
    value_off = r.offset
    value = r.read(data_len, "VariableData")
    decoded = _decode_variable_value(guid, name, value, value_off)
    return UefiVariable(guid, name, value, name_len, decoded, r.rest())


def _decode_variable_value(guid: str, name: str, value: bytes, base: int) -> Any:
    try:
        if guid == EFI_GLOBAL_VARIABLE_GUID:
            if name in ("SecureBoot", "SetupMode", "AuditMode", "DeployedMode") and len(value) == 1:
                return {"enabled": value[0] == 1}
            if name in ("PK", "KEK"):
                return _signature_lists_or_none(value, base)
            if name == "BootOrder":
                r = Reader(value, base_offset=base)
                return [r.u16le("BootOrder entry") for _ in range(len(value) // 2)]
            if len(name) == 8 and name.startswith("Boot") and _is_hex(name[4:]):
                return _decode_load_option(value, base)
        if guid == EFI_IMAGE_SECURITY_DATABASE_GUID and name in _DB_NAMES:
            return _signature_lists_or_authority(value, base)
        if guid == SHIM_LOCK_GUID and name in ("MokList", "MokListX", "MokListTrusted"):
            if name == "MokListTrusted" and len(value) == 1:
                return {"enabled": value[0] == 1}
            return _signature_lists_or_authority(value, base)
        if guid == SHIM_LOCK_GUID and name in ("SbatLevel", "SbatLevelRT"):
            return _c_string(value)
        if guid == SHIM_LOCK_GUID and name == "Shim":
            return _authority_value(value)
    except MalformedInputError:
        return None
    return None


_DB_NAMES: Final = frozenset({"db", "dbx", "dbt", "dbr", "vendor_db", "vendor_dbx"})


def _signature_lists_or_authority(value: bytes, base: int) -> Any:
    """Signature lists (a configuration variable) or, as EV_EFI_VARIABLE_AUTHORITY
    logs them, the one entry that verified an image."""
    try:
        return _signature_lists_or_none(value, base)
    except MalformedInputError:
        found = _authority_value(value)
        if found is None:
            raise
        return found


def _authority_value(value: bytes) -> SignatureData | DerCertificate | None:
    """A single EFI_SIGNATURE_DATA (owner GUID + DER certificate: firmware's "db"
    authority) or a bare DER certificate (shim's), else None."""
    size = _der_length(value)
    if size is not None and _load_certificate(value[:size]) is not None:
        return DerCertificate(value[:size], value[size:])
    if len(value) > 16:
        size = _der_length(value[16:])
        if size == len(value) - 16 and _load_certificate(value[16:]) is not None:
            return SignatureData(format_guid(value[:16]), value[16:])
    return None


def _signature_lists_or_none(value: bytes, base: int) -> tuple[SignatureList, ...] | None:
    if not value:
        return ()
    return decode_signature_lists(value, base_offset=base)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789ABCDEFabcdef" for c in text)


# -- device paths -----------------------------------------------------------
def decode_device_path(data: bytes, *, base_offset: int = 0) -> str:
    """Render an EFI device path as text (``PciRoot(0x0)/Pci(0x1,0x0)/...``).

    Instances (End Instance nodes) are joined by ``,``; further device paths
    after an End Entire node (a multi-instance FilePathList) by ``|``; bytes
    after the last path that are no device path are shown as
    ``Trailing(hex)``. Common node types get their UEFI text form; others
    (and known nodes with unexpected lengths) render as
    ``Path(type,subtype,hex)``. Raises MalformedInputError on a bad node length
    in the first path.
    """
    return _join_paths(decode_device_paths(data, base_offset=base_offset))


def decode_device_paths(data: bytes, *, base_offset: int = 0) -> tuple[str, ...]:
    """Every device path in ``data`` (a FilePathList), each rendered as
    :func:`decode_device_path` renders one; undecodable bytes after the first
    path become a final ``Trailing(hex)`` entry."""
    r = Reader(data, base_offset=base_offset)
    paths: list[str] = []
    while not r.at_end() and len(paths) < _MAX_PATHS:
        start = r.offset
        try:
            paths.append(_one_device_path(r))
        except MalformedInputError:
            if not paths:
                raise
            r = Reader(data[start - base_offset :], base_offset=start)
            paths.append(f"Trailing({r.rest().hex()})")
    if not r.at_end():
        paths.append(f"Trailing({r.rest().hex()})")
    return tuple(paths)


_MAX_PATHS: Final = 64


def _join_paths(paths: tuple[str, ...]) -> str:
    return "|".join(paths)


def _one_device_path(r: Reader) -> str:
    """Nodes up to and including an End Entire node (or the end of the input)."""
    parts: list[str] = []
    instance: list[str] = []
    for _ in range(_MAX_ITEMS):
        if r.at_end():
            break
        node_off = r.offset
        typ = r.u8("device path type")
        sub = r.u8("device path subtype")
        length = r.u16le("device path length")
        if length < 4:
            raise MalformedInputError(f"device path node length {length}", offset=node_off)
        body = r.sub(length - 4, "device path node")
        if typ == 0x7F:
            if instance:
                parts.append("/".join(instance))
            instance = []
            if sub == 0xFF:
                break
            continue
        instance.append(_node_text(typ, sub, body))
    if instance:
        parts.append("/".join(instance))
    return ",".join(parts)


def _node_text(typ: int, sub: int, r: Reader) -> str:
    raw = r.peek(r.remaining)
    try:
        text = _known_node(typ, sub, r)
        if text is not None and r.at_end():
            return text
    except MalformedInputError:
        pass
    # Unknown node, or a known one with a length its type does not have:
    # every byte stays visible.
    return f"Path({typ},{sub},{raw.hex()})"


def _ip_mode(value: int) -> str:
    return {0: "Static", 1: "DHCP"}.get(value, f"0x{value:x}")


def _ip_protocol(value: int) -> str:
    return {6: "TCP", 17: "UDP"}.get(value, f"0x{value:x}")


def _known_node(typ: int, sub: int, r: Reader) -> str | None:
    if typ == 1 and sub == 1:
        fn = r.u8()
        dev = r.u8()
        return f"Pci(0x{dev:x},0x{fn:x})"
    if typ == 1 and sub == 2:
        return f"PcCard(0x{r.u8():x})"
    if typ == 1 and sub == 5:
        return f"Ctrl(0x{r.u32le():x})"
    if typ == 1 and sub == 6:
        return f"BMC(0x{r.u8():x},0x{r.u64le():x})"
    if typ == 1 and sub == 3:
        mtype = r.u32le()
        start = r.u64le()
        end = r.u64le()
        return f"MemoryMapped(0x{mtype:x},0x{start:x},0x{end:x})"
    if typ == 1 and sub == 4:
        return f"VenHw({_guid(r)}{_tail(r)})"
    if typ == 2 and sub == 1:
        hid = r.u32le()
        uid = r.u32le()
        if hid == 0x0A0341D0:
            return f"PciRoot(0x{uid:x})"
        if hid == 0x0A0841D0:
            return f"PcieRoot(0x{uid:x})"
        return f"Acpi(0x{hid:x},0x{uid:x})"
    if typ == 2 and sub == 2:
        hid = r.u32le()
        uid = r.u32le()
        cid = r.u32le()
        strings = r.rest().split(b"\x00")
        texts = ",".join(_c_string(t) for t in strings[:3])
        return f"AcpiEx(0x{hid:x},0x{cid:x},0x{uid:x},{texts})"
    if typ == 2 and sub == 3:
        adrs = [r.u32le() for _ in range(r.remaining // 4)]
        return "AcpiAdr(" + ",".join(f"0x{a:x}" for a in adrs) + ")"
    if typ == 3 and sub == 1:
        primary = r.u8()
        slave = r.u8()
        lun = r.u16le()
        channel = "Secondary" if primary else "Primary"
        return f"Ata({channel},{'Slave' if slave else 'Master'},0x{lun:x})"
    if typ == 3 and sub == 2:
        return f"Scsi(0x{r.u16le():x},0x{r.u16le():x})"
    if typ == 3 and sub == 5:
        return f"USB(0x{r.u8():x},0x{r.u8():x})"
    if typ == 3 and sub == 11:
        mac = r.read(32)
        iftype = r.u8()
        return f"MAC({mac[:6].hex()},0x{iftype:x})"
    if typ == 3 and sub == 12:
        local = r.read(4)
        remote = r.read(4)
        local_port = r.u16le()
        remote_port = r.u16le()
        proto = r.u16le()
        mode = r.u8()
        tail = ""
        if r.remaining:  # UEFI 2.x: gateway and subnet mask
            gateway = r.read(4)
            mask = r.read(4)
            tail = f",{_ipv4(gateway)},{_ipv4(mask)}"
        return (
            f"IPv4({_ipv4(remote)},{_ip_protocol(proto)},{_ip_mode(mode)},{_ipv4(local)}"
            f"{tail})" + (f"[{local_port}->{remote_port}]" if local_port or remote_port else "")
        )
    if typ == 3 and sub == 13:
        local6 = r.read(16)
        remote6 = r.read(16)
        local_port = r.u16le()
        remote_port = r.u16le()
        proto = r.u16le()
        origin = r.u8()
        tail = ""
        if r.remaining:  # UEFI 2.x: prefix length and gateway
            prefix = r.u8()
            gateway6 = r.read(16)
            tail = f",0x{prefix:x},{_ipv6(gateway6)}"
        mode6 = {0: "Static", 1: "StatelessAutoConfigure", 2: "StatefulAutoConfigure"}.get(
            origin, f"0x{origin:x}"
        )
        return f"IPv6({_ipv6(remote6)},{_ip_protocol(proto)},{mode6},{_ipv6(local6)}{tail})" + (
            f"[{local_port}->{remote_port}]" if local_port or remote_port else ""
        )
    if typ == 3 and sub == 15:
        vid = r.u16le()
        pid = r.u16le()
        cls = r.u8()
        subcls = r.u8()
        proto8 = r.u8()
        return f"UsbClass(0x{vid:x},0x{pid:x},0x{cls:x},0x{subcls:x},0x{proto8:x})"
    if typ == 3 and sub == 17:
        return f"Unit(0x{r.u8():x})"
    if typ == 3 and sub == 20:
        return f"Vlan({r.u16le()})"
    if typ == 3 and sub == 26:
        return f"SD(0x{r.u8():x})"
    if typ == 3 and sub == 29:
        return f"eMMC(0x{r.u8():x})"
    if typ == 3 and sub == 25:
        return f"UFS(0x{r.u8():x},0x{r.u8():x})"
    if typ == 3 and sub == 31:
        dns_v6 = r.u8()
        size = 16 if dns_v6 else 4
        if r.remaining % size:
            return None
        servers = [r.read(size) for _ in range(r.remaining // size)]
        render = _ipv6 if dns_v6 else _ipv4
        return "Dns(" + ",".join(render(s) for s in servers) + ")"
    if typ == 3 and sub == 18:
        return f"Sata(0x{r.u16le():x},0x{r.u16le():x},0x{r.u16le():x})"
    if typ == 3 and sub == 23:
        nsid = r.u32le()
        eui = r.read(8)
        return f"NVMe(0x{nsid:x},{'-'.join(f'{b:02X}' for b in eui)})"
    if typ == 3 and sub == 10:
        return f"VenMsg({_guid(r)}{_tail(r)})"
    if typ == 3 and sub == 24:
        return f"Uri({_c_string(r.rest())})"
    if typ == 4 and sub == 1:
        part = r.u32le()
        start = r.u64le()
        size = r.u64le()
        sig = r.read(16)
        fmt = r.u8()
        sig_type = r.u8()
        if sig_type == 2:
            sig_text = format_guid(sig)
        elif sig_type == 1:
            sig_text = f"0x{int.from_bytes(sig[:4], 'little'):08x}"
        else:
            sig_text = "0"
        fmt_text = {1: "MBR", 2: "GPT"}.get(fmt, f"0x{fmt:x}")
        return f"HD({part},{fmt_text},{sig_text},0x{start:x},0x{size:x})"
    if typ == 4 and sub == 2:
        entry = r.u32le()
        start = r.u64le()
        size = r.u64le()
        return f"CDROM(0x{entry:x},0x{start:x},0x{size:x})"
    if typ == 4 and sub == 3:
        return f"VenMedia({_guid(r)}{_tail(r)})"
    if typ == 4 and sub == 4:
        return _utf16(r.rest(), r.offset).rstrip("\x00")
    if typ == 4 and sub == 6:
        return f"FvFile({_guid(r)})"
    if typ == 4 and sub == 7:
        return f"Fv({_guid(r)})"
    if typ == 4 and sub == 8:
        r.u32le()
        start = r.u64le()
        end = r.u64le()
        return f"Offset(0x{start:x},0x{end:x})"
    if typ == 4 and sub == 9:
        start = r.u64le()
        end = r.u64le()
        disk_type = _guid(r)
        instance = r.u16le()
        return f"RamDisk(0x{start:x},0x{end:x},{instance},{disk_type})"
    if typ == 4 and sub == 5:
        return f"Protocol({_guid(r)})"
    if typ == 5 and sub == 1:
        dev_type = r.u16le()
        status = r.u16le()
        desc = _c_string(r.rest())
        return f"BBS(0x{dev_type:x},{desc},0x{status:x})"
    return None


def _ipv4(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


def _ipv6(raw: bytes) -> str:
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))


def _tail(r: Reader) -> str:
    rest = r.rest()
    return f",{rest.hex()}" if rest else ""


# -- whole events -----------------------------------------------------------
@dataclass(frozen=True)
class DecodedEvent:
    """What an event's data decodes to.

    ``kind`` names the structure (``"uefi_variable"``, ``"image_load"``, ``"string"``,
    ``"raw"`` ...); ``fields`` holds the decoded values; ``error`` is set (and
    ``kind == "raw"``) when the data did not decode as its type says.
    """

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **_jsonable(self.fields)}
        if self.summary:
            out["summary"] = self.summary
        if self.error:
            out["error"] = self.error
        return out


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def decode_event(event: Any, *, uintn_size: int = 2, ccel: bool = False) -> DecodedEvent:
    """Decode the data of ``event`` (an :class:`~trustedge.measuredboot.Event`) by its type.

    Never raises for bad data: a structure that does not decode is returned
    as ``kind="raw"`` with ``error`` set. The result is as unverified as the event.
    ``ccel`` says ``event.pcr`` is a CCEL measurement-register index (EV_IPL
    strings are read by the PCRs it stands for).
    """
    etype: int = event.event_type
    data: bytes = event.data
    base = event.offset if event.offset >= 0 else 0
    pcrs = CCEL_PCR_GROUPS.get(event.pcr, frozenset()) if ccel else frozenset((event.pcr,))
    try:
        return _decode(etype, data, base, uintn_size, pcrs)
    except MalformedInputError as exc:
        return DecodedEvent("raw", {"data": data}, error=str(exc))


#: EV_EVENT_TAG taggedEventID -> name (Linux/systemd tags and Windows SIPA containers).
EVENT_TAG_NAMES: Final[dict[int, str]] = {
    0x8F3B22EC: "Linux initrd",
    0x8F3B22ED: "Linux load options",
    0x40010001: "SIPA trust boundary",
    0x40010002: "SIPA ELAM aggregation",
    0x40010003: "SIPA loaded-module aggregation",
    0xC0010004: "SIPA trustpoint aggregation",
    0x40010005: "SIPA KSR aggregation",
    0x40010006: "SIPA KSR signed-measurement aggregation",
}

_SEPARATOR_MEANINGS: Final = {0: "normal", 0xFFFFFFFF: "normal (all-ones)", 1: "error"}


def _decode_separator(data: bytes, base: int) -> DecodedEvent:
    if data == b"WBCL":
        # Windows Boot Configuration Log: Windows' separator for PCR 12-14.
        return DecodedEvent(
            "separator", {"value": "WBCL", "meaning": "Windows (WBCL)"}, "separator WBCL (Windows)"
        )
    r = Reader(data, base_offset=base)
    value = r.u32le("separator value")
    r.expect_end()
    kind = _SEPARATOR_MEANINGS.get(value, "unknown")
    return DecodedEvent("separator", {"value": value, "meaning": kind}, f"separator {kind}")


def _decode(
    etype: int, data: bytes, base: int, uintn: int, pcrs: frozenset[int] = frozenset()
) -> DecodedEvent:
    if etype == 0x03:
        return _decode_no_action(data, base)
    if etype == 0x04:
        return _decode_separator(data, base)
    if etype in (0x05, 0x80000007, 0x80000010):
        text = _c_string(data)
        return DecodedEvent("string", {"text": text}, text)
    if etype in (0x80000001, 0x80000002, 0x8000000C, 0x800000E0):
        var = decode_uefi_variable(data, base_offset=base)
        return DecodedEvent("uefi_variable", {"variable": var}, f"{var.name} ({var.guid})")
    if etype in (0x80000003, 0x80000004, 0x80000005):
        return _decode_image_load(data, base, uintn)
    if etype in (0x80000006, 0x8000000D):
        return _decode_gpt(data, base)
    if etype in (0x01, 0x07, 0x80000008) and len(data) == 16:
        r = Reader(data, base_offset=base)
        blob_base = r.u64le("BlobBase")
        length = r.u64le("BlobLength")
        return DecodedEvent(
            "firmware_blob",
            {"base": blob_base, "length": length},
            f"blob at 0x{blob_base:x}, 0x{length:x} bytes",
        )
    if etype == 0x8000000A:
        r = Reader(data, base_offset=base)
        desc = _c_string(r.bytes_u8("BlobDescription"))
        blob_base = r.u64le("BlobBase")
        length = r.u64le("BlobLength")
        r.expect_end()
        return DecodedEvent(
            "firmware_blob2", {"description": desc, "base": blob_base, "length": length}, desc
        )
    if etype in (0x80000009, 0x8000000B):
        return _decode_handoff(data, base, uintn, etype == 0x8000000B)
    if etype == 0x06:
        r = Reader(data, base_offset=base)
        tag = r.u32le("taggedEventID")
        tag_data = r.bytes_u32le("taggedEventData")
        r.expect_end()
        fields: dict[str, Any] = {"tag": tag, "data": tag_data}
        tag_name = EVENT_TAG_NAMES.get(tag)
        if tag_name is None:
            return DecodedEvent("event_tag", fields, f"tag 0x{tag:x}")
        fields["tag_name"] = tag_name
        if tag in (0x8F3B22EC, 0x8F3B22ED):  # systemd: a NUL-terminated description
            fields["description"] = _c_string(tag_data)
        return DecodedEvent("event_tag", fields, f"tag 0x{tag:x} ({tag_name})")
    if etype == 0x0D:
        return _decode_ipl(data, pcrs)
    if etype in (0x08, 0x01, 0x07, 0x0C, 0x0A, 0x09, 0x11, 0x13):
        return _decode_text_or_blob(data)
    return DecodedEvent("raw", {"data": data})


def _decode_no_action(data: bytes, base: int) -> DecodedEvent:
    if data.startswith(b"Spec ID Event"):
        sig = _c_string(data[:16])
        return DecodedEvent("spec_id", {"signature": sig}, sig)
    if data.startswith(b"StartupLocality\x00") and len(data) >= 17:
        return DecodedEvent(
            "startup_locality", {"locality": data[16]}, f"StartupLocality {data[16]}"
        )
    if data.startswith(b"SP800-155 Event"):
        sig = _c_string(data[:16])
        return DecodedEvent("sp800_155", {"signature": sig, "data": data[16:]}, sig)
    return DecodedEvent("raw", {"data": data})


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in "\t\n\r" for ch in text)


def _decode_text_or_blob(data: bytes) -> DecodedEvent:
    """Strings as firmware and boot loaders log them: UTF-16LE or NUL-terminated 8-bit."""
    if len(data) >= 2 and len(data) % 2 == 0 and data[1::2].count(0) == len(data) // 2:
        try:
            text = data.decode("utf-16-le").rstrip("\x00")
            if _printable(text):
                return DecodedEvent("string", {"text": text, "encoding": "utf-16-le"}, text)
        except UnicodeDecodeError:
            pass
    try:
        text = data.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return DecodedEvent("raw", {"data": data})
    if data and _printable(text):
        return DecodedEvent("string", {"text": text}, text)
    return DecodedEvent("raw", {"data": data})


#: GRUB's EV_IPL tags -> the field the text after them goes to (upstream
#: ``"tag: "``, RHEL/Fedora/RHCOS ``"tag "``; see consistency.GRUB_PREFIXES).
_GRUB_TAGS: Final = (
    ("grub_cmd: ", "grub_command"),
    ("kernel_cmdline: ", "kernel_cmdline"),
    ("grub_kernel_cmdline ", "kernel_cmdline"),
    ("grub_cmd ", "grub_command"),
)


def _decode_ipl(data: bytes, pcrs: frozenset[int]) -> DecodedEvent:
    name = data.split(b"\x00", 1)[0]
    if name in SHIM_PCR14_VARIABLES and (14 in pcrs or not pcrs):
        # shim: the variable's name (its content is only in the digest); some
        # versions log bytes after the NUL.
        var_name = name.decode("ascii")
        shim: dict[str, Any] = {"text": var_name, "shim_variable": var_name}
        extra = data[len(name) + 1 :]
        if extra.strip(b"\x00"):
            shim["trailing"] = extra
        return DecodedEvent("string", shim, var_name)
    lost_byte = len(data) % 2 == 1 and _utf16_ascii(data + b"\x00")
    decoded = _decode_text_or_blob(data + b"\x00" if lost_byte else data)
    text = decoded.fields.get("text")
    if not isinstance(text, str):
        return decoded
    fields = dict(decoded.fields)
    if lost_byte:
        fields["lost_final_byte"] = True
    for prefix, key in _GRUB_TAGS:
        if text.startswith(prefix):
            fields[key] = text[len(prefix) :]
            break
    utf16 = decoded.fields.get("encoding") == "utf-16-le"
    if utf16 and ("initrd=" in text or 8 in pcrs or (12 in pcrs and len(pcrs) == 1)):
        # systemd-boot: the load options on PCR8 (old) or PCR12 (systemd-stub),
        # not its descriptions of the cpio archives it measures on PCR12.
        if text not in SYSTEMD_STUB_ARCHIVES:
            fields["kernel_cmdline"] = text
    if 9 in pcrs and len(pcrs) == 1 and "grub_command" not in fields:
        if text.startswith("grub_linuxefi "):
            fields["grub_linuxefi"] = text[len("grub_linuxefi ") :]
        else:
            fields["file"] = text
    return DecodedEvent("string", fields, text)


def _utf16_ascii(data: bytes) -> bool:
    return len(data) >= 2 and data[1::2].count(0) == len(data) // 2


def _decode_image_load(data: bytes, base: int, uintn: int) -> DecodedEvent:
    r = Reader(data, base_offset=base)
    read_uintn = r.u64le if uintn == 2 else r.u32le
    location = read_uintn("ImageLocationInMemory")
    length = read_uintn("ImageLengthInMemory")
    link = read_uintn("ImageLinkTimeAddress")
    path_len = read_uintn("LengthOfDevicePath")
    path_off = r.offset
    raw = r.read(path_len, "DevicePath")
    path = decode_device_path(raw, base_offset=path_off)
    fields: dict[str, Any] = {
        "image_location": location,
        "image_length": length,
        "link_time_address": link,
        "device_path": path,
        "device_path_raw": raw,
    }
    if not r.at_end():
        fields["trailing"] = r.rest()
    return DecodedEvent("image_load", fields, path)


def _decode_gpt(data: bytes, base: int) -> DecodedEvent:
    r = Reader(data, base_offset=base)
    sig = r.read(8, "GPT signature")
    if sig != b"EFI PART":
        raise MalformedInputError("not a GPT header", offset=base, expected="EFI PART")
    revision = r.u32le("Revision")
    header_size = r.u32le("HeaderSize")
    r.skip(4 + 4)  # CRC32 and reserved
    my_lba = r.u64le("MyLBA")
    alt_lba = r.u64le("AlternateLBA")
    first = r.u64le("FirstUsableLBA")
    last = r.u64le("LastUsableLBA")
    disk_guid = _guid(r, "DiskGUID")
    r.u64le("PartitionEntryLBA")
    r.u32le("NumberOfPartitionEntries")
    entry_size = r.u32le("SizeOfPartitionEntry")
    r.u32le("PartitionEntryArrayCRC32")
    if header_size < 92 or entry_size < 128:
        raise MalformedInputError(f"GPT header/entry size {header_size}/{entry_size}", offset=base)
    r.skip(header_size - 92, "header padding")
    count = r.count(r.u64le("NumberOfPartitions"), 4096, "NumberOfPartitions")
    parts: list[dict[str, Any]] = []
    for _ in range(count):
        e = r.sub(entry_size, "partition entry")
        ptype = _guid(e, "PartitionTypeGUID")
        pguid = _guid(e, "UniquePartitionGUID")
        start = e.u64le("StartingLBA")
        end = e.u64le("EndingLBA")
        attrs = e.u64le("Attributes")
        name = _utf16(e.read(72, "PartitionName"), e.offset - 72).split("\x00", 1)[0]
        e.rest()
        parts.append(
            {
                "type": ptype,
                "guid": pguid,
                "first_lba": start,
                "last_lba": end,
                "attributes": attrs,
                "name": name,
            }
        )
    return (
        DecodedEvent(
            "gpt",
            {
                "revision": revision,
                "header_size": header_size,
                "my_lba": my_lba,
                "alternate_lba": alt_lba,
                "first_usable_lba": first,
                "last_usable_lba": last,
                "disk_guid": disk_guid,
                "partitions": parts,
            },
            f"GPT disk {disk_guid}, {count} partitions",
        )
        if r.at_end()
        else _trailing(r)
    )


def _trailing(r: Reader) -> DecodedEvent:
    r.expect_end("end of GPT data")
    raise AssertionError("unreachable")


def _decode_handoff(data: bytes, base: int, uintn: int, v2: bool) -> DecodedEvent:
    r = Reader(data, base_offset=base)
    fields: dict[str, Any] = {}
    if v2:
        fields["description"] = _c_string(r.bytes_u8("TableDescription"))
    read_uintn = r.u64le if uintn == 2 else r.u32le
    count = r.count(read_uintn("NumberOfTables"), 4096, "NumberOfTables")
    tables = []
    for _ in range(count):
        guid = _guid(r, "VendorGuid")
        tables.append({"guid": guid, "address": read_uintn("VendorTable")})
    r.expect_end()
    fields["tables"] = tables
    return DecodedEvent("handoff_tables", fields, f"{count} tables")
