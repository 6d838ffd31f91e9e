"""The one bounded reader (and its writer twin) for untrusted binary input.

Every read checks how many bytes are left before it takes any, so a lying
length field can never cause a short slice, a ``struct.error`` or a huge
allocation: the only exception out of :class:`Reader` is
:class:`~trustedge.errors.MalformedInputError` (with the byte offset and what
was expected) or its subclass :class:`~trustedge.errors.LimitExceededError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from trustedge.errors import LimitExceededError, MalformedInputError

__all__ = ["DEFAULT_MAX_SIZE", "Reader", "Writer"]

#: Default cap on the size of a buffer handed to :class:`Reader` (64 MiB).
DEFAULT_MAX_SIZE: Final = 64 * 1024 * 1024

_U16LE: Final = struct.Struct("<H")
_U32LE: Final = struct.Struct("<I")
_U64LE: Final = struct.Struct("<Q")
_U16BE: Final = struct.Struct(">H")
_U32BE: Final = struct.Struct(">I")
_U64BE: Final = struct.Struct(">Q")
_I32LE: Final = struct.Struct("<i")


class Reader:
    """Sequential, bounds-checked reads over an immutable byte buffer.

    ``data`` is the whole input; ``max_size`` rejects inputs larger than the
    caller is prepared to handle before any parsing happens. ``base_offset``
    is added to offsets in error messages (for nested readers).
    """

    __slots__ = ("_base", "_data", "_pos")

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        base_offset: int = 0,
    ) -> None:
        if len(data) > max_size:
            raise LimitExceededError(
                f"input of {len(data)} bytes exceeds the limit of {max_size}", offset=base_offset
            )
        self._data = bytes(data)
        self._pos = 0
        self._base = base_offset

    # -- position ---------------------------------------------------------
    @property
    def offset(self) -> int:
        """Absolute offset of the next byte to be read."""
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        """True when every byte has been consumed."""
        return self._pos >= len(self._data)

    def expect_end(self, what: str = "end of input") -> None:
        """Raise :class:`MalformedInputError` when unread (trailing) bytes remain."""
        if self._pos != len(self._data):
            raise MalformedInputError(
                f"{self.remaining} trailing bytes", offset=self.offset, expected=what
            )

    def fail(self, message: str, *, expected: str | None = None) -> MalformedInputError:
        """Build (not raise) an error at the current offset, for callers' own checks."""
        return MalformedInputError(message, offset=self.offset, expected=expected)

    # -- raw bytes --------------------------------------------------------
    # Each read checks ``0 <= n <= remaining`` inline (the hot path of every
    # parser) before it slices or moves; :meth:`_short` only builds the error.
    def _short(self, n: int, what: str) -> MalformedInputError:
        if n < 0:
            return MalformedInputError("negative length", offset=self.offset, expected=what)
        return MalformedInputError(
            f"need {n} bytes, {self.remaining} left", offset=self.offset, expected=what
        )

    def read(self, n: int, what: str = "bytes") -> bytes:
        """Read exactly ``n`` bytes."""
        start = self._pos
        end = start + n
        if n < 0 or end > len(self._data):
            raise self._short(n, what)
        self._pos = end
        return self._data[start:end]

    def peek(self, n: int, what: str = "bytes") -> bytes:
        """Return the next ``n`` bytes without consuming them."""
        start = self._pos
        end = start + n
        if n < 0 or end > len(self._data):
            raise self._short(n, what)
        return self._data[start:end]

    def skip(self, n: int, what: str = "bytes") -> None:
        """Advance past ``n`` bytes."""
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise self._short(n, what)
        self._pos = end

    def rest(self) -> bytes:
        """Read every remaining byte."""
        return self.read(self.remaining, "rest")

    def sub(self, n: int, what: str = "structure") -> Reader:
        """Consume ``n`` bytes and return a reader over exactly them."""
        base = self.offset
        data = self.read(n, what)
        return Reader(data, max_size=n, base_offset=base)

    # -- integers ---------------------------------------------------------
    def _unpack(self, st: struct.Struct, what: str) -> int:
        start = self._pos
        end = start + st.size
        if end > len(self._data):
            raise self._short(st.size, what)
        self._pos = end
        value: int = st.unpack_from(self._data, start)[0]
        return value

    def peek_struct(self, st: struct.Struct, what: str = "structure") -> tuple[Any, ...]:
        """Unpack the fixed-size ``st`` at the current position without consuming it."""
        start = self._pos
        if start + st.size > len(self._data):
            raise self._short(st.size, what)
        return st.unpack_from(self._data, start)

    def read_struct(self, st: struct.Struct, what: str = "structure") -> tuple[Any, ...]:
        """Consume and unpack the fixed-size ``st`` (one bounds check for all its fields)."""
        start = self._pos
        end = start + st.size
        if end > len(self._data):
            raise self._short(st.size, what)
        self._pos = end
        return st.unpack_from(self._data, start)

    def u8(self, what: str = "u8") -> int:
        start = self._pos
        if start >= len(self._data):
            raise self._short(1, what)
        self._pos = start + 1
        return self._data[start]

    def u16le(self, what: str = "u16") -> int:
        return self._unpack(_U16LE, what)

    def u32le(self, what: str = "u32") -> int:
        return self._unpack(_U32LE, what)

    def u64le(self, what: str = "u64") -> int:
        return self._unpack(_U64LE, what)

    def i32le(self, what: str = "i32") -> int:
        return self._unpack(_I32LE, what)

    def u16be(self, what: str = "u16") -> int:
        return self._unpack(_U16BE, what)

    def u32be(self, what: str = "u32") -> int:
        return self._unpack(_U32BE, what)

    def u64be(self, what: str = "u64") -> int:
        return self._unpack(_U64BE, what)

    # -- length-prefixed fields -------------------------------------------
    def _bounded(self, n: int, max_len: int | None, what: str) -> bytes:
        if max_len is not None and n > max_len:
            raise LimitExceededError(
                f"length {n} exceeds the limit of {max_len}", offset=self.offset, expected=what
            )
        return self.read(n, what)

    def bytes_u8(self, what: str = "u8-prefixed bytes", *, max_len: int | None = None) -> bytes:
        n = self.u8(what + " length")
        return self._bounded(n, max_len, what)

    def bytes_u16be(self, what: str = "u16-prefixed bytes", *, max_len: int | None = None) -> bytes:
        # Inlined (TPM2B fields are the hot path of the TPM parsers): the same checks, in
        # the same order, as ``self._bounded(self.u16be(...), max_len, what)``.
        data = self._data
        start = self._pos
        if start + 2 > len(data):
            raise self._short(2, what + " length")
        n = (data[start] << 8) | data[start + 1]
        if max_len is not None and n > max_len:
            self._pos = start + 2
            raise LimitExceededError(
                f"length {n} exceeds the limit of {max_len}", offset=self.offset, expected=what
            )
        end = start + 2 + n
        if end > len(data):
            self._pos = start + 2
            raise self._short(n, what)
        self._pos = end
        return data[start + 2 : end]

    def bytes_u16le(self, what: str = "u16-prefixed bytes", *, max_len: int | None = None) -> bytes:
        n = self.u16le(what + " length")
        return self._bounded(n, max_len, what)

    def bytes_u32le(self, what: str = "u32-prefixed bytes", *, max_len: int | None = None) -> bytes:
        n = self.u32le(what + " length")
        return self._bounded(n, max_len, what)

    def bytes_u32be(self, what: str = "u32-prefixed bytes", *, max_len: int | None = None) -> bytes:
        n = self.u32be(what + " length")
        return self._bounded(n, max_len, what)

    def count(self, n: int, max_count: int, what: str = "count") -> int:
        """Check a decoded element count against ``max_count`` and return it."""
        if n > max_count:
            raise LimitExceededError(
                f"{n} elements exceed the limit of {max_count}", offset=self.offset, expected=what
            )
        return n

    # -- runs of records (the fast path for long lists) ----------------------
    def u32le_pair_records(
        self,
        head: int,
        max_first: int,
        max_second: int,
        *,
        max_count: int,
        split_second: Mapping[bytes, int],
    ) -> list[tuple[int, bytes, bytes, bytes, tuple[bytes, ...] | None]]:
        """Read records ``head bytes || u32le-prefixed first || u32le-prefixed second``
        whose ``first`` field is a key of ``split_second``.

        Returns ``(offset, head, first, second, parts)`` for each complete
        record, in order: ``parts`` is ``second`` split into exactly
        ``split_second[first]`` u32le-prefixed fields, or None when it does not
        split that way. Stops **without raising** before a record that is
        incomplete, has a field over its cap or another ``first`` value, and
        after ``max_count`` records; the reader is left at the start of that
        record, so the caller reads it field by field (and gets the exact
        error) or through its own layout. Every length is checked against
        what is left before anything is sliced.
        """
        data = self._data
        end = len(data)
        pos = self._pos
        base = self._base
        unpack = _U32LE.unpack_from
        out: list[tuple[int, bytes, bytes, bytes, tuple[bytes, ...] | None]] = []
        append = out.append
        count_for = split_second.get
        while pos < end and len(out) < max_count:
            p = pos + head
            if p + 4 > end:
                break
            n1 = unpack(data, p)[0]
            p += 4
            if n1 > max_first or p + n1 + 4 > end:
                break
            first = data[p : p + n1]
            parts_wanted = count_for(first)
            if parts_wanted is None:
                break
            p += n1
            n2 = unpack(data, p)[0]
            p += 4
            if n2 > max_second or p + n2 > end:
                break
            stop = p + n2
            parts: tuple[bytes, ...] | None = None
            q = p
            if parts_wanted == 2 and p + 4 <= stop:  # the common shape, unrolled
                mid = p + 4 + unpack(data, p)[0]
                if mid + 4 <= stop and mid + 4 + unpack(data, mid)[0] == stop:
                    parts = (data[p + 4 : mid], data[mid + 4 : stop])
                    q = stop
            if parts is None:  # not exactly two fields: split field by field
                parts = ()
                for _ in range(parts_wanted):
                    if q + 4 > stop:
                        parts = None
                        break
                    n = unpack(data, q)[0]
                    q += 4
                    if n > stop - q:
                        parts = None
                        break
                    parts += (data[q : q + n],)
                    q += n
            append(
                (
                    base + pos,
                    data[pos : pos + head],
                    first,
                    data[p:stop],
                    parts if q == stop else None,
                )
            )
            pos = stop
        self._pos = pos
        return out


