"""EAT Attestation Results (EAR) with AR4SI trustworthiness vectors.

The verifier's verdict on a device, for relying parties. The model follows
draft-ietf-rats-ear (EAT profile ``tag:github.com,2023:veraison/ear``) and
the trustworthiness claims of draft-ietf-rats-ar4si:

* :class:`AttestationResult` -- ``iat``, ``ear.verifier-id``, optional
  ``eat_nonce`` and ``ear.raw-evidence``, and one :class:`Appraisal` per
  attester in ``submods`` (trustedge names the submod after the device id).
* :class:`Appraisal` -- ``ear.status`` (:class:`TrustTier`), the
  :class:`TrustVector`, ``ear.appraisal-policy-id``, and trustedge's
  ``reasons`` extension (``trustedge.reasons`` in JSON, key -71000 in CBOR):
  the human-readable findings behind the claims.

Signed as a JWT (:func:`sign_jwt`) or a CWT / COSE_Sign1 (:func:`sign_cwt`)
with ES256 or EdDSA; relying parties call :func:`verify_result`, which fails
closed: it returns the verified result or raises.

The JSON claims use names (``"ear.status": "affirming"``); the CBOR claims
use the registered integer keys (265 profile, 6 iat, 10 nonce, 266 submods,
1000 status, 1001 vector, 1002 raw evidence, 1003 policy id, 1004 verifier
id) with statuses as tier numbers (0, 2, 32, 96).
"""

from __future__ import annotations

import enum
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final

from trustedge import cose
from trustedge._cbor import CBORTag, DecodeLimits, decode, encode
from trustedge.attestation import _jws, _signing
from trustedge.errors import ExpiredError, MalformedInputError, NonceError

__all__ = [
    "VerifiedResult",
    "EAR_PROFILE",
    "APPROVED_BOOT",
    "APPROVED_CONFIG",
    "APPROVED_FILES",
    "APPROVED_RUNTIME",
    "CONTRAINDICATED_FILES",
    "CONTRAINDICATED_HARDWARE",
    "CONTRAINDICATED_RUNTIME",
    "CRYPTO_VALIDATION_FAILED",
    "GENUINE_HARDWARE",
    "HW_KEYS_ENCRYPTED_SECRETS",
    "NO_CLAIM",
    "NO_CONFIG_VULNS",
    "SW_KEYS_ENCRYPTED_SECRETS",
    "TRUSTWORTHY_INSTANCE",
    "UNAVAILABLE_CONFIG",
    "UNEXPECTED_EVIDENCE",
    "UNRECOGNIZED_FILES",
    "UNRECOGNIZED_HARDWARE",
    "UNRECOGNIZED_INSTANCE",
    "UNRECOGNIZED_RUNTIME",
    "UNSAFE_CONFIG",
    "UNSAFE_HARDWARE",
    "UNSAFE_RUNTIME",
    "UNSUPPORTABLE_CONFIG",
    "UNTRUSTWORTHY_INSTANCE",
    "VERIFIER_MALFUNCTION",
    "Appraisal",
    "AttestationResult",
    "TrustTier",
    "TrustVector",
    "VerifierId",
    "sign_cwt",
    "sign_jwt",
    "verify_result",
]

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"

