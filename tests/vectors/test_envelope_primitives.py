"""Wycheproof vectors for the primitives the envelope slots and body build on:
AES-GCM and ChaCha20-Poly1305 (96-bit nonces, 128-bit tags: the only shapes
used), HKDF-SHA-256 (KEK wrap-key derivation), X25519 (through the HPKE DH
step) and AES key wrap with/without padding (the local key-provider example)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

from tests.vectors import VectorCase, vector_cases
from trustedge.envelope import _hpke
from trustedge.errors import MalformedInputError

W = "wycheproof/testvectors_v1/"


def _aead(case: VectorCase, cls: type[AESGCM] | type[ChaCha20Poly1305]) -> None:
    if case["ivSize"] != 96 or case["tagSize"] != 128:
        return  # nonce/tag shapes trustedge never uses: not applicable
    key, iv, aad, msg = case.hex("key"), case.hex("iv"), case.hex("aad"), case.hex("msg")
    ct = case.hex("ct") + case.hex("tag")
    try:
        aead = cls(key)
    except ValueError:
        assert case.result == "invalid"
        return
    if case.result == "valid":
        assert aead.encrypt(iv, msg, aad) == ct
        assert aead.decrypt(iv, ct, aad) == msg
    else:
        with pytest.raises((InvalidTag, ValueError)):
            aead.decrypt(iv, ct, aad)


@vector_cases(W + "aes_gcm_test.json", shared=True)
def test_aes_gcm(case: VectorCase) -> None:
    _aead(case, AESGCM)


@vector_cases(W + "chacha20_poly1305_test.json", shared=True)
def test_chacha20_poly1305(case: VectorCase) -> None:
    _aead(case, ChaCha20Poly1305)


@vector_cases(W + "hkdf_sha256_test.json", shared=True)
def test_hkdf_sha256(case: VectorCase) -> None:
    salt = case.hex("salt") or None
    try:
        okm = HKDF(hashes.SHA256(), case["size"], salt, case.hex("info")).derive(case.hex("ikm"))
    except ValueError:
        assert case.result == "invalid"
        return
    assert case.result == "valid"
    assert okm == case.hex("okm")


@vector_cases(W + "x25519_test.json", shared=True)
def test_x25519(case: VectorCase) -> None:
    suite = _hpke.Suite(_hpke.KEM_X25519_HKDF_SHA256)
    try:
        shared = _hpke._dh(suite, case.hex("private"), case.hex("public"))
    except MalformedInputError:
        # Only low-order points (all-zero output) may be rejected.
        assert case.result == "acceptable"
        assert case.hex("shared") == bytes(32)
        return
    assert shared == case.hex("shared")


def _keywrap(case: VectorCase, wrap: object, unwrap: object) -> None:
    key, msg, ct = case.hex("key"), case.hex("msg"), case.hex("ct")
    if case.result == "valid":
        assert wrap(key, msg) == ct  # type: ignore[operator]
        assert unwrap(key, ct) == msg  # type: ignore[operator]
        return
    try:
        out = unwrap(key, ct)  # type: ignore[operator]
    except (InvalidUnwrap, ValueError):
        return
    assert case.result == "acceptable", "invalid wrapped key accepted"
    assert out == msg


@vector_cases(W + "aes_wrap_test.json", shared=True)
def test_aes_key_wrap(case: VectorCase) -> None:
    _keywrap(case, aes_key_wrap, aes_key_unwrap)


@vector_cases(W + "aes_kwp_test.json", shared=True)
def test_aes_key_wrap_with_padding(case: VectorCase) -> None:
    _keywrap(case, aes_key_wrap_with_padding, aes_key_unwrap_with_padding)
