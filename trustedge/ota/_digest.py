"""The one place OTA hashes image bytes.

Images are hashed while they stream (fetch -> slot), so this stays on hashlib's
streaming SHA-256 (OpenSSL, SHA-NI where present: the same single-stream speed
as ``trustedge.hashing.sha256_file``, which needs a whole file by path).

:func:`digest_stream` reads at most ``limit + 1`` bytes, so an endless or
oversized payload is detected without reading (or storing) the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import BinaryIO

__all__ = ["CHUNK", "digest_file", "digest_stream"]

CHUNK = 1 << 20


def digest_stream(
    chunks: Iterable[bytes], limit: int, sink: Callable[[bytes], None] | None = None
) -> tuple[bytes, int]:
    """SHA-256 and length of ``chunks``, passing each piece to ``sink``.

    Stops as soon as more than ``limit`` bytes were seen and returns a length
    of ``limit + 1`` (the caller rejects it); at most ``limit`` bytes reach ``sink``.
    """
    h = hashlib.sha256()
    total = 0
    for chunk in chunks:
        take = chunk[: limit - total + 1] if total + len(chunk) > limit else chunk
        total += len(take)
        if total > limit:
            return b"", limit + 1
        h.update(take)
        if sink is not None:
            sink(take)
    return h.digest(), total


def read_chunks(fh: BinaryIO, size: int = CHUNK) -> Iterable[bytes]:
    """Yield ``fh``'s content in ``size`` pieces."""
    while chunk := fh.read(size):
        yield chunk


def digest_file(fh: BinaryIO, limit: int) -> tuple[bytes, int]:
    """:func:`digest_stream` over an open file."""
    return digest_stream(read_chunks(fh), limit)
