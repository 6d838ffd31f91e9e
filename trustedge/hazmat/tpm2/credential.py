"""MakeCredential (verifier side) and its inverse, the core of ActivateCredential.

.. warning:: hazmat.

The credential protocol (TPM 2.0 Part 1 §24): a verifier encrypts a secret to
an EK so that only the TPM holding that EK *and* an object with the given name
(the AK) can recover it. ``seed`` is RSA-OAEP-encrypted to an RSA EK (label
``"IDENTITY"``) or derived with ECDH + KDFe for an ECC EK; from it KDFa gives
an AES-CFB key (``"STORAGE"``, bound to the AK name) and an HMAC key
(``"INTEGRITY"``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # CFB moved to "decrepit" in cryptography 47; the TPM's credential protocol requires it.
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[no-redef, unused-ignore]

from trustedge._binary import Reader, Writer
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError, VerificationError
from trustedge.hazmat.tpm2.constants import TPMAlg, hash_alg_by_id, hash_for
from trustedge.hazmat.tpm2.kdf import kdfa, kdfe
from trustedge.hazmat.tpm2.public import ECCParms, ECCPoint, Public, RSAParms

__all__ = [
    "CREDENTIAL_FILE_MAGIC",
    "Credential",
    "make_credential",
    "recover_credential",
]

#: Header of tpm2-tools' ``tpm2_makecredential -o`` file (then a version, u32 1).
CREDENTIAL_FILE_MAGIC = 0xBADCC0DE
_MAX_ID_OBJECT = 2 + 64 + 2 + 64
_MAX_SECRET = 512 + 2


@dataclass(frozen=True)
class Credential:
    """MakeCredential's output: ``credential_blob`` is the ``TPM2B_ID_OBJECT``
    and ``encrypted_secret`` the ``TPM2B_ENCRYPTED_SECRET`` (both size-prefixed)."""

    credential_blob: bytes
    encrypted_secret: bytes

    def to_tpm2_tools(self) -> bytes:
        """The file ``tpm2_makecredential -o`` writes and ``tpm2_activatecredential -i`` reads."""
        w = Writer().u32be(CREDENTIAL_FILE_MAGIC).u32be(1)
        return w.write(self.credential_blob).write(self.encrypted_secret).getvalue()

    @classmethod
    def from_tpm2_tools(cls, data: bytes) -> Credential:
        """Parse a ``tpm2_makecredential -o`` file strictly."""
        r = Reader(data, max_size=8 + 2 + _MAX_ID_OBJECT + 2 + _MAX_SECRET)
        if r.u32be("magic") != CREDENTIAL_FILE_MAGIC:
            raise MalformedInputError("not a tpm2-tools credential file", offset=0)
        if r.u32be("version") != 1:
            raise MalformedInputError("unknown credential file version", offset=4)
        blob = r.bytes_u16be("TPM2B_ID_OBJECT", max_len=_MAX_ID_OBJECT)
        secret = r.bytes_u16be("TPM2B_ENCRYPTED_SECRET", max_len=_MAX_SECRET)
        r.expect_end("end of credential file")
        w = Writer()
        return cls(w.bytes_u16be(blob).getvalue(), Writer().bytes_u16be(secret).getvalue())


def _ek_sym_bits(ek: Public) -> int:
    p = ek.parameters
    if not isinstance(p, RSAParms | ECCParms) or p.symmetric.algorithm != TPMAlg.AES:
        raise UnsupportedAlgorithmError("the EK must be a storage key with an AES symmetric")
    if p.symmetric.mode != TPMAlg.CFB:
        raise UnsupportedAlgorithmError("the EK's symmetric mode must be CFB")
    return p.symmetric.key_bits


def _oaep(hash_alg: int) -> padding.OAEP:
    algo = hash_for(hash_alg)
    return padding.OAEP(mgf=padding.MGF1(algo), algorithm=algo, label=b"IDENTITY\x00")


def _mgf1(hash_name: str, seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.new(hash_name, seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _oaep_encrypt(
    key: rsa.RSAPublicKey, message: bytes, hash_alg: int, randbytes: Callable[[int], bytes]
) -> bytes:
    """RSAES-OAEP (RFC 8017 §7.1.1) with label "IDENTITY\\0", its seed taken from
    ``randbytes`` so that test vectors can be reproduced. Only public values and
    the (random) credential seed go through here; decryption stays in OpenSSL."""
    h = hash_alg_by_id(hash_alg)
    k = (key.key_size + 7) // 8
    hlen = h.digest_size
    if len(message) > k - 2 * hlen - 2:
        raise ValueError("message too long for RSA-OAEP")
    lhash = h.digest(b"IDENTITY\x00")
    db = lhash + bytes(k - len(message) - 2 * hlen - 2) + b"\x01" + message
    seed = randbytes(hlen)
    masked_db = bytes(
        a ^ b for a, b in zip(db, _mgf1(h.hashlib_name, seed, k - hlen - 1), strict=True)
    )
    masked_seed = bytes(
        a ^ b for a, b in zip(seed, _mgf1(h.hashlib_name, masked_db, hlen), strict=True)
    )
    em = int.from_bytes(b"\x00" + masked_seed + masked_db, "big")
    nums = key.public_numbers()
    return pow(em, nums.e, nums.n).to_bytes(k, "big")


def _protect(ek: Public, seed: bytes, secret: bytes, object_name: bytes) -> bytes:
    name_alg = ek.name_alg
    h = hash_alg_by_id(name_alg)
    sym_key = kdfa(name_alg, seed, b"STORAGE", object_name, b"", _ek_sym_bits(ek))
    plain = Writer().bytes_u16be(secret).getvalue()
    enc = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = enc.update(plain) + enc.finalize()
    hmac_key = kdfa(name_alg, seed, b"INTEGRITY", b"", b"", h.digest_size * 8)
    outer = hmac.new(hmac_key, enc_identity + object_name, h.hashlib_name).digest()
    body = Writer().bytes_u16be(outer).write(enc_identity).getvalue()
    return Writer().bytes_u16be(body).getvalue()


def make_credential(
    ek: Public,
    secret: bytes,
    object_name: bytes,
    *,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> Credential:
    """TPM2_MakeCredential in software.

    ``ek`` is the EK's TPMT_PUBLIC (RSA with OAEP, or ECC P-256/P-384),
    ``secret`` at most the nameAlg's digest size, ``object_name`` the AK's
    name. ``randbytes`` supplies the seed (or the ephemeral ECC scalar); pass
    a deterministic source only for test vectors.
    """
    h = hash_alg_by_id(ek.name_alg)
    if not 0 < len(secret) <= h.digest_size:
        raise ValueError(f"secret must be 1..{h.digest_size} bytes")
    key = ek.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        seed = randbytes(h.digest_size)
        encrypted = _oaep_encrypt(key, seed, ek.name_alg, randbytes)
        enc_secret = Writer().bytes_u16be(encrypted).getvalue()
    else:
        curve = key.curve
        size = (curve.key_size + 7) // 8
        scalar = int.from_bytes(randbytes(size + 8), "big")
        order = _ORDERS[curve.name]
        eph = ec.derive_private_key(scalar % (order - 1) + 1, curve)
        z = eph.exchange(ec.ECDH(), key)
        eph_pub = eph.public_key().public_numbers()
        ek_x = key.public_numbers().x.to_bytes(size, "big")
        eph_x = eph_pub.x.to_bytes(size, "big")
        seed = kdfe(ek.name_alg, z, b"IDENTITY", eph_x, ek_x, h.digest_size * 8)
        point = Writer()
        ECCPoint(eph_x, eph_pub.y.to_bytes(size, "big")).marshal(point)
        enc_secret = Writer().bytes_u16be(point.getvalue()).getvalue()
    return Credential(_protect(ek, seed, secret, object_name), enc_secret)


_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
}


def recover_credential(
    ek: Public,
    ek_private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    credential_blob: bytes,
    encrypted_secret: bytes,
    object_name: bytes,
) -> bytes:
    """The TPM side of ActivateCredential: recover the secret.

    Raises :class:`MalformedInputError` for blobs that do not parse and
    :class:`VerificationError` when the integrity HMAC fails (wrong EK or a
    different object name) -- the TPM's TPM_RC_INTEGRITY.
    """
    h = hash_alg_by_id(ek.name_alg)
    sr = Reader(encrypted_secret, max_size=2 + _MAX_SECRET)
    secret_body = sr.bytes_u16be("TPM2B_ENCRYPTED_SECRET", max_len=_MAX_SECRET)
    sr.expect_end("end of TPM2B_ENCRYPTED_SECRET")
    if isinstance(ek_private, rsa.RSAPrivateKey):
        try:
            seed = ek_private.decrypt(secret_body, _oaep(ek.name_alg))
        except ValueError:
            raise VerificationError("credential seed does not decrypt with this EK") from None
    else:
        pr = Reader(secret_body)
        point = ECCPoint.read(pr)
        pr.expect_end("end of TPMS_ECC_POINT")
        curve = ek_private.curve
        try:
            eph = ec.EllipticCurvePublicNumbers(
                int.from_bytes(point.x, "big"), int.from_bytes(point.y, "big"), curve
            ).public_key()
        except ValueError:
            raise MalformedInputError("ephemeral point is not on the EK's curve") from None
        size = (curve.key_size + 7) // 8
        z = ek_private.exchange(ec.ECDH(), eph)
        ek_x = ek_private.public_key().public_numbers().x.to_bytes(size, "big")
        seed = kdfe(ek.name_alg, z, b"IDENTITY", point.x, ek_x, h.digest_size * 8)
    br = Reader(credential_blob, max_size=2 + _MAX_ID_OBJECT)
    body = br.sub(br.u16be("TPM2B_ID_OBJECT size"), "TPM2B_ID_OBJECT")
    br.expect_end("end of TPM2B_ID_OBJECT")
    outer = body.bytes_u16be("integrityHMAC", max_len=64)
    enc_identity = body.rest()
    hmac_key = kdfa(ek.name_alg, seed, b"INTEGRITY", b"", b"", h.digest_size * 8)
    expected = hmac.new(hmac_key, enc_identity + object_name, h.hashlib_name).digest()
    if not hmac.compare_digest(outer, expected):
        raise VerificationError("credential integrity check failed (wrong EK or object name)")
    sym_key = kdfa(ek.name_alg, seed, b"STORAGE", object_name, b"", _ek_sym_bits(ek))
    dec = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).decryptor()
    plain = dec.update(enc_identity) + dec.finalize()
    pr2 = Reader(plain)
    secret = pr2.bytes_u16be("credential", max_len=h.digest_size)
    pr2.expect_end("end of credential")
    return secret
