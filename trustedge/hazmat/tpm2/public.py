"""``TPMT_PUBLIC`` / ``TPM2B_PUBLIC``: strict parsing, names, key conversion, templates.

.. warning:: hazmat.

A :class:`Public` re-marshals to exactly the bytes it was parsed from, so
:meth:`Public.name` (nameAlg || H(TPMT_PUBLIC)) is the name the TPM computes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge._binary import Reader, Writer
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.constants import (
    MAX_DIGEST_SIZE,
    HashAlg,
    TPMAlg,
    TPMAObject,
    TPMECCCurve,
    hash_alg_by_id,
)

__all__ = [
    "AK_ATTRIBUTES",
    "EK_TEMPLATES",
    "ECCParms",
    "ECCPoint",
    "KeyedHashParms",
    "Public",
    "PublicKey",
    "RSAParms",
    "Scheme",
    "SymCipherParms",
    "SymDef",
    "ak_template",
    "ek_template",
    "public_from_key",
    "qualified_name",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

MAX_RSA_BYTES: Final = 512
MAX_ECC_BYTES: Final = 128
MAX_PUBLIC_SIZE: Final = 2048

_SYM_BLOCK: Final = frozenset({TPMAlg.AES, TPMAlg.SM4, TPMAlg.CAMELLIA})
_HASH_ONLY_SCHEMES: Final = frozenset(
    {TPMAlg.RSASSA, TPMAlg.RSAPSS, TPMAlg.OAEP, TPMAlg.ECDSA, TPMAlg.ECDH, TPMAlg.SM2,
     TPMAlg.ECSCHNORR, TPMAlg.ECMQV, TPMAlg.HMAC}
)  # fmt: skip
_RSA_SCHEMES: Final = frozenset(
    {TPMAlg.NULL, TPMAlg.RSASSA, TPMAlg.RSAPSS, TPMAlg.RSAES, TPMAlg.OAEP}
)
_ECC_SCHEMES: Final = frozenset(
    {TPMAlg.NULL, TPMAlg.ECDSA, TPMAlg.ECDH, TPMAlg.ECDAA, TPMAlg.SM2, TPMAlg.ECSCHNORR,
     TPMAlg.ECMQV}
)  # fmt: skip
_KEYEDHASH_SCHEMES: Final = frozenset({TPMAlg.NULL, TPMAlg.HMAC, TPMAlg.XOR})
_KDF_SCHEMES: Final = frozenset(
    {TPMAlg.NULL, TPMAlg.KDF1_SP800_56A, TPMAlg.KDF2, TPMAlg.KDF1_SP800_108, 0x0007}
)
_CURVES: Final[dict[int, type[ec.EllipticCurve]]] = {
    TPMECCCurve.NIST_P256: ec.SECP256R1,
    TPMECCCurve.NIST_P384: ec.SECP384R1,
    TPMECCCurve.NIST_P521: ec.SECP521R1,
}
_CURVE_IDS: Final = {"secp256r1": TPMECCCurve.NIST_P256, "secp384r1": TPMECCCurve.NIST_P384,
                     "secp521r1": TPMECCCurve.NIST_P521}  # fmt: skip


@dataclass(frozen=True)
class SymDef:
    """``TPMT_SYM_DEF_OBJECT``: NULL or a block cipher with key bits and mode."""

    algorithm: int = TPMAlg.NULL
    key_bits: int = 0
    mode: int = TPMAlg.NULL

    def marshal(self, w: Writer) -> None:
        w.u16be(self.algorithm)
        if self.algorithm != TPMAlg.NULL:
            w.u16be(self.key_bits).u16be(self.mode)

    @classmethod
    def read(cls, r: Reader) -> SymDef:
        alg = r.u16be("symmetric.algorithm")
        if alg == TPMAlg.NULL:
            return cls()
        if alg not in _SYM_BLOCK:
            raise r.fail(f"symmetric algorithm 0x{alg:04x}", expected="TPMI_ALG_SYM_OBJECT")
        return cls(alg, r.u16be("keyBits"), r.u16be("mode"))


@dataclass(frozen=True)
class Scheme:
    """A scheme with its details: ``TPMT_RSA_SCHEME``, ``TPMT_ECC_SCHEME``,
    ``TPMT_KEYEDHASH_SCHEME`` or ``TPMT_KDF_SCHEME``. ``count`` is ECDAA's,
    ``kdf`` XOR's."""

    scheme: int = TPMAlg.NULL
    hash_alg: int = TPMAlg.NULL
    count: int = 0
    kdf: int = TPMAlg.NULL

    def marshal(self, w: Writer) -> None:
        w.u16be(self.scheme)
        if self.scheme == TPMAlg.NULL or self.scheme == TPMAlg.RSAES:
            return
        w.u16be(self.hash_alg)
        if self.scheme == TPMAlg.ECDAA:
            w.u16be(self.count)
        elif self.scheme == TPMAlg.XOR:
            w.u16be(self.kdf)

    @classmethod
    def read(cls, r: Reader, allowed: frozenset[int], what: str) -> Scheme:
        scheme = r.u16be(what)
        if scheme not in allowed:
            raise r.fail(f"{what} 0x{scheme:04x} not allowed here", expected=what)
        if scheme == TPMAlg.NULL or scheme == TPMAlg.RSAES:
            return cls(scheme)
        hash_id = r.u16be(f"{what}.hashAlg")
        if scheme == TPMAlg.ECDAA:
            return cls(scheme, hash_id, count=r.u16be("ECDAA count"))
        if scheme == TPMAlg.XOR:
            return cls(scheme, hash_id, kdf=r.u16be("XOR kdf"))
        return cls(scheme, hash_id)


