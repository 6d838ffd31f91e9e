"""Verify-on-load: a file object that returns only verified bytes.

The file is read in *units*: the signed shards of a ``shards`` bundle, or
the whole file for ``files``. A unit of at most ``direct_limit`` bytes is
read into a buffer, hashed and compared with its signed digest before any of
it is returned; bytes are then served from that buffer (never re-read from
disk, so a writer racing the reader changes nothing). A larger unit (a
whole-file digest, a 1 GB shard) is first streamed once, hashing the unit
and, from the very same buffers, the SHA-256 of each ``block_size`` block;
when the unit digest matches, the block digests are trusted and later reads
check each block they touch against them. Random access is supported; the
file is read with ``pread`` only (no mmap: a truncated file is an error, not
a SIGBUS).
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import io
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from trustedge.errors import VerificationError
from trustedge.models._hash import _factory

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from trustedge.models import VerifiedFile

__all__ = ["DEFAULT_BLOCK_SIZE", "VerifiedReader", "open_verified"]

DEFAULT_BLOCK_SIZE: Final = 4 << 20
DEFAULT_DIRECT_LIMIT: Final = 64 << 20
#: Bytes per pread of a unit: each piece is hashed while still in cache.
_PIECE: Final = 1 << 20


class VerifiedReader(io.RawIOBase):
    """A read-only, seekable binary file over one file of a verified model.

    ``read``/``readinto``/``seek`` behave as on a regular file; a read that
    touches bytes whose unit (or block) does not match the signed digest
    raises :class:`VerificationError` and returns nothing. ``verified_bytes``
    counts bytes hashed so far.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        entry: VerifiedFile,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        direct_limit: int = DEFAULT_DIRECT_LIMIT,
        cache_blocks: int = 4,
    ) -> None:
        super().__init__()
        if block_size < 4096 or direct_limit < block_size or cache_blocks < 1:
            raise ValueError("block_size >= 4096, direct_limit >= block_size, cache_blocks >= 1")
        self.name = os.fspath(path)
        self._entry = entry
        self._block = block_size
        self._direct = direct_limit
        self._factory: Callable[[], Any] = _factory(entry.hash_type)
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(self._fd).st_size
        except BaseException:
            os.close(self._fd)
            raise
        self._size = entry.size
        self._pos = 0
        units = list(entry.units)
        if size != entry.size or not self._tiles(units):
            os.close(self._fd)
            raise VerificationError(
                f"{self.name!r} has {size} bytes; the signature covers {entry.size}"
            )
        self._starts = [u[0] for u in units]
        self._units = units
        # Trusted block digests of large units, filled by their first pass.
        self._blocks: dict[int, list[bytes]] = {}
        self._cache: OrderedDict[tuple[int, int], memoryview] = OrderedDict()
        self._spare: list[bytearray] = []
        self._last_direct = 0
        self._cache_max = cache_blocks
        self.verified_bytes = 0

    def _tiles(self, units: list[tuple[int, int, bytes]]) -> bool:
        if self._size == 0:
            # files: one unit over b""; shards: none.
            return all(s == 0 for s, _, _ in units) and self._check_empty(units)
        pos = 0
        for s, e, _ in units:
            if s != pos or e <= s:
                return False
            pos = e
        return pos == self._size

    def _check_empty(self, units: list[tuple[int, int, bytes]]) -> bool:
        empty = self._factory().digest()
        return all(hmac.compare_digest(d, empty) for _, _, d in units)

    # ------------------------------------------------------------------ io API

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
            for view in self._cache.values():
                view.release()
            self._cache.clear()
            self._spare.clear()
        super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a verified reader has no usable file descriptor")

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.closed:
            raise ValueError("I/O operation on closed file")
        done = 0
        while done < len(view) and self._pos < self._size:
            if self._direct_into(view, done):
                n = self._last_direct
                done += n
                self._pos += n
                continue
            base, data = self._verified_chunk(self._pos)
            at = self._pos - base
            n = min(len(view) - done, len(data) - at)
            view[done : done + n] = data[at : at + n]  # memoryview slices: one copy
            done += n
            self._pos += n
        return done

    def _direct_into(self, view: memoryview, done: int) -> bool:
        """A whole small unit that starts at the position and fits in the
        caller's buffer is read and hashed right there (no second copy); if
        it does not match, that part of the buffer is zeroed before raising,
        so no unverified byte is left for a caller that ignores the error."""
        i = bisect.bisect_right(self._starts, self._pos) - 1
        start, end, digest = self._units[i]
        length = end - start
        if start != self._pos or length > len(view) - done or length > self._direct:
            return False
        if (start, end) in self._cache:
            return False
        target = view[done : done + length]
        h = self._factory()
        got = 0
        try:
            while got < length:
                want = min(_PIECE, length - got)
                n = os.preadv(self._fd, [target[got : got + want]], start + got)
                if n <= 0:
                    raise VerificationError(f"{self.name!r} is shorter than its signature says")
                h.update(target[got : got + n])
                got += n
            self.verified_bytes += length
            if not hmac.compare_digest(h.digest(), digest):
                raise VerificationError(
                    f"{self.name!r}: bytes {start}..{end} do not match the signed digest"
                )
        except BaseException:
            target[:] = bytes(length)
            raise
        self._last_direct = length
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        buf = bytearray(min(size, max(0, self._size - self._pos)))
        n = self.readinto(buf)
        return bytes(buf[:n])

    def readall(self) -> bytes:
        return self.read(-1)

    # ------------------------------------------------------------------ verification

    def _pread(self, start: int, length: int, h: Any = None) -> memoryview:
        """``length`` bytes at ``start`` into a buffer of the pool (an evicted
        unit's buffer is re-used: no fresh pages per unit)."""
        buf = self._spare.pop() if self._spare else None
        if buf is None or len(buf) < length:
            buf = bytearray(length)
        view = memoryview(buf)[:length]
        got = 0
        while got < length:
            # Pieces of _PIECE bytes, each hashed (with ``h``) while it is
            # still in the CPU cache.
            want = min(_PIECE, length - got)
            n = os.preadv(self._fd, [view[got : got + want]], start + got)
            if n <= 0:
                raise VerificationError(f"{self.name!r} is shorter than its signature says")
            if h is not None:
                h.update(view[got : got + n])
            got += n
        return view

    def _verified_chunk(self, pos: int) -> tuple[int, memoryview]:
        """(offset, verified bytes) of the unit or block holding ``pos``."""
        i = bisect.bisect_right(self._starts, pos) - 1
        start, end, digest = self._units[i]
        if end - start <= self._direct:
            key = (start, end)
            hit = self._cache.get(key)
            if hit is None:
                h = self._factory()
                data = self._pread(start, end - start, h)
                self.verified_bytes += len(data)
                if not hmac.compare_digest(h.digest(), digest):
                    self._release(data)
                    raise VerificationError(
                        f"{self.name!r}: bytes {start}..{end} do not match the signed digest"
                    )
                hit = data
                self._remember(key, hit)
            return start, hit
        blocks = self._blocks.get(start)
        if blocks is None:
            blocks = self._first_pass(start, end, digest)
            self._blocks[start] = blocks
        b = (pos - start) // self._block
        bstart = start + b * self._block
        bend = min(bstart + self._block, end)
        key = (bstart, bend)
        hit = self._cache.get(key)
        if hit is None:
            bh = hashlib.sha256()
            data = self._pread(bstart, bend - bstart, bh)
            self.verified_bytes += len(data)
            if not hmac.compare_digest(bh.digest(), blocks[b]):
                self._release(data)
                raise VerificationError(
                    f"{self.name!r}: bytes {bstart}..{bend} changed since they were verified"
                )
            hit = data
            self._remember(key, hit)
        return bstart, hit

    def _remember(self, key: tuple[int, int], data: memoryview) -> None:
        self._cache[key] = data
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_max:
            _, old = self._cache.popitem(last=False)
            self._release(old)

    def _release(self, view: memoryview) -> None:
        # Only a unit's own buffer goes back to the pool; bytes in it are
        # never served again (the cache entry is gone).
        base = view.obj
        view.release()
        if isinstance(base, bytearray) and len(self._spare) < 2:
            self._spare.append(base)

    def _first_pass(self, start: int, end: int, digest: bytes) -> list[bytes]:
        """Hash the unit [start, end) and each block of it from the same
        reads; returns the block digests once the unit digest matched."""
        h = self._factory()
        blocks = []
        buf = bytearray(self._block)
        view = memoryview(buf)
        off = start
        while off < end:
            n = min(self._block, end - off)
            got = 0
            while got < n:
                r = os.preadv(self._fd, [view[got:n]], off + got)
                if r <= 0:
                    raise VerificationError(f"{self.name!r} is shorter than its signature says")
                got += r
            h.update(view[:n])
            blocks.append(hashlib.sha256(view[:n]).digest())
            off += n
        self.verified_bytes += end - start
        if not hmac.compare_digest(h.digest(), digest):
            raise VerificationError(
                f"{self.name!r}: bytes {start}..{end} do not match the signed digest"
            )
        return blocks


def open_verified(
    path: str | os.PathLike[str],
    entry: VerifiedFile,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    direct_limit: int = DEFAULT_DIRECT_LIMIT,
) -> VerifiedReader:
    """Open ``path`` for reading against ``entry`` (a :class:`VerifiedFile` of
    a verified model): every byte returned was hashed and matched the signed
    digest of its shard, or, inside a unit larger than ``direct_limit``, a
    block digest derived in one pass from bytes that matched it. Raises
    :class:`VerificationError` at open when the size differs, and at the
    first read that touches a tampered unit or block. A whole unit that fits
    the caller's ``readinto`` buffer is read and hashed there (one copy, so a
    sequential read with 1 MiB shards costs about a plain read); if it does
    not match, that part of the buffer is zeroed before the error is raised.
    """
    return VerifiedReader(Path(path), entry, block_size=block_size, direct_limit=direct_limit)
