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
from functools import lru_cache
from typing import Final, Literal, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from trustedge._binary import Reader
from trustedge.errors import (
    MalformedInputError,
    NonceError,
    PolicyError,
    RollbackError,
    SignatureError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import (
    TPM_GENERATED_VALUE,
    Attest,
    ClockInfo,
    Public,
    PublicKey,
    Signature,
    TPMAlg,
    TPMAObject,
    hash_alg_by_name,
    hash_for,
    pcr_composite_digest,
    pcr_indices,
    read_quote_fields,
)
from trustedge.hazmat.tpm2.constants import HASH_ALGS, HashAlg

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
    "signature_from_plain",
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
        return cls._of_fields(info.reset_count, info.restart_count, info.clock)

    @classmethod
    def _of_fields(cls, reset: int, restart: int, clock: int) -> QuoteState:
        """The state of parsed fields (one range check, not three)."""
        if not (
            type(reset) is int and type(restart) is int and type(clock) is int
            and 0 <= reset <= _U32 and 0 <= restart <= _U32 and 0 <= clock <= _U64
        ):  # fmt: skip
            return cls(reset, restart, clock)  # raises the precise ValueError
        state = object.__new__(cls)
        object.__setattr__(state, "reset_count", reset)
        object.__setattr__(state, "restart_count", restart)
        object.__setattr__(state, "clock", clock)
        return state

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
    ``cryptography`` key and its name, plus what every verification needs of
    them (the AK's scheme, whether its attributes are those of an AK), worked
    out once. Build one per AK and reuse it -- key construction costs more than
    a verification -- or let :meth:`from_bytes` / :func:`verify_quote` cache it
    (keyed by the TPMT_PUBLIC).

    An AK known only as a PEM/DER key (``public`` is None) has no TPM name: the
    scheme and attribute checks and :attr:`name` are then unavailable, and
    ``qualified_signer`` is the only way to bind a quote to a TPM object.
    """

    key: PublicKey
    public: Public | None = None
    name: bytes = b""
    #: (sigAlg, hashAlg) the AK's TPMT_PUBLIC fixes, or None (NULL scheme, or no TPMT_PUBLIC).
    scheme: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)
    #: The AK's attributes are those of a restricted signing key that never left a TPM.
    attributes_ok: bool = field(default=False, init=False, repr=False, compare=False)
    #: An ECC key (else RSA): decided once, not by two ABC checks per signature.
    is_ecc: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            object.__setattr__(self, "is_ecc", True)
        elif not isinstance(self.key, rsa.RSAPublicKey):
            raise TypeError("an AK is an RSA or ECC public key")
        if self.public is not None:
            sch = self.public.scheme()
            if sch.scheme != TPMAlg.NULL:
                object.__setattr__(self, "scheme", (sch.scheme, sch.hash_alg))
            attrs = self.public.attributes
            ok = not (_REQUIRED_AK_BITS & ~attrs) and not attrs & TPMAObject.DECRYPT
            object.__setattr__(self, "attributes_ok", ok)

    @classmethod
    def from_public(cls, ak: Public | PublicKey | AttestationKey) -> AttestationKey:
        """From a TPMT_PUBLIC (scheme and attributes known) or a bare key."""
        if isinstance(ak, AttestationKey):
            return ak
        if isinstance(ak, Public):
            return cls(ak.public_key(), ak, ak.name())
        return cls(ak)

    @classmethod
    def from_bytes(cls, data: bytes) -> AttestationKey:
        """From a marshalled ``TPM2B_PUBLIC`` (``tpm2_readpublic -o``) or ``TPMT_PUBLIC``
        (``tpm2_readpublic -f tpmt``); prepared keys are cached by those bytes, so calling
        this per quote costs a dictionary look-up, not a key import. Raises
        MalformedInputError / UnsupportedAlgorithmError."""
        return _prepared_from_bytes(bytes(data))


_AK_CACHE_SIZE: Final = 1024


@lru_cache(maxsize=_AK_CACHE_SIZE)
def _prepared_from_bytes(data: bytes) -> AttestationKey:
    return AttestationKey.from_public(Public.unmarshal_any(data))


@lru_cache(maxsize=_AK_CACHE_SIZE)
def _prepared_from_public(public: Public) -> AttestationKey:
    return AttestationKey.from_public(public)


def _prepare(ak: Public | PublicKey | AttestationKey) -> AttestationKey:
    if isinstance(ak, AttestationKey):
        return ak
    if isinstance(ak, Public):
        return _prepared_from_public(ak)
    return AttestationKey(ak)


class VerifiedQuote:
    """A quote that passed every check. ``pcrs`` holds exactly the quoted
    values; ``reboot`` is ``"reset"`` (resetCount rose), ``"restart"``
    (restartCount rose: resume) or ``None`` against ``last``; ``warnings``
    lists tolerated oddities (``safe=0``). ``message`` and ``raw_signature``
    are the verified bytes; :attr:`attest` and :attr:`signature` are their
    parsed structures (built on first use: verification itself reads the
    fields it checks without building them)."""

    __slots__ = (
        "_attest", "_signature", "ak_name", "firmware_version", "message", "pcrs",
        "raw_signature", "reboot", "safe", "state", "warnings",
    )  # fmt: skip

    message: bytes
    raw_signature: bytes
    ak_name: bytes
    pcrs: dict[str, dict[int, bytes]]
    state: QuoteState
    firmware_version: int
    safe: bool
    reboot: Literal["reset", "restart"] | None
    warnings: tuple[str, ...]

    def __init__(
        self,
        *,
        message: bytes,
        raw_signature: bytes,
        ak_name: bytes,
        pcrs: dict[str, dict[int, bytes]],
        state: QuoteState,
        firmware_version: int,
        safe: bool,
        reboot: Literal["reset", "restart"] | None = None,
        warnings: tuple[str, ...] = (),
        signature: Signature | None = None,
    ) -> None:
        self.message = message
        self.raw_signature = raw_signature
        self.ak_name = ak_name
        self.pcrs = pcrs
        self.state = state
        self.firmware_version = firmware_version
        self.safe = safe
        self.reboot = reboot
        self.warnings = warnings
        self._signature = signature
        self._attest: Attest | None = None

    @property
    def attest(self) -> Attest:
        """The quote's TPMS_ATTEST (parsed from the verified ``message`` once)."""
        if self._attest is None:
            self._attest = Attest.unmarshal(self.message)
        return self._attest

    @property
    def signature(self) -> Signature:
        """The quote's TPMT_SIGNATURE (parsed from the verified ``raw_signature``)."""
        if self._signature is None:
            self._signature = Signature.unmarshal(self.raw_signature)
        return self._signature

    def __repr__(self) -> str:
        return (
            f"VerifiedQuote(ak_name={self.ak_name.hex()!r}, state={self.state}, "
            f"reboot={self.reboot!r}, pcrs={sorted(self.pcrs)!r})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "valid": True,
            "ak_name": self.ak_name.hex(),
            "clock": self.state.to_json(),
            "safe": self.safe,
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
_PKCS1V15: Final = padding.PKCS1v15()
_ECDSA: Final = {alg: ec.ECDSA(h) for alg, h in ((a.alg.value, hash_for(a.alg)) for a in HASH_ALGS)}
_PSS: Final = {
    alg: padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.AUTO)
    for alg, h in ((a.alg.value, hash_for(a.alg)) for a in HASH_ALGS)
}
_HASH_NAMES: Final = {a.alg.value: a.name for a in HASH_ALGS}


def _check_signature(
    message: bytes, sig_bytes: bytes, ak: AttestationKey, policy: QuotePolicy
) -> Signature:
    try:
        sig = Signature.unmarshal(sig_bytes)
    except MalformedInputError as exc:
        # A signature that does not parse is a signature that does not verify.
        raise QuoteSignatureError(f"signature does not parse: {exc}") from exc
    sig_alg, hash_alg = sig.sig_alg, sig.hash_alg
    hash_name = _HASH_NAMES.get(hash_alg)
    if hash_name is None:
        raise QuoteSignatureError(f"signature hash 0x{hash_alg:04x} unknown")
    if hash_name not in policy.allowed_hashes:
        raise HashPolicyError(f"signature hash {hash_name} is not allowed by the policy")
    scheme = ak.scheme
    if scheme is not None and (scheme[0] != sig_alg or scheme[1] != hash_alg):
        raise QuoteSignatureError(
            f"signature scheme 0x{sig_alg:04x}/0x{hash_alg:04x} is not the AK's "
            f"scheme 0x{scheme[0]:04x}/0x{scheme[1]:04x}"
        )
    key = ak.key
    try:
        if ak.is_ecc:
            if sig_alg != TPMAlg.ECDSA:
                raise QuoteSignatureError("an ECC AK must sign with ECDSA")
            der = encode_dss_signature(int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
            cast(ec.EllipticCurvePublicKey, key).verify(der, message, _ECDSA[hash_alg])
        elif isinstance(key, rsa.RSAPublicKey):
            bits = key.key_size
            if bits < policy.min_rsa_bits:
                raise HashPolicyError(f"RSA AK of {bits} bits is below the policy minimum")
            if len(sig.rsa) != (bits + 7) // 8:
                raise QuoteSignatureError("RSA signature length differs from the modulus size")
            if sig_alg == TPMAlg.RSASSA:
                key.verify(sig.rsa, message, _PKCS1V15, hash_for(hash_alg))
            elif sig_alg == TPMAlg.RSAPSS:
                key.verify(sig.rsa, message, _PSS[hash_alg], hash_for(hash_alg))
            else:
                raise QuoteSignatureError("an RSA AK must sign with RSASSA or RSAPSS")
        else:  # pragma: no cover - AttestationKey only holds RSA/ECC keys
            raise QuoteSignatureError("unsupported AK key type")
    except InvalidSignature:
        raise QuoteSignatureError("quote signature does not verify with the AK") from None
    return sig


def _check_ak(ak: AttestationKey, policy: QuotePolicy) -> None:
    if ak.public is None or not policy.require_ak_attributes or ak.attributes_ok:
        return
    raise PolicyError(
        f"AK attributes 0x{ak.public.attributes:08x} are not those of a restricted "
        f"signing key that never left the TPM (need 0x{_REQUIRED_AK_BITS:08x})",
        violations=["ak-attributes"],
    )


def _normalise(selection: Mapping[str, Sequence[int]]) -> dict[str, frozenset[int]]:
    return {bank.lower(): frozenset(idx) for bank, idx in selection.items() if idx}


def _check_clock(now: QuoteState, last: QuoteState | None) -> Literal["reset", "restart"] | None:
    if last is None:
        return None
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
    key = _prepare(ak)
    _check_ak(key, pol)
    sig = _check_signature(message, signature, key, pol)
    q = read_quote_fields(message)
    if q is None:  # not a quote: the full parser says whether it is even a TPMS_ATTEST
        attest = Attest.unmarshal(message)
        if attest.magic != TPM_GENERATED_VALUE:
            raise QuoteFormatError(f"magic 0x{attest.magic:08x} is not TPM_GENERATED_VALUE")
        raise QuoteFormatError(f"attestation type 0x{attest.type:04x} is not ATTEST_QUOTE")
    if q.magic != TPM_GENERATED_VALUE:
        raise QuoteFormatError(f"magic 0x{q.magic:08x} is not TPM_GENERATED_VALUE")
    if not hmac.compare_digest(q.extra_data, nonce):
        raise QuoteNonceError("extraData is not the verifier's nonce")
    # The quoted selection, bank by bank in the TPM's order: (bank, indices ascending).
    quoted: list[tuple[HashAlg, tuple[int, ...]]] = []
    for alg, select in q.selections:
        bank = _BANKS.get(alg)
        if bank is None:
            raise PCRSelectionError(f"quote selects an unknown bank: hash algorithm 0x{alg:04x}")
        indices = pcr_indices(select)
        if indices:
            quoted.append((bank, indices))
    quoted_map = {bank.name: frozenset(indices) for bank, indices in quoted}
    asked = _normalise(
        selection if selection is not None else {b: list(v) for b, v in pcrs.items()}
    )
    if quoted_map != asked:
        raise PCRSelectionError(
            f"quoted selection {_fmt(quoted_map)} is not the requested {_fmt(asked)}"
        )
    if not pol.allowed_banks.issuperset(quoted_map):
        banned = sorted(set(quoted_map) - pol.allowed_banks)
        raise HashPolicyError(f"PCR bank(s) {', '.join(banned)} not allowed by the policy")
    supplied = {bank.lower(): vals for bank, vals in pcrs.items()}
    values: dict[str, dict[int, bytes]] = {}
    ordered: list[bytes] = []
    for bank, indices in quoted:
        name, size = bank.name, bank.digest_size
        given = supplied.get(name, {})
        out = values[name] = {}
        for index in indices:
            value = given.get(index)
            if value is None:
                raise PCRSelectionError(f"no value supplied for {name} PCR {index}")
            # The digest covers only the concatenation: without this, values
            # re-split across PCRs ({"0": PCR0||PCR1, "1": ""}) would verify.
            if not isinstance(value, (bytes, bytearray)) or len(value) != size:
                raise PCRDigestError(f"{name} PCR {index} value is not {size} bytes")
            ordered.append(bytes(value))
            out[index] = value
    expected_digest = pcr_composite_digest(sig.hash_alg, ordered)
    if not hmac.compare_digest(expected_digest, q.pcr_digest):
        raise PCRDigestError("pcrDigest does not match the supplied PCR values")
    if qualified_signer is not None and not hmac.compare_digest(
        q.qualified_signer, qualified_signer
    ):
        raise QualifiedSignerError("qualifiedSigner is not the AK's expected qualified name")
    fw = q.firmware_version
    if pol.firmware_versions is not None and fw not in pol.firmware_versions:
        raise FirmwarePolicyError(f"firmware version 0x{fw:016x} is not allowed")
    if pol.min_firmware_version is not None and fw < pol.min_firmware_version:
        raise FirmwarePolicyError(f"firmware version 0x{fw:016x} is below the minimum")
    warnings: tuple[str, ...] = ()
    if not q.safe:
        if pol.require_safe:
            raise PolicyError("clock safe flag is 0", violations=["clock-safe"])
        warnings = ("safe=0: the TPM clock may have gone back after an unclean reset",)
    state = QuoteState._of_fields(q.reset_count, q.restart_count, q.clock)
    return VerifiedQuote(
        message=message,
        raw_signature=signature,
        signature=sig,
        ak_name=key.name,
        pcrs=values,
        state=state,
        firmware_version=fw,
        safe=q.safe,
        reboot=_check_clock(state, last),
        warnings=warnings,
    )


_BANKS: Final = {h.alg.value: h for h in HASH_ALGS}


def signature_from_plain(
    plain: bytes, ak: Public | PublicKey | AttestationKey, *, hash_alg: str
) -> bytes:
    """The TPMT_SIGNATURE of a ``tpm2_quote -f plain`` signature, for :func:`verify_quote`.

    ``plain`` is what tpm2-tools writes with ``-f plain``: for an ECC AK the DER
    Ecdsa-Sig-Value (tpm2-tools 5.x) or ``r || s`` (each the curve's size), for an RSA AK
    the bare signature (the modulus size). The scheme
    is the AK's (ECDSA; RSASSA unless the AK's TPMT_PUBLIC names RSAPSS) and ``hash_alg``
    its hash (``tpm2_quote -g``). Nothing is trusted here: the result is verified like
    any other signature. Raises MalformedInputError when the length does not fit the AK.
    """
    key = _prepare(ak)
    hash_id = hash_alg_by_name(hash_alg).alg
    k = key.key
    if isinstance(k, ec.EllipticCurvePublicKey):
        size = (k.curve.key_size + 7) // 8
        if len(plain) == 2 * size:
            r = Reader(plain)
            return Signature(
                TPMAlg.ECDSA, hash_id, r=r.read(size, "r"), s=r.read(size, "s")
            ).marshal()
        try:  # tpm2-tools 5.x writes ECDSA as DER (Ecdsa-Sig-Value), the OpenSSL form
            r_int, s_int = decode_dss_signature(bytes(plain))
            if r_int.bit_length() > 8 * size or s_int.bit_length() > 8 * size:
                raise ValueError("r or s larger than the curve")
        except ValueError:
            raise MalformedInputError(
                f"plain ECDSA signature of {len(plain)} bytes is neither DER nor r || s "
                f"({2 * size} bytes for {k.curve.name})"
            ) from None
        return Signature(TPMAlg.ECDSA, hash_id, r=r_int.to_bytes(size, "big"),
                         s=s_int.to_bytes(size, "big")).marshal()  # fmt: skip
    size = (k.key_size + 7) // 8
    if len(plain) != size:
        raise MalformedInputError(
            f"plain RSA signature of {len(plain)} bytes (the modulus is {size})"
        )
    scheme = TPMAlg.RSAPSS if key.scheme and key.scheme[0] == TPMAlg.RSAPSS else TPMAlg.RSASSA
    return Signature(scheme, hash_id, rsa=bytes(plain)).marshal()


def _fmt(sel: Mapping[str, frozenset[int]]) -> str:
    return "+".join(f"{b}:{','.join(map(str, sorted(i)))}" for b, i in sorted(sel.items())) or "{}"
