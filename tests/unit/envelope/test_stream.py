"""Streaming Writer/Reader: bounded batches, random access that touches only
the chunks needed (on a synthetic 1 GiB envelope), pipes, sticky errors."""

from __future__ import annotations

import io
import itertools
import os

import pytest

from trustedge import envelope
from trustedge.envelope import _cobblestone as cb
from trustedge.errors import ChunkAuthenticationError, TrailingDataError, TruncationError

KEK = envelope.KEK(b"\x22" * 32)
GIB = 1 << 30


def _counter_rng() -> envelope.slots.RandomSource:
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return bytes((next(counter) + i) & 0xFF for i in range(n))

    return rng


def _pattern(index: int) -> bytes:
    return bytes([index & 0xFF, (index >> 8) & 0xFF]) * (cb.CHUNK_SIZE // 2)


class SyntheticEnvelope(io.RawIOBase):
    """A 1 GiB-plaintext envelope whose chunks are encrypted on demand when read,
    recording which chunks were touched (nothing is stored)."""

    def __init__(self, *, sized: bool) -> None:
        out = io.BytesIO()
        self.writer = envelope.Writer(out, [KEK], size=GIB if sized else None, rng=_counter_rng())
        self.prefix = out.getvalue()  # envelope prefix + salt + commitment
        self.chunks = GIB // cb.CHUNK_SIZE + 1  # 65,536 full chunks and an empty final one
        self.length = len(self.prefix) + (self.chunks - 1) * cb.CT_CHUNK_SIZE + cb.TAG_SIZE
        self.pos = 0
        self.touched: set[int] = set()
        self.body_bytes_read = 0
        self._cache: tuple[int, bytes] | None = None

    def _chunk(self, k: int) -> bytes:
        if self._cache is None or self._cache[0] != k:
            cipher = self.writer._cipher
            if k == self.chunks - 1:
                ct = cipher.encrypt_final(b"", k)
            else:
                buf = bytearray(cb.CT_CHUNK_SIZE)
                cipher.encrypt_full_chunks(memoryview(_pattern(k)), k, memoryview(buf))
                ct = bytes(buf)
            self._cache = (k, ct)
        return self._cache[1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        n = 0
        while n < len(view) and self.pos < self.length:
            if self.pos < len(self.prefix):
                piece = self.prefix[self.pos :]
            else:
                rel = self.pos - len(self.prefix)
                k, off = divmod(rel, cb.CT_CHUNK_SIZE)
                self.touched.add(k)
                piece = self._chunk(k)[off:]
            take = min(len(piece), len(view) - n)
            view[n : n + take] = piece[:take]
            if self.pos >= len(self.prefix):
                self.body_bytes_read += take
            n += take
            self.pos += take
        return n


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (700 * (1 << 20) + 5, 40_000), (GIB - 3, 3), (16383, 2), (GIB - 16384, 16384)],
)
def test_random_access_reads_only_needed_chunks(offset: int, length: int) -> None:
    src = SyntheticEnvelope(sized=True)
    reader = envelope.Reader(src, [KEK])
    assert reader.size == GIB
    assert src.touched == set()  # size is authenticated by the header commitment
    data = reader.pread(offset, length)
    first, last = offset // cb.CHUNK_SIZE, (offset + length - 1) // cb.CHUNK_SIZE
    assert src.touched == set(range(first, last + 1))
    assert src.body_bytes_read == (last - first + 1) * cb.CT_CHUNK_SIZE
    expected = b"".join(_pattern(k) for k in range(first, last + 1))
    base = first * cb.CHUNK_SIZE
    assert data == expected[offset - base : offset - base + length]


def test_seek_from_end_authenticates_final_chunk_only() -> None:
    src = SyntheticEnvelope(sized=True)
    reader = envelope.Reader(src, [KEK])
    assert reader.seek(-5, io.SEEK_END) == GIB - 5
    assert src.touched == {src.chunks - 1}
    assert reader.read(100) == _pattern(src.chunks - 2)[-5:]
    assert src.touched == {src.chunks - 1, src.chunks - 2}


def test_unsized_envelope_authenticates_length_at_open() -> None:
    src = SyntheticEnvelope(sized=False)
    reader = envelope.Reader(src, [KEK])
    assert src.touched == {src.chunks - 1}
    assert reader.size == GIB
    assert reader.pread(GIB // 2, 4) == _pattern(GIB // 2 // cb.CHUNK_SIZE)[:4]
    assert len(src.touched) == 2


class Pipe(io.RawIOBase):
    """Non-seekable, returns at most ``step`` bytes per read (like a pipe)."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._step, len(self._data) - self._pos)
        memoryview(b).cast("B")[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


MSG = os.urandom(3 * 64 * cb.CHUNK_SIZE + 777)  # three batches and a bit


@pytest.mark.parametrize("sized", [True, False])
def test_writer_in_odd_pieces_and_pipe_reader(sized: bool) -> None:
    out = io.BytesIO()
    with envelope.Writer(out, [KEK], size=len(MSG) if sized else None) as w:
        for start in range(0, len(MSG), 12_345):
            w.write(MSG[start : start + 12_345])
    data = out.getvalue()
    assert envelope.open(data, [KEK]) == MSG
    reader = envelope.Reader(Pipe(data), [KEK])
    assert not reader.seekable()
    got = b"".join(iter(lambda: reader.read(50_000), b""))
    assert got == MSG


@pytest.mark.parametrize("sized", [True, False])
def test_pipe_truncation_and_trailing(sized: bool) -> None:
    data = envelope.seal(MSG if sized else io.BytesIO(MSG), [KEK])
    with pytest.raises(TruncationError):
        envelope.Reader(Pipe(data[: -(777 + 16)]), [KEK]).read()
    expected = TrailingDataError if sized else (ChunkAuthenticationError, TruncationError)
    with pytest.raises(expected):
        envelope.Reader(Pipe(data + b"x" * 40), [KEK]).read()


def test_errors_are_sticky_and_no_unverified_plaintext() -> None:
    data = bytearray(envelope.seal(MSG, [KEK]))
    data[-2000] ^= 1  # inside the last batch
    reader = envelope.Reader(Pipe(bytes(data)), [KEK])
    released = b""
    with pytest.raises(ChunkAuthenticationError):
        while chunk := reader.read(64 * cb.CHUNK_SIZE):
            released += chunk
    assert MSG.startswith(released)
    assert len(released) <= len(MSG) - 777
    with pytest.raises(ChunkAuthenticationError):
        reader.read(1)


def test_writer_misuse() -> None:
    out = io.BytesIO()
    w = envelope.Writer(out, [KEK], size=10)
    with pytest.raises(ValueError):
        w.write(b"x" * 11)
    w.write(b"x" * 5)
    with pytest.raises(ValueError):
        w.close()
    unclosed = io.BytesIO()
    w2 = envelope.Writer(unclosed, [KEK])
    w2.write(b"y" * 100)
    with pytest.raises(TruncationError):
        envelope.open(unclosed.getvalue(), [KEK])


def test_reader_seek_and_read_sequentially() -> None:
    data = envelope.seal(MSG, [KEK])
    reader = envelope.Reader(io.BytesIO(data), [KEK])
    reader.seek(100_000)
    assert reader.read(10) == MSG[100_000:100_010]
    assert reader.tell() == 100_010
    reader.seek(-10, io.SEEK_CUR)
    assert reader.read(10) == MSG[100_000:100_010]
    assert reader.pread(len(MSG) + 5, 10) == b""
    assert reader.header.size == len(MSG)
