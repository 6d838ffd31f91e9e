"""Authenticode digests of PE/COFF images: what UEFI firmware extends into PCR4.

For every ``EV_EFI_BOOT_SERVICES_APPLICATION`` (shim, GRUB, systemd-boot, a
kernel's EFI stub, a UKI) the firmware's digest is the image's *Authenticode
hash* (Microsoft "Windows Authenticode Portable Executable Signature Format",
"Calculating the PE Image Hash"; EDK2 ``Tcg2MeasurePeImage``): the file hashed
without the optional header's ``CheckSum`` field, without the Certificate
Table data-directory entry and without the attribute certificate table, with
the section bodies in file order. Signing a binary therefore does not change
its PCR4 measurement, and a prediction of PCR4 needs exactly this digest.

The input is untrusted (an update payload, a file on an ESP). Every offset and
size comes through the bounded reader and is checked before it is used; an
image that a careful loader would not accept -- section table outside the
headers, section bodies that overlap each other, the headers or the
certificate table, a certificate table that is not the last thing in the file
or whose entries do not tile it -- raises
:class:`~trustedge.errors.MalformedInputError` rather than giving a digest
that two tools might compute differently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError
from trustedge.measuredboot.events import BANK_SIZES, bank_hasher

__all__ = [
    "AUTHENTICODE_BANKS",
    "MAX_IMAGE_SIZE",
    "PEImage",
    "PESection",
    "authenticode_digest",
    "authenticode_digests",
    "parse_pe_image",
]

#: Largest image accepted (a UKI with a big initrd stays far below this).
MAX_IMAGE_SIZE: Final = 1 << 30
#: Banks an Authenticode digest can be computed for.
AUTHENTICODE_BANKS: Final = ("sha1", "sha256", "sha384", "sha512")

_MAX_SECTIONS: Final = 96  # the PE/COFF specification's loader limit
_MAX_DIRECTORIES: Final = 16
_CERT_DIRECTORY: Final = 4
_PE32: Final = 0x10B
_PE32_PLUS: Final = 0x20B
_WIN_CERT_REVISIONS: Final = frozenset({0x0100, 0x0200})
_WIN_CERT_TYPES: Final = frozenset({0x0001, 0x0002, 0x0003, 0x0004, 0x0EF0, 0x0EF1})


@dataclass(frozen=True)
class PESection:
    """One entry of the section table (``name`` decoded, NUL padding removed)."""

    name: str
    virtual_size: int
    virtual_address: int
    raw_size: int
    raw_offset: int

    def body(self, image: PEImage) -> bytes:
        """The section as loaded: ``virtual_size`` bytes, zero-filled past the raw data."""
        take = min(self.virtual_size, self.raw_size)
        data = _read_at(image.data, self.raw_offset, take, f"section {self.name}")
        return data + bytes(self.virtual_size - take)


@dataclass(frozen=True)
class PEImage:
    """A structurally checked PE/COFF image (nothing about it is *trusted*:
    it is simply well-formed enough to be hashed one way only)."""

    data: bytes
    machine: int
    magic: int
    size_of_headers: int
    checksum_offset: int
    #: Offset of the Certificate Table directory entry, or None when the image has none.
    cert_entry_offset: int | None
    cert_table_offset: int
    cert_table_size: int
    sections: tuple[PESection, ...]

    @property
    def signed(self) -> bool:
        """True when the image carries an attribute certificate table."""
        return self.cert_table_size > 0

    def section(self, name: str) -> PESection | None:
        """The first section called ``name``, or None."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def hashed_ranges(self) -> Iterator[tuple[int, int]]:
        """(offset, length) of every byte range the Authenticode hash covers, in order.

        The last range (data after the sections) starts at SizeOfHeaders plus
        the sum of the section sizes, as in EDK2 and pesign: when sections
        leave gaps it starts inside section data, and the firmware hashes
        those bytes twice. trustedge reproduces the firmware's digest.
        """
        headers_end = self.size_of_headers
        yield 0, self.checksum_offset
        after_checksum = self.checksum_offset + 4
        if self.cert_entry_offset is None:
            yield after_checksum, headers_end - after_checksum
        else:
            yield after_checksum, self.cert_entry_offset - after_checksum
            after_entry = self.cert_entry_offset + 8
            yield after_entry, headers_end - after_entry
        hashed = headers_end
        for sec in sorted(self.sections, key=lambda s: s.raw_offset):
            if sec.raw_size == 0:
                continue
            yield sec.raw_offset, sec.raw_size
            hashed += sec.raw_size
        # Whatever follows the sections and precedes the certificate table
        # (EDK2 and pesign hash from SUM_OF_BYTES_HASHED on).
        end = len(self.data) - self.cert_table_size
        if end > hashed:
            yield hashed, end - hashed

    def authenticode(self, bank: str = "sha256") -> bytes:
        """The Authenticode digest in ``bank`` (sha1, sha256, sha384 or sha512)."""
        if bank not in AUTHENTICODE_BANKS:
            raise UnsupportedAlgorithmError(f"no Authenticode digest for bank {bank!r}")
        h = bank_hasher(bank)(b"")
        view = memoryview(self.data)
        for offset, length in self.hashed_ranges():
            # Ranges were bounds-checked by parse_pe_image; a view avoids
            # copying a multi-megabyte kernel once per section.
            h.update(view[offset : offset + length])
        digest: bytes = h.digest()
        return digest


