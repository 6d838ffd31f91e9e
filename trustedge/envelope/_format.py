"""The envelope container: preamble, immutable header, rewritable slot list, body.

::

    envelope = magic "TEnv" | version 0x01
             | header_len:u32be | header   (deterministic CBOR map, immutable)
             | slots_len:u32be  | slots    (deterministic CBOR array, rewritable)
             | body                        (c2sp.org/chunked-encryption ciphertext)

The Cobblestone ``context`` is ``"trustedge/envelope/v1" 0x00 || preamble ||
header_len || header``: editing the header fails the key commitment before any
chunk is decrypted. The slot list is outside the context so that re-wrapping
rewrites only that region; each slot is bound to its envelope through
:func:`slot_aad` instead.

Parsing is bounded (header and slot-list sizes, slot count) and raises only
:class:`MalformedInputError`/:class:`LimitExceededError`/:class:`UnsupportedAlgorithmError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from trustedge import _cbor
from trustedge._binary import Reader, Writer
from trustedge.envelope import _cobblestone as cb
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    TrailingDataError,
    TruncationError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "MAGIC",
    "MAX_HEADER_SIZE",
    "MAX_SLOTS",
    "MAX_SLOTS_SIZE",
    "SUITES",
    "SUITE_CHACHA20_POLY1305",
    "SUITE_COBBLESTONE_256",
    "VERSION",
    "Header",
    "Prefix",
    "Slot",
    "binding",
    "check_body_size",
    "context_for",
    "decode_slots",
    "encode_prefix",
    "encode_slots",
    "read_prefix",
    "slot_aad",
]

MAGIC: Final = b"TEnv"
VERSION: Final = 1
PREAMBLE: Final = MAGIC + bytes([VERSION])
MAX_HEADER_SIZE: Final = 64 * 1024
MAX_SLOTS_SIZE: Final = 1024 * 1024
MAX_SLOTS: Final = 64

#: Suite 1: Cobblestone-256 (HKDF-SHA-512, AES-256-GCM, 16 KiB chunks).
SUITE_COBBLESTONE_256: Final = 1
#: Suite 2: the same construction over ChaCha20-Poly1305 (trustedge-specific).
SUITE_CHACHA20_POLY1305: Final = 2
SUITES: Final[Mapping[int, cb.Aead]] = {
    SUITE_COBBLESTONE_256: cb.AES_256_GCM,
    SUITE_CHACHA20_POLY1305: cb.CHACHA20_POLY1305,
}

_CONTEXT_LABEL: Final = b"trustedge/envelope/v1\x00"
_BINDING_LABEL: Final = b"trustedge/slot-binding/v1\x00"
_SLOT_LABEL: Final = b"trustedge/slot/v1\x00"

_H_SUITE, _H_CONTEXT, _H_CONTENT_TYPE, _H_SIZE = 1, 2, 3, 4
_HEADER_LIMITS: Final = _cbor.DecodeLimits(max_size=MAX_HEADER_SIZE, max_depth=4, max_items=4096)
_SLOT_LIMITS: Final = _cbor.DecodeLimits(max_size=MAX_SLOTS_SIZE, max_depth=6, max_items=16384)

ContextValue = str | bytes


@dataclass(frozen=True)
class Header:
    """The immutable, authenticated header.

    ``context`` is application data stored in the clear and bound by the key
    commitment; ``size`` (plaintext bytes), when present, makes truncation and
    trailing data exact, length-only checks.
    """

    suite: int = SUITE_COBBLESTONE_256
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    content_type: str | None = None
    size: int | None = None

    def encode(self) -> bytes:
        m: dict[int, Any] = {_H_SUITE: self.suite, _H_CONTEXT: dict(self.context)}
        if self.content_type is not None:
            m[_H_CONTENT_TYPE] = self.content_type
        if self.size is not None:
            m[_H_SIZE] = self.size
        return _cbor.encode(m)

    @property
    def aead(self) -> cb.Aead:
        return SUITES[self.suite]

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> Header:
        m = _cbor.decode(data, canonical=True, limits=_HEADER_LIMITS)
        if not isinstance(m, dict):
            raise MalformedInputError("header is not a map", offset=offset)
        unknown = set(m) - {_H_SUITE, _H_CONTEXT, _H_CONTENT_TYPE, _H_SIZE}
        if unknown:
            raise MalformedInputError(f"unknown header fields {sorted(map(str, unknown))}")
        suite = m.get(_H_SUITE)
        if not isinstance(suite, int) or isinstance(suite, bool):
            raise MalformedInputError("header suite missing or not an integer", offset=offset)
        if suite not in SUITES:
            raise UnsupportedAlgorithmError(f"envelope suite {suite}")
        ctx = m.get(_H_CONTEXT)
        if not isinstance(ctx, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, bytes)) for k, v in ctx.items()
        ):
            raise MalformedInputError("header context must map text to text or bytes")
        ctype = m.get(_H_CONTENT_TYPE)
        if ctype is not None and not isinstance(ctype, str):
            raise MalformedInputError("content type must be text")
        size = m.get(_H_SIZE)
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise MalformedInputError("size must be an unsigned integer")
        return cls(suite, ctx, ctype, size)


@dataclass(frozen=True)
class Slot:
    """One key slot: ``[type, kek_id, params, wrapped]``. Nothing in it is secret
    without the matching key; ``kek_id`` lets a holder pick its slot without
    trial decryption."""

    type: int
    kek_id: str
    params: Mapping[str, Any]
    wrapped: bytes

    def to_cbor(self) -> list[Any]:
        return [self.type, self.kek_id, dict(self.params), self.wrapped]

    def describe(self) -> dict[str, Any]:
        """Type, key id and parameters (never the wrapped key), JSON-friendly."""
        return {"type": self.type, "kek_id": self.kek_id, "params": _plain(dict(self.params))}


def _plain(value: Any) -> Any:
    """Hostile slot parameters may hold any CBOR: show tags as plain data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _cbor.CBORTag):
        return {"tag": value.tag, "value": _plain(value.value)}
    return value


