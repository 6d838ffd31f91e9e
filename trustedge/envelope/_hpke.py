"""RFC 9180 HPKE, base mode, on cryptography's X25519/P-256, HKDF and AEADs.

``cryptography`` ships a single-shot HPKE (``hazmat.primitives.hpke.Suite``)
but it takes no ``aad``, exposes no exporter and picks the ephemeral key
itself, so it cannot be checked against the RFC 9180 test vectors. This module
implements base mode (mode 0x00) directly from the RFC, with the ephemeral key
derived from caller-supplied randomness (``DeriveKeyPair(ikmE)``), and is
tested against every base-mode X25519 and P-256 vector and cross-checked
against ``cryptography``'s ``Suite`` in both directions.

KEMs: DHKEM(X25519, HKDF-SHA256) 0x0020, DHKEM(P-256, HKDF-SHA256) 0x0010.
KDFs: HKDF-SHA256/384/512 (1, 2, 3). AEADs: AES-128-GCM (1), AES-256-GCM (2),
ChaCha20-Poly1305 (3), export-only (0xFFFF).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError, VerificationError

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AEAD_CHACHA20_POLY1305",
    "AEAD_EXPORT_ONLY",
    "KDF_HKDF_SHA256",
    "KDF_HKDF_SHA384",
    "KDF_HKDF_SHA512",
    "KEM_P256_HKDF_SHA256",
    "KEM_X25519_HKDF_SHA256",
    "Context",
    "Suite",
    "derive_key_pair",
    "open_base",
    "public_key_of",
    "seal_base",
    "setup_base_r",
    "setup_base_s",
    "uncompressed_point",
]

KEM_P256_HKDF_SHA256: Final = 0x0010
KEM_X25519_HKDF_SHA256: Final = 0x0020
KDF_HKDF_SHA256: Final = 0x0001
KDF_HKDF_SHA384: Final = 0x0002
KDF_HKDF_SHA512: Final = 0x0003
AEAD_AES_128_GCM: Final = 0x0001
AEAD_AES_256_GCM: Final = 0x0002
AEAD_CHACHA20_POLY1305: Final = 0x0003
AEAD_EXPORT_ONLY: Final = 0xFFFF

_MODE_BASE: Final = b"\x00"
_VERSION: Final = b"HPKE-v1"
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# name -> (hashlib name, cryptography hash class, Nh)
_KDFS: Final = {
    KDF_HKDF_SHA256: ("sha256", hashes.SHA256, 32),
    KDF_HKDF_SHA384: ("sha384", hashes.SHA384, 48),
    KDF_HKDF_SHA512: ("sha512", hashes.SHA512, 64),
}
# aead id -> (Nk, Nn)
_AEADS: Final = {
    AEAD_AES_128_GCM: (16, 12),
    AEAD_AES_256_GCM: (32, 12),
    AEAD_CHACHA20_POLY1305: (32, 12),
    AEAD_EXPORT_ONLY: (0, 0),
}
# kem id -> (Nsecret, Nenc, Nsk)
_KEMS: Final = {
    KEM_X25519_HKDF_SHA256: (32, 32, 32),
    KEM_P256_HKDF_SHA256: (32, 65, 32),
}


def _i2osp(value: int, n: int) -> bytes:
    return value.to_bytes(n, "big")


def _extract(kdf: int, salt: bytes, ikm: bytes) -> bytes:
    name, _, nh = _KDFS[kdf]
    return hmac.new(salt or bytes(nh), ikm, name).digest()


def _expand(kdf: int, prk: bytes, info: bytes, length: int) -> bytes:
    _, cls, _ = _KDFS[kdf]
    return HKDFExpand(cls(), length, info).derive(prk)


def _labeled_extract(kdf: int, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(kdf, salt, _VERSION + suite_id + label + ikm)


def _labeled_expand(
    kdf: int, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
) -> bytes:
    return _expand(kdf, prk, _i2osp(length, 2) + _VERSION + suite_id + label + info, length)


@dataclass(frozen=True)
class Suite:
    """An HPKE ciphersuite by its registry identifiers."""

    kem: int = KEM_X25519_HKDF_SHA256
    kdf: int = KDF_HKDF_SHA256
    aead: int = AEAD_AES_256_GCM

    def check(self) -> None:
        """Raise :class:`UnsupportedAlgorithmError` for identifiers not implemented here."""
        if self.kem not in _KEMS or self.kdf not in _KDFS or self.aead not in _AEADS:
            raise UnsupportedAlgorithmError(
                f"HPKE suite kem={self.kem:#06x} kdf={self.kdf:#06x} aead={self.aead:#06x}"
            )

    @property
    def suite_id(self) -> bytes:
        return b"HPKE" + _i2osp(self.kem, 2) + _i2osp(self.kdf, 2) + _i2osp(self.aead, 2)

    @property
    def kem_suite_id(self) -> bytes:
        return b"KEM" + _i2osp(self.kem, 2)

    @property
    def enc_size(self) -> int:
        return _KEMS[self.kem][1]


# -- DHKEM -----------------------------------------------------------------------


def derive_key_pair(suite: Suite, ikm: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (RFC 9180 §7.1.3): ``(private key bytes, public key bytes)``."""
    suite.check()
    sid = suite.kem_suite_id
    dkp_prk = _labeled_extract(KDF_HKDF_SHA256, sid, b"", b"dkp_prk", ikm)
    if suite.kem == KEM_X25519_HKDF_SHA256:
        sk = _labeled_expand(KDF_HKDF_SHA256, sid, dkp_prk, b"sk", b"", 32)
        return sk, public_key_of(suite, sk)
    for counter in range(256):
        cand = _labeled_expand(KDF_HKDF_SHA256, sid, dkp_prk, b"candidate", bytes([counter]), 32)
        value = int.from_bytes(cand, "big")
        if 0 < value < _P256_ORDER:
            return cand, public_key_of(suite, cand)
    raise ValueError("DeriveKeyPair failed")  # pragma: no cover - probability 2^-8192