def _read_at(data: bytes, offset: int, n: int, what: str) -> bytes:
    r = Reader(data, max_size=MAX_IMAGE_SIZE)
    r.skip(offset, what)
    return r.read(n, what)


def _at(data: bytes, offset: int, what: str) -> Reader:
    r = Reader(data, max_size=MAX_IMAGE_SIZE)
    r.skip(offset, what)
    return r


def parse_pe_image(data: bytes | bytearray | memoryview) -> PEImage:
    """Parse and check the structure of a PE/COFF image.

    Raises :class:`~trustedge.errors.MalformedInputError` for anything that is
    not a well-formed PE32/PE32+ image (see the module docstring), and
    :class:`~trustedge.errors.LimitExceededError` above :data:`MAX_IMAGE_SIZE`.
    """
    if len(data) > MAX_IMAGE_SIZE:
        raise LimitExceededError(f"image of {len(data)} bytes exceeds {MAX_IMAGE_SIZE}")
    data = bytes(data)
    size = len(data)
    dos = Reader(data, max_size=MAX_IMAGE_SIZE)
    if dos.read(2, "DOS signature") != b"MZ":
        raise dos.fail("not a PE image", expected="'MZ'")
    lfanew = _at(data, 0x3C, "e_lfanew").u32le("e_lfanew")
    if lfanew < 0x40:
        raise MalformedInputError("PE header overlaps the DOS header", offset=0x3C)
    r = _at(data, lfanew, "PE header")
    if r.read(4, "PE signature") != b"PE\x00\x00":
        raise r.fail("bad PE signature", expected="'PE\\0\\0'")
    machine = r.u16le("Machine")
    n_sections = r.u16le("NumberOfSections")
    r.skip(12, "COFF header")
    opt_size = r.u16le("SizeOfOptionalHeader")
    r.skip(2, "Characteristics")
    opt_start = r.offset
    opt = r.sub(opt_size, "optional header")
    magic = opt.u16le("Magic")
    if magic == _PE32:
        dirs_at = 96
    elif magic == _PE32_PLUS:
        dirs_at = 112
    else:
        raise MalformedInputError(f"unknown optional header magic 0x{magic:04x}", offset=opt_start)
    if opt_size < dirs_at:
        raise MalformedInputError("optional header too short", offset=opt_start)
    opt.skip(58, "optional header")  # to SizeOfHeaders (offset 60)
    size_of_headers = opt.u32le("SizeOfHeaders")
    opt.skip(4, "CheckSum")
    opt.skip(dirs_at - 4 - 68, "optional header")  # to NumberOfRvaAndSizes
    n_dirs = opt.u32le("NumberOfRvaAndSizes")
    if n_dirs > _MAX_DIRECTORIES:
        raise MalformedInputError(f"{n_dirs} data directories (at most 16)", offset=opt.offset)
    if dirs_at + 8 * n_dirs > opt_size:
        raise MalformedInputError("data directories outside the optional header", offset=opt_start)
    cert_entry: int | None = None
    cert_offset = cert_size = 0
    if n_dirs > _CERT_DIRECTORY:
        cert_entry = opt_start + dirs_at + 8 * _CERT_DIRECTORY
        entry = _at(data, cert_entry, "certificate table entry")
        cert_offset = entry.u32le("certificate table offset")
        cert_size = entry.u32le("certificate table size")
    table_at = opt_start + opt_size
    table_end = table_at + 40 * n_sections
    if n_sections > _MAX_SECTIONS:
        raise LimitExceededError(f"{n_sections} sections (at most {_MAX_SECTIONS})", offset=lfanew)
    if not table_end <= size_of_headers <= size:
        raise MalformedInputError(
            "SizeOfHeaders does not cover the section table or exceeds the file",
            offset=opt_start + 60,
        )
    sections = tuple(_sections(data, table_at, n_sections))
    if cert_size:
        _check_cert_table(data, cert_offset, cert_size, size_of_headers)
    elif cert_offset:
        raise MalformedInputError("certificate table with an offset but no size", offset=cert_entry)
    cert_start = size - cert_size
    spans = sorted((s.raw_offset, s.raw_size, s.name) for s in sections if s.raw_size)
    prev_end = size_of_headers
    for offset, length, name in spans:
        if offset < prev_end:
            raise MalformedInputError(
                f"section {name} overlaps the headers or the previous section", offset=offset
            )
        prev_end = offset + length
        if prev_end > cert_start:
            raise MalformedInputError(
                f"section {name} runs past the end of the image data", offset=offset
            )
    return PEImage(
        data=data,
        machine=machine,
        magic=magic,
        size_of_headers=size_of_headers,
        checksum_offset=opt_start + 64,
        cert_entry_offset=cert_entry,
        cert_table_offset=cert_offset if cert_size else size,
        cert_table_size=cert_size,
        sections=sections,
    )