class Writer:
    """Append-only builder of binary structures (the twin of :class:`Reader`).

    Integer writers raise ``ValueError`` on out-of-range values: that is a
    programming error, not hostile input.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def write(self, data: bytes) -> Writer:
        self._buf += data
        return self

    def _pack(self, st: struct.Struct, value: int) -> Writer:
        try:
            self._buf += st.pack(value)
        except struct.error as exc:
            raise ValueError(f"{value} does not fit in {st.format}") from exc
        return self

    def u8(self, value: int) -> Writer:
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{value} does not fit in u8")
        self._buf.append(value)
        return self

    def u16le(self, value: int) -> Writer:
        return self._pack(_U16LE, value)

    def u32le(self, value: int) -> Writer:
        return self._pack(_U32LE, value)

    def u64le(self, value: int) -> Writer:
        return self._pack(_U64LE, value)

    def i32le(self, value: int) -> Writer:
        return self._pack(_I32LE, value)

    def u16be(self, value: int) -> Writer:
        return self._pack(_U16BE, value)

    def u32be(self, value: int) -> Writer:
        return self._pack(_U32BE, value)

    def u64be(self, value: int) -> Writer:
        return self._pack(_U64BE, value)

    def bytes_u8(self, data: bytes) -> Writer:
        return self.u8(len(data)).write(data)

    def bytes_u16be(self, data: bytes) -> Writer:
        return self.u16be(len(data)).write(data)

    def bytes_u16le(self, data: bytes) -> Writer:
        return self.u16le(len(data)).write(data)

    def bytes_u32le(self, data: bytes) -> Writer:
        return self.u32le(len(data)).write(data)

    def bytes_u32be(self, data: bytes) -> Writer:
        return self.u32be(len(data)).write(data)
