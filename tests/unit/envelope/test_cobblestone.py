"""The Cobblestone body against an independent, literal reading of the C2SP
spec (one AEAD call per chunk, no batching), for both suites and edge sizes:
this is the cross-check of the ChaCha20-Poly1305 suite, which has no
third-party vectors."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from trustedge.envelope import _cobblestone as cb
from trustedge.errors import LimitExceededError, TruncationError


def _hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha512).digest()
        out += block
        i += 1
    return out[:length]


def _reference_encrypt(
    name: str, cls: type, key: bytes, msg: bytes, ctx: bytes, salt: bytes
) -> bytes:
    info = b"c2sp.org/chunked-encryption@v1+" + name.encode() + b"\x00" + salt + ctx
    okm = _hkdf_expand_sha512(key, info, len(key) + 12 + 32)
    k, nonce, commit = okm[: len(key)], okm[len(key) : len(key) + 12], okm[len(key) + 12 :]
    aead = cls(k)
    chunks = [msg[i : i + 16384] for i in range(0, len(msg), 16384)]
    if not chunks or len(chunks[-1]) == 16384:
        chunks.append(b"")
    out = salt + commit
    for index, chunk in enumerate(chunks):
        n = bytes(a ^ b for a, b in zip(nonce, index.to_bytes(12, "big"), strict=True))
        out += aead.encrypt(n, chunk, None)
    return out


@pytest.mark.parametrize(
    ("aead", "cls"), [(cb.AES_256_GCM, AESGCM), (cb.CHACHA20_POLY1305, ChaCha20Poly1305)]
)
@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 65536, 70000])
def test_matches_reference(aead: cb.Aead, cls: type, size: int) -> None:
    key, salt, ctx = os.urandom(32), os.urandom(24), b"ctx\x00" + os.urandom(5)
    msg = os.urandom(size)
    ours = cb.encrypt(aead, key, msg, ctx, salt)
    assert ours == _reference_encrypt(aead.name, cls, key, msg, ctx, salt)
    assert cb.decrypt(aead, key, ours, ctx) == msg


def test_layout_rules() -> None:
    assert cb.layout(56 + 16).chunks == 1
    assert cb.layout(56 + 16400 + 16).plaintext_size == 16384
    for bad in (0, 55, 56, 56 + 15, 56 + 16400, 56 + 16400 + 15):
        with pytest.raises(TruncationError):
            cb.layout(bad)
    with pytest.raises(LimitExceededError):
        cb.layout(56 + 16400 * 10 + 16, max_chunks=5)
    with pytest.raises(LimitExceededError):
        cb.ChunkCipher(cb.AES_256_GCM, bytes(32), bytes(12)).nonce(1 << 38)