# -- AR4SI claim values (draft-ietf-rats-ar4si) ------------------------------------
# Common to every claim.
VERIFIER_MALFUNCTION: Final = -1
NO_CLAIM: Final = 0
UNEXPECTED_EVIDENCE: Final = 1
CRYPTO_VALIDATION_FAILED: Final = 99
# instance-identity
TRUSTWORTHY_INSTANCE: Final = 2
UNTRUSTWORTHY_INSTANCE: Final = 96
UNRECOGNIZED_INSTANCE: Final = 97
# configuration
APPROVED_CONFIG: Final = 2
NO_CONFIG_VULNS: Final = 3
UNSAFE_CONFIG: Final = 32
UNAVAILABLE_CONFIG: Final = 36
UNSUPPORTABLE_CONFIG: Final = 96
# executables
APPROVED_RUNTIME: Final = 2
APPROVED_BOOT: Final = 3
UNSAFE_RUNTIME: Final = 32
UNRECOGNIZED_RUNTIME: Final = 33
CONTRAINDICATED_RUNTIME: Final = 96
# file-system
APPROVED_FILES: Final = 2
UNRECOGNIZED_FILES: Final = 32
CONTRAINDICATED_FILES: Final = 96
# hardware
GENUINE_HARDWARE: Final = 2
UNSAFE_HARDWARE: Final = 32
CONTRAINDICATED_HARDWARE: Final = 96
UNRECOGNIZED_HARDWARE: Final = 97
# storage-opaque
HW_KEYS_ENCRYPTED_SECRETS: Final = 2
SW_KEYS_ENCRYPTED_SECRETS: Final = 32

# -- claim keys ---------------------------------------------------------------------
_K_IAT: Final = 6
_K_NONCE: Final = 10
_K_PROFILE: Final = 265
_K_SUBMODS: Final = 266
_K_STATUS: Final = 1000
_K_VECTOR: Final = 1001
_K_RAW: Final = 1002
_K_POLICY: Final = 1003
_K_VERIFIER: Final = 1004
_K_REASONS: Final = -71000  # trustedge private-use extension
_J_REASONS: Final = "trustedge.reasons"

_LIMITS: Final = DecodeLimits(max_size=1 << 20, max_depth=16, max_items=100_000)
_COSE_LIMITS: Final = DecodeLimits(max_size=1 << 20, max_depth=8, max_items=4096)
MAX_SUBMODS: Final = 64
MAX_REASONS: Final = 256
MAX_TEXT: Final = 4096


class TrustTier(enum.Enum):
    """An AR4SI tier; ordered none < affirming < warning < contraindicated."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def code(self) -> int:
        """The tier's number in CBOR (0, 2, 32, 96)."""
        return _TIER_CODES[self]

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]

    @classmethod
    def of_claim(cls, value: int) -> TrustTier:
        """The tier a claim value falls in (-1..1 none, 2..31 affirming, 32..95 warning,
        96..127 contraindicated; negative values mirror the positive ones)."""
        magnitude = abs(value)
        if magnitude <= 1:
            return cls.NONE
        if magnitude <= 31:
            return cls.AFFIRMING
        if magnitude <= 95:
            return cls.WARNING
        return cls.CONTRAINDICATED

    @classmethod
    def from_code(cls, code: object) -> TrustTier:
        for tier, number in _TIER_CODES.items():
            if code == number and not isinstance(code, bool):
                return tier
        raise MalformedInputError(f"unknown ear.status {code!r}")

    @classmethod
    def from_name(cls, name: object) -> TrustTier:
        for tier in cls:
            if name == tier.value:
                return tier
        raise MalformedInputError(f"unknown ear.status {name!r}")


_TIER_CODES: Final = {
    TrustTier.NONE: 0,
    TrustTier.AFFIRMING: 2,
    TrustTier.WARNING: 32,
    TrustTier.CONTRAINDICATED: 96,
}
_TIER_RANK: Final = {tier: i for i, tier in enumerate(TrustTier)}


def _worst(tiers: list[TrustTier]) -> TrustTier:
    return max(tiers, key=lambda t: t.rank, default=TrustTier.NONE)