def encode_slots(slots: list[Slot]) -> bytes:
    if len(slots) > MAX_SLOTS:
        raise ValueError(f"at most {MAX_SLOTS} slots")
    return _cbor.encode([s.to_cbor() for s in slots])


def decode_slots(data: bytes) -> list[Slot]:
    arr = _cbor.decode(data, canonical=True, limits=_SLOT_LIMITS)
    if not isinstance(arr, list):
        raise MalformedInputError("slot list is not an array")
    if len(arr) > MAX_SLOTS:
        raise LimitExceededError(f"{len(arr)} slots exceed the limit of {MAX_SLOTS}")
    out = []
    for i, item in enumerate(arr):
        if not (
            isinstance(item, list)
            and len(item) == 4
            and isinstance(item[0], int)
            and not isinstance(item[0], bool)
            and item[0] >= 0
            and isinstance(item[1], str)
            and isinstance(item[2], dict)
            and all(isinstance(k, str) for k in item[2])
            and isinstance(item[3], bytes)
        ):
            raise MalformedInputError(f"slot {i} is not [uint, tstr, {{tstr: any}}, bstr]")
        out.append(Slot(item[0], item[1], item[2], item[3]))
    return out


@dataclass(frozen=True)
class Prefix:
    """Everything before the body, parsed (unverified until a key opens it)."""

    header: Header
    header_bytes: bytes
    slots: list[Slot]
    slots_offset: int
    body_offset: int

    @property
    def context(self) -> bytes:
        """The Cobblestone context: binds preamble and header bytes."""
        return context_for(self.header_bytes)


def context_for(header_bytes: bytes) -> bytes:
    return _CONTEXT_LABEL + PREAMBLE + len(header_bytes).to_bytes(4, "big") + header_bytes


def encode_prefix(header_bytes: bytes, slots: list[Slot]) -> bytes:
    w = Writer().write(PREAMBLE).bytes_u32be(header_bytes).bytes_u32be(encode_slots(slots))
    return w.getvalue()


def read_prefix(read: Callable[[int], bytes]) -> Prefix:
    """Parse the prefix from ``read(n)`` (a file's ``read``: may return fewer bytes
    only at end of input). Reads exactly the prefix, never into the body."""

    def take(n: int, what: str, offset: int) -> bytes:
        data = read(n)
        if len(data) != n:
            raise MalformedInputError(
                "input ends inside the envelope prefix", offset=offset, expected=what
            )
        return data

    pre = take(len(PREAMBLE) + 4, "magic, version and header length", 0)
    r = Reader(pre)
    if r.read(4) != MAGIC:
        raise MalformedInputError("not a trustedge envelope", offset=0, expected="magic TEnv")
    version = r.u8()
    if version != VERSION:
        raise UnsupportedAlgorithmError(f"envelope format version {version}")
    hlen = r.u32be("header length")
    if hlen > MAX_HEADER_SIZE:
        raise LimitExceededError(f"header of {hlen} bytes exceeds {MAX_HEADER_SIZE}", offset=5)
    header_bytes = take(hlen, "header", 9)
    header = Header.decode(header_bytes, 9)
    slots_offset = 9 + hlen
    slen = Reader(take(4, "slot list length", slots_offset)).u32be()
    if slen > MAX_SLOTS_SIZE:
        raise LimitExceededError(f"slot list of {slen} bytes exceeds {MAX_SLOTS_SIZE}")
    slots = decode_slots(take(slen, "slot list", slots_offset + 4))
    return Prefix(header, header_bytes, slots, slots_offset, slots_offset + 4 + slen)


def binding(header_bytes: bytes) -> bytes:
    """32 bytes mixed into every slot's wrapping (format version and domain).

    Deliberately *not* the header or the body salt: a slot that unwraps is
    always checked against the key commitment, which covers header and salt,
    so any header or salt edit surfaces as one error (``CommitmentError``)
    instead of looking like a wrong key, and a slot moved from another
    envelope unwraps to a key that fails this envelope's commitment.
    ``header_bytes`` is accepted for future versions and ignored in v1.
    """
    del header_bytes
    return hashlib.sha256(_BINDING_LABEL + PREAMBLE).digest()


def slot_aad(bind: bytes, slot_type: int, kek_id: str, params: Mapping[str, Any]) -> bytes:
    """Associated data for wrapping the file key into one slot: the envelope
    binding plus the slot's own type, key id and parameters."""
    return _SLOT_LABEL + bind + _cbor.encode([slot_type, kek_id, dict(params)])


def check_body_size(header: Header, body_size: int) -> cb.Layout:
    """Validate the body length (and the header ``size`` when present) before
    any crypto. Raises ``TruncationError``/``TrailingDataError``."""
    if header.size is not None:
        expected = cb.layout_for_plaintext(header.size)
        want = cb.Layout.chunk_offset(expected.chunks - 1) + expected.final_ct_size
        if body_size < want:
            raise TruncationError(f"body has {body_size} bytes, the header promises {want}")
        if body_size > want:
            raise TrailingDataError(f"{body_size - want} bytes after the final chunk")
        return expected
    return cb.layout(body_size)
