"""Strict TPM2_Quote verification.

:func:`verify_quote` takes the raw ``TPMS_ATTEST`` and ``TPMT_SIGNATURE`` (as
``tpm2_quote -m/-s`` write them, or as a backend returns them), the AK, the
verifier's nonce and the PCR values, and returns a :class:`VerifiedQuote` --
or raises a :class:`~trustedge.errors.VerificationError` subclass naming the
check that failed. It never returns a bool and never returns on failure.

Checks, in order:

1. the signature parses and verifies over the exact message bytes with the AK
   (RSASSA-PKCS1-v1_5; RSAPSS with any valid salt length; ECDSA P-256/P-384);
   the signature scheme and hash must equal the AK's scheme when the AK is a
   TPM2B_PUBLIC that names one; RSA keys must be at least ``policy.min_rsa_bits``;
2. the hash is allowed by policy (SHA-1 is not, by default);
3. the magic is TPM_GENERATED_VALUE and the type ATTEST_QUOTE;
4. extraData equals the nonce (constant-time);
5. the quoted PCR selection equals the selection asked for (exactly: same
   banks, same PCRs) and every bank is allowed by policy;
6. every supplied PCR value has its bank's digest size, and pcrDigest equals
   the digest of the supplied values (constant-time);
7. optionally, qualifiedSigner equals the expected qualified name;
8. optionally, firmwareVersion is allowed by policy;
9. (resetCount, restartCount, clock) is later than the last accepted quote of
   this AK: reboots are reported, replays and clock regressions rejected.

Trust in the AK itself (pinned, credential-activated, certified) is the
caller's: a software AK verifies exactly like a hardware one.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from trustedge.errors import (
    MalformedInputError,
    NonceError,
    PolicyError,
    RollbackError,
    SignatureError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import (
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    ClockInfo,
    PCRSelectionList,
    Public,
    PublicKey,
    QuoteInfo,
    Signature,
    TPMAlg,
    TPMAObject,
    hash_alg_by_id,
    hash_alg_by_name,
    hash_for,
    pcr_composite_digest,
)

__all__ = [
    "AttestationKey",
    "ClockRegressionError",
    "FirmwarePolicyError",
    "HashPolicyError",
    "PCRDigestError",
    "PCRSelectionError",
    "QualifiedSignerError",
    "QuoteFormatError",
    "QuoteNonceError",
    "QuotePolicy",
    "QuoteSignatureError",
    "QuoteState",
    "VerifiedQuote",
    "verify_quote",
]


# ---------------------------------------------------------------------------
# Errors: one per check, each a subclass of the matching trustedge error
# ---------------------------------------------------------------------------
class QuoteSignatureError(SignatureError):
    """The quote's signature does not parse, does not verify with the AK, or
    uses a scheme the AK does not have."""


class HashPolicyError(PolicyError):
    """The signature hash or a PCR bank is not allowed by the policy."""


class QuoteFormatError(VerificationError):
    """A correctly signed structure that is not a TPM-generated quote
    (wrong magic or attestation type)."""


class QuoteNonceError(NonceError):
    """extraData is not the verifier's nonce (stale or replayed quote)."""


class PCRSelectionError(VerificationError):
    """The quoted PCR selection is not the one asked for, or values are missing."""


class PCRDigestError(VerificationError):
    """pcrDigest does not match the supplied PCR values."""


class QualifiedSignerError(VerificationError):
    """qualifiedSigner is not the expected qualified name of the AK."""


class FirmwarePolicyError(PolicyError):
    """firmwareVersion is not allowed by the policy."""


class ClockRegressionError(RollbackError):
    """(resetCount, restartCount, clock) did not advance past the last accepted quote."""


# ---------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------
_STRONG: Final = frozenset({"sha256", "sha384", "sha512"})


@dataclass(frozen=True)
class QuotePolicy:
    """What the verifier accepts beyond authenticity.

    ``allowed_hashes``: signature/pcrDigest hashes; ``allowed_banks``: PCR banks
    that may be quoted; ``min_rsa_bits``: smallest RSA AK; ``firmware_versions``
    (None = any) or ``min_firmware_version``: TPM firmware policy;
    ``require_ak_attributes``: an AK given as TPM2B_PUBLIC must be a restricted,
    fixedTPM/fixedParent, sensitiveDataOrigin signing key; ``require_safe``:
    reject ``safe=0`` instead of reporting it as a warning.
    """

    allowed_hashes: frozenset[str] = _STRONG
    allowed_banks: frozenset[str] = _STRONG
    min_rsa_bits: int = 2048
    firmware_versions: frozenset[int] | None = None
    min_firmware_version: int | None = None
    require_ak_attributes: bool = True
    require_safe: bool = False


