"""Authenticode hashing of PE/COFF images: structure checks and invariants (synthetic images).

Interop with pesign/osslsigncode on real Debian binaries is in
tests/integration/test_authenticode_peers.py.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from tests.pe import build_pe
from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError
from trustedge.measuredboot.authenticode import (
    authenticode_digest,
    authenticode_digests,
    parse_pe_image,
)

E_LFANEW = 0x40
OPT = E_LFANEW + 24  # optional header
SECTION_TABLE = OPT + 112 + 128


def _reference(data: bytes, cert_size: int = 0) -> bytes:
    """The digest computed the long way: the file without CheckSum, cert entry and table."""
    buf = bytearray(data[: len(data) - cert_size])
    cut = [(OPT + 64, 4), (OPT + 112 + 32, 8)]
    for offset, length in sorted(cut, reverse=True):
        del buf[offset : offset + length]
    return hashlib.sha256(bytes(buf)).digest()


def test_digest_equals_the_file_without_excluded_fields() -> None:
    image = build_pe([(".text", b"\x90" * 1000), (".data", b"d" * 10)])
    assert authenticode_digest(image) == _reference(image)


def test_signing_does_not_change_the_digest() -> None:
    plain = build_pe([(".text", b"t" * 512)])
    signed = build_pe([(".text", b"t" * 512)], certificate=b"\x30" * 37)
    assert parse_pe_image(signed).signed and not parse_pe_image(plain).signed
    assert authenticode_digest(signed) == authenticode_digest(plain)


def test_checksum_is_excluded_but_section_bytes_are_not() -> None:
    a = build_pe([(".text", b"t" * 512)], checksum=1)
    b = build_pe([(".text", b"t" * 512)], checksum=0xDEADBEEF)
    c = build_pe([(".text", b"t" * 511 + b"u")])
    assert authenticode_digest(a) == authenticode_digest(b) != authenticode_digest(c)


def test_trailing_data_before_the_certificate_is_hashed() -> None:
    a = build_pe(trailing=b"x" * 8, certificate=b"sig")
    b = build_pe(trailing=b"y" * 8, certificate=b"sig")
    assert authenticode_digest(a) != authenticode_digest(b)


def test_all_banks_and_unknown_bank() -> None:
    digests = authenticode_digests(build_pe(), ("sha1", "sha256", "sha384", "sha512"))
    assert [len(d) for d in digests.values()] == [20, 32, 48, 64]
    with pytest.raises(UnsupportedAlgorithmError):
        authenticode_digest(build_pe(), "md5")
    with pytest.raises(UnsupportedAlgorithmError):
        authenticode_digest(build_pe(), "sm3_256")


def test_section_body_is_zero_filled_to_virtual_size() -> None:
    image = parse_pe_image(build_pe([(".cmdline", b"quiet")], virtual_sizes=[9]))
    sec = image.section(".cmdline")
    assert sec is not None and sec.body(image) == b"quiet\x00\x00\x00\x00"
    assert image.section(".nope") is None


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _malformed_cases() -> dict[str, bytes]:
    base = build_pe([(".text", b"t" * 600), (".data", b"d" * 600)])
    signed = build_pe([(".text", b"t" * 600)], certificate=b"c" * 16)
    cert_dir = OPT + 112 + 32
    cert_at = struct.unpack_from("<I", signed, cert_dir)[0]
    sec1 = SECTION_TABLE + 40  # second section header
    return {
        "empty": b"",
        "not-mz": b"ZM" + base[2:],
        "truncated-dos": base[:0x30],
        "lfanew-past-end": _patch(base, 0x3C, "<I", len(base) + 10),
        "lfanew-into-dos-header": _patch(base, 0x3C, "<I", 4),
        "bad-pe-signature": base[:E_LFANEW] + b"PX\x00\x00" + base[E_LFANEW + 4 :],
        "truncated-headers": base[: SECTION_TABLE + 20],
        "bad-magic": _patch(base, OPT, "<H", 0x30B),
        "optional-header-too-short": _patch(base, E_LFANEW + 20, "<H", 100),
        "too-many-directories": _patch(base, OPT + 108, "<I", 17),
        "too-many-sections": _patch(base, E_LFANEW + 6, "<H", 97),
        "section-table-beyond-headers": _patch(base, E_LFANEW + 6, "<H", 20),
        "headers-larger-than-file": _patch(base, OPT + 60, "<I", len(base) + 0x200),
        "section-outside-file": _patch(base, sec1 + 16, "<I", 0x10000),
        "overlapping-sections": _patch(base, sec1 + 20, "<I", 0x400),
        "section-inside-headers": _patch(base, SECTION_TABLE + 20, "<I", 0x100),
        "nul-in-section-name": _patch(base, SECTION_TABLE + 2, "<B", 0),
        "cert-table-not-at-end": _patch(signed, cert_dir + 4, "<I", 8),
        "cert-table-past-end": _patch(signed, cert_dir + 4, "<I", 0x1000),
        "cert-table-in-headers": _patch(signed, cert_dir, "<I", 0x10),
        "cert-offset-without-size": _patch(base, cert_dir, "<I", 0x200),
        "cert-entry-too-short": _patch(signed, cert_at, "<I", 4),
        "cert-entry-bad-revision": _patch(signed, cert_at + 4, "<H", 0x0300),
        "cert-entry-bad-type": _patch(signed, cert_at + 6, "<H", 0x7777),
        "cert-entry-overruns-table": _patch(signed, cert_at, "<I", 200),
        "section-overlaps-cert-table": _patch(
            signed, SECTION_TABLE + 16, "<I", cert_at - 0x200 + 8
        ),
    }


@pytest.mark.parametrize("name", sorted(_malformed_cases()))
def test_malformed_images_are_rejected(name: str) -> None:
    data = _malformed_cases()[name]
    with pytest.raises(MalformedInputError):
        authenticode_digest(data)


def test_oversized_image_is_a_limit_error() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return (1 << 30) + 1

    with pytest.raises(LimitExceededError):
        parse_pe_image(Huge(b"MZ"))