def public_key_of(suite: Suite, sk: bytes) -> bytes:
    """SerializePublicKey(pk(sk)) for the suite's KEM."""
    if suite.kem == KEM_X25519_HKDF_SHA256:
        return x25519.X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()
    priv = ec.derive_private_key(int.from_bytes(sk, "big"), ec.SECP256R1())
    return uncompressed_point(priv.public_key())


def uncompressed_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """SEC1 uncompressed encoding of a P-256 point (without importing the
    serialization package, which is slow to import)."""
    nums = key.public_numbers()
    return b"\x04" + nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def _dh(suite: Suite, sk: bytes, pk: bytes) -> bytes:
    try:
        if suite.kem == KEM_X25519_HKDF_SHA256:
            if len(pk) != 32:
                raise MalformedInputError("X25519 public key must be 32 bytes")
            priv = x25519.X25519PrivateKey.from_private_bytes(sk)
            return priv.exchange(x25519.X25519PublicKey.from_public_bytes(pk))
        if len(pk) != 65 or pk[0] != 4:
            raise MalformedInputError("P-256 public key must be an uncompressed point")
        ecpriv = ec.derive_private_key(int.from_bytes(sk, "big"), ec.SECP256R1())
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pk)
        return ecpriv.exchange(ec.ECDH(), pub)
    except ValueError as exc:
        if isinstance(exc, MalformedInputError):
            raise
        # Invalid point, or an all-zero shared secret (low-order point).
        raise MalformedInputError(f"invalid public key for DH: {exc}") from None


def _shared_secret(suite: Suite, dh: bytes, kem_context: bytes) -> bytes:
    sid = suite.kem_suite_id
    eae_prk = _labeled_extract(KDF_HKDF_SHA256, sid, b"", b"eae_prk", dh)
    return _labeled_expand(
        KDF_HKDF_SHA256, sid, eae_prk, b"shared_secret", kem_context, _KEMS[suite.kem][0]
    )


def _encap(suite: Suite, pk_r: bytes, ikm_e: bytes) -> tuple[bytes, bytes]:
    sk_e, enc = derive_key_pair(suite, ikm_e)
    dh = _dh(suite, sk_e, pk_r)
    return _shared_secret(suite, dh, enc + pk_r), enc


def _decap(suite: Suite, enc: bytes, sk_r: bytes) -> bytes:
    if len(enc) != suite.enc_size:
        raise MalformedInputError(f"HPKE enc must be {suite.enc_size} bytes")
    dh = _dh(suite, sk_r, enc)
    return _shared_secret(suite, dh, enc + public_key_of(suite, sk_r))


# -- key schedule and context ------------------------------------------------------


