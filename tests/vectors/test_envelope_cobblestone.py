"""Wycheproof c2sp.org/chunked-encryption vectors (Cobblestone-128 and -256)
against trustedge's body implementation: whole-message, raw mode, streaming
prefix semantics, re-encryption with the vector's salt, and final-chunk
length authentication."""

from __future__ import annotations

import hashlib
import io
import zlib

import pytest

from tests.vectors import VectorCase, vector_cases
from trustedge.envelope import _cobblestone as cb
from trustedge.errors import TrustedgeError, VerificationError

AEADS = {"AEAD_AES_128_GCM": cb.AES_128_GCM, "AEAD_AES_256_GCM": cb.AES_256_GCM}
FILES = [
    "wycheproof/testvectors_v1/c2sp_chunked_encryption_aes_128_gcm_test.json",
    "wycheproof/testvectors_v1/c2sp_chunked_encryption_aes_256_gcm_test.json",
]


def _ct(case: VectorCase) -> bytes:
    return zlib.decompress(bytes.fromhex(case["ct"]))


def _check_msg(case: VectorCase, msg: bytes) -> None:
    assert len(msg) == case["msgLength"]
    assert hashlib.sha512(msg).hexdigest() == case["msgSha512"]


def _stream_decrypt(aead: cb.Aead, key: bytes, ct: bytes, ctx: bytes, out: io.BytesIO) -> None:
    """A pull-based streaming decryptor over the raw primitives: release each
    chunk only after it authenticated; decide finality by look-ahead."""
    src = io.BytesIO(ct)
    cipher = cb.open_header(aead, key, src.read(cb.HEADER_SIZE), ctx)
    index = 0
    piece = src.read(cb.CT_CHUNK_SIZE)
    while True:
        nxt = src.read(cb.CT_CHUNK_SIZE)
        if len(piece) == cb.CT_CHUNK_SIZE and not nxt:
            raise cb.TruncationError("no short final chunk")
        if len(piece) < cb.TAG_SIZE:
            raise cb.TruncationError("short piece")
        out.write(cipher.decrypt_chunk(piece, index))
        if len(piece) < cb.CT_CHUNK_SIZE:
            if nxt:
                raise cb.TrailingDataError("data after the final chunk")
            return
        piece = nxt
        index += 1


for _name in FILES:

    @vector_cases(_name, shared=True)
    def test_cobblestone(case: VectorCase) -> None:
        aead = AEADS[case["aead"]]
        assert case["sha"] == "SHA-512"
        key, ctx, ct = case.hex("key"), case.hex("ctx"), _ct(case)
        if case.result == "valid":
            msg = cb.decrypt(aead, key, ct, ctx)
            _check_msg(case, msg)
            # Encryption: re-encrypt with the vector's salt (deterministic).
            assert cb.encrypt(aead, key, msg, ctx, ct[: cb.SALT_SIZE]) == ct
            # Raw mode both ways.
            raw = cb.ChunkCipher(aead, case.hex("aeadKey"), case.hex("baseNonce"))
            lay = cb.layout(len(ct))
            out = bytearray(lay.plaintext_size)
            raw.decrypt_chunks(memoryview(ct)[cb.HEADER_SIZE :], 0, memoryview(out))
            assert bytes(out) == msg
            # Length authentication through the final chunk.
            raw.decrypt_chunk(ct[cb.Layout.chunk_offset(lay.chunks - 1) :], lay.chunks - 1)
            return
        if "InvalidKeySize" in case.flags:
            with pytest.raises(ValueError):
                cb.derive(aead, key, bytes(24), ctx)
        with pytest.raises(VerificationError):
            cb.decrypt(aead, key, ct, ctx)
        # Streaming: may release the valid prefix, must fail, never more.
        out = io.BytesIO()
        with pytest.raises(TrustedgeError):
            _stream_decrypt(aead, key, ct, ctx, out)
        if "PartialPlaintext" in case.flags:
            released = out.getvalue()
            assert len(released) <= case["msgLength"]
            full = released[: case["msgLength"]]
            if len(full) == case["msgLength"]:
                _check_msg(case, full)
        else:
            assert out.getvalue() == b"" or "HeaderFailure" not in case.flags
        # Raw mode and final-chunk authentication where the vector allows it.
        if "HeaderFailure" in case.flags:
            return
        raw = cb.ChunkCipher(aead, case.hex("aeadKey"), case.hex("baseNonce"))
        body = memoryview(ct)[cb.HEADER_SIZE :]
        with pytest.raises(TrustedgeError):
            lay = cb.layout(len(ct))
            raw.decrypt_chunks(body, 0, memoryview(bytearray(len(body))))
        try:
            lay = cb.layout(len(ct))
            raw.decrypt_chunk(ct[cb.Layout.chunk_offset(lay.chunks - 1) :], lay.chunks - 1)
            final_ok = True
        except TrustedgeError:
            final_ok = False
        assert final_ok == ("ValidFinalChunk" in case.flags)

    globals()[f"test_{_name.split('/')[-1].removesuffix('_test.json')}"] = test_cobblestone
    del test_cobblestone
