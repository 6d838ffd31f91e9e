"""Streaming envelope encryption: :class:`Writer` and :class:`Reader`.

Memory stays bounded (a batch of chunks, 1 MiB by default) whatever the
message size. The reader releases plaintext only from chunks that
authenticated; when the source is seekable it also offers random access
(:meth:`Reader.pread`, :meth:`Reader.seek`) that reads only the chunks
covering the requested range. Errors are sticky: after a failure every
further read raises the same error.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Final

from trustedge.envelope import _cobblestone as cb
from trustedge.envelope import _core
from trustedge.envelope._format import (
    SUITE_COBBLESTONE_256,
    SUITES,
    ContextValue,
    Header,
    Prefix,
    binding,
    check_body_size,
    context_for,
    encode_prefix,
    read_prefix,
)
from trustedge.envelope._readahead import BLOCK, ReadAhead, worth_reading_ahead
from trustedge.envelope.slots import FILE_KEY_SIZE, Identity, RandomSource, Recipient
from trustedge.errors import (
    LimitExceededError,
    TrailingDataError,
    TruncationError,
    TrustedgeError,
)

__all__ = ["BATCH_CHUNKS", "DEFAULT_MAX_CHUNKS", "Reader", "Writer"]

#: Chunks processed per call into the AEAD loop (64 x 16 KiB = 1 MiB).
BATCH_CHUNKS: Final = 64
#: Default cap on chunks per message (64 TiB), as the C2SP spec suggests.
DEFAULT_MAX_CHUNKS: Final = 1 << 32


class Writer:
    """Encrypt a stream into ``out`` (any binary file object with ``write``).

    The prefix (header and slots) is written at construction, chunks as soon
    as 16 KiB are buffered, the short final chunk by :meth:`close` (required:
    without it the output is truncated and will not open). ``size``, when
    given, is stored in the header and :meth:`close` checks it was honoured.
    """

    def __init__(
        self,
        out: IO[bytes],
        recipients: Sequence[Recipient],
        *,
        context: Mapping[str, ContextValue] | None = None,
        content_type: str | None = None,
        size: int | None = None,
        suite: int = SUITE_COBBLESTONE_256,
        rng: RandomSource = os.urandom,
    ) -> None:
        if not recipients:
            raise ValueError("give at least one recipient")
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite}")
        if size is not None and size < 0:
            raise ValueError("size must be >= 0")
        self._out = out
        self._size = size
        header = Header(suite, dict(context or {}), content_type, size)
        header_bytes = header.encode()
        file_key = rng(FILE_KEY_SIZE)
        salt = rng(cb.SALT_SIZE)
        key, base_nonce, commitment = cb.derive(
            header.aead, file_key, salt, context_for(header_bytes)
        )
        bind = binding(header_bytes)
        slots = [r.wrap(file_key, bind, rng) for r in recipients]
        self._cipher = cb.ChunkCipher(header.aead, key, base_nonce)
        self._buf = bytearray()
        self._index = 0
        self._written = 0
        self._closed = False
        self._scratch = bytearray(BATCH_CHUNKS * cb.CT_CHUNK_SIZE)
        out.write(encode_prefix(header_bytes, slots) + salt + commitment)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data``; returns ``len(data)``."""
        if self._closed:
            raise ValueError("write to a closed envelope writer")
        mv = memoryview(data).cast("B")
        n = len(mv)
        if self._size is not None and self._written + n > self._size:
            raise ValueError("more data than the declared size")
        self._written += n
        if self._buf:
            take = min(cb.CHUNK_SIZE - len(self._buf), len(mv))
            self._buf += mv[:take]
            mv = mv[take:]
            if len(self._buf) == cb.CHUNK_SIZE:
                self._emit(memoryview(self._buf))
                self._buf.clear()
        full = len(mv) // cb.CHUNK_SIZE * cb.CHUNK_SIZE
        if full:
            self._emit(mv[:full])
        self._buf += mv[full:]
        return n

    def write_from(self, src: IO[bytes], progress: Callable[[int], object] | None = None) -> int:
        """Encrypt everything ``src`` (a binary file object) holds until its end;
        returns the number of bytes read. ``progress``, when given, is called
        with the running total after each block.

        A regular file is read ahead by a helper thread when the process may
        use more than one CPU (reads release the GIL, so copying the next
        block overlaps encrypting this one); other sources (pipes, terminals,
        in-memory streams) are read on this thread.
        Either way memory is bounded (a few 1 MiB blocks) and the helper
        thread has stopped when this returns or raises.
        """
        done = 0
        if worth_reading_ahead(src):
            with ReadAhead(src) as blocks:
                for block in blocks:
                    self.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done)
            return done
        view = memoryview(bytearray(BLOCK))
        readinto = getattr(src, "readinto", None)
        while True:
            if readinto is not None:
                n = readinto(view)
            else:
                data = src.read(BLOCK)
                n = len(data)
                view[:n] = data
            if not n:
                return done
            self.write(view[:n])
            done += n
            if progress is not None:
                progress(done)

    def _emit(self, plaintext: memoryview) -> None:
        scratch = memoryview(self._scratch)
        step = BATCH_CHUNKS * cb.CHUNK_SIZE
        for start in range(0, len(plaintext), step):
            piece = plaintext[start : start + step]
            count = len(piece) // cb.CHUNK_SIZE
            self._cipher.encrypt_full_chunks(piece, self._index, scratch)
            self._index += count
            self._out.write(scratch[: count * cb.CT_CHUNK_SIZE])

    def close(self) -> None:
        """Write the final short chunk. Idempotent."""
        if self._closed:
            return
        if self._size is not None and self._written != self._size:
            raise ValueError(f"declared size {self._size}, wrote {self._written}")
        self._closed = True
        self._out.write(self._cipher.encrypt_final(bytes(self._buf), self._index))
        self._buf.clear()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True