_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1


@dataclass(frozen=True, order=True)
class QuoteState:
    """(resetCount, restartCount, clock) of the last accepted quote of an AK.

    The one type for this state: :func:`verify_quote` returns it
    (``VerifiedQuote.state``), takes it back as ``last``, and the verifier's
    store keeps it as is (``trustedge.attestation.store`` calls it
    ``QuoteClockState``, the same class).

    Ordered lexicographically, which is the rule the verifier applies: a
    newer quote has a higher resetCount, or the same resetCount and a higher
    restartCount (restartCount drops to 0 when resetCount rises), or both
    equal and a higher clock. Clock is compared only within one
    (resetCount, restartCount) epoch -- the ordering gives exactly that.
    """

    reset_count: int
    restart_count: int
    clock: int

    def __post_init__(self) -> None:
        for name, value, top in (
            ("reset_count", self.reset_count, _U32),
            ("restart_count", self.restart_count, _U32),
            ("clock", self.clock, _U64),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{name} out of range")

    def __str__(self) -> str:
        return (
            f"(resetCount {self.reset_count}, restartCount {self.restart_count},"
            f" clock {self.clock})"
        )

    @classmethod
    def of(cls, info: ClockInfo) -> QuoteState:
        return cls(info.reset_count, info.restart_count, info.clock)

    def advances(self, previous: QuoteState | None) -> bool:
        """True when this state is strictly newer than ``previous`` (or there is none)."""
        return previous is None or self > previous

    def to_json(self) -> dict[str, int]:
        return {"reset_count": self.reset_count, "restart_count": self.restart_count,
                "clock": self.clock}  # fmt: skip


_DEFAULT_POLICY: Final = QuotePolicy()

_REQUIRED_AK_BITS: Final = int(
    TPMAObject.FIXED_TPM | TPMAObject.FIXED_PARENT | TPMAObject.SENSITIVE_DATA_ORIGIN
    | TPMAObject.RESTRICTED | TPMAObject.SIGN_ENCRYPT
)  # fmt: skip


@dataclass(frozen=True)
class AttestationKey:
    """An AK prepared for verification: its TPMT_PUBLIC (when known), the
    ``cryptography`` key and its name. Build one per AK and reuse it: key
    construction costs more than a verification."""

    key: PublicKey
    public: Public | None = None
    name: bytes = b""

    @classmethod
    def from_public(cls, ak: Public | PublicKey | AttestationKey) -> AttestationKey:
        """From a TPMT_PUBLIC (scheme and attributes known) or a bare key."""
        if isinstance(ak, AttestationKey):
            return ak
        if isinstance(ak, Public):
            return cls(ak.public_key(), ak, ak.name())
        return cls(ak)


@dataclass(frozen=True)
class VerifiedQuote:
    """A quote that passed every check. ``pcrs`` holds exactly the quoted
    values; ``reboot`` is ``"reset"`` (resetCount rose), ``"restart"``
    (restartCount rose: resume) or ``None`` against ``last``; ``warnings``
    lists tolerated oddities (``safe=0``)."""

    attest: Attest
    signature: Signature
    ak_name: bytes
    pcrs: dict[str, dict[int, bytes]]
    state: QuoteState
    firmware_version: int
    reboot: Literal["reset", "restart"] | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "valid": True,
            "ak_name": self.ak_name.hex(),
            "clock": self.state.to_json(),
            "safe": self.attest.clock_info.safe,
            "firmware_version": f"0x{self.firmware_version:016x}",
            "reboot": self.reboot,
            "pcrs": {
                b: {str(i): v.hex() for i, v in sorted(vals.items())}
                for b, vals in self.pcrs.items()
            },
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------
def _check_signature(
    message: bytes, sig_bytes: bytes, ak: AttestationKey, policy: QuotePolicy
) -> Signature:
    try:
        sig = Signature.unmarshal(sig_bytes)
    except MalformedInputError as exc:
        # A signature that does not parse is a signature that does not verify.
        raise QuoteSignatureError(f"signature does not parse: {exc}") from exc
    try:
        hash_name = hash_alg_by_id(sig.hash_alg).name
    except UnsupportedAlgorithmError as exc:
        raise QuoteSignatureError(f"signature hash 0x{sig.hash_alg:04x} unknown") from exc
    if hash_name not in policy.allowed_hashes:
        raise HashPolicyError(f"signature hash {hash_name} is not allowed by the policy")
    if ak.public is not None:
        scheme = ak.public.scheme()
        if scheme.scheme != TPMAlg.NULL and (
            scheme.scheme != sig.sig_alg or scheme.hash_alg != sig.hash_alg
        ):
            raise QuoteSignatureError(
                f"signature scheme 0x{sig.sig_alg:04x}/0x{sig.hash_alg:04x} is not the AK's "
                f"scheme 0x{scheme.scheme:04x}/0x{scheme.hash_alg:04x}"
            )
    algo = hash_for(sig.hash_alg)
    key = ak.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if sig.sig_alg != TPMAlg.ECDSA:
                raise QuoteSignatureError("an ECC AK must sign with ECDSA")
            der = encode_dss_signature(int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
            key.verify(der, message, ec.ECDSA(algo))
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < policy.min_rsa_bits:
                raise HashPolicyError(f"RSA AK of {key.key_size} bits is below the policy minimum")
            if len(sig.rsa) != (key.key_size + 7) // 8:
                raise QuoteSignatureError("RSA signature length differs from the modulus size")
            if sig.sig_alg == TPMAlg.RSASSA:
                key.verify(sig.rsa, message, padding.PKCS1v15(), algo)
            elif sig.sig_alg == TPMAlg.RSAPSS:
                pss = padding.PSS(mgf=padding.MGF1(algo), salt_length=padding.PSS.AUTO)
                key.verify(sig.rsa, message, pss, algo)
            else:
                raise QuoteSignatureError("an RSA AK must sign with RSASSA or RSAPSS")
        else:  # pragma: no cover - AttestationKey only holds RSA/ECC keys
            raise QuoteSignatureError("unsupported AK key type")
    except InvalidSignature:
        raise QuoteSignatureError("quote signature does not verify with the AK") from None
    return sig


def _check_ak(ak: AttestationKey, policy: QuotePolicy) -> None:
    if ak.public is None or not policy.require_ak_attributes:
        return
    missing = _REQUIRED_AK_BITS & ~ak.public.attributes
    if missing or ak.public.attributes & TPMAObject.DECRYPT:
        raise PolicyError(
            f"AK attributes 0x{ak.public.attributes:08x} are not those of a restricted "
            f"signing key that never left the TPM (need 0x{_REQUIRED_AK_BITS:08x})",
            violations=["ak-attributes"],
        )


def _normalise(selection: Mapping[str, Sequence[int]]) -> dict[str, frozenset[int]]:
    return {bank.lower(): frozenset(idx) for bank, idx in selection.items() if idx}


def _check_clock(info: ClockInfo, last: QuoteState | None) -> Literal["reset", "restart"] | None:
    if last is None:
        return None
    now = QuoteState.of(info)
    if now.reset_count < last.reset_count:
        raise ClockRegressionError(
            f"resetCount went back from {last.reset_count} to {now.reset_count}"
        )
    if now.reset_count > last.reset_count:
        return "reset"  # restartCount and clock may legitimately drop after a reset
    if now.restart_count < last.restart_count:
        raise ClockRegressionError(
            f"restartCount went back from {last.restart_count} to {now.restart_count}"
        )
    if now.restart_count > last.restart_count:
        return "restart"
    if now.clock <= last.clock:
        raise ClockRegressionError(
            f"clock {now.clock} is not after the last accepted quote's clock {last.clock} "
            "(replayed quote or clock regression)"
        )
    return None


def verify_quote(
    message: bytes,
    signature: bytes,
    ak: Public | PublicKey | AttestationKey,
    *,
    nonce: bytes,
    pcrs: Mapping[str, Mapping[int, bytes]],
    selection: Mapping[str, Sequence[int]] | None = None,
    policy: QuotePolicy | None = None,
    qualified_signer: bytes | None = None,
    last: QuoteState | None = None,
) -> VerifiedQuote:
    """Verify a TPM2_Quote (see the module docstring for every check).

    ``message``/``signature``: raw TPMS_ATTEST and TPMT_SIGNATURE. ``ak``: the
    AK's TPMT_PUBLIC (scheme and attributes enforced), a bare key, or a prepared
    :class:`AttestationKey`. ``nonce``: the verifier's fresh nonce (non-empty).
    ``pcrs``: ``{bank: {index: value}}``. ``selection``: what was asked for
    (default: exactly the PCRs in ``pcrs``). ``qualified_signer``: the AK's
    expected qualified name, checked when given. ``last``: the state of the
    last accepted quote of this AK.

    Raises :class:`QuoteSignatureError`, :class:`HashPolicyError`,
    :class:`QuoteFormatError`, :class:`QuoteNonceError`,
    :class:`PCRSelectionError`, :class:`PCRDigestError`,
    :class:`QualifiedSignerError`, :class:`FirmwarePolicyError`,
    :class:`ClockRegressionError`, :class:`~trustedge.errors.PolicyError`
    (AK attributes; ``safe=0`` under ``require_safe``), or
    :class:`~trustedge.errors.MalformedInputError` for a correctly signed
    message that is not a TPMS_ATTEST.
    """
    if not nonce:
        raise ValueError("a non-empty nonce is required")
    pol = policy if policy is not None else _DEFAULT_POLICY
    key = AttestationKey.from_public(ak)
    _check_ak(key, pol)
    sig = _check_signature(message, signature, key, pol)
    attest = Attest.unmarshal(message)
    if attest.magic != TPM_GENERATED_VALUE:
        raise QuoteFormatError(f"magic 0x{attest.magic:08x} is not TPM_GENERATED_VALUE")
    if attest.type != TPMST.ATTEST_QUOTE or not isinstance(attest.attested, QuoteInfo):
        raise QuoteFormatError(f"attestation type 0x{attest.type:04x} is not ATTEST_QUOTE")
    if not hmac.compare_digest(attest.extra_data, nonce):
        raise QuoteNonceError("extraData is not the verifier's nonce")
    quoted: PCRSelectionList = attest.attested.pcr_select
    try:
        quoted_map = _normalise(quoted.to_mapping())
    except UnsupportedAlgorithmError as exc:
        raise PCRSelectionError(f"quote selects an unknown bank: {exc}") from exc
    asked = _normalise(
        selection if selection is not None else {b: list(v) for b, v in pcrs.items()}
    )
    if quoted_map != asked:
        raise PCRSelectionError(
            f"quoted selection {_fmt(quoted_map)} is not the requested {_fmt(asked)}"
        )
    banned = sorted(set(quoted_map) - pol.allowed_banks)
    if banned:
        raise HashPolicyError(f"PCR bank(s) {', '.join(banned)} not allowed by the policy")
    supplied = {bank.lower(): vals for bank, vals in pcrs.items()}
    values: dict[str, dict[int, bytes]] = {}
    ordered = []
    for bank, index in quoted.pcr_order():
        value = supplied.get(bank, {}).get(index)
        if value is None:
            raise PCRSelectionError(f"no value supplied for {bank} PCR {index}")
        # The digest covers only the concatenation: without this, values
        # re-split across PCRs ({"0": PCR0||PCR1, "1": ""}) would verify.
        size = hash_alg_by_name(bank).digest_size
        if not isinstance(value, (bytes, bytearray)) or len(value) != size:
            raise PCRDigestError(f"{bank} PCR {index} value is not {size} bytes")
        ordered.append(bytes(value))
        values.setdefault(bank, {})[index] = value
    expected_digest = pcr_composite_digest(sig.hash_alg, ordered)
    if not hmac.compare_digest(expected_digest, attest.attested.pcr_digest):
        raise PCRDigestError("pcrDigest does not match the supplied PCR values")
    if qualified_signer is not None and not hmac.compare_digest(
        attest.qualified_signer, qualified_signer
    ):
        raise QualifiedSignerError("qualifiedSigner is not the AK's expected qualified name")
    fw = attest.firmware_version
    if pol.firmware_versions is not None and fw not in pol.firmware_versions:
        raise FirmwarePolicyError(f"firmware version 0x{fw:016x} is not allowed")
    if pol.min_firmware_version is not None and fw < pol.min_firmware_version:
        raise FirmwarePolicyError(f"firmware version 0x{fw:016x} is below the minimum")
    warnings: list[str] = []
    if not attest.clock_info.safe:
        if pol.require_safe:
            raise PolicyError("clock safe flag is 0", violations=["clock-safe"])
        warnings.append("safe=0: the TPM clock may have gone back after an unclean reset")
    reboot = _check_clock(attest.clock_info, last)
    return VerifiedQuote(
        attest=attest,
        signature=sig,
        ak_name=key.name,
        pcrs=values,
        state=QuoteState.of(attest.clock_info),
        firmware_version=fw,
        reboot=reboot,
        warnings=tuple(warnings),
    )


def _fmt(sel: Mapping[str, frozenset[int]]) -> str:
    return "+".join(f"{b}:{','.join(map(str, sorted(i)))}" for b, i in sorted(sel.items())) or "{}"