@dataclass(frozen=True)
class RSAParms:
    """``TPMS_RSA_PARMS``. An exponent of 0 means 65537."""

    symmetric: SymDef
    scheme: Scheme
    key_bits: int
    exponent: int = 0


@dataclass(frozen=True)
class ECCParms:
    """``TPMS_ECC_PARMS``."""

    symmetric: SymDef
    scheme: Scheme
    curve: int
    kdf: Scheme = Scheme()


@dataclass(frozen=True)
class KeyedHashParms:
    """``TPMS_KEYEDHASH_PARMS``."""

    scheme: Scheme = Scheme()


@dataclass(frozen=True)
class SymCipherParms:
    """``TPMS_SYMCIPHER_PARMS``."""

    symmetric: SymDef


@dataclass(frozen=True)
class ECCPoint:
    """``TPMS_ECC_POINT``."""

    x: bytes
    y: bytes

    def marshal(self, w: Writer) -> None:
        w.bytes_u16be(self.x).bytes_u16be(self.y)

    @classmethod
    def read(cls, r: Reader) -> ECCPoint:
        return cls(
            r.bytes_u16be("x", max_len=MAX_ECC_BYTES), r.bytes_u16be("y", max_len=MAX_ECC_BYTES)
        )


Parms = RSAParms | ECCParms | KeyedHashParms | SymCipherParms