def _sections(data: bytes, table_at: int, count: int) -> Iterator[PESection]:
    r = _at(data, table_at, "section table")
    for _ in range(count):
        raw_name = r.read(8, "section name")
        virtual_size = r.u32le("VirtualSize")
        virtual_address = r.u32le("VirtualAddress")
        raw_size = r.u32le("SizeOfRawData")
        raw_offset = r.u32le("PointerToRawData")
        r.skip(16, "section header")
        stripped = raw_name.rstrip(b"\x00")
        if b"\x00" in stripped:
            raise r.fail("NUL inside a section name")
        name = stripped.decode("latin-1")
        if raw_size and raw_offset + raw_size > len(data):
            raise r.fail(f"section {name} outside the file", expected="section data in the file")
        yield PESection(name, virtual_size, virtual_address, raw_size, raw_offset)


def _check_cert_table(data: bytes, offset: int, size: int, headers_end: int) -> None:
    """The attribute certificate table must be the file's tail, tiled by
    8-byte-aligned WIN_CERTIFICATE entries (anything after it would be
    measured by no one; anything inside it not described by an entry could
    hide bytes from the hash)."""
    if offset < headers_end or offset + size != len(data):
        raise MalformedInputError(
            "certificate table is not the last thing in the file", offset=offset
        )
    r = _at(data, offset, "certificate table").sub(size, "certificate table")
    while not r.at_end():
        at = r.offset
        length = r.u32le("WIN_CERTIFICATE.dwLength")
        revision = r.u16le("wRevision")
        cert_type = r.u16le("wCertificateType")
        if length < 8 or revision not in _WIN_CERT_REVISIONS or cert_type not in _WIN_CERT_TYPES:
            raise MalformedInputError("bad WIN_CERTIFICATE entry", offset=at)
        r.skip(length - 8, "certificate")
        padding = -length % 8
        if padding > r.remaining or any(r.read(padding, "certificate padding")):
            raise MalformedInputError("bad certificate padding", offset=r.offset)


def authenticode_digest(data: bytes | bytearray | memoryview, bank: str = "sha256") -> bytes:
    """The Authenticode digest of a PE/COFF image in ``bank``.

    This is the digest UEFI firmware logs and extends for an
    ``EV_EFI_BOOT_SERVICES_APPLICATION`` (and what ``pesign -h`` prints).
    Raises :class:`~trustedge.errors.MalformedInputError` for malformed images.
    """
    return parse_pe_image(data).authenticode(bank)


def authenticode_digests(
    data: bytes | bytearray | memoryview, banks: Sequence[str] = ("sha256",)
) -> dict[str, bytes]:
    """The Authenticode digest for each of ``banks`` (the image is parsed once)."""
    image = parse_pe_image(data)
    for bank in banks:
        if bank not in BANK_SIZES:
            raise UnsupportedAlgorithmError(f"unknown hash bank {bank!r}")
    return {bank: image.authenticode(bank) for bank in banks}
