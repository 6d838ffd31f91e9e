"""IMA file signatures (``security.ima`` v2, as logged by ``ima-sig``/``ima-modsig``).

Layout: ``03 | 02 | hash_algo | keyid[4] | u16 sig_size (big-endian) | signature``.
The key id is the last 4 bytes of SHA-1 over the raw public key (PKCS#1
RSAPublicKey for RSA, the uncompressed point for EC); the signature is over
the file digest itself (RSA PKCS#1 v1.5 or ECDSA with a prehashed digest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from trustedge._binary import Reader
from trustedge.errors import MalformedInputError, SignatureError, UnsupportedAlgorithmError

__all__ = ["ImaKeyring", "ImaSignature", "parse_ima_signature", "verify_ima_signature"]

_IMA_HASH: Final[dict[int, tuple[str, type[hashes.HashAlgorithm]]]] = {
    2: ("sha1", hashes.SHA1),
    4: ("sha256", hashes.SHA256),
    5: ("sha384", hashes.SHA384),
    6: ("sha512", hashes.SHA512),
    7: ("sha224", hashes.SHA224),
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class ImaSignature:
    """A decoded ``security.ima`` signature (type 3, version 2)."""

    hash_algorithm: int
    keyid: bytes
    signature: bytes


def parse_ima_signature(data: bytes) -> ImaSignature:
    """Decode a v2 IMA signature; raises MalformedInputError (sizes must add up exactly)."""
    r = Reader(data)
    kind = r.u8("signature type")
    version = r.u8("signature version")
    if kind != 3 or version != 2:
        raise MalformedInputError(f"IMA signature type {kind} version {version}", offset=0)
    algo = r.u8("hash_algo")
    keyid = r.read(4, "keyid")
    sig = r.bytes_u16be("signature")
    r.expect_end("end of IMA signature")
    return ImaSignature(algo, keyid, sig)


def key_id(key: PublicKey) -> bytes:
    """The 4-byte IMA key id of ``key``."""
    if isinstance(key, rsa.RSAPublicKey):
        raw = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        raw = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return hashlib.sha1(raw).digest()[-4:]  # noqa: S324 - the kernel's key id definition


class ImaKeyring:
    """Public keys that may sign files, indexed by IMA key id."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[bytes, list[PublicKey]] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        """Add an RSA or EC public key."""
        if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise UnsupportedAlgorithmError("IMA keyrings hold RSA and EC keys only")
        self._keys.setdefault(key_id(key), []).append(key)

    @classmethod
    def from_pem(cls, blobs: Iterable[bytes]) -> ImaKeyring:
        """Keys from PEM/DER public keys or X.509 certificates.

        Raises MalformedInputError for a blob that is neither.
        """
        ring = cls()
        for blob in blobs:
            ring.add(_load_key(blob))
        return ring

    def __len__(self) -> int:
        return sum(len(v) for v in self._keys.values())

    def candidates(self, keyid: bytes) -> list[PublicKey]:
        return list(self._keys.get(keyid, ()))


def _load_any(blob: bytes) -> object:
    try:
        return serialization.load_pem_public_key(blob)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    try:
        return serialization.load_der_public_key(blob)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    try:
        return x509.load_pem_x509_certificate(blob).public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    try:
        return x509.load_der_x509_certificate(blob).public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise MalformedInputError("not a PEM/DER public key or certificate") from None


def _load_key(blob: bytes) -> PublicKey:
    key = _load_any(blob)
    if isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return key
    raise UnsupportedAlgorithmError("IMA keyrings hold RSA and EC keys only")


def verify_ima_signature(file_digest: bytes, signature: bytes, keyring: ImaKeyring) -> None:
    """Verify an IMA v2 signature over ``file_digest`` with a key of ``keyring``.

    Raises :class:`~trustedge.errors.SignatureError` when no key with the
    signature's key id verifies it (or the signature is missing/malformed),
    :class:`~trustedge.errors.UnsupportedAlgorithmError` for unknown hashes.
    """
    if not signature:
        raise SignatureError("no IMA signature")
    try:
        sig = parse_ima_signature(signature)
    except MalformedInputError as exc:
        raise SignatureError(f"malformed IMA signature: {exc}") from exc
    algo = _IMA_HASH.get(sig.hash_algorithm)
    if algo is None:
        raise UnsupportedAlgorithmError(f"IMA hash algorithm {sig.hash_algorithm}")
    hash_cls = algo[1]
    if len(file_digest) != hash_cls().digest_size:
        raise SignatureError("file digest size does not match the signature's hash")
    for key in keyring.candidates(sig.keyid):
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(sig.signature, file_digest, padding.PKCS1v15(), Prehashed(hash_cls()))
            else:
                key.verify(sig.signature, file_digest, ec.ECDSA(Prehashed(hash_cls())))
        except InvalidSignature:
            continue
        return
    raise SignatureError(f"no key {sig.keyid.hex()} in the keyring verifies the IMA signature")
