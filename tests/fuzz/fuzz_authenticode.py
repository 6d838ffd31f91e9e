"""atheris entry point: PE/COFF images through the Authenticode hasher.

A parsed image is hashed in every bank; each hashed range must lie in the file,
ranges must not overlap, and the digest must not depend on the CheckSum field
or on the Certificate Table directory entry (the invariants firmware relies on).
"""

from __future__ import annotations

from tests.pe import build_pe
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.authenticode import AUTHENTICODE_BANKS, parse_pe_image

MAX_LEN = 65536


def seeds() -> list[bytes]:
    """Small synthetic images: plain, signed, with trailing data, empty sections."""
    return [
        build_pe(),
        build_pe(certificate=b"\x30\x82" + bytes(40)),
        build_pe([(".text", b"a" * 700), (".data", b"b" * 3)], trailing=b"zz"),
        build_pe([(".bss", b""), (".sbat", b"sbat,1\n"), (".linux", b"k" * 1500)], checksum=7),
    ]


def TestOneInput(data: bytes) -> None:
    try:
        image = parse_pe_image(data)
    except MalformedInputError:
        return
    ranges = list(image.hashed_ranges())
    for offset, length in ranges:
        assert 0 <= offset and length >= 0 and offset + length <= len(data), (offset, length)
    # Headers and section bodies never overlap; the tail range may (EDK2 and
    # pesign start it at SizeOfHeaders + the sum of section sizes, so a gap
    # between sections shifts it back into section data: that is the
    # firmware's digest, and trustedge reproduces it).
    fixed = (2 if image.cert_entry_offset is None else 3) + sum(
        1 for sec in image.sections if sec.raw_size
    )
    body = ranges[:fixed]
    last = 0
    for offset, length in body:
        assert offset >= last, "hashed ranges overlap or go backwards"
        last = offset + length
    digests = {bank: image.authenticode(bank) for bank in AUTHENTICODE_BANKS}
    patched = bytearray(data)
    patched[image.checksum_offset : image.checksum_offset + 4] = b"\xa5\x5a\xa5\x5a"
    again = parse_pe_image(bytes(patched))
    assert again.authenticode("sha256") == digests["sha256"], "CheckSum changed the digest"
