"""c2sp.org/chunked-encryption ("Cobblestone"), implemented exactly as specified.

Layout of a message: ``salt(24) || commitment(32) || chunk_0 || ... || chunk_n``.
Every chunk but the last holds 16 KiB of plaintext; the last one is always
shorter (possibly empty), which is what makes truncation and extension
detectable. Chunk ``k`` is sealed with the AEAD under the derived key and the
nonce ``base_nonce XOR k`` (big-endian, as wide as the nonce), with empty AAD.

::

    key || base_nonce || commitment = HKDF-Expand-SHA-512(prk = input key,
        info = "c2sp.org/chunked-encryption@v1+" || aead || 0x00 || salt || context)

The commitment is compared in constant time before any chunk is decrypted.
This module knows nothing about envelopes: the container passes its own
header bytes in as ``context``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from trustedge.errors import (
    ChunkAuthenticationError,
    CommitmentError,
    LimitExceededError,
    TruncationError,
)

__all__ = [
    "AES_128_GCM",
    "AES_256_GCM",
    "CHACHA20_POLY1305",
    "CHUNK_SIZE",
    "COMMITMENT_SIZE",
    "CT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAX_CHUNKS",
    "SALT_SIZE",
    "TAG_SIZE",
    "Aead",
    "ChunkCipher",
    "Layout",
    "decrypt",
    "derive",
    "encrypt",
    "layout",
    "layout_for_plaintext",
    "open_header",
]

CHUNK_SIZE: Final = 16384
TAG_SIZE: Final = 16
CT_CHUNK_SIZE: Final = CHUNK_SIZE + TAG_SIZE
SALT_SIZE: Final = 24
COMMITMENT_SIZE: Final = 32
HEADER_SIZE: Final = SALT_SIZE + COMMITMENT_SIZE
#: The spec's hard cap on the chunk counter (4 PiB messages).
MAX_CHUNKS: Final = 1 << 38
_NONCE_SIZE: Final = 12
_LABEL: Final = b"c2sp.org/chunked-encryption@v1+"


class _AeadImpl(Protocol):
    def encrypt_into(
        self, nonce: bytes, data: bytes | memoryview, associated_data: None, buf: memoryview
    ) -> int: ...

    def decrypt_into(
        self, nonce: bytes, data: bytes | memoryview, associated_data: None, buf: memoryview
    ) -> int: ...


@dataclass(frozen=True)
class Aead:
    """An AEAD instantiation: its IANA registry name, key size and constructor."""

    name: str
    key_size: int
    factory: Callable[[bytes], _AeadImpl]


AES_128_GCM: Final = Aead("AEAD_AES_128_GCM", 16, AESGCM)
AES_256_GCM: Final = Aead("AEAD_AES_256_GCM", 32, AESGCM)
#: Same structure over ChaCha20-Poly1305, for devices without AES instructions.
#: Not a C2SP-named instantiation; its known-answer tests are trustedge's own.
CHACHA20_POLY1305: Final = Aead("AEAD_CHACHA20_POLY1305", 32, ChaCha20Poly1305)


def derive(aead: Aead, input_key: bytes, salt: bytes, context: bytes) -> tuple[bytes, bytes, bytes]:
    """Return ``(key, base_nonce, commitment)`` for one message.

    Raises ``ValueError`` when ``input_key`` or ``salt`` have the wrong size
    (a caller error: keys come from slots that already checked their length).
    """
    if len(input_key) != aead.key_size:
        raise ValueError(f"input key must be {aead.key_size} bytes, got {len(input_key)}")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    info = _LABEL + aead.name.encode("ascii") + b"\x00" + salt + context
    out = HKDFExpand(hashes.SHA512(), aead.key_size + _NONCE_SIZE + COMMITMENT_SIZE, info).derive(
        input_key
    )
    k = aead.key_size
    return out[:k], out[k : k + _NONCE_SIZE], out[k + _NONCE_SIZE :]


@dataclass(frozen=True)
class Layout:
    """Where the chunks of a body of ``body_size`` bytes are (offsets relative to
    the start of the body, i.e. including the 56-byte header)."""

    chunks: int
    final_ct_size: int

    @property
    def plaintext_size(self) -> int:
        return (self.chunks - 1) * CHUNK_SIZE + self.final_ct_size - TAG_SIZE

    @staticmethod
    def chunk_offset(index: int) -> int:
        return HEADER_SIZE + index * CT_CHUNK_SIZE


def layout(body_size: int, *, max_chunks: int = MAX_CHUNKS) -> Layout:
    """Validate a body length and return its chunk layout.

    Raises :class:`TruncationError` when the length cannot be a complete
    message (missing header, partial tag, or no short final chunk) and
    :class:`LimitExceededError` beyond ``max_chunks``.
    """
    if body_size < HEADER_SIZE:
        raise TruncationError(f"{body_size} bytes: too short for the 56-byte chunk header")
    full, last = divmod(body_size - HEADER_SIZE, CT_CHUNK_SIZE)
    if last < TAG_SIZE:
        what = "the short final chunk is missing" if last == 0 else "the final tag is cut"
        raise TruncationError(f"ciphertext of {body_size} bytes is truncated: {what}")
    if full + 1 > min(max_chunks, MAX_CHUNKS):
        raise LimitExceededError(f"{full + 1} chunks exceed the limit of {max_chunks}")
    return Layout(full + 1, last)


def layout_for_plaintext(size: int) -> Layout:
    """The layout of the body that encrypts ``size`` plaintext bytes."""
    full, last = divmod(size, CHUNK_SIZE)
    return Layout(full + 1, last + TAG_SIZE)


class ChunkCipher:
    """Raw-mode chunk encryption and decryption under one key and base nonce.

    Use through :func:`open_header` (decrypting) or :func:`encrypt`; the raw
    mode offers no key commitment by itself.
    """

    __slots__ = ("_aead", "_base")

    def __init__(self, aead: Aead, key: bytes, base_nonce: bytes) -> None:
        if len(key) != aead.key_size or len(base_nonce) != _NONCE_SIZE:
            raise ValueError("wrong key or nonce size for raw mode")
        self._aead = aead.factory(key)
        self._base = int.from_bytes(base_nonce, "big")

    def nonce(self, index: int) -> bytes:
        if not 0 <= index < MAX_CHUNKS:
            raise LimitExceededError(f"chunk index {index} is beyond 2^38")
        return (self._base ^ index).to_bytes(_NONCE_SIZE, "big")

    def encrypt_full_chunks(self, plaintext: memoryview, first: int, out: memoryview) -> None:
        """Encrypt ``len(plaintext) // 16384`` full chunks, numbered from ``first``,
        into ``out`` (which must hold ``n * 16400`` bytes)."""
        n = len(plaintext) // CHUNK_SIZE
        if first + n > MAX_CHUNKS:
            raise LimitExceededError("message exceeds 2^38 chunks")
        enc = self._aead.encrypt_into
        base = self._base
        p = o = 0
        # The hot loop: one AEAD call per 16 KiB chunk on memoryview slices,
        # no per-chunk allocation beyond the 12-byte nonce.
        for index in range(first, first + n):
            enc(
                (base ^ index).to_bytes(_NONCE_SIZE, "big"),
                plaintext[p : p + CHUNK_SIZE],
                None,
                out[o : o + CT_CHUNK_SIZE],
            )
            p += CHUNK_SIZE
            o += CT_CHUNK_SIZE

    def encrypt_final(self, plaintext: memoryview | bytes, index: int) -> bytes:
        """Encrypt the short final chunk (fewer than 16384 bytes) at ``index``."""
        if len(plaintext) >= CHUNK_SIZE:
            raise ValueError("the final chunk must be shorter than 16 KiB")
        out = bytearray(len(plaintext) + TAG_SIZE)
        self._aead.encrypt_into(self.nonce(index), plaintext, None, memoryview(out))
        return bytes(out)

    def decrypt_chunks(self, ciphertext: memoryview, first: int, out: memoryview) -> int:
        """Decrypt consecutive chunks numbered from ``first``; every chunk but the
        last must be a full one. Returns the plaintext length written to ``out``.

        Raises :class:`ChunkAuthenticationError` (with the index) at the first
        chunk that does not authenticate; ``out`` then holds unverified bytes
        and must be discarded by the caller (this function zeroes the failed
        chunk's region).
        """
        dec = self._aead.decrypt_into
        base = self._base
        size = len(ciphertext)
        pos = 0
        written = 0
        index = first
        while pos < size:
            piece = min(CT_CHUNK_SIZE, size - pos)
            if piece < TAG_SIZE:
                raise TruncationError(f"chunk {index} is shorter than a tag")
            if index >= MAX_CHUNKS:
                raise LimitExceededError("message exceeds 2^38 chunks")
            target = out[written : written + piece - TAG_SIZE]
            try:
                dec(
                    (base ^ index).to_bytes(_NONCE_SIZE, "big"),
                    ciphertext[pos : pos + piece],
                    None,
                    target,
                )
            except InvalidTag:
                target[:] = bytes(len(target))
                raise ChunkAuthenticationError(
                    f"chunk {index} does not authenticate", index=index
                ) from None
            pos += piece
            written += piece - TAG_SIZE
            index += 1
        return written

    def decrypt_chunk(self, ciphertext: bytes | memoryview, index: int) -> bytes:
        """Decrypt one chunk; raises :class:`ChunkAuthenticationError`."""
        out = bytearray(max(len(ciphertext) - TAG_SIZE, 0))
        self.decrypt_chunks(memoryview(ciphertext), index, memoryview(out))
        return bytes(out)


def open_header(aead: Aead, input_key: bytes, header: bytes, context: bytes) -> ChunkCipher:
    """Check the 56-byte header (salt, commitment) against ``input_key`` and
    ``context``; return the chunk cipher when the commitment matches.

    Raises :class:`TruncationError` for a short header and :class:`CommitmentError`
    (constant-time compare) for a wrong key, wrong context or modified header.
    An input key of the wrong size raises :class:`CommitmentError` too: it can
    never have produced this message.
    """
    if len(header) < HEADER_SIZE:
        raise TruncationError(f"{len(header)} bytes: too short for the 56-byte chunk header")
    if len(input_key) != aead.key_size:
        raise CommitmentError(f"input key of {len(input_key)} bytes cannot match {aead.name}")
    salt = bytes(header[:SALT_SIZE])
    commitment = bytes(header[SALT_SIZE:HEADER_SIZE])
    key, base_nonce, expected = derive(aead, input_key, salt, context)
    if not hmac.compare_digest(expected, commitment):
        raise CommitmentError("key commitment does not match (wrong key, context or header)")
    return ChunkCipher(aead, key, base_nonce)


def encrypt(
    aead: Aead, input_key: bytes, plaintext: bytes | memoryview, context: bytes, salt: bytes
) -> bytes:
    """Encrypt a whole message. ``salt`` (24 bytes) must not repeat for one key:
    pass 24 fresh random bytes."""
    key, base_nonce, commitment = derive(aead, input_key, salt, context)
    cipher = ChunkCipher(aead, key, base_nonce)
    pt = memoryview(plaintext)
    lay = layout_for_plaintext(len(pt))
    full = lay.chunks - 1
    out = bytearray(HEADER_SIZE + full * CT_CHUNK_SIZE + lay.final_ct_size)
    out[:SALT_SIZE] = salt
    out[SALT_SIZE:HEADER_SIZE] = commitment
    view = memoryview(out)
    cipher.encrypt_full_chunks(pt[: full * CHUNK_SIZE], 0, view[HEADER_SIZE:])
    view[HEADER_SIZE + full * CT_CHUNK_SIZE :] = cipher.encrypt_final(pt[full * CHUNK_SIZE :], full)
    return bytes(out)


def decrypt(
    aead: Aead,
    input_key: bytes,
    ciphertext: bytes | memoryview,
    context: bytes,
    *,
    max_chunks: int = MAX_CHUNKS,
) -> bytes:
    """Decrypt and authenticate a whole message; nothing is returned unless
    every chunk authenticated.

    Order of checks: header length, commitment, body length (truncation),
    then every chunk in order. Raises :class:`TruncationError`,
    :class:`CommitmentError`, :class:`ChunkAuthenticationError` or
    :class:`LimitExceededError`.
    """
    ct = memoryview(ciphertext)
    cipher = open_header(aead, input_key, bytes(ct[:HEADER_SIZE]), context)
    lay = layout(len(ct), max_chunks=max_chunks)
    out = bytearray(lay.plaintext_size)
    try:
        cipher.decrypt_chunks(ct[HEADER_SIZE:], 0, memoryview(out))
    except (ChunkAuthenticationError, TruncationError):
        out[:] = bytes(len(out))
        raise
    return bytes(out)