@dataclass(frozen=True)
class TrustVector:
    """The eight AR4SI trustworthiness claims; 0 means "no claim"."""

    instance_identity: int = NO_CLAIM
    configuration: int = NO_CLAIM
    executables: int = NO_CLAIM
    file_system: int = NO_CLAIM
    hardware: int = NO_CLAIM
    runtime_opaque: int = NO_CLAIM
    storage_opaque: int = NO_CLAIM
    sourced_data: int = NO_CLAIM

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
                raise ValueError(f"trust claim {f.name} must be an int in -128..127")

    def tier(self) -> TrustTier:
        """The worst tier among the claims."""
        return _worst([TrustTier.of_claim(getattr(self, f.name)) for f in fields(self)])

    def items(self) -> list[tuple[int, str, int]]:
        """``(CBOR key, JSON name, value)`` of every claim that is made (non-zero)."""
        return [
            (i, f.name.replace("_", "-"), getattr(self, f.name))
            for i, f in enumerate(fields(self))
            if getattr(self, f.name) != NO_CLAIM
        ]

    @classmethod
    def _from(cls, obj: object, by_name: bool) -> TrustVector:
        if not isinstance(obj, dict):
            raise MalformedInputError("ear.trustworthiness-vector must be a map")
        names = [f.name for f in fields(cls)]
        values: dict[str, int] = {}
        for key, value in obj.items():
            if by_name:
                name = key.replace("-", "_") if isinstance(key, str) else None
                if name not in names:
                    raise MalformedInputError(f"unknown trustworthiness claim {key!r}")
            else:
                if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < len(names):
                    raise MalformedInputError(f"unknown trustworthiness claim {key!r}")
                name = names[key]
            if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
                raise MalformedInputError(f"trustworthiness claim {key!r} out of range")
            assert name is not None
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class Appraisal:
    """The verdict on one attester.

    ``status`` may be worse than the vector's worst tier, never better
    (``ValueError`` otherwise); :meth:`from_vector` derives it.
    """

    status: TrustTier
    trust_vector: TrustVector = field(default_factory=TrustVector)
    policy_id: str | None = None
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.status, TrustTier):
            raise TypeError("status must be a TrustTier")
        if self.status.rank < self.trust_vector.tier().rank:
            raise ValueError(
                f"status {self.status.value} is better than the trust vector"
                f" ({self.trust_vector.tier().value})"
            )
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if len(self.reasons) > MAX_REASONS or any(
            not isinstance(r, str) or len(r) > MAX_TEXT for r in self.reasons
        ):
            raise ValueError("reasons must be at most 256 strings of at most 4096 characters")

    @classmethod
    def from_vector(
        cls, vector: TrustVector, *, policy_id: str | None = None, reasons: tuple[str, ...] = ()
    ) -> Appraisal:
        """An appraisal whose status is the vector's worst tier."""
        return cls(vector.tier(), vector, policy_id, tuple(reasons))

    def _to(self, json_names: bool) -> dict[Any, Any]:
        out: dict[Any, Any]
        if json_names:
            out = {"ear.status": self.status.value}
            if self.trust_vector.items():
                out["ear.trustworthiness-vector"] = {n: v for _, n, v in self.trust_vector.items()}
            if self.policy_id is not None:
                out["ear.appraisal-policy-id"] = self.policy_id
            if self.reasons:
                out[_J_REASONS] = list(self.reasons)
        else:
            out = {_K_STATUS: self.status.code}
            if self.trust_vector.items():
                out[_K_VECTOR] = {k: v for k, _, v in self.trust_vector.items()}
            if self.policy_id is not None:
                out[_K_POLICY] = self.policy_id
            if self.reasons:
                out[_K_REASONS] = list(self.reasons)
        return out

    @classmethod
    def _from(cls, obj: object, json_names: bool) -> Appraisal:
        if not isinstance(obj, dict):
            raise MalformedInputError("an appraisal must be a map")
        k_status, k_vector, k_policy, k_reasons = (
            ("ear.status", "ear.trustworthiness-vector", "ear.appraisal-policy-id", _J_REASONS)
            if json_names
            else (_K_STATUS, _K_VECTOR, _K_POLICY, _K_REASONS)
        )
        if k_status not in obj:
            raise MalformedInputError("appraisal without ear.status")
        status = (
            TrustTier.from_name(obj[k_status]) if json_names else TrustTier.from_code(obj[k_status])
        )
        vector = TrustVector._from(obj[k_vector], json_names) if k_vector in obj else TrustVector()
        policy = obj.get(k_policy)
        if policy is not None and (not isinstance(policy, str) or len(policy) > MAX_TEXT):
            raise MalformedInputError("ear.appraisal-policy-id must be text")
        reasons = obj.get(k_reasons, [])
        if (
            not isinstance(reasons, list)
            or len(reasons) > MAX_REASONS
            or any(not isinstance(r, str) or len(r) > MAX_TEXT for r in reasons)
        ):
            raise MalformedInputError("trustedge.reasons must be a list of short texts")
        try:
            return cls(status, vector, policy, tuple(reasons))
        except ValueError as exc:
            raise MalformedInputError(f"inconsistent appraisal: {exc}") from None


