"""The one deterministic-CBOR codec of trustedge (RFC 8949).

Encoding follows the core deterministic encoding requirements of RFC 8949
§4.2.1: preferred (shortest) argument encoding, definite lengths only, map keys
sorted by the bytewise order of their encodings, floats in their shortest
exact form. Everything trustedge signs, hashes or stores goes through
:func:`encode`.

Decoding takes untrusted bytes and bounds everything: input size, nesting
depth, total item count, string and container lengths (checked against the
bytes actually left before anything is allocated). It rejects duplicate map
keys (cbor2 would silently keep the last one), map keys that are not
int/text/bytes, indefinite lengths unless allowed, simple values other than
false/true/null, and -- when ``canonical=True`` -- any input that is not the
deterministic encoding of what it decodes to (checked by re-encoding).
Tags are returned uninterpreted as :class:`cbor2.CBORTag` so no tag handler
(bignums, dates, ...) runs on hostile input. The only exception out of
:func:`decode` is :class:`~trustedge.errors.MalformedInputError` (or its
subclass :class:`~trustedge.errors.LimitExceededError`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Final

from cbor2 import CBORTag

from trustedge.errors import LimitExceededError, MalformedInputError

__all__ = ["CBORTag", "DecodeLimits", "decode", "decode_prefix", "encode"]

_UINT64_MAX: Final = 2**64 - 1


@dataclass(frozen=True)
class DecodeLimits:
    """Caps applied while decoding untrusted CBOR.

    ``max_size`` bounds the input in bytes, ``max_depth`` the nesting of
    arrays/maps/tags, ``max_items`` the total number of data items.
    """

    max_size: int = 16 * 1024 * 1024
    max_depth: int = 32
    max_items: int = 1_000_000


DEFAULT_LIMITS: Final = DecodeLimits()


# -- encoding -----------------------------------------------------------------


def _head(major: int, arg: int, out: bytearray) -> None:
    mt = major << 5
    if arg < 24:
        out.append(mt | arg)
    elif arg <= 0xFF:
        out.append(mt | 24)
        out.append(arg)
    elif arg <= 0xFFFF:
        out.append(mt | 25)
        out += arg.to_bytes(2, "big")
    elif arg <= 0xFFFFFFFF:
        out.append(mt | 26)
        out += arg.to_bytes(4, "big")
    elif arg <= _UINT64_MAX:
        out.append(mt | 27)
        out += arg.to_bytes(8, "big")
    else:
        raise ValueError(f"integer argument {arg} does not fit in 64 bits")


def _encode_float(value: float, out: bytearray) -> None:
    if math.isnan(value):
        out += b"\xf9\x7e\x00"
        return
    for fmt, ai in (("e", 25), ("f", 26)):
        try:
            packed = struct.pack(">" + fmt, value)
        except OverflowError:
            continue
        if struct.unpack(">" + fmt, packed)[0] == value:
            out.append(0xE0 | ai)
            out += packed
            return
    out.append(0xFB)
    out += struct.pack(">d", value)


def _encode(obj: object, out: bytearray) -> None:
    # bool before int: bool is a subclass of int.
    if obj is False:
        out.append(0xF4)
    elif obj is True:
        out.append(0xF5)
    elif obj is None:
        out.append(0xF6)
    elif isinstance(obj, int):
        if obj >= 0:
            _head(0, obj, out)
        else:
            _head(1, -1 - obj, out)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        _head(2, len(data), out)
        out += data
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _head(3, len(data), out)
        out += data
    elif isinstance(obj, (list, tuple)):
        _head(4, len(obj), out)
        for item in obj:
            _encode(item, out)
    elif isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            kbuf = bytearray()
            _encode(key, kbuf)
            items.append((bytes(kbuf), value))
        items.sort(key=lambda kv: kv[0])
        _head(5, len(items), out)
        for kbytes, value in items:
            out += kbytes
            _encode(value, out)
    elif isinstance(obj, CBORTag):
        _head(6, obj.tag, out)
        _encode(obj.value, out)
    elif isinstance(obj, float):
        _encode_float(obj, out)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as deterministic CBOR")


def encode(obj: object) -> bytes:
    """Encode ``obj`` as deterministic CBOR (RFC 8949 §4.2.1).

    Supported: ``None``, ``bool``, ``int`` (within CBOR's 64-bit argument
    range), ``bytes``, ``str``, ``list``/``tuple``, ``dict``, ``float`` and
    :class:`cbor2.CBORTag`. Anything else raises ``TypeError``.
    """
    out = bytearray()
    _encode(obj, out)
    return bytes(out)


# -- decoding -----------------------------------------------------------------


class _Decoder:
    __slots__ = (
        "canonical", "data", "end", "indefinite", "items", "limits", "max_depth", "max_items",
        "pos",
    )  # fmt: skip

    def __init__(
        self, data: bytes, limits: DecodeLimits, canonical: bool, allow_indefinite: bool
    ) -> None:
        self.data = data
        self.end = len(data)
        self.pos = 0
        self.items = 0
        self.limits = limits
        self.max_depth = limits.max_depth
        self.max_items = limits.max_items
        self.canonical = canonical
        self.indefinite = allow_indefinite

    def fail(self, message: str, expected: str | None = None) -> MalformedInputError:
        return MalformedInputError(message, offset=self.pos, expected=expected)

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise self.fail(f"need {n} bytes, {len(self.data) - self.pos} left", what)
        start = self.pos
        self.pos += n
        return self.data[start : start + n]

    def head(self) -> tuple[int, int, int | None]:
        """Return (major, additional info, argument or None for indefinite)."""
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of input", "data item")
        ib = self.data[self.pos]
        self.pos += 1
        major, ai = ib >> 5, ib & 0x1F
        if ai < 24:
            return major, ai, ai
        if ai <= 27:
            size = 1 << (ai - 24)
            arg = int.from_bytes(self.take(size, "argument"), "big")
            return major, ai, arg
        if ai == 31 and major in (2, 3, 4, 5, 7):
            return major, ai, None
        self.pos -= 1
        raise self.fail(f"reserved additional information {ai}")

    def count_item(self) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise LimitExceededError(
                f"more than {self.limits.max_items} data items", offset=self.pos
            )

    def item(self, depth: int) -> Any:
        # The hot path of every parser: the head is read inline (no helper calls, no
        # tuples), with the same checks, messages and offsets as head() and take().
        if depth > self.max_depth:
            raise LimitExceededError(f"nesting deeper than {self.max_depth}", offset=self.pos)
        items = self.items = self.items + 1
        if items > self.max_items:
            raise LimitExceededError(f"more than {self.max_items} data items", offset=self.pos)
        data, end = self.data, self.end
        start = pos = self.pos
        if pos >= end:
            raise self.fail("unexpected end of input", "data item")
        ib = data[pos]
        pos += 1
        if ib < 0x18:  # the commonest items: small unsigned integers ...
            self.pos = pos
            return ib
        if 0x40 <= ib < 0x58:  # ... and short byte strings
            n = ib - 0x40
            if n > end - pos:
                self.pos = pos
                raise self.fail(f"need {n} bytes, {end - pos} left", "string content")
            self.pos = pos + n
            return data[pos : pos + n]
        if 0x80 <= ib < 0x98:  # ... and short arrays and maps
            self.pos = pos
            return self.array(ib - 0x80, depth)
        if 0xA0 <= ib < 0xB8:
            self.pos = pos
            return self.map(ib - 0xA0, depth)
        major, ai = ib >> 5, ib & 0x1F
        arg: int | None
        if ai < 24:
            arg = ai
        elif ai <= 27:
            size = 1 << (ai - 24)
            if size > end - pos:
                self.pos = pos
                raise self.fail(f"need {size} bytes, {end - pos} left", "argument")
            arg = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif ai == 31 and major in (2, 3, 4, 5, 7):
            arg = None
        else:
            raise self.fail(f"reserved additional information {ai}")
        self.pos = pos
        if major == 0:
            return arg
        if major == 1:
            assert arg is not None
            return -1 - arg
        if major in (2, 3):
            if arg is not None:
                if arg > end - pos:
                    raise self.fail(f"need {arg} bytes, {end - pos} left", "string content")
                self.pos = pos + arg
                raw = data[pos : pos + arg]
            else:
                raw = self.string(major, arg, start)
            if major == 3:
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.pos = start
                    raise self.fail("text string is not valid UTF-8") from None
            return raw
        if major == 4:
            return self.array(arg, depth)
        if major == 5:
            return self.map(arg, depth)
        if major == 6:
            assert arg is not None
            return CBORTag(arg, self.item(depth + 1))
        return self.simple(ai, arg, start)

    def string(self, major: int, arg: int | None, start: int) -> bytes:
        if arg is not None:
            return self.take(arg, "string content")
        if not self.indefinite:
            self.pos = start
            raise self.fail("indefinite-length string not allowed")
        chunks: list[bytes] = []
        while True:
            if self.pos < len(self.data) and self.data[self.pos] == 0xFF:
                self.pos += 1
                return b"".join(chunks)
            self.count_item()
            cmajor, _, carg = self.head()
            if cmajor != major or carg is None:
                raise self.fail("bad chunk in indefinite-length string")
            chunks.append(self.take(carg, "string chunk"))

    def _length(self, arg: int, start: int, what: str) -> int:
        # Each element takes at least one byte: a count larger than what is
        # left is a lie, and rejecting it here bounds the allocation.
        if arg > len(self.data) - self.pos:
            self.pos = start
            raise self.fail(f"{what} of {arg} elements exceeds the remaining input")
        return arg

    def array(self, arg: int | None, depth: int) -> list[Any]:
        start = self.pos
        if arg is None:
            if not self.indefinite:
                raise self.fail("indefinite-length array not allowed")
            out: list[Any] = []
            while True:
                if self.pos >= len(self.data):
                    raise self.fail("unterminated indefinite-length array", "break")
                if self.data[self.pos] == 0xFF:
                    self.pos += 1
                    return out
                out.append(self.item(depth + 1))
        if arg > self.end - self.pos:
            self._length(arg, start, "array")
        item, deeper = self.item, depth + 1
        if arg < 4:  # short arrays (most of them): no comprehension frame
            if arg == 0:
                return []
            if arg == 1:
                return [item(deeper)]
            if arg == 2:
                first = item(deeper)
                return [first, item(deeper)]
            first = item(deeper)
            second = item(deeper)
            return [first, second, item(deeper)]
        return [item(deeper) for _ in range(arg)]

    def map(self, arg: int | None, depth: int) -> dict[Any, Any]:
        start = self.pos
        out: dict[Any, Any] = {}
        if arg is None:
            if not self.indefinite:
                raise self.fail("indefinite-length map not allowed")
            while True:
                if self.pos >= len(self.data):
                    raise self.fail("unterminated indefinite-length map", "break")
                if self.data[self.pos] == 0xFF:
                    self.pos += 1
                    return out
                self.pair(out, depth)
        if arg > self.end - self.pos:
            self._length(arg, start, "map")
        item = self.item
        for _ in range(arg):
            kstart = self.pos
            key = item(depth + 1)
            kind = type(key)
            if kind is not int and kind is not str and kind is not bytes:
                self._check_key(key, kstart)
            if key in out:
                self.pos = kstart
                raise self.fail(f"duplicate map key {key!r}")
            out[key] = item(depth + 1)
        return out

    def _check_key(self, key: object, kstart: int) -> None:
        if isinstance(key, bool) or not isinstance(key, (int, str, bytes)):
            self.pos = kstart
            raise self.fail("map key must be an integer, text or byte string")

    def pair(self, out: dict[Any, Any], depth: int) -> None:
        kstart = self.pos
        key = self.item(depth + 1)
        self._check_key(key, kstart)
        if key in out:
            self.pos = kstart
            raise self.fail(f"duplicate map key {key!r}")
        out[key] = self.item(depth + 1)

    def simple(self, ai: int, arg: int | None, start: int) -> Any:
        if ai == 20:
            return False
        if ai == 21:
            return True
        if ai == 22:
            return None
        if arg is not None and ai in (25, 26, 27):
            raw = self.data[start + 1 : self.pos]
            if ai == 25:
                return float(struct.unpack(">e", raw)[0])
            if ai == 26:
                return float(struct.unpack(">f", raw)[0])
            return float(struct.unpack(">d", raw)[0])
        self.pos = start
        if arg is None:
            raise self.fail("unexpected break")
        raise self.fail(f"unsupported simple value {arg}")


def decode_prefix(
    data: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    canonical: bool = False,
    allow_indefinite: bool = False,
) -> tuple[Any, int]:
    """Decode one CBOR data item from the start of ``data``.

    Returns ``(item, length)`` where ``length`` is the number of bytes the item
    took; bytes after it are left to the caller.
    """
    buf = bytes(data)
    if len(buf) > limits.max_size:
        raise LimitExceededError(
            f"input of {len(buf)} bytes exceeds the limit of {limits.max_size}"
        )
    dec = _Decoder(buf, limits, canonical, allow_indefinite)
    try:
        obj = dec.item(0)
    except RecursionError:  # pragma: no cover - max_depth is far below the recursion limit
        raise LimitExceededError("nesting too deep", offset=dec.pos) from None
    if canonical and encode(obj) != buf[: dec.pos]:
        raise MalformedInputError("input is not deterministically encoded CBOR", offset=0)
    return obj, dec.pos


def decode(
    data: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    canonical: bool = False,
    allow_indefinite: bool = False,
) -> Any:
    """Decode exactly one CBOR data item; trailing bytes are rejected.

    ``canonical=True`` additionally requires ``data`` to be the deterministic
    encoding (RFC 8949 §4.2.1) of the decoded value. Raises only
    :class:`~trustedge.errors.MalformedInputError` (or
    :class:`~trustedge.errors.LimitExceededError`) on bad input.
    """
    obj, used = decode_prefix(
        data, limits=limits, canonical=canonical, allow_indefinite=allow_indefinite
    )
    if used != len(data):
        raise MalformedInputError(f"{len(data) - used} trailing bytes", offset=used)
    return obj
