"""TPM 2.0 policy digests: PolicyPCR, PolicyNV, PolicyAuthorize (Part 3 §23).

.. warning:: hazmat. These compute what a TPM's policy session computes; they
   decide nothing. ``trustedge.envelope`` seals to an authorized policy and
   both backends unseal through the TPM's (or the software TPM's) checks.

A *signed PCR policy* is the pattern of TPM 2.0 Part 1 §19.7.9: the sealed
object's ``authPolicy`` is ``PolicyAuthorize(keyName, policyRef)``; any
*approved* policy -- here PolicyPCR(selection, values) then PolicyNV(counter
<= version) -- the authority signs over ``aHash = H(approvedPolicy ||
policyRef)`` unseals it, once the TPM checked that signature
(TPM2_VerifySignature, a ticket) and that the session's own digest equals
the approved one. The NV counter revokes older approvals: a policy of
version ``v`` holds while the counter is at most ``v``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from trustedge._binary import Reader, Writer
from trustedge.errors import MalformedInputError, SignatureError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.constants import TPMAlg, TPMAObject
from trustedge.hazmat.tpm2.kdf import pcr_composite_digest
from trustedge.hazmat.tpm2.public import Public, public_from_key
from trustedge.hazmat.tpm2.structures import PCRSelectionList, Signature

__all__ = [
    "TPM_CC_POLICY_AUTHORIZE",
    "TPM_CC_POLICY_NV",
    "TPM_CC_POLICY_PCR",
    "TPM_EO_UNSIGNED_LE",
    "AUTHORITY_ATTRIBUTES",
    "PCRPolicy",
    "SignedPolicy",
    "authority_public",
    "authorize_hash",
    "policy_authorize",
    "policy_nv",
    "policy_pcr",
    "sign_policy",
    "verify_policy_signature",
    "version_operand",
]

TPM_CC_POLICY_PCR: Final = 0x0000017F
TPM_CC_POLICY_AUTHORIZE: Final = 0x0000016A
TPM_CC_POLICY_NV: Final = 0x00000149
#: TPM_EO: NV contents (A) <= operandB, unsigned.
TPM_EO_UNSIGNED_LE: Final = 0x0009
_DIGEST: Final = 32  # policies here are SHA-256 sessions
_MAX_POLICY_DOC: Final = 4096


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def _cc(code: int) -> bytes:
    return code.to_bytes(4, "big")


def policy_pcr(digest: bytes, selection: Mapping[str, Sequence[int]], pcr_digest: bytes) -> bytes:
    """TPM2_PolicyPCR: ``H(digest || CC || TPML_PCR_SELECTION || pcrDigest)``."""
    sel = PCRSelectionList.from_mapping({b: tuple(v) for b, v in selection.items()})
    return _h(digest, _cc(TPM_CC_POLICY_PCR), sel.marshal(), pcr_digest)


def policy_nv(
    digest: bytes, nv_name: bytes, operand_b: bytes, offset: int = 0, operation: int = 0
) -> bytes:
    """TPM2_PolicyNV: ``H(digest || CC || H(operandB || offset || operation) || nvName)``."""
    args = _h(operand_b, offset.to_bytes(2, "big"), operation.to_bytes(2, "big"))
    return _h(digest, _cc(TPM_CC_POLICY_NV), args, nv_name)


def policy_authorize(key_name: bytes, policy_ref: bytes = b"") -> bytes:
    """TPM2_PolicyAuthorize's result: the digest is reset, then
    ``H(0 || CC || keyName)`` and ``H(that || policyRef)``."""
    first = _h(bytes(_DIGEST), _cc(TPM_CC_POLICY_AUTHORIZE), key_name)
    return _h(first, policy_ref)


def authorize_hash(approved_policy: bytes, policy_ref: bytes = b"") -> bytes:
    """``aHash = H(approvedPolicy || policyRef)``: what the authority signs (with a
    SHA-256 nameAlg key) and TPM2_VerifySignature checks."""
    return _h(approved_policy, policy_ref)


def version_operand(version: int) -> bytes:
    """The 8-byte big-endian operand of an NV counter comparison."""
    if not 0 <= version < 1 << 64:
        raise ValueError("a policy version is a uint64")
    return version.to_bytes(8, "big")


@dataclass(frozen=True)
class PCRPolicy:
    """An approved policy: PolicyPCR(``selection``, ``pcr_digest``), then -- when
    ``nv_name`` is set -- PolicyNV(counter ``nv_index`` <= ``version``).

    ``pcr_digest`` is ``H(values in TPM selection order)`` (:meth:`from_values`).
    """

    selection: Mapping[str, tuple[int, ...]]
    pcr_digest: bytes
    nv_index: int = 0
    nv_name: bytes = b""
    version: int = 0

    @classmethod
    def from_values(
        cls,
        values: Mapping[str, Mapping[int, bytes]],
        selection: Mapping[str, Sequence[int]],
        *,
        nv_index: int = 0,
        nv_name: bytes = b"",
        version: int = 0,
    ) -> PCRPolicy:
        """The policy for PCR ``values`` (bank -> PCR -> value) at ``selection``.
        Raises ValueError when a selected value is missing."""
        sel = PCRSelectionList.from_mapping({b: tuple(v) for b, v in selection.items()})
        try:
            ordered = [values[bank][pcr] for bank, pcr in sel.pcr_order()]
        except KeyError as exc:
            raise ValueError(f"no value for selected PCR {exc}") from None
        return cls(
            sel.to_mapping(),
            pcr_composite_digest(int(TPMAlg.SHA256), ordered),
            nv_index,
            nv_name,
            version,
        )

    def digest(self) -> bytes:
        """The approved policy digest (what the session must reach)."""
        d = policy_pcr(bytes(_DIGEST), self.selection, self.pcr_digest)
        if self.nv_name:
            d = policy_nv(d, self.nv_name, version_operand(self.version), 0, TPM_EO_UNSIGNED_LE)
        return d

    def encode(self) -> bytes:
        w = Writer().write(PCRSelectionList.from_mapping(dict(self.selection)).marshal())
        w.bytes_u16be(self.pcr_digest).u32be(self.nv_index).bytes_u16be(self.nv_name)
        return w.u64be(self.version).getvalue()

    @classmethod
    def read(cls, r: Reader) -> PCRPolicy:
        sel = PCRSelectionList.read(r)
        pcr_digest = r.bytes_u16be("pcrDigest", max_len=64)
        if len(pcr_digest) != _DIGEST:
            raise MalformedInputError("pcrDigest must be a SHA-256 digest", offset=r.offset)
        nv_index = r.u32be("nvIndex")
        nv_name = r.bytes_u16be("nvName", max_len=2 + 64)
        return cls(sel.to_mapping(), pcr_digest, nv_index, nv_name, r.u64be("version"))


@dataclass(frozen=True)
class SignedPolicy:
    """An approved :class:`PCRPolicy`, its ``policy_ref`` and the authority's
    ``TPMT_SIGNATURE`` over :func:`authorize_hash` (unverified until a TPM checks it)."""

    policy: PCRPolicy
    policy_ref: bytes
    signature: bytes

    def encode(self) -> bytes:
        """``"TEPOL\\x01" | policy | ref (u16 len) | signature (u16 len)``."""
        w = Writer().write(b"TEPOL\x01").write(self.policy.encode())
        return w.bytes_u16be(self.policy_ref).bytes_u16be(self.signature).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SignedPolicy:
        """Parse untrusted bytes (MalformedInputError on anything else)."""
        r = Reader(data, max_size=_MAX_POLICY_DOC)
        if r.read(6, "magic") != b"TEPOL\x01":
            raise MalformedInputError("not a trustedge signed PCR policy", offset=0)
        policy = PCRPolicy.read(r)
        ref = r.bytes_u16be("policyRef", max_len=64)
        sig = r.bytes_u16be("signature", max_len=1024)
        r.expect_end("end of the signed policy")
        return cls(policy, ref, sig)

    def matches(self, approved: bytes) -> bool:
        return hmac.compare_digest(self.policy.digest(), approved)


#: Attributes of an authority key loaded with TPM2_LoadExternal (public part only).
AUTHORITY_ATTRIBUTES: Final = int(TPMAObject.SIGN_ENCRYPT | TPMAObject.USER_WITH_AUTH)


def authority_public(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> Public:
    """The TPMT_PUBLIC a TPM loads the policy authority as (ECDSA-SHA256 for
    P-256/P-384 keys, RSASSA-SHA256 for RSA; sha256 nameAlg). Its
    :meth:`~trustedge.hazmat.tpm2.Public.name` goes into PolicyAuthorize."""
    return public_from_key(key, attributes=AUTHORITY_ATTRIBUTES)


def sign_policy(
    policy: PCRPolicy,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    policy_ref: bytes = b"",
) -> SignedPolicy:
    """Sign ``policy`` for TPM2_PolicyAuthorize: a TPMT_SIGNATURE over ``aHash``."""
    a_hash = authorize_hash(policy.digest(), policy_ref)
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(a_hash, ec.ECDSA(prehashed)))
        size = (key.curve.key_size + 7) // 8
        sig = Signature(
            int(TPMAlg.ECDSA),
            int(TPMAlg.SHA256),
            r=r.to_bytes(size, "big"),
            s=s.to_bytes(size, "big"),
        )
    elif isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(a_hash, padding.PKCS1v15(), prehashed)
        sig = Signature(int(TPMAlg.RSASSA), int(TPMAlg.SHA256), rsa=raw)
    else:
        raise UnsupportedAlgorithmError("a TPM policy authority is an ECC or RSA key")
    return SignedPolicy(policy, policy_ref, sig.marshal())


def verify_policy_signature(signed: SignedPolicy, authority: Public) -> None:
    """What TPM2_VerifySignature checks, for the software TPM: the signature over
    ``aHash`` by ``authority``. Raises SignatureError (MalformedInputError for junk)."""
    sig = Signature.unmarshal(signed.signature)
    if not authority.attributes & TPMAObject.SIGN_ENCRYPT or (
        authority.attributes & TPMAObject.RESTRICTED
    ):
        # TPM2_VerifySignature: TPM_RC_ATTRIBUTES for a key that is not an unrestricted
        # signing key (a restricted one signs only what the TPM itself produced)
        raise SignatureError("the policy authority is not an unrestricted signing key")
    if sig.hash_alg != TPMAlg.SHA256:
        raise SignatureError("the policy signature must use SHA-256")
    a_hash = authorize_hash(signed.policy.digest(), signed.policy_ref)
    key = authority.public_key()
    prehashed = Prehashed(hashes.SHA256())
    try:
        if sig.sig_alg == TPMAlg.ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            der = encode_dss_signature(int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
            key.verify(der, a_hash, ec.ECDSA(prehashed))
        elif sig.sig_alg == TPMAlg.RSASSA and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig.rsa, a_hash, padding.PKCS1v15(), prehashed)
        else:
            raise SignatureError("signature scheme does not fit the authority key")
    except InvalidSignature:
        raise SignatureError("the PCR policy is not signed by the authority") from None