def _readinto_full(src: IO[bytes], view: memoryview) -> int:
    """Fill ``view`` from ``src``; fewer bytes only at end of input."""
    readinto = getattr(src, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            data = src.read(len(view) - got)
            n = len(data)
            view[got : got + n] = data
        if not n:
            break
        got += n
    return got


def _read_full(src: IO[bytes], n: int) -> bytes:
    """Read ``n`` bytes, fewer only at end of input (pipes return short reads)."""
    parts = []
    while n > 0:
        data = src.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


class Reader(io.RawIOBase):
    """Decrypt an envelope from ``src`` (a binary file object).

    At construction the prefix is parsed (bounded), the caller's required
    ``context`` checked, a slot unwrapped with ``identities`` and the key
    commitment verified: all before any chunk is decrypted. With a seekable
    ``src`` the body length is validated (and, when the header has no size,
    the final chunk authenticated) up front, and :meth:`pread`/:meth:`seek`
    read only the chunks needed. A non-seekable ``src`` is read sequentially
    and truncation is reported at its end.

    Raises what :func:`trustedge.envelope.open` raises.
    """

    def __init__(
        self,
        src: IO[bytes],
        identities: Sequence[Identity],
        *,
        context: Mapping[str, ContextValue] | None = None,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> None:
        super().__init__()
        self._src = src
        self._error: TrustedgeError | None = None
        try:
            seekable = bool(src.seekable())
        except (AttributeError, OSError):
            seekable = False
        start = src.tell() if seekable else 0
        self.prefix: Prefix = read_prefix(lambda n: _read_full(src, n))
        _core.check_context(self.prefix, context)
        chunk_header = _read_full(src, cb.HEADER_SIZE)
        _, self._cipher = _core.unwrap(self.prefix, chunk_header, identities)
        self._max_chunks = max_chunks
        self._pos = 0
        self._random = seekable
        self._index = 0
        self._eof = False
        self._out_buf = b""  # decrypted, not yet returned (sequential mode)
        self._out_off = 0
        self._consumed = 0
        self._body_start = start + self.prefix.body_offset
        self._final_checked = False
        self._ct_buf = bytearray()
        self._pt_buf = bytearray()
        if seekable:
            end = src.seek(0, io.SEEK_END)
            self._layout = check_body_size(self.prefix.header, end - self._body_start)
            if self._layout.chunks > max_chunks:
                raise LimitExceededError(f"{self._layout.chunks} chunks exceed {max_chunks}")
            if self.prefix.header.size is None:
                self._authenticate_final()
        self._expected_ct: int | None = None
        if self.prefix.header.size is not None:
            lay = cb.layout_for_plaintext(self.prefix.header.size)
            total = cb.Layout.chunk_offset(lay.chunks - 1) + lay.final_ct_size
            self._expected_ct = total - cb.HEADER_SIZE

    # -- common ----------------------------------------------------------------------
    @property
    def header(self) -> Header:
        """The (now authenticated) header."""
        return self.prefix.header

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._random

    @property
    def size(self) -> int:
        """Plaintext size (authenticated). Only for seekable sources or a header
        with a size."""
        if self._random:
            return self._layout.plaintext_size
        if self.prefix.header.size is not None:
            return self.prefix.header.size
        raise io.UnsupportedOperation("size of a non-seekable envelope without a stored size")

    def _fail(self, exc: TrustedgeError) -> TrustedgeError:
        self._error = exc
        return exc

    def _check_error(self) -> None:
        if self._error is not None:
            raise self._error

    # -- random access ------------------------------------------------------------------
    def _authenticate_final(self) -> None:
        last = self._layout.chunks - 1
        self._read_chunks(last, last)
        self._final_checked = True

    def _scratch(self, name: str, n: int) -> memoryview:
        """A reusable buffer of at least ``n`` bytes (no fresh allocation, and so
        no page faults, per read)."""
        buf: bytearray = getattr(self, name)
        if len(buf) < n:
            buf = bytearray(n)
            setattr(self, name, buf)
        return memoryview(buf)[:n]

    def _decrypt_into(self, first: int, last: int, out: memoryview) -> int:
        """Decrypt chunks ``first..last`` (inclusive) from the seekable source into
        ``out``; returns the plaintext length. On failure the failed chunk's
        region of ``out`` is zeroed and the error is sticky."""
        lay = self._layout
        end_chunk = min(last, lay.chunks - 1)
        length = (end_chunk - first) * cb.CT_CHUNK_SIZE + (
            lay.final_ct_size if end_chunk == lay.chunks - 1 else cb.CT_CHUNK_SIZE
        )
        self._src.seek(self._body_start + cb.Layout.chunk_offset(first))
        ct = self._scratch("_ct_buf", length)
        if _readinto_full(self._src, ct) != length:
            raise self._fail(TruncationError("the source shrank while reading"))
        try:
            n = self._cipher.decrypt_chunks(ct, first, out)
        except TrustedgeError as exc:
            raise self._fail(exc) from None
        if end_chunk == lay.chunks - 1:
            self._final_checked = True
        return n

    def _read_chunks(self, first: int, last: int) -> memoryview:
        """Decrypt chunks ``first..last`` into the reusable plaintext buffer."""
        out = self._scratch("_pt_buf", (last - first + 1) * cb.CHUNK_SIZE)
        return out[: self._decrypt_into(first, last, out)]

    def pread(self, offset: int, n: int) -> bytes:
        """Up to ``n`` plaintext bytes from ``offset``, reading only the chunks
        that cover them. Seekable sources only."""
        self._check_error()
        if not self._random:
            raise io.UnsupportedOperation("pread needs a seekable source")
        if offset < 0 or n < 0:
            raise ValueError("offset and n must be >= 0")
        size = self._layout.plaintext_size
        end = min(offset + n, size)
        if offset >= end:
            return b""
        first = offset // cb.CHUNK_SIZE
        last = (end - 1) // cb.CHUNK_SIZE
        data = self._read_chunks(first, last)
        base = first * cb.CHUNK_SIZE
        return bytes(data[offset - base : end - base])

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._random:
            raise io.UnsupportedOperation("seek needs a seekable source")
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            if not self._final_checked:
                self._authenticate_final()  # the length must be authenticated first
            pos = self._layout.plaintext_size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    # -- sequential -----------------------------------------------------------------------
    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all remaining for -1/None)."""
        self._check_error()
        if self._random:
            remaining = max(self._layout.plaintext_size - self._pos, 0)
            n = remaining if size is None or size < 0 else min(size, remaining)
            buf = bytearray(n)
            view = memoryview(buf)
            got = 0
            while got < n and (k := self.readinto(view[got:])):
                got += k
            view.release()
            if self._pos >= self._layout.plaintext_size and not self._final_checked:
                self._authenticate_final()  # reached the end: the final chunk must verify
            del buf[got:]
            return bytes(buf)
        if size is None or size < 0:
            parts = [self._out_buf[self._out_off :]]
            self._out_buf, self._out_off = b"", 0
            while not self._eof:
                parts.append(self._stream_batch())
            data = b"".join(parts)
        else:
            if self._out_off >= len(self._out_buf) and not self._eof:
                self._out_buf, self._out_off = self._stream_batch(), 0
            # At most one batch is buffered; callers loop for more.
            data = self._out_buf[self._out_off : self._out_off + size]
            self._out_off += len(data)
        self._pos += len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``b`` with the next plaintext bytes; returns how many (0 at end).
        On a seekable source, whole chunks are decrypted straight into ``b``."""
        self._check_error()
        view = memoryview(b).cast("B")
        if not self._random:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        size = self._layout.plaintext_size
        n = min(len(view), size - self._pos)
        if self._pos >= size:
            # End of message: never report EOF before the final chunk (possibly
            # empty, so no read above needed it) authenticated.
            if not self._final_checked:
                self._authenticate_final()
            return 0
        if n <= 0:
            return 0
        if self._pos % cb.CHUNK_SIZE == 0 and n >= cb.CHUNK_SIZE:
            first = self._pos // cb.CHUNK_SIZE
            if self._pos + n == size:
                last = self._layout.chunks - 1  # through the final chunk
            else:
                n -= n % cb.CHUNK_SIZE
                last = first + n // cb.CHUNK_SIZE - 1
            got = self._decrypt_into(first, last, view[:n])
        else:
            n = min(n, cb.CHUNK_SIZE - self._pos % cb.CHUNK_SIZE)
            data = self.pread(self._pos, n)
            got = len(data)
            view[:got] = data
        self._pos += got
        return got

    def readall(self) -> bytes:
        return self.read(-1)

    def copy_to(self, dst: IO[bytes], progress: Callable[[int], object] | None = None) -> int:
        """Decrypt the rest of the envelope (from the current position) into
        ``dst``; returns the number of plaintext bytes written. ``progress``,
        when given, is called with the running total after each block.

        Only authenticated plaintext is written, one batch of chunks (1 MiB) at
        a time; at the first chunk that fails nothing more is written and the
        error is raised (and sticky), so a caller that must not keep partial
        output writes to :func:`~trustedge.envelope.atomic_output`. With a
        seekable regular file as the source and more than one CPU, a helper
        thread reads the next batch of ciphertext while this one is
        decrypted; it has stopped when this returns or raises.
        """
        self._check_error()
        done = 0
        if not (self._random and worth_reading_ahead(self._src)):
            view = memoryview(bytearray(BLOCK))
            while n := self.readinto(view):
                dst.write(view[:n])
                done += n
                if progress is not None:
                    progress(done)
            return done
        lay = self._layout
        if self._pos % cb.CHUNK_SIZE and self._pos < lay.plaintext_size:
            # Finish the chunk the position is in; the rest is chunk-aligned.
            head = memoryview(bytearray(cb.CHUNK_SIZE - self._pos % cb.CHUNK_SIZE))
            done = self.readinto(head)
            dst.write(head[:done])
        if self._pos >= lay.plaintext_size:
            if not self._final_checked:
                self._authenticate_final()
            return done
        index = self._pos // cb.CHUNK_SIZE
        start = cb.Layout.chunk_offset(index)
        left = cb.Layout.chunk_offset(lay.chunks - 1) + lay.final_ct_size - start
        batch = BLOCK // cb.CHUNK_SIZE * cb.CT_CHUNK_SIZE  # whole chunks: 1 MiB of plaintext
        out = self._scratch("_pt_buf", BLOCK)
        self._src.seek(self._body_start + start)
        with ReadAhead(self._src, block=batch, limit=left) as blocks:
            for ct in blocks:
                if len(ct) != min(batch, left):
                    raise self._fail(TruncationError("the source shrank while reading"))
                left -= len(ct)
                try:
                    n = self._cipher.decrypt_chunks(ct, index, out)
                except TrustedgeError as exc:
                    raise self._fail(exc) from None
                index += -(-len(ct) // cb.CT_CHUNK_SIZE)
                dst.write(out[:n])
                self._pos += n
                done += n
                if progress is not None:
                    progress(done)
        if left:
            raise self._fail(TruncationError("the source shrank while reading"))
        self._final_checked = True
        return done

    def _stream_batch(self) -> bytes:
        """Decrypt the next batch of chunks from a non-seekable source. Every
        full 16400-byte piece is a non-final chunk; the stream must end with a
        piece of 16..16399 bytes."""
        want = BATCH_CHUNKS * cb.CT_CHUNK_SIZE
        if self._expected_ct is not None:
            # The header gives the size: read exactly the body, then expect EOF.
            n = min(want, self._expected_ct)
            data = _read_full(self._src, n)
            if len(data) < n:
                raise self._fail(TruncationError("envelope ends before the size in its header"))
            self._expected_ct -= n
            final = self._expected_ct == 0
            if final and self._src.read(1):
                raise self._fail(TrailingDataError("data follows the final chunk"))
        else:
            data = _read_full(self._src, want)
            final = len(data) < want
        if not final:
            pieces = len(data) // cb.CT_CHUNK_SIZE
        else:
            full, last = divmod(len(data), cb.CT_CHUNK_SIZE)
            if last < cb.TAG_SIZE:
                what = "the short final chunk is missing" if last == 0 else "the final tag is cut"
                raise self._fail(TruncationError(f"envelope is truncated: {what}"))
            pieces = full + 1
        if self._index + pieces > self._max_chunks:
            raise self._fail(LimitExceededError(f"more than {self._max_chunks} chunks"))
        out = bytearray(len(data) - pieces * cb.TAG_SIZE)
        try:
            self._cipher.decrypt_chunks(memoryview(data), self._index, memoryview(out))
        except TrustedgeError as exc:
            out[:] = bytes(len(out))
            raise self._fail(exc) from None
        self._index += pieces
        self._consumed += len(out)
        if final:
            self._eof = True
            expected = self.prefix.header.size
            # not secret: byte counts from the public header
            if expected is not None and self._consumed != expected:
                cls = TruncationError if self._consumed < expected else TrailingDataError
                raise self._fail(cls(f"{self._consumed} bytes, the header promises {expected}"))
        return bytes(out)

    def close(self) -> None:
        super().close()
