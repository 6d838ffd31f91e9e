"""Fuzz entry point: ``trustedge._binary.Reader`` driven by the input itself.

The input is both program and data: each step reads an opcode byte and then
performs that read (fixed-size integers, length-prefixed fields with and
without caps, ``sub`` readers, ``peek``/``skip``, struct reads, ``count``,
``expect_end``) on the rest. Besides the contract (only ``MalformedInputError`` /
``LimitExceededError``) each step checks the reader's invariants: the offset
advances by exactly what was read, ``remaining`` stays consistent, a failed
read consumes nothing, and every integer read re-serialises through
:class:`~trustedge._binary.Writer` to the very bytes it came from.
"""

from __future__ import annotations

import struct

from tests.fuzz._harness import fuzz_target
from trustedge._binary import Reader, Writer
from trustedge.errors import MalformedInputError

MAX_LEN = 4096

_INTS = ["u8", "u16le", "u32le", "u64le", "i32le", "u16be", "u32be", "u64be"]
_PREFIXED = ["bytes_u8", "bytes_u16be", "bytes_u16le", "bytes_u32le", "bytes_u32be"]
_MAX_STEPS = 256


def seeds() -> list[bytes]:
    """Small programs touching every opcode, plus one of each with a lying length."""
    progs = [bytes([op]) + bytes(range(1, 17)) for op in range(20)]
    progs.append(bytes([8, 0xFF, 9, 0xFF, 0xFF, 11, 0xFF, 0xFF, 0xFF, 0x7F]))
    progs.append(bytes([16, 4, 1, 2, 3, 4, 0, 1]))
    return progs


def _step(r: Reader, depth: int) -> None:
    op = r.u8("opcode") % 20
    before, left = r.offset, r.remaining
    size = 0
    try:
        if op < len(_INTS):
            name = _INTS[op]
            raw = r.peek(_width(name), name)
            value = getattr(r, name)(name)
            assert getattr(Writer(), name)(value).getvalue() == raw, (name, value, raw)
            size = len(raw)
        elif op < len(_INTS) + len(_PREFIXED):
            name = _PREFIXED[op - len(_INTS)]
            cap = None if op % 2 else 64
            data = getattr(r, name)(name, max_len=cap)
            assert cap is None or len(data) <= cap
            out = getattr(Writer(), name)(data).getvalue()
            size = len(out)
        elif op == 13:
            n = r.u8("sub length")
            inner = r.sub(n, "sub")
            assert inner.offset == before + 1 and inner.remaining == n
            if depth < 4:
                try:
                    while not inner.at_end():
                        _step(inner, depth + 1)
                    inner.expect_end()
                except MalformedInputError as exc:
                    # Errors inside a sub reader carry absolute offsets.
                    assert exc.offset is not None and before < exc.offset <= before + 1 + n
            size = 1 + n
        elif op == 14:
            n = r.u8("skip length")
            r.skip(n, "skip")
            size = 1 + n
        elif op == 15:
            n = r.u16le("count")
            assert r.count(n, 300) == n
            size = 2
        elif op == 16:
            n = r.u8("peek length")
            st = struct.Struct(f"{n}s")
            peeked = r.peek_struct(st, "peek")
            assert peeked == (r.peek(n),)
            assert r.read_struct(st, "read") == peeked
            size = 1 + n
        elif op == 17:
            r.expect_end("end")
        elif op == 18:
            size = len(r.rest())
        else:
            raise r.fail("opcode 19 always fails", expected="anything else")
    except MalformedInputError:
        # A failed read may have consumed its length field, never more than that.
        assert r.offset - before <= 4 and r.remaining == left - (r.offset - before)
        raise
    assert r.offset == before + size, (op, before, size, r.offset)
    assert r.remaining == left - size


def _width(name: str) -> int:
    return {"u8": 1, "u16le": 2, "u16be": 2, "u32le": 4, "u32be": 4, "i32le": 4}.get(name, 8)


@fuzz_target()
def TestOneInput(data: bytes) -> None:
    r = Reader(data, max_size=MAX_LEN)
    for _ in range(_MAX_STEPS):
        if r.at_end():
            return
        _step(r, 0)


if __name__ == "__main__":  # pragma: no cover - manual run
    import sys

    import atheris

    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