@dataclass(frozen=True)
class Public:
    """``TPMT_PUBLIC``. ``unique`` is bytes (RSA modulus, keyedhash/symcipher
    digest) or an :class:`ECCPoint`. Parsed, not trusted."""

    type: int
    name_alg: int
    attributes: int
    auth_policy: bytes
    parameters: Parms
    unique: bytes | ECCPoint

    # -- encoding -----------------------------------------------------------
    def marshal(self) -> bytes:
        """The marshalled ``TPMT_PUBLIC`` (what the name hashes)."""
        w = Writer().u16be(self.type).u16be(self.name_alg).u32be(self.attributes)
        w.bytes_u16be(self.auth_policy)
        p = self.parameters
        if isinstance(p, RSAParms):
            p.symmetric.marshal(w)
            p.scheme.marshal(w)
            w.u16be(p.key_bits).u32be(p.exponent)
        elif isinstance(p, ECCParms):
            p.symmetric.marshal(w)
            p.scheme.marshal(w)
            w.u16be(p.curve)
            p.kdf.marshal(w)
        elif isinstance(p, KeyedHashParms):
            p.scheme.marshal(w)
        else:
            p.symmetric.marshal(w)
        if isinstance(self.unique, ECCPoint):
            self.unique.marshal(w)
        else:
            w.bytes_u16be(self.unique)
        return w.getvalue()

    def marshal_tpm2b(self) -> bytes:
        """The ``TPM2B_PUBLIC`` (``tpm2_readpublic -o``, ``tpm2_createak -u``)."""
        return Writer().bytes_u16be(self.marshal()).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Public:
        type_ = r.u16be("type")
        name_alg = r.u16be("nameAlg")
        attributes = r.u32be("objectAttributes")
        policy = r.bytes_u16be("authPolicy", max_len=MAX_DIGEST_SIZE)
        parms: Parms
        unique: bytes | ECCPoint
        if type_ == TPMAlg.RSA:
            sym = SymDef.read(r)
            scheme = Scheme.read(r, _RSA_SCHEMES, "RSA scheme")
            parms = RSAParms(sym, scheme, r.u16be("keyBits"), r.u32be("exponent"))
            unique = r.bytes_u16be("unique.rsa", max_len=MAX_RSA_BYTES)
        elif type_ == TPMAlg.ECC:
            sym = SymDef.read(r)
            scheme = Scheme.read(r, _ECC_SCHEMES, "ECC scheme")
            curve = r.u16be("curveID")
            kdf = Scheme.read(r, _KDF_SCHEMES, "KDF scheme")
            parms = ECCParms(sym, scheme, curve, kdf)
            unique = ECCPoint.read(r)
        elif type_ == TPMAlg.KEYEDHASH:
            parms = KeyedHashParms(Scheme.read(r, _KEYEDHASH_SCHEMES, "keyedhash scheme"))
            unique = r.bytes_u16be("unique.keyedHash", max_len=MAX_DIGEST_SIZE)
        elif type_ == TPMAlg.SYMCIPHER:
            parms = SymCipherParms(SymDef.read(r))
            unique = r.bytes_u16be("unique.sym", max_len=MAX_DIGEST_SIZE)
        else:
            raise MalformedInputError(
                f"unknown public type 0x{type_:04x}", offset=r.offset - 8 - len(policy) - 2,
                expected="TPMI_ALG_PUBLIC",
            )  # fmt: skip
        return cls(type_, name_alg, attributes, policy, parms, unique)

    @classmethod
    def unmarshal(cls, data: bytes) -> Public:
        """Strictly parse a ``TPMT_PUBLIC``."""
        r = Reader(data, max_size=MAX_PUBLIC_SIZE)
        pub = cls.read(r)
        r.expect_end("end of TPMT_PUBLIC")
        return pub

    @classmethod
    def unmarshal_tpm2b(cls, data: bytes) -> Public:
        """Strictly parse a ``TPM2B_PUBLIC``: the size must cover exactly the TPMT_PUBLIC."""
        r = Reader(data, max_size=2 + MAX_PUBLIC_SIZE)
        body = r.bytes_u16be("TPM2B_PUBLIC", max_len=MAX_PUBLIC_SIZE)
        r.expect_end("end of TPM2B_PUBLIC")
        return cls.unmarshal(body)

    @classmethod
    def unmarshal_any(cls, data: bytes) -> Public:
        """Strictly parse a ``TPM2B_PUBLIC`` (``tpm2_readpublic -o``, the default tss
        format) or a bare ``TPMT_PUBLIC`` (``tpm2_readpublic -f tpmt``). The two cannot be
        confused: a TPM2B_PUBLIC starts with the size of the rest, a TPMT_PUBLIC with its
        type (0x0001 RSA, 0x0008 keyedhash, 0x0023 ECC, 0x0025 symcipher), and no
        TPMT_PUBLIC is as short as 3, 10, 37 or 39 bytes."""
        r = Reader(data, max_size=2 + MAX_PUBLIC_SIZE)
        if r.u16be("TPM2B_PUBLIC.size or TPMT_PUBLIC.type") == r.remaining:
            return cls.unmarshal_tpm2b(data)
        return cls.unmarshal(data)

    # -- names ----------------------------------------------------------------
    @property
    def name_hash(self) -> HashAlg:
        """The nameAlg; raises UnsupportedAlgorithmError when not a known hash."""
        return hash_alg_by_id(self.name_alg)

    def name(self) -> bytes:
        """The TPM name: nameAlg (2 bytes) || H_nameAlg(TPMT_PUBLIC)."""
        h = self.name_hash
        return self.name_alg.to_bytes(2, "big") + h.digest(self.marshal())

    # -- keys -------------------------------------------------------------------
    def scheme(self) -> Scheme:
        """The signing/decryption scheme of an RSA or ECC key (NULL otherwise)."""
        p = self.parameters
        if isinstance(p, RSAParms | ECCParms):
            return p.scheme
        if isinstance(p, KeyedHashParms):
            return p.scheme
        return Scheme()

    def public_key(self) -> PublicKey:
        """The ``cryptography`` public key of an RSA or ECC object.

        Raises UnsupportedAlgorithmError for other types or curves and
        MalformedInputError when the key material is not a valid key.
        """
        p = self.parameters
        try:
            if isinstance(p, RSAParms) and isinstance(self.unique, bytes):
                n = int.from_bytes(self.unique, "big")
                if len(self.unique) * 8 != p.key_bits:
                    raise MalformedInputError(
                        f"RSA modulus of {len(self.unique)} bytes for keyBits {p.key_bits}"
                    )
                return rsa.RSAPublicNumbers(p.exponent or 65537, n).public_key()
            if isinstance(p, ECCParms) and isinstance(self.unique, ECCPoint):
                curve = _CURVES.get(p.curve)
                if curve is None:
                    raise UnsupportedAlgorithmError(f"ECC curve 0x{p.curve:04x} is not supported")
                x = int.from_bytes(self.unique.x, "big")
                y = int.from_bytes(self.unique.y, "big")
                return ec.EllipticCurvePublicNumbers(x, y, curve()).public_key()
        except ValueError as exc:
            if isinstance(exc, MalformedInputError):
                raise
            raise MalformedInputError(f"invalid public key material: {exc}") from exc
        raise UnsupportedAlgorithmError(f"object type 0x{self.type:04x} has no public key")