class Context:
    """An HPKE encryption context (RFC 9180 §5.2): sequence-numbered AEAD and exporter."""

    __slots__ = ("_aead", "_base_nonce", "_exporter", "_nn", "_seq", "_suite", "key")

    def __init__(self, suite: Suite, key: bytes, base_nonce: bytes, exporter: bytes) -> None:
        self._suite = suite
        self.key = key
        self._base_nonce = base_nonce
        self._exporter = exporter
        self._nn = len(base_nonce)
        self._seq = 0
        if suite.aead in (AEAD_AES_128_GCM, AEAD_AES_256_GCM):
            self._aead: AESGCM | ChaCha20Poly1305 | None = AESGCM(key)
        elif suite.aead == AEAD_CHACHA20_POLY1305:
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = None

    @property
    def base_nonce(self) -> bytes:
        return self._base_nonce

    def _nonce(self) -> bytes:
        seq = _i2osp(self._seq, self._nn)
        return bytes(a ^ b for a, b in zip(self._base_nonce, seq, strict=True))

    def _aead_or_fail(self) -> AESGCM | ChaCha20Poly1305:
        if self._aead is None:
            raise UnsupportedAlgorithmError("export-only HPKE suite cannot seal or open")
        return self._aead

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        ct = self._aead_or_fail().encrypt(self._nonce(), plaintext, aad)
        self._seq += 1
        return ct

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """Open the next message; raises :class:`VerificationError` on failure."""
        try:
            pt = self._aead_or_fail().decrypt(self._nonce(), ciphertext, aad)
        except InvalidTag:
            raise VerificationError("HPKE ciphertext does not authenticate") from None
        self._seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        s = self._suite
        return _labeled_expand(s.kdf, s.suite_id, self._exporter, b"sec", exporter_context, length)


def _key_schedule(suite: Suite, shared_secret: bytes, info: bytes) -> Context:
    sid, kdf = suite.suite_id, suite.kdf
    psk_id_hash = _labeled_extract(kdf, sid, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(kdf, sid, b"", b"info_hash", info)
    ksc = _MODE_BASE + psk_id_hash + info_hash
    secret = _labeled_extract(kdf, sid, shared_secret, b"secret", b"")
    nk, nn = _AEADS[suite.aead]
    key = _labeled_expand(kdf, sid, secret, b"key", ksc, nk) if nk else b""
    base_nonce = _labeled_expand(kdf, sid, secret, b"base_nonce", ksc, nn) if nn else b""
    exporter = _labeled_expand(kdf, sid, secret, b"exp", ksc, _KDFS[kdf][2])
    return Context(suite, key, base_nonce, exporter)


def setup_base_s(suite: Suite, pk_r: bytes, info: bytes, ikm_e: bytes) -> tuple[bytes, Context]:
    """SetupBaseS: ``(enc, sender context)``; the ephemeral key is DeriveKeyPair(ikm_e)."""
    suite.check()
    shared, enc = _encap(suite, pk_r, ikm_e)
    return enc, _key_schedule(suite, shared, info)


def setup_base_r(suite: Suite, enc: bytes, sk_r: bytes, info: bytes) -> Context:
    """SetupBaseR: the recipient context. Raises :class:`MalformedInputError` for a bad ``enc``."""
    suite.check()
    return _key_schedule(suite, _decap(suite, enc, sk_r), info)


def seal_base(
    suite: Suite, pk_r: bytes, info: bytes, aad: bytes, plaintext: bytes, ikm_e: bytes
) -> bytes:
    """Single-shot seal; returns ``enc || ciphertext``."""
    enc, ctx = setup_base_s(suite, pk_r, info, ikm_e)
    return enc + ctx.seal(aad, plaintext)


def open_base(suite: Suite, sk_r: bytes, info: bytes, aad: bytes, sealed: bytes) -> bytes:
    """Single-shot open of ``enc || ciphertext``; raises :class:`VerificationError`
    or :class:`MalformedInputError`."""
    suite.check()
    n = suite.enc_size
    if len(sealed) < n:
        raise MalformedInputError("HPKE message shorter than its encapsulated key")
    return setup_base_r(suite, sealed[:n], sk_r, info).open(aad, sealed[n:])


def fingerprint(public_key: bytes) -> str:
    """A short, stable identifier of a public key (hex of a SHA-256 prefix)."""
    return hashlib.sha256(public_key).hexdigest()[:16]
