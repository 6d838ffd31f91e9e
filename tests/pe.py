"""A tiny PE32+ image writer for tests (synthetic boot applications and malformed images)."""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["build_pe"]

_FILE_ALIGN = 0x200


def _align(n: int, a: int = _FILE_ALIGN) -> int:
    return (n + a - 1) // a * a


def build_pe(
    sections: Sequence[tuple[str, bytes]] = ((".text", b"\xc3" * 100),),
    *,
    certificate: bytes | None = None,
    trailing: bytes = b"",
    checksum: int = 0,
    virtual_sizes: Sequence[int] | None = None,
) -> bytes:
    """A PE32+ (x86-64 EFI application) with the given sections, optional
    WIN_CERTIFICATE payload (appended, 8-byte aligned) and trailing bytes."""
    n = len(sections)
    opt_size = 112 + 16 * 8
    headers_len = 0x40 + 4 + 20 + opt_size + 40 * n
    size_of_headers = _align(headers_len)
    offset = size_of_headers
    rva = 0x1000
    table = b""
    bodies = b""
    for i, (name, body) in enumerate(sections):
        raw = _align(len(body)) if body else 0
        vsize = virtual_sizes[i] if virtual_sizes is not None else len(body)
        table += struct.pack(
            "<8sIIIIIIHHI",
            name.encode()[:8],
            vsize,
            rva,
            raw,
            offset if raw else 0,
            0,
            0,
            0,
            0,
            0x40000040,
        )
        bodies += body + bytes(raw - len(body))
        offset += raw
        rva += _align(max(vsize, 1), 0x1000)
    image_len = size_of_headers + len(bodies) + len(trailing)
    cert_blob = b""
    cert_dir = (0, 0)
    if certificate is not None:
        entry = struct.pack("<IHH", 8 + len(certificate), 0x0200, 0x0002) + certificate
        entry += bytes(-len(entry) % 8)
        cert_blob = entry
        cert_dir = (image_len, len(entry))
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, n, 0, 0, 0, opt_size, 0x0022)
    opt = struct.pack("<HBBIIIII", 0x20B, 0, 0, len(bodies), 0, 0, 0x1000, 0x1000)
    opt += struct.pack("<QII", 0x140000000, 0x1000, _FILE_ALIGN)
    opt += struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    opt += struct.pack("<IIIHH", rva, size_of_headers, checksum, 10, 0)
    opt += struct.pack("<QQQQII", 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    dirs = [(0, 0)] * 16
    dirs[4] = cert_dir
    opt += b"".join(struct.pack("<II", *d) for d in dirs)
    assert len(opt) == opt_size
    headers = dos + coff + opt + table
    headers += bytes(size_of_headers - len(headers))
    return headers + bodies + trailing + cert_blob