def qualified_name(parent_qualified_name: bytes, name: bytes, name_alg: int) -> bytes:
    """QN_B = nameAlg || H_nameAlg(QN_parent || Name_B). A primary's parent QN is
    its hierarchy handle (4 bytes, e.g. 0x4000000B for the endorsement hierarchy)."""
    h = hash_alg_by_id(name_alg)
    return name_alg.to_bytes(2, "big") + h.digest(parent_qualified_name + name)


# ---------------------------------------------------------------------------
# Conversion from cryptography keys and the standard templates
# ---------------------------------------------------------------------------
#: tpm2_createak's attributes: restricted signing key that never leaves the TPM.
AK_ATTRIBUTES: Final = int(
    TPMAObject.FIXED_TPM | TPMAObject.FIXED_PARENT | TPMAObject.SENSITIVE_DATA_ORIGIN
    | TPMAObject.USER_WITH_AUTH | TPMAObject.RESTRICTED | TPMAObject.SIGN_ENCRYPT
)  # fmt: skip


def _int_bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


def public_from_key(
    key: PublicKey,
    *,
    scheme: Scheme | None = None,
    attributes: int = AK_ATTRIBUTES,
    name_alg: int = TPMAlg.SHA256,
    auth_policy: bytes = b"",
    symmetric: SymDef | None = None,
) -> Public:
    """A TPMT_PUBLIC for a ``cryptography`` RSA or ECC public key (the default:
    an AK-style restricted signing key with sha256 nameAlg; ``scheme`` defaults
    to RSASSA-SHA256 / ECDSA-SHA256)."""
    sym = symmetric or SymDef()
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        size = (key.key_size + 7) // 8
        sch = scheme or Scheme(TPMAlg.RSASSA, TPMAlg.SHA256)
        exponent = 0 if nums.e == 65537 else nums.e
        return Public(
            int(TPMAlg.RSA), int(name_alg), attributes, auth_policy,
            RSAParms(sym, sch, key.key_size, exponent), _int_bytes(nums.n, size),
        )  # fmt: skip
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_IDS.get(key.curve.name)
        if curve is None:
            raise UnsupportedAlgorithmError(f"curve {key.curve.name} is not supported")
        size = (key.curve.key_size + 7) // 8
        pn = key.public_numbers()
        sch = scheme or Scheme(TPMAlg.ECDSA, TPMAlg.SHA256)
        return Public(
            int(TPMAlg.ECC), int(name_alg), attributes, auth_policy,
            ECCParms(sym, sch, int(curve)),
            ECCPoint(_int_bytes(pn.x, size), _int_bytes(pn.y, size)),
        )  # fmt: skip
    raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")


