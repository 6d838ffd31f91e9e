"""Decoders and data-digest rules for the boots fleets run, on hand-built events.

The vendored corpus covers most cases (tests/vectors/test_measuredboot_corpus_decode.py);
these build the ones it lacks with :mod:`trustedge.measuredboot.build`, and the
hostile variants of each.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    DataCheck,
    Event,
    EventType,
    check_event_data,
    decode_event,
    parse_event_log,
    register_name,
)
from trustedge.measuredboot._decode import (
    DerCertificate,
    SignatureData,
    decode_device_path,
    decode_device_paths,
    decode_uefi_variable,
)
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import bank_hash

IPL = EventType.EV_IPL
DB_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
SHIM_GUID = "605dab50-e046-4300-abb6-3dd810dd8b23"
END = b"\x7f\xff\x04\x00"


def _event(pcr: int, etype: int, data: bytes, *, measured: bytes | None = None) -> Event:
    """One event through the real writer and parser; ``measured`` is what the digest hashes."""
    digest = bank_hash("sha256", data if measured is None else measured)
    log = parse_event_log(
        build_event_log([LogEvent(pcr, etype, data, {"sha256": digest})], banks=("sha256",))
    )
    return log.unverified_events[1]


def _check(ev: Event, *, ccel: bool = False) -> DataCheck:
    return check_event_data(ev, "sha256", ccel=ccel)


def _utf16(text: str) -> bytes:
    return (text + "\x00").encode("utf-16-le")


# -- GRUB (RHEL/Fedora/RHCOS and upstream) ---------------------------------------
@pytest.mark.parametrize(
    ("data", "measured", "key", "value"),
    [
        (b"grub_cmd set root=hd0,gpt2\x00", b"set root=hd0,gpt2\x00", "grub_command", None),
        (b"grub_cmd insmod xfs\x00", b"insmod xfs", "grub_command", None),
        (
            b"grub_kernel_cmdline (hd0,gpt2)/vmlinuz ro quiet\x00",
            b"(hd0,gpt2)/vmlinuz ro quiet",
            "kernel_cmdline",
            "(hd0,gpt2)/vmlinuz ro quiet",
        ),
        (
            b"grub_kernel_cmdline /vmlinuz ro\x00",
            b"/vmlinuz ro\x00",
            "kernel_cmdline",
            "/vmlinuz ro",
        ),
        (b"grub_cmd: linux /vmlinuz\x00", b"linux /vmlinuz", "grub_command", None),
        (b"kernel_cmdline: /vmlinuz ro\x00", b"/vmlinuz ro", "kernel_cmdline", "/vmlinuz ro"),
    ],
)
def test_grub_strings(data: bytes, measured: bytes, key: str, value: str | None) -> None:
    ev = _event(8, IPL, data, measured=measured)
    assert _check(ev) is DataCheck.MATCH
    fields = decode_event(ev).fields
    tag_end = data.index(b" ", 9 if data.startswith(b"grub_cmd:") else 0) + 1
    assert fields[key] == (value or data[tag_end:].rstrip(b"\x00").decode())
    # The same text under another digest: on PCR8 a rule says it hashes the text.
    forged = _event(8, IPL, data, measured=b"insmod evil\x00")
    assert _check(forged) is DataCheck.MISMATCH


def test_rhel_tag_is_not_part_of_the_digest() -> None:
    """A digest over the whole string (tag included) is a plain match, too."""
    data = b"grub_cmd set pager=1\x00"
    assert _check(_event(8, IPL, data)) is DataCheck.MATCH


# -- systemd-boot ------------------------------------------------------------------
def test_odd_length_utf16_cmdline_lost_its_final_byte() -> None:
    full = _utf16("root=/dev/sda2 ro quiet")
    ev = _event(8, IPL, full[:-1], measured=full)
    assert len(ev.data) % 2 == 1
    assert _check(ev) is DataCheck.MATCH_MISSING_FINAL_BYTE
    fields = decode_event(ev).fields
    assert fields["kernel_cmdline"] == "root=/dev/sda2 ro quiet"
    assert fields["lost_final_byte"] is True
    forged = _event(8, IPL, full[:-1], measured=_utf16("init=/bin/sh"))
    assert _check(forged) is DataCheck.MISMATCH


@pytest.mark.parametrize("pcr", [8, 12])
def test_systemd_cmdline_without_initrd(pcr: int) -> None:
    ev = _event(pcr, IPL, _utf16(" console=ttyS0 quiet"))
    assert _check(ev) is DataCheck.MATCH
    assert decode_event(ev).fields["kernel_cmdline"] == " console=ttyS0 quiet"


def test_systemd_stub_cpio_archives_are_files_not_cmdlines() -> None:
    ev = _event(12, IPL, _utf16("Credentials initrd"), measured=b"a cpio archive")
    assert _check(ev) is DataCheck.DIGEST_OF_FILE
    assert "kernel_cmdline" not in decode_event(ev).fields
    # A UTF-16 string on PCR12 that is no known archive is a command line: a mismatch.
    forged = _event(12, IPL, _utf16("quiet"), measured=b"something else")
    assert _check(forged) is DataCheck.MISMATCH


def test_uki_sections_on_pcr11() -> None:
    name = _event(11, IPL, b".linux\x00")
    assert _check(name) is DataCheck.MATCH
    content = _event(11, IPL, b".linux\x00", measured=b"\x4d\x5a kernel image")
    assert _check(content) is DataCheck.DIGEST_OF_FILE


# -- producer conventions ------------------------------------------------------------
def test_grub_files_and_shim_variables() -> None:
    cfg = _event(9, IPL, b"(hd0,gpt2)/EFI/fedora/grub.cfg\x00", measured=b"set timeout=5\n")
    assert _check(cfg) is DataCheck.DIGEST_OF_FILE
    assert decode_event(cfg).fields["file"] == "(hd0,gpt2)/EFI/fedora/grub.cfg"
    kernel = _event(9, IPL, b"grub_linuxefi Kernel\x00", measured=b"MZ...")
    assert _check(kernel) is DataCheck.DIGEST_OF_FILE
    assert decode_event(kernel).fields["grub_linuxefi"] == "Kernel"
    for name in (b"MokList", b"MokListX", b"MokListTrusted"):
        ev = _event(14, IPL, name + b"\x00", measured=b"\x01")
        assert _check(ev) is DataCheck.DIGEST_OF_VARIABLE
        assert decode_event(ev).fields["shim_variable"] == name.decode()


@pytest.mark.parametrize(
    ("pcr", "data"),
    [(14, b"NotAMokVariable\x00"), (5, b"some loader string\x00"), (4, b"\x00" * 512)],
)
def test_ipl_without_a_rule_is_opaque(pcr: int, data: bytes) -> None:
    assert _check(_event(pcr, IPL, data, measured=b"other")) is DataCheck.OPAQUE


def test_ccel_registers_map_to_their_pcrs() -> None:
    mok = _event(3, IPL, b"MokList\x00", measured=b"content")
    cfg = _event(3, IPL, b"/efi/boot/grub.cfg\x00", measured=b"content")
    cmd = _event(3, IPL, b"grub_cmd: linux /vmlinuz\x00", measured=b"other")
    other = _event(3, IPL, b"whatever\x00", measured=b"other")
    assert _check(mok, ccel=True) is DataCheck.DIGEST_OF_VARIABLE
    assert _check(cfg, ccel=True) is DataCheck.DIGEST_OF_FILE
    assert _check(cmd, ccel=True) is DataCheck.MISMATCH
    assert _check(other, ccel=True) is DataCheck.OPAQUE
    # Read as a TPM log, index 3 is PCR3: no rule, never a mismatch.
    assert {_check(e) for e in (mok, cfg, cmd, other)} == {DataCheck.OPAQUE}
    assert register_name(3, ccel=True) == "RTMR2" and register_name(3) == "PCR3"


def test_other_types_keep_their_rules() -> None:
    sep = _event(7, EventType.EV_SEPARATOR, bytes(4), measured=b"\x01\x00\x00\x00")
    assert _check(sep) is DataCheck.MISMATCH
    action = _event(4, EventType.EV_EFI_ACTION, b"Calling EFI Application from Boot Option")
    assert _check(action) is DataCheck.MATCH


# -- EV_EFI_VARIABLE_AUTHORITY -----------------------------------------------------------
def _cert(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn + " CA")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def _variable(guid: str, name: str, value: bytes) -> bytes:
    return (
        uuid.UUID(guid).bytes_le
        + len(name).to_bytes(8, "little")
        + len(value).to_bytes(8, "little")
        + name.encode("utf-16-le")
        + value
    )


def test_authority_single_signature_data() -> None:
    owner = "77fa9abd-0359-4d32-bd60-28f4e78f784b"
    der = _cert("Vendor Secure Boot Signer")
    ev = _event(
        7, EventType.EV_EFI_VARIABLE_AUTHORITY, _variable(DB_GUID, "db", _owner(owner) + der)
    )
    assert _check(ev) is DataCheck.MATCH
    value = decode_event(ev).fields["variable"].decoded
    assert isinstance(value, SignatureData) and value.owner == owner and value.data == der
    assert value.to_json()["subject"] == "CN=Vendor Secure Boot Signer"
    assert value.to_json()["issuer"] == "CN=Vendor Secure Boot Signer CA"


def _owner(guid: str) -> bytes:
    return uuid.UUID(guid).bytes_le


def test_authority_bare_der_from_shim() -> None:
    der = _cert("Distribution Secure Boot CA")
    for extra in (b"", b"\x00"):
        var = decode_uefi_variable(_variable(SHIM_GUID, "Shim", der + extra))
        assert isinstance(var.decoded, DerCertificate)
        assert var.decoded.data == der and var.decoded.trailing == extra
        assert var.decoded.to_json()["subject"] == "CN=Distribution Secure Boot CA"
    moklist = decode_uefi_variable(_variable(SHIM_GUID, "MokList", der))
    assert isinstance(moklist.decoded, DerCertificate)


def test_authority_garbage_stays_undecoded() -> None:
    for value in (b"\x30\x82\xff\xff" + bytes(60), bytes(80), b"\x30\x03\x02\x01\x00"):
        var = decode_uefi_variable(_variable(DB_GUID, "db", value))
        assert var.decoded is None and var.data == value


def test_bytes_after_variable_data_stay_visible() -> None:
    data = _variable(GLOBAL_GUID, "SecureBoot", b"\x01") + b"\xaa\xbb"
    var = decode_uefi_variable(data)
    assert var.decoded == {"enabled": True} and var.trailing == b"\xaa\xbb"
    assert var.to_json()["trailing"] == "aabb"


# -- device paths --------------------------------------------------------------------
def _node(typ: int, sub: int, body: bytes) -> bytes:
    return bytes((typ, sub)) + (len(body) + 4).to_bytes(2, "little") + body


def _ipv4(local: bytes, remote: bytes, *, proto: int = 6, dhcp: int = 0, v2: bool = True) -> bytes:
    body = local + remote + (0).to_bytes(2, "little") + (0).to_bytes(2, "little")
    body += proto.to_bytes(2, "little") + bytes((dhcp,))
    if v2:
        body += bytes((192, 168, 0, 1)) + bytes((255, 255, 255, 0))
    return _node(3, 12, body)


PCI = _node(2, 1, (0x0A0341D0).to_bytes(4, "little") + bytes(4)) + _node(1, 1, b"\x00\x03")
MAC = _node(3, 11, bytes.fromhex("525400123456") + bytes(26) + b"\x01")


def test_network_boot_paths() -> None:
    v4 = PCI + MAC + _ipv4(bytes((10, 0, 0, 2)), bytes((10, 0, 0, 1)), dhcp=1) + END
    assert decode_device_path(v4) == (
        "PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,0x1)"
        "/IPv4(10.0.0.1,TCP,DHCP,10.0.0.2,192.168.0.1,255.255.255.0)"
    )
    old = _ipv4(bytes(4), bytes((10, 0, 0, 1)), proto=17, v2=False) + END
    assert decode_device_path(old) == "IPv4(10.0.0.1,UDP,Static,0.0.0.0)"
    remote = bytes.fromhex("fe800000000000000000000000000001")
    body = bytes(16) + remote + bytes(4) + (6).to_bytes(2, "little") + b"\x01" + b"\x40" + bytes(16)
    v6 = _node(3, 13, body) + _node(3, 24, b"http://boot.example/efi") + END
    assert decode_device_path(v6) == (
        "IPv6(fe80:0000:0000:0000:0000:0000:0000:0001,TCP,StatelessAutoConfigure,"
        "0000:0000:0000:0000:0000:0000:0000:0000,0x40,0000:0000:0000:0000:0000:0000:0000:0000)"
        "/Uri(http://boot.example/efi)"
    )


def test_bbs_and_other_nodes() -> None:
    bbs = _node(5, 1, (0x02).to_bytes(2, "little") + (0).to_bytes(2, "little") + b"HDD0\x00")
    assert decode_device_path(bbs + END) == "BBS(0x2,HDD0,0x0)"
    assert decode_device_path(_node(3, 20, (42).to_bytes(2, "little")) + END) == "Vlan(42)"
    assert decode_device_path(_node(3, 26, b"\x01") + END) == "SD(0x1)"
    assert decode_device_path(_node(3, 29, b"\x00") + END) == "eMMC(0x0)"
    assert decode_device_path(_node(2, 3, (0x80010100).to_bytes(4, "little")) + END) == (
        "AcpiAdr(0x80010100)"
    )
    dns = _node(3, 31, b"\x00" + bytes((8, 8, 8, 8)) + bytes((1, 1, 1, 1)))
    assert decode_device_path(dns + END) == "Dns(8.8.8.8,1.1.1.1)"


def test_known_node_with_a_wrong_length_keeps_every_byte() -> None:
    odd = _node(1, 1, b"\x00\x03\xee")  # Pci is 2 bytes of body
    assert decode_device_path(odd + END) == "Path(1,1,0003ee)"


def test_multi_instance_file_path_list() -> None:
    kernel = PCI + _node(4, 4, "\\vmlinuz".encode("utf-16-le") + b"\x00\x00") + END
    initrd = _node(4, 4, "\\initrd.img".encode("utf-16-le") + b"\x00\x00") + END
    assert decode_device_paths(kernel + initrd) == (
        "PciRoot(0x0)/Pci(0x3,0x0)/\\vmlinuz",
        "\\initrd.img",
    )
    option = (
        (1).to_bytes(4, "little")
        + len(kernel + initrd).to_bytes(2, "little")
        + _utf16("Linux")
        + kernel
        + initrd
        + b"opt"
    )
    ev = _event(1, EventType.EV_EFI_VARIABLE_BOOT, _variable(GLOBAL_GUID, "Boot0003", option))
    boot = decode_event(ev).fields["variable"].decoded
    assert boot.description == "Linux"
    assert boot.device_paths == ("PciRoot(0x0)/Pci(0x3,0x0)/\\vmlinuz", "\\initrd.img")
    assert boot.device_path == "PciRoot(0x0)/Pci(0x3,0x0)/\\vmlinuz|\\initrd.img"
    assert boot.optional_data == b"opt"


def test_trailing_bytes_after_a_path_are_shown() -> None:
    assert decode_device_paths(PCI + END + b"\x00\x01") == (
        "PciRoot(0x0)/Pci(0x3,0x0)",
        "Trailing(0001)",
    )
    assert decode_device_path(PCI + END + b"\x01\x01\x02\x00") == (
        "PciRoot(0x0)/Pci(0x3,0x0)|Trailing(01010200)"
    )
    with pytest.raises(MalformedInputError) as info:
        decode_device_path(PCI + b"\x01\x01\x02\x00", base_offset=100)
    assert info.value.offset == 100 + len(PCI)


def test_image_load_trailing_bytes() -> None:
    path = PCI + END
    data = bytes(24) + len(path).to_bytes(8, "little") + path + b"\xde\xad"
    ev = _event(4, EventType.EV_EFI_BOOT_SERVICES_APPLICATION, data, measured=b"pe")
    fields = decode_event(ev).fields
    assert fields["device_path"] == "PciRoot(0x0)/Pci(0x3,0x0)"
    assert fields["trailing"] == b"\xde\xad"


# -- separators and tags ---------------------------------------------------------------
def test_wbcl_separator_and_event_tags() -> None:
    sep = decode_event(_event(12, EventType.EV_SEPARATOR, b"WBCL"))
    assert sep.kind == "separator" and sep.fields["meaning"] == "Windows (WBCL)"
    odd = decode_event(_event(12, EventType.EV_SEPARATOR, b"WBCX"))
    assert odd.fields["meaning"] == "unknown"

    def tag(tag_id: int, body: bytes) -> bytes:
        return tag_id.to_bytes(4, "little") + len(body).to_bytes(4, "little") + body

    initrd = decode_event(_event(9, EventType.EV_EVENT_TAG, tag(0x8F3B22EC, b"Linux initrd\x00")))
    assert initrd.fields["tag_name"] == "Linux initrd"
    options = decode_event(_event(12, EventType.EV_EVENT_TAG, tag(0x8F3B22ED, b"x\x00")))
    assert options.fields["tag_name"] == "Linux load options"
    unknown = decode_event(_event(12, EventType.EV_EVENT_TAG, tag(0x1234, b"")))
    assert "tag_name" not in unknown.fields and unknown.summary == "tag 0x1234"
