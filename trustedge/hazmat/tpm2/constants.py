"""TPM 2.0 constants used by trustedge (TPM 2.0 Library Part 2, Structures).

.. warning:: hazmat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING, Final

from trustedge.errors import UnsupportedAlgorithmError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes

__all__ = [
    "TPM_GENERATED_VALUE",
    "HASH_ALGS",
    "HashAlg",
    "TPMAlg",
    "TPMAObject",
    "TPMECCCurve",
    "TPMHandle",
    "TPMST",
    "hash_alg_by_id",
    "hash_alg_by_name",
    "hash_for",
]

#: ``TPM_GENERATED_VALUE``: the magic that opens every TPMS_ATTEST a TPM signs.
TPM_GENERATED_VALUE: Final = 0xFF544347


class TPMAlg(IntEnum):
    """``TPM_ALG_ID`` values trustedge knows."""

    ERROR = 0x0000
    RSA = 0x0001
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    KEYEDHASH = 0x0008
    XOR = 0x000A
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    NULL = 0x0010
    SM3_256 = 0x0012
    SM4 = 0x0013
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    ECMQV = 0x001D
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CAMELLIA = 0x0026
    CTR = 0x0040
    OFB = 0x0041
    CBC = 0x0042
    CFB = 0x0043
    ECB = 0x0044


class TPMST(IntEnum):
    """``TPM_ST`` attestation structure tags (``TPMI_ST_ATTEST``)."""

    ATTEST_NV = 0x8014
    ATTEST_COMMAND_AUDIT = 0x8015
    ATTEST_SESSION_AUDIT = 0x8016
    ATTEST_CERTIFY = 0x8017
    ATTEST_QUOTE = 0x8018
    ATTEST_TIME = 0x8019
    ATTEST_CREATION = 0x801A
    ATTEST_NV_DIGEST = 0x801C


class TPMECCCurve(IntEnum):
    """``TPM_ECC_CURVE`` values."""

    NIST_P192 = 0x0001
    NIST_P224 = 0x0002
    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005
    BN_P256 = 0x0010
    BN_P638 = 0x0011
    SM2_P256 = 0x0020


class TPMHandle(IntEnum):
    """Permanent handles used in names and qualified names."""

    RH_OWNER = 0x40000001
    RH_NULL = 0x40000007
    RH_ENDORSEMENT = 0x4000000B
    RH_PLATFORM = 0x4000000C


class TPMAObject(IntFlag):
    """``TPMA_OBJECT`` attribute bits."""

    FIXED_TPM = 0x00000002
    ST_CLEAR = 0x00000004
    FIXED_PARENT = 0x00000010
    SENSITIVE_DATA_ORIGIN = 0x00000020
    USER_WITH_AUTH = 0x00000040
    ADMIN_WITH_POLICY = 0x00000080
    NO_DA = 0x00000400
    ENCRYPTED_DUPLICATION = 0x00000800
    RESTRICTED = 0x00010000
    DECRYPT = 0x00020000
    SIGN_ENCRYPT = 0x00040000
    X509_SIGN = 0x00080000


#: TPMA_OBJECT bits that are reserved (must be clear).
TPMA_OBJECT_RESERVED: Final = 0xFFF0F309


@dataclass(frozen=True)
class HashAlg:
    """A TPM hash algorithm: its id, trustedge bank name and digest size."""

    alg: TPMAlg
    name: str
    digest_size: int
    hashlib_name: str

    def new(self) -> hashlib._Hash:
        named = _NAMED.get(self.hashlib_name)
        return named() if named is not None else hashlib.new(self.hashlib_name)

    def digest(self, data: bytes) -> bytes:
        # hashlib.sha256(...) reuses one fetched digest; hashlib.new("sha256", ...) looks the
        # algorithm up on every call (several microseconds: the hot path of quote checks).
        named = _NAMED.get(self.hashlib_name)
        if named is not None:
            return named(data).digest()
        return hashlib.new(self.hashlib_name, data).digest()

    @property
    def constructor(self) -> Callable[[], hashlib._Hash]:
        return lambda: hashlib.new(self.hashlib_name)


#: hashlib's named constructors (faster than ``hashlib.new(name)``); others go through ``new``.
_NAMED: Final[dict[str, Callable[..., hashlib._Hash]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

_HASHES: Final = (
    HashAlg(TPMAlg.SHA1, "sha1", 20, "sha1"),
    HashAlg(TPMAlg.SHA256, "sha256", 32, "sha256"),
    HashAlg(TPMAlg.SHA384, "sha384", 48, "sha384"),
    HashAlg(TPMAlg.SHA512, "sha512", 64, "sha512"),
    HashAlg(TPMAlg.SM3_256, "sm3_256", 32, "sm3"),
)
#: The one hash-bank table: every PCR bank trustedge knows, in canonical order, with its
#: ``TPM_ALG_ID``, bank name, digest size and hashlib name. Event logs, evidence, the TPM
#: backends and the stores derive their bank tables from this one.
HASH_ALGS: Final[tuple[HashAlg, ...]] = _HASHES
_BY_ID: Final = {h.alg.value: h for h in _HASHES}
_BY_NAME: Final = {h.name: h for h in _HASHES}

#: Largest digest a TPM hash produces (``sizeof(TPMU_HA)``).
MAX_DIGEST_SIZE: Final = 64


#: Filled on the first :func:`hash_for` call: the bank table above is what event-log replay
#: and the CLI's option lists need, and they should not pay for importing ``cryptography``.
_CRYPTO_HASHES: Final[dict[int, hashes.HashAlgorithm]] = {}


def _load_crypto_hashes() -> None:
    from cryptography.hazmat.primitives import hashes

    _CRYPTO_HASHES.update({
        # SHA-1 only for reading legacy banks/keys; policy decides whether it is accepted.
        TPMAlg.SHA1: hashes.SHA1(),  # noqa: S303
        TPMAlg.SHA256: hashes.SHA256(),
        TPMAlg.SHA384: hashes.SHA384(),
        TPMAlg.SHA512: hashes.SHA512(),
        TPMAlg.SM3_256: hashes.SM3(),
    })  # fmt: skip


def hash_alg_by_id(alg: int) -> HashAlg:
    """The hash algorithm for a ``TPM_ALG_ID``; raises UnsupportedAlgorithmError."""
    try:
        return _BY_ID[alg]
    except KeyError:
        raise UnsupportedAlgorithmError(f"hash algorithm 0x{alg:04x} is not supported") from None


def hash_for(alg: int) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash object for a TPM hash id."""
    try:
        return _CRYPTO_HASHES[alg]
    except KeyError:
        if not _CRYPTO_HASHES:
            _load_crypto_hashes()
            return hash_for(alg)
        raise UnsupportedAlgorithmError(f"hash algorithm 0x{alg:04x} is not supported") from None


def hash_alg_by_name(name: str) -> HashAlg:
    """The hash algorithm for a bank name (``"sha256"``); raises UnsupportedAlgorithmError."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise UnsupportedAlgorithmError(f"hash algorithm {name!r} is not supported") from None