def ak_template(algorithm: str) -> Public:
    """The AK template for ``"ecc-p256-ecdsa"``, ``"rsa2048-rsassa"`` or ``"rsa2048-rsapss"``
    (unique empty, as handed to TPM2_Create)."""
    sha256 = int(TPMAlg.SHA256)
    if algorithm == "ecc-p256-ecdsa":
        return Public(int(TPMAlg.ECC), sha256, AK_ATTRIBUTES, b"",
                      ECCParms(SymDef(), Scheme(TPMAlg.ECDSA, sha256), int(TPMECCCurve.NIST_P256)),
                      ECCPoint(b"", b""))  # fmt: skip
    if algorithm in ("rsa2048-rsassa", "rsa2048-rsapss"):
        sch = TPMAlg.RSASSA if algorithm.endswith("rsassa") else TPMAlg.RSAPSS
        return Public(int(TPMAlg.RSA), sha256, AK_ATTRIBUTES, b"",
                      RSAParms(SymDef(), Scheme(sch, sha256), 2048, 0), b"")  # fmt: skip
    raise UnsupportedAlgorithmError(f"AK algorithm {algorithm!r} is not supported")


_EK_LOW_ATTRS: Final = int(
    TPMAObject.FIXED_TPM | TPMAObject.FIXED_PARENT | TPMAObject.SENSITIVE_DATA_ORIGIN
    | TPMAObject.ADMIN_WITH_POLICY | TPMAObject.RESTRICTED | TPMAObject.DECRYPT
)  # fmt: skip
_EK_HIGH_ATTRS: Final = _EK_LOW_ATTRS | int(TPMAObject.USER_WITH_AUTH)
#: PolicySecret(TPM_RH_ENDORSEMENT) with sha256 (TCG EK Credential Profile, policy A).
EK_POLICY_LOW: Final = bytes.fromhex(
    "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
)
#: Policy B (PolicyOR of PolicySecret and PolicyNV) for sha384 high-range templates.
EK_POLICY_SHA384: Final = bytes.fromhex(
    "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419ca"
    "cb47ba09699646150f9fc000f3f80e12"
)
_AES128_CFB: Final = SymDef(int(TPMAlg.AES), 128, int(TPMAlg.CFB))
_AES256_CFB: Final = SymDef(int(TPMAlg.AES), 256, int(TPMAlg.CFB))

#: The TCG EK templates (EK Credential Profile 2.x): L-1, L-2 and H-3.
EK_TEMPLATES: Final[dict[str, Public]] = {
    "rsa2048": Public(
        int(TPMAlg.RSA), int(TPMAlg.SHA256), _EK_LOW_ATTRS, EK_POLICY_LOW,
        RSAParms(_AES128_CFB, Scheme(), 2048, 0), bytes(256),
    ),
    "ecc-p256": Public(
        int(TPMAlg.ECC), int(TPMAlg.SHA256), _EK_LOW_ATTRS, EK_POLICY_LOW,
        ECCParms(_AES128_CFB, Scheme(), int(TPMECCCurve.NIST_P256)), ECCPoint(bytes(32), bytes(32)),
    ),
    "ecc-p384": Public(
        int(TPMAlg.ECC), int(TPMAlg.SHA384), _EK_HIGH_ATTRS, EK_POLICY_SHA384,
        ECCParms(_AES256_CFB, Scheme(), int(TPMECCCurve.NIST_P384)), ECCPoint(b"", b""),
    ),
}  # fmt: skip


def ek_template(kind: str) -> Public:
    """The TCG EK template for ``"rsa2048"``, ``"ecc-p256"`` or ``"ecc-p384"``."""
    try:
        return EK_TEMPLATES[kind]
    except KeyError:
        raise UnsupportedAlgorithmError(f"EK kind {kind!r} is not supported") from None


def with_key(template: Public, key: PublicKey) -> Public:
    """``template`` with ``unique`` replaced by ``key``'s public material
    (what the TPM returns after creating an object from the template)."""
    filled = public_from_key(key)
    return replace(template, unique=filled.unique)