@dataclass(frozen=True)
class VerifierId:
    """``ear.verifier-id``: which verifier build, from which developer."""

    build: str
    developer: str

    def __post_init__(self) -> None:
        for name in ("build", "developer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
                raise ValueError(f"verifier-id {name} must be 1 to {MAX_TEXT} characters")


@dataclass(frozen=True)
class AttestationResult:
    """An EAR claims set: built by a verifier, then signed; parsed from a token's claims it
    is *unverified* (:func:`verify_result` gives the :class:`VerifiedResult` instead)."""

    issued_at: int
    verifier_id: VerifierId
    submods: Mapping[str, Appraisal]
    nonce: bytes | None = None
    raw_evidence: bytes | None = None
    profile: str = EAR_PROFILE

    def __post_init__(self) -> None:
        if isinstance(self.issued_at, bool) or not isinstance(self.issued_at, int):
            raise TypeError("issued_at must be an int (POSIX seconds)")
        if not 0 < self.issued_at < 2**63:
            raise ValueError("issued_at out of range")
        if not self.submods or len(self.submods) > MAX_SUBMODS:
            raise ValueError(f"an EAR needs 1 to {MAX_SUBMODS} submods")
        if self.nonce is not None and not 8 <= len(self.nonce) <= 64:
            raise ValueError("eat_nonce must be 8 to 64 bytes")
        object.__setattr__(self, "submods", MappingProxyType(dict(self.submods)))

    @property
    def status(self) -> TrustTier:
        """The worst status over all submods."""
        return _worst([a.status for a in self.submods.values()])

    def to_json_claims(self) -> dict[str, Any]:
        """The JWT claims set, JSON-ready.

        ``eat_nonce`` (a text claim in JSON) and ``ear.raw-evidence`` carry
        their bytes as unpadded base64url text.
        """
        out: dict[str, Any] = {
            "eat_profile": self.profile,
            "iat": self.issued_at,
            "ear.verifier-id": {
                "build": self.verifier_id.build,
                "developer": self.verifier_id.developer,
            },
            "submods": {name: a._to(True) for name, a in self.submods.items()},
        }
        if self.nonce is not None:
            out["eat_nonce"] = _jws.b64url(self.nonce)
        if self.raw_evidence is not None:
            out["ear.raw-evidence"] = _jws.b64url(self.raw_evidence)
        return out

    def to_cbor_claims(self) -> dict[int, Any]:
        """The CWT claims set with integer keys."""
        out: dict[int, Any] = {
            _K_PROFILE: self.profile,
            _K_IAT: self.issued_at,
            _K_VERIFIER: {0: self.verifier_id.developer, 1: self.verifier_id.build},
            _K_SUBMODS: {name: a._to(False) for name, a in self.submods.items()},
        }
        if self.nonce is not None:
            out[_K_NONCE] = self.nonce
        if self.raw_evidence is not None:
            out[_K_RAW] = self.raw_evidence
        return out

    @classmethod
    def from_json_claims(cls, obj: Mapping[str, Any]) -> AttestationResult:
        """Parse JWT claims (untrusted); unknown top-level claims are ignored."""
        vid = obj.get("ear.verifier-id")
        if not isinstance(vid, dict):
            raise MalformedInputError("ear.verifier-id missing")
        nonce = obj.get("eat_nonce")
        raw = obj.get("ear.raw-evidence")
        return cls._build(
            obj.get("eat_profile"),
            obj.get("iat"),
            vid.get("build"),
            vid.get("developer"),
            obj.get("submods"),
            None if nonce is None else _text_b64(nonce, "eat_nonce"),
            None if raw is None else _text_b64(raw, "ear.raw-evidence"),
            json_names=True,
        )

    @classmethod
    def from_cbor_claims(cls, obj: Mapping[int, Any]) -> AttestationResult:
        """Parse CWT claims (untrusted); unknown top-level claims are ignored."""
        vid = obj.get(_K_VERIFIER)
        if not isinstance(vid, dict):
            raise MalformedInputError("ear.verifier-id missing")
        nonce, raw = obj.get(_K_NONCE), obj.get(_K_RAW)
        for value, what in ((nonce, "eat_nonce"), (raw, "ear.raw-evidence")):
            if value is not None and not isinstance(value, bytes):
                raise MalformedInputError(f"{what} must be a byte string")
        return cls._build(
            obj.get(_K_PROFILE),
            obj.get(_K_IAT),
            vid.get(1),
            vid.get(0),
            obj.get(_K_SUBMODS),
            nonce,
            raw,
            json_names=False,
        )

    @classmethod
    def _build(
        cls,
        profile: object,
        iat: object,
        build: object,
        developer: object,
        submods: object,
        nonce: bytes | None,
        raw: bytes | None,
        *,
        json_names: bool,
    ) -> AttestationResult:
        if profile != EAR_PROFILE:
            raise MalformedInputError(f"eat_profile {profile!r} is not the EAR profile")
        if isinstance(iat, bool) or not isinstance(iat, int):
            raise MalformedInputError("iat must be an integer")
        if not isinstance(build, str) or not isinstance(developer, str):
            raise MalformedInputError("ear.verifier-id needs build and developer texts")
        if not isinstance(submods, dict) or not submods or len(submods) > MAX_SUBMODS:
            raise MalformedInputError(f"submods must be a map of 1 to {MAX_SUBMODS} appraisals")
        appraisals = {}
        for name, value in submods.items():
            if not isinstance(name, str):
                raise MalformedInputError("submod names must be text")
            appraisals[name] = Appraisal._from(value, json_names)
        try:
            return cls(iat, VerifierId(build, developer), appraisals, nonce, raw, profile)
        except (TypeError, ValueError) as exc:
            raise MalformedInputError(f"invalid EAR: {exc}") from None


def _text_b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedInputError(f"{what} must be base64url text")
    return _jws.unb64url(value, what)


def sign_jwt(result: AttestationResult, key: _signing.PrivateKey, *, kid: str | None = None) -> str:
    """The result as a JWT signed with ``key`` (P-256 -> ES256, Ed25519 -> EdDSA)."""
    payload = _canonical_json(result.to_json_claims())
    return _jws.sign_jws(payload, key, kid=kid)


def sign_cwt(
    result: AttestationResult, key: _signing.PrivateKey, *, kid: bytes | None = None
) -> bytes:
    """The result as a CWT: a COSE_Sign1 (tag 18) over the deterministic-CBOR claims."""
    _signing.algorithm_for(key)  # P-256 or Ed25519 only
    unprotected = {} if kid is None else {_COSE_KID: kid}
    return cose.create_sign1(encode(result.to_cbor_claims()), key, unprotected=unprotected)


_COSE_KID: Final = 4
_TAG_CWT: Final = 61
_TAG_SIGN1: Final = 18


def _verify_cwt(token: bytes, key: _signing.PublicKey) -> bytes:
    """Verify a COSE_Sign1 (tag 18, optionally inside the CWT tag 61) with ``key``."""
    _signing.algorithm_for(key)  # P-256 or Ed25519 only
    item = decode(token, limits=_COSE_LIMITS)
    if isinstance(item, CBORTag) and item.tag == _TAG_CWT:
        item = item.value
    if not isinstance(item, CBORTag) or item.tag != _TAG_SIGN1:
        raise MalformedInputError("not a tagged COSE_Sign1 (tag 18)")
    message = cose.sign1_from_item(item)
    if message.payload is None:
        raise MalformedInputError("COSE_Sign1 payload must be attached")
    return cose.verify_sign1(message, key)


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


@dataclass(frozen=True)
class VerifiedResult:
    """An EAR whose signature, structure and (when asked) nonce and age
    :func:`verify_result` checked. Only ``verify_result`` builds one: an
    :class:`AttestationResult` parsed with ``from_json_claims``/``from_cbor_claims``
    is an unverified claims set, a different type. ``claims`` is the verified
    claims set; the properties read it. A verified result may still carry status
    warning or contraindicated: look at :attr:`status`.
    """

    claims: AttestationResult

    @property
    def status(self) -> TrustTier:
        """The worst status over all submods."""
        return self.claims.status

    @property
    def submods(self) -> Mapping[str, Appraisal]:
        return self.claims.submods

    @property
    def issued_at(self) -> int:
        return self.claims.issued_at

    @property
    def nonce(self) -> bytes | None:
        return self.claims.nonce

    @property
    def verifier_id(self) -> VerifierId:
        return self.claims.verifier_id

    @property
    def raw_evidence(self) -> bytes | None:
        return self.claims.raw_evidence

    def to_json_claims(self) -> dict[str, Any]:
        return self.claims.to_json_claims()

    def to_cbor_claims(self) -> dict[int, Any]:
        return self.claims.to_cbor_claims()


def verify_result(
    token: str | bytes,
    verifier_key: _signing.PublicKey,
    *,
    now: int | None = None,
    max_age: int | None = None,
    expected_nonce: bytes | None = None,
) -> VerifiedResult:
    """Verify a signed EAR (JWT text or CWT bytes) and return it as a :class:`VerifiedResult`.

    Checks, failing closed: the signature with ``verifier_key`` (the key's
    type fixes the algorithm: a token cannot choose another), the EAR
    profile and claim structure; when ``expected_nonce`` is given it must
    equal ``eat_nonce`` (constant time); when ``now`` and ``max_age`` are
    given the result must not be older than ``max_age`` seconds nor issued
    more than 60 s in the future. Raises
    :class:`~trustedge.errors.SignatureError`,
    :class:`~trustedge.errors.MalformedInputError`,
    :class:`~trustedge.errors.NonceError`,
    :class:`~trustedge.errors.ExpiredError` or
    :class:`~trustedge.errors.UnsupportedAlgorithmError`. A verified result
    may still carry status warning or contraindicated: look at ``.status``.
    """
    if (now is None) != (max_age is None):
        raise ValueError("give both now and max_age, or neither")
    if isinstance(token, bytes) and token[:3] == b"eyJ":
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedInputError("JWT is not ASCII") from None
    result: AttestationResult
    if isinstance(token, str):
        payload = _jws.verify_jws(token.strip(), verifier_key)
        result = AttestationResult.from_json_claims(_jws.load_json(payload, "JWT claims"))
    elif isinstance(token, (bytes, bytearray, memoryview)):
        payload = _verify_cwt(bytes(token), verifier_key)
        claims = decode(payload, limits=_LIMITS)
        if not isinstance(claims, dict):
            raise MalformedInputError("CWT claims must be a map")
        result = AttestationResult.from_cbor_claims(claims)
    else:
        raise TypeError("token must be JWT text or CWT bytes")
    if expected_nonce is not None:
        if result.nonce is None or not hmac.compare_digest(result.nonce, expected_nonce):
            raise NonceError("attestation result nonce does not match")
    if now is not None and max_age is not None:
        if result.issued_at > now + 60:
            raise ExpiredError("attestation result issued in the future")
        if now - result.issued_at > max_age:
            raise ExpiredError("attestation result is too old")
    return VerifiedResult(result)
