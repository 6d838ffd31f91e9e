"""The verifier side of remote attestation: enrollment, challenges, appraisal.

:class:`Verifier` ties together the pieces a cloud verifier needs:

* **enrollment** -- :meth:`Verifier.enroll` validates the device's EK
  certificate against the configured roots (:class:`TrustAnchors`), then
  seals a random secret to the EK with MakeCredential, bound to the AK's
  name; :meth:`Verifier.complete_enrollment` binds the AK to the device only
  when the device returns that secret (the TPM releases it only if the AK
  and the EK live in the same TPM);
* **challenges** -- :meth:`Verifier.challenge` issues a single-use nonce
  with an expiry and tells the device where its IMA list should resume;
* **appraisal** -- :meth:`Verifier.appraise` checks, in order: the nonce
  (single use, unexpired, for this device; consumed atomically, also when
  the appraisal fails), the device's enrollment and that the evidence's AK
  is the enrolled one (constant time), the quote (every check of
  :func:`~trustedge.attestation.quote.verify_quote`, against the clock state
  in the store), the firmware event log replayed against the quoted PCRs, the
  boot policy and Secure Boot, the IMA entries replayed incrementally against
  the quoted PCR 10 from the stored position, and the runtime policy; then it
  commits the new clock and IMA state and the nonce in one transaction and
  returns a signed EAR (:mod:`trustedge.attestation.ear`) whose status,
  AR4SI vector and reasons come from :mod:`trustedge.attestation.findings`.

Appraisal never raises for bad evidence: every failure is a finding in a
signed, *contraindicated* result. Time (``now``) and randomness
(``random``) are passed in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography import x509

from trustedge.attestation import ear
from trustedge.attestation._signing import PrivateKey
from trustedge.attestation.ear import Appraisal, AttestationResult, VerifierId
from trustedge.attestation.ekcert import verify_ek_certificate
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.findings import Finding, appraisal_from_findings
from trustedge.attestation.modellog import (
    MODEL_SUBMOD,
    ModelPolicy,
    appraise_models,
    load_model_policy,
)
from trustedge.attestation.nonces import NonceIssuer
from trustedge.attestation.quote import (
    AttestationKey,
    ClockRegressionError,
    PCRDigestError,
    QuotePolicy,
    QuoteSignatureError,
    QuoteState,
    VerifiedQuote,
    verify_quote,
)
from trustedge.attestation.store import (
    DeviceRecord,
    DeviceState,
    EnrollmentChallenge,
    EnrollmentState,
    ImaState,
    QuoteClockState,
    VerifierStore,
)
from trustedge.errors import (
    MalformedInputError,
    NonceError,
    PolicyError,
    RollbackError,
    TrustedgeError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import Credential, Public, make_credential
from trustedge.measuredboot import (
    IMA_MODIFIED_KINDS,
    BootAggregateOutcome,
    EventLogPolicy,
    ImaRuntimePolicy,
    ImaViolationKind,
    UnsafeNoPolicy,
    boot_aggregate_result,
    boot_facts,
    explain_mismatch,
    load_ima_policy,
    load_policy,
    parse_event_log,
    parse_ima_log,
    verify_ima_log,
)
from trustedge.measuredboot import ImaState as LogImaState
from trustedge.measuredboot.predict import BootReference
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = [
    "AppraisalOutcome",
    "AppraisalPolicy",
    "AttestationChallenge",
    "TrustAnchors",
    "Verifier",
    "load_appraisal_policy",
]

Finds = list[Finding | tuple[Finding, str]]
_DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
#: TPM models in EK certificates of software TPMs (``SoftwareTPM``).
_SOFTWARE_MODELS = frozenset({"trustedge-software-tpm"})


@dataclass(frozen=True)
class AppraisalPolicy:
    """What the verifier requires of a device.

    ``boot`` checks the verified firmware event log (an
    :class:`~trustedge.measuredboot.EventLogPolicy`, or ``UnsafeNoPolicy``
    to accept any log that replays); ``runtime`` the verified IMA entries
    (``None``: PCR 10 and IMA are not appraised). ``pcrs`` are the PCRs
    the device must quote in ``bank``; ``secure_boot`` demands Secure Boot
    on in the verified log. ``quote`` holds the quote checks' own policy.
    ``models`` (optional) appraises the model-load log into its own EAR
    submod ``model`` (:mod:`trustedge.attestation.modellog`).
    ``policy_id`` is echoed in results; ``nonce_ttl`` and ``enrollment_ttl``
    are lifetimes in seconds.
    """

    boot: EventLogPolicy | UnsafeNoPolicy
    runtime: ImaRuntimePolicy | None
    pcrs: tuple[int, ...] = _DEFAULT_PCRS
    bank: str = "sha256"
    secure_boot: bool = True
    quote: QuotePolicy = field(default_factory=QuotePolicy)
    policy_id: str = "trustedge-default"
    nonce_ttl: int = 60
    enrollment_ttl: int = 300
    models: ModelPolicy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.boot, (EventLogPolicy, UnsafeNoPolicy)):
            raise TypeError("boot must be an EventLogPolicy or UnsafeNoPolicy")
        if self.runtime is not None and 10 not in self.pcrs:
            raise ValueError("a runtime (IMA) policy needs PCR 10 in pcrs")
        if not self.pcrs or any(not 0 <= p <= 23 for p in self.pcrs):
            raise ValueError("pcrs must be PCR indexes 0-23")
        object.__setattr__(self, "pcrs", tuple(sorted(set(self.pcrs))))


@dataclass(frozen=True)
class TrustAnchors:
    """Roots the verifier trusts and the key it signs results with.

    ``ek_roots`` are TPM manufacturers' roots: an EK chaining to one earns
    the *genuine hardware* claim. ``software_roots`` are CAs of software TPMs
    (``SoftwareTPM.ek_ca_certificate()``): their devices may enroll but are
    labelled software and never claim genuine hardware. ``intermediates``
    help build chains. ``allow_uncertified_ek`` admits devices that present
    an EK without a certificate (pinned by the operator; no hardware claim).
    ``signing_key`` signs results (P-256 -> ES256, Ed25519 -> EdDSA);
    ``result_format`` picks ``"jwt"`` or ``"cwt"``.
    """

    signing_key: PrivateKey
    ek_roots: tuple[x509.Certificate, ...] = ()
    software_roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    allow_uncertified_ek: bool = False
    result_format: Literal["jwt", "cwt"] = "jwt"
    verifier_id: VerifierId = field(
        default_factory=lambda: VerifierId(build="trustedge", developer="trustedge")
    )


@dataclass(frozen=True)
class AttestationChallenge:
    """A nonce for one device and where its IMA list should resume."""

    device_id: str
    nonce: bytes
    expires_at: int
    ima_offset: int
    pcrs: tuple[int, ...]


@dataclass(frozen=True)
class AppraisalOutcome:
    """The signed result (``token``: JWT text or CWT bytes) and what it says."""

    token: str | bytes
    result: AttestationResult
    appraisal: Appraisal
    device_id: str

    @property
    def status(self) -> ear.TrustTier:
        """The result's status: the worst over every submod (the device's
        ``appraisal`` and, with a model policy, ``model``)."""
        return self.result.status


def _utc(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


class Verifier:
    """A remote-attestation verifier over a :class:`VerifierStore` (see the module docstring).

    ``now`` returns POSIX seconds (default ``time.time``); ``random`` returns
    n random bytes (default ``os.urandom``). Safe to run as many instances,
    threads or processes over one store as needed: every state change is a
    single store transaction.
    """

    def __init__(
        self,
        store: VerifierStore,
        policy: AppraisalPolicy,
        trust_anchors: TrustAnchors,
        *,
        now: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.store = store
        self.policy = policy
        self.anchors = trust_anchors
        self._now = now
        self._random = random
        self._nonces = NonceIssuer(store, ttl=policy.nonce_ttl, random=random)
        self._aks: dict[bytes, AttestationKey] = {}
        self._hardware: dict[bytes, Finding | tuple[Finding, str]] = {}

    def now(self) -> int:
        return int(self._now())

    # -- enrollment --------------------------------------------------------------
    def enroll(
        self,
        device_id: str,
        *,
        ek_public: bytes,
        ak_public: bytes,
        ek_certificate: bytes | None = None,
    ) -> Credential:
        """Register the device and return its credential-activation challenge.

        ``ek_public``/``ak_public`` are ``TPM2B_PUBLIC`` bytes. The EK
        certificate must chain to ``ek_roots`` or ``software_roots`` and
        certify ``ek_public`` (without one, ``allow_uncertified_ek`` must be
        set). Raises ``VerificationError`` when it does not,
        ``MalformedInputError`` for unparsable keys, ``ValueError`` when the
        device id is registered with another EK.
        """
        ek = Public.unmarshal_tpm2b(ek_public)
        ak = Public.unmarshal_tpm2b(ak_public)
        if ek_certificate is not None:
            self._check_ek_certificate(ek_certificate, ek)
        elif not self.anchors.allow_uncertified_ek:
            raise VerificationError("EK certificate required (allow_uncertified_ek is off)")
        existing = self.store.get_device(device_id)
        if existing is None:
            self.store.add_device(
                DeviceRecord(
                    device_id=device_id,
                    ek_public=ek_public,
                    ek_certificate=ek_certificate,
                    updated_at=self.now(),
                )
            )
        elif not hmac.compare_digest(existing.ek_public, ek_public):
            raise ValueError(f"device {device_id!r} is registered with another EK")
        secret = self._random(32)
        ak_name = ak.name()
        self.store.put_enrollment_challenge(
            EnrollmentChallenge(
                device_id=device_id,
                ak_public=ak_public,
                ak_name=ak_name,
                secret_digest=EnrollmentChallenge.digest(secret),
                expires_at=self.now() + self.policy.enrollment_ttl,
            )
        )
        return make_credential(ek, secret, ak_name, randbytes=self._random)

    def _check_ek_certificate(self, certificate: bytes, ek: Public) -> Finding:
        roots = self.anchors.ek_roots + self.anchors.software_roots
        if not roots:
            raise VerificationError("no EK roots configured")
        verified = verify_ek_certificate(
            certificate,
            roots=list(roots),
            intermediates=list(self.anchors.intermediates),
            now=_utc(self.now()),
            ek_public_key=ek.public_key(),
        )
        anchor = verified.chain[-1]
        # A software TPM is never genuine hardware, even when its CA was
        # (mis)configured as a hardware root.
        if verified.tpm_model in _SOFTWARE_MODELS:
            return Finding.SOFTWARE_TPM
        if any(anchor == root for root in self.anchors.ek_roots):
            return Finding.HARDWARE_TPM
        return Finding.SOFTWARE_TPM

    def complete_enrollment(self, device_id: str, secret: bytes) -> DeviceRecord:
        """Bind the pending AK if ``secret`` is the one sealed by :meth:`enroll`.

        The challenge is single use. Raises ``NonceError`` (no pending
        challenge), ``ExpiredError`` or ``VerificationError`` (wrong secret:
        activation failed, the AK is not bound).
        """
        challenge = self.store.take_enrollment_challenge(device_id, self.now())
        challenge.verify_secret(secret)
        return self.store.bind_ak(device_id, challenge.ak_public, challenge.ak_name, self.now())

    # -- challenges --------------------------------------------------------------
    def challenge(self, device_id: str) -> AttestationChallenge:
        """A fresh single-use nonce for an enrolled device.

        Raises ``VerificationError`` when the device is not enrolled.
        """
        state = self.store.device_state(device_id)
        if state.device is None or state.device.state is not EnrollmentState.ENROLLED:
            raise VerificationError(f"device {device_id!r} is not enrolled")
        issued = self._nonces.challenge(device_id, self.now())
        return AttestationChallenge(
            device_id=device_id,
            nonce=issued.nonce,
            expires_at=issued.expires_at,
            ima_offset=state.ima.offset if state.ima is not None else 0,
            pcrs=self.policy.pcrs,
        )

    # -- appraisal ---------------------------------------------------------------
    def appraise(self, evidence: Evidence | bytes) -> AppraisalOutcome:
        """Appraise evidence and return the signed result (see the module docstring).

        ``evidence`` is an :class:`Evidence` or its CBOR bytes. Bad evidence
        gives a contraindicated result, never an exception; ``BackendError``
        (database failure) propagates.
        """
        now = self.now()
        if not isinstance(evidence, Evidence):
            try:
                evidence = Evidence.decode(bytes(evidence))
            except MalformedInputError as exc:
                return self._sign("evidence", [(Finding.EVIDENCE_MALFORMED, str(exc))], None, now)
        ev = evidence
        findings: Finds = []
        model_findings: Finds = []
        commit = self._appraise(ev, now, findings, model_findings)
        appraisal = appraisal_from_findings(findings, policy_id=self.policy.policy_id)
        if commit is not None and appraisal.status is not ear.TrustTier.CONTRAINDICATED:
            quote_cas, ima_cas, reboot = commit
            try:
                self.store.record_appraisal(
                    ev.device_id,
                    quote=quote_cas,
                    ima=ima_cas,
                    nonce=ev.nonce,
                    now=now,
                    ima_restart=reboot,
                )
            except NonceError as exc:
                findings.insert(0, (Finding.NONCE_REJECTED, str(exc)))
            except RollbackError as exc:
                findings.append((Finding.QUOTE_ROLLBACK, str(exc)))
                try:  # the commit rolled back: use the nonce up on its own
                    self._nonces.consume(ev.nonce, ev.device_id, now)
                except NonceError:
                    pass
        else:
            try:
                self._nonces.consume(ev.nonce, ev.device_id, now)
            except NonceError as exc:  # the first thing a reader of the result should see
                findings.insert(0, (Finding.NONCE_REJECTED, str(exc)))
            if commit is not None:  # a genuine quote: never accept it again
                quote_cas, _, reboot = commit
                stored = self.store.get_ima_state(ev.device_id) if reboot else None
                try:
                    if stored is None:
                        self.store.advance_quote_state(ev.device_id, *quote_cas)
                    else:  # the signed resetCount proves a reboot: the stored IMA
                        # position is the last boot's; the next list starts at entry 0
                        fresh = ImaState(0, bytes(len(stored.pcr10)), stored.bank)
                        self.store.record_appraisal(
                            ev.device_id, quote=quote_cas, ima=(stored, fresh), ima_restart=True
                        )
                except RollbackError as exc:
                    findings.append((Finding.QUOTE_ROLLBACK, str(exc)))
        models = None
        if self.policy.models is not None:
            if not model_findings:  # the quote did not verify: nothing is certified
                model_findings = [(Finding.MODEL_LOG_MISSING, "the quote did not verify")]
            models = appraisal_from_findings(model_findings, policy_id=self.policy.policy_id)
        return self._sign(ev.device_id, findings, ev.nonce, now, models=models)

    def _sign(
        self,
        submod: str,
        findings: Finds,
        nonce: bytes | None,
        now: int,
        *,
        models: Appraisal | None = None,
    ) -> AppraisalOutcome:
        appraisal = appraisal_from_findings(findings, policy_id=self.policy.policy_id)
        submods = {submod: appraisal}
        if models is not None:
            submods[MODEL_SUBMOD] = models
        result = AttestationResult(
            issued_at=now,
            verifier_id=self.anchors.verifier_id,
            submods=submods,
            nonce=nonce,
        )
        key = self.anchors.signing_key
        token: str | bytes = (
            ear.sign_cwt(result, key)
            if self.anchors.result_format == "cwt"
            else ear.sign_jwt(result, key)
        )
        return AppraisalOutcome(token, result, appraisal, submod)

    def _ak_for(self, public: bytes) -> AttestationKey:
        key = self._aks.get(public)
        if key is None:
            key = AttestationKey.from_public(Public.unmarshal_tpm2b(public))
            if len(self._aks) > 4096:
                self._aks.clear()
            self._aks[public] = key
        return key

    def _hardware_finding(self, device: DeviceRecord) -> Finding | tuple[Finding, str] | None:
        cert = device.ek_certificate
        if cert is None:
            return None
        cache_key = hashlib.sha256(cert + device.ek_public).digest()
        finding = self._hardware.get(cache_key)
        if finding is None:
            try:
                finding = self._check_ek_certificate(cert, Public.unmarshal_tpm2b(device.ek_public))
            except (VerificationError, MalformedInputError) as exc:
                finding = (Finding.EK_CERT_INVALID, str(exc))
            if len(self._hardware) > 4096:
                self._hardware.clear()
            self._hardware[cache_key] = finding
        return finding

    def _appraise(
        self, ev: Evidence, now: int, findings: Finds, model_findings: Finds | None = None
    ) -> (
        tuple[
            tuple[QuoteClockState | None, QuoteClockState],
            tuple[ImaState | None, ImaState] | None,
            bool,
        ]
        | None
    ):
        """Run every check; append findings; return what to commit (None: nothing)."""
        state: DeviceState = self.store.device_state(ev.device_id)
        device = state.device
        if device is None or device.ak_public is None:
            findings.append((Finding.UNKNOWN_DEVICE, f"device {ev.device_id!r} is not enrolled"))
            return None
        if device.state is EnrollmentState.REVOKED:
            findings.append(Finding.DEVICE_REVOKED)
            return None
        if not hmac.compare_digest(ev.ak_public, device.ak_public):
            findings.append((Finding.UNKNOWN_DEVICE, "evidence AK is not the enrolled AK"))
            return None
        pol = self.policy
        last = (
            None
            if state.quote is None
            else QuoteState(state.quote.reset_count, state.quote.restart_count, state.quote.clock)
        )
        try:
            bank_values = ev.bank(pol.bank)
        except KeyError:
            findings.append((Finding.QUOTE_INVALID, f"no {pol.bank} PCR values in the evidence"))
            return None
        try:
            quote = verify_quote(
                ev.quote,
                ev.signature,
                self._ak_for(device.ak_public),
                nonce=ev.nonce,
                pcrs={pol.bank: bank_values},
                selection={pol.bank: pol.pcrs},
                policy=pol.quote,
                last=last,
            )
        except QuoteSignatureError as exc:
            findings.append((Finding.QUOTE_SIGNATURE_INVALID, str(exc)))
            return None
        except ClockRegressionError as exc:
            findings.append((Finding.QUOTE_ROLLBACK, str(exc)))
            return None
        except PCRDigestError as exc:
            findings.append((Finding.PCR_DIGEST_MISMATCH, str(exc)))
            return None
        except (VerificationError, MalformedInputError) as exc:
            findings.append((Finding.QUOTE_INVALID, str(exc)))
            return None
        findings.append(Finding.AK_ENROLLED)
        hardware = self._hardware_finding(device)
        if hardware is not None:
            findings.append(hardware)
        if quote.warnings:
            findings.append((Finding.CLOCK_UNSAFE, "; ".join(quote.warnings)))
        new_clock = QuoteClockState(
            quote.state.reset_count, quote.state.restart_count, quote.state.clock
        )
        if pol.models is not None and model_findings is not None:
            model_findings += appraise_models(
                ev, pol.models, self._ak_for(device.ak_public), quote_state=quote.state, now=now,
                quote_policy=pol.quote,
            )  # fmt: skip
        self._check_boot(ev, quote, findings)
        ima_cas: tuple[ImaState | None, ImaState] | None = None
        reboot = quote.reboot == "reset"
        if pol.runtime is not None:
            ima_cas = self._check_runtime(ev, quote, state.ima, reboot, findings)
        return (state.quote, new_clock), ima_cas, reboot

    def _check_boot(self, ev: Evidence, quote: VerifiedQuote, findings: Finds) -> None:
        pol = self.policy
        if ev.event_log is None:
            findings.append((Finding.FIRMWARE_LOG_MISMATCH, "evidence has no firmware event log"))
            return
        # The policy's workarounds reach every step, and the log is classified
        # (and Secure Boot decoded) once for the policy and the Secure Boot check.
        workarounds = pol.boot.workarounds
        try:
            log = parse_event_log(ev.event_log, workarounds=workarounds)
        except MalformedInputError as exc:
            findings.append((Finding.FIRMWARE_LOG_MISMATCH, str(exc)))
            return
        firmware_pcrs = {pol.bank: {i: v for i, v in quote.pcrs[pol.bank].items() if i != 10}}
        try:
            verified = log.verify(firmware_pcrs, workarounds=workarounds)
        except (VerificationError, MalformedInputError) as exc:
            # say which PCR and which event first diverges, not only "PCR4"
            why = [str(d) for d in explain_mismatch(log, firmware_pcrs)]
            findings.append((Finding.FIRMWARE_LOG_MISMATCH, "; ".join([str(exc), *why[:5]])))
            return
        facts = boot_facts(verified, workarounds=workarounds)
        try:
            pol.boot.check(verified, facts=facts)
            self._check_boot_reference(ev.device_id, verified)
        except PolicyError as exc:
            findings.append((Finding.BOOT_POLICY_VIOLATION, _violations(exc)))
        else:
            findings.append(Finding.BOOT_APPROVED)
        if pol.secure_boot:
            try:
                enabled = facts.secure_boot_state().enabled
            except TrustedgeError as exc:
                findings.append((Finding.SECURE_BOOT_VIOLATION, str(exc)))
            else:
                findings.append(
                    Finding.SECURE_BOOT_APPROVED
                    if enabled
                    else (Finding.SECURE_BOOT_VIOLATION, "Secure Boot is off")
                )

    def _check_boot_reference(self, device_id: str, verified: VerifiedEventLog) -> None:
        """The device's predicted next-boot reference, when one is stored: a boot
        that is neither the predicted chain nor (before confirm) the current one
        is a violation naming the first diverging event."""
        raw = self.store.get_boot_reference(device_id)
        if raw is None:
            return
        try:
            reference = BootReference.decode(raw)
        except MalformedInputError as exc:
            raise PolicyError(f"stored boot reference is unusable: {exc}") from exc
        if reference.bank != self.policy.bank:
            raise PolicyError(f"stored boot reference is for bank {reference.bank}")
        reference.check(verified, self.policy.pcrs)

    def expect_boot(self, device_id: str, reference: BootReference | None) -> None:
        """Make ``reference`` (from :meth:`BootReference.from_prediction` of the
        device's pending update) the reference values of the device's next
        appraisals, on top of the boot policy; ``None`` drops it. Replace it by
        :meth:`BootReference.confirmed` once the device confirmed the update."""
        self.store.put_boot_reference(
            device_id, None if reference is None else reference.encode(), self.now()
        )

    def _check_runtime(
        self,
        ev: Evidence,
        quote: VerifiedQuote,
        stored: ImaState | None,
        reboot: bool,
        findings: Finds,
    ) -> tuple[ImaState | None, ImaState] | None:
        pol = self.policy
        runtime = pol.runtime
        assert runtime is not None
        start = None if reboot else stored
        expected_offset = start.offset if start is not None else 0
        if ev.ima_offset != expected_offset:  # not secret: an entry count
            findings.append(
                (
                    Finding.IMA_LOG_MISMATCH,
                    f"IMA entries start at {ev.ima_offset}, the verifier expects {expected_offset}",
                )
            )
            return None
        resume = None if start is None else LogImaState(start.offset, 0, start.pcr10, start.bank)
        try:
            log = parse_ima_log(ev.ima_log or b"", first_number=expected_offset)
            verified = verify_ima_log(log, quote.pcrs[pol.bank][10], bank=pol.bank, state=resume)
        except (VerificationError, MalformedInputError, ValueError) as exc:
            findings.append((Finding.IMA_LOG_MISMATCH, str(exc)))
            return None
        bad_aggregate = False
        if expected_offset == 0:  # the list starts at this boot: entry 0 is boot_aggregate
            aggregate = boot_aggregate_result(verified.entries, quote.pcrs)
            if aggregate.outcome is BootAggregateOutcome.UNCHECKABLE:
                findings.append((Finding.IMA_BOOT_AGGREGATE_UNCHECKED, aggregate.detail))
            elif aggregate.outcome is not BootAggregateOutcome.MATCH:
                findings.append((Finding.IMA_BOOT_AGGREGATE_MISMATCH, aggregate.detail))
                bad_aggregate = True
        violations = runtime.violations(verified)
        if violations:
            for finding, kinds in _IMA_FINDINGS:
                texts = [str(v) for v in violations if v.kind in kinds]
                if texts:
                    findings.append((finding, "; ".join(texts[:5])))
            return None
        if bad_aggregate:
            return None
        findings.append(Finding.RUNTIME_APPROVED)
        new = ImaState(verified.state.entries, verified.state.pcr_value, pol.bank)
        return stored, new


#: Typed IMA violations -> the finding that reports them.
_IMA_FINDINGS: Final = (
    (Finding.IMA_BOOT_AGGREGATE_MISMATCH, frozenset({ImaViolationKind.MISPLACED_BOOT_AGGREGATE})),
    (Finding.IMA_FILE_MODIFIED, IMA_MODIFIED_KINDS - {ImaViolationKind.MISPLACED_BOOT_AGGREGATE}),
    (Finding.IMA_FILE_UNKNOWN, frozenset({ImaViolationKind.NOT_IN_POLICY})),
)


def _violations(exc: PolicyError) -> str:
    found: Sequence[str] = exc.violations or [str(exc)]
    return "; ".join(found[:5])


def _int(doc: dict[str, object], key: str, default: int, low: int, high: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MalformedInputError(f"appraisal policy field {key!r} must be an integer {low}-{high}")
    return value


def load_appraisal_policy(document: bytes | str) -> AppraisalPolicy:
    """An :class:`AppraisalPolicy` from its JSON document::

        {"version": 1, "policy_id": "fleet-2026-11", "bank": "sha256",
         "pcrs": [0, 1, 2, 3, 4, 5, 6, 7, 10], "secure_boot": true,
         "nonce_ttl": 60, "enrollment_ttl": 300,
         "boot": {<event-log policy, docs/measured-boot.md>} | "unsafe-no-policy",
         "runtime": {<IMA runtime policy, Keylime layout>} | null,
         "models": {<model policy, modellog.load_model_policy>}}  (optional)

    Raises ``MalformedInputError`` for documents that do not follow it and
    ``UnsupportedAlgorithmError`` for unknown rules.
    """
    try:
        doc = json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"appraisal policy is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise MalformedInputError("appraisal policy must be a JSON object with version 1")
    unknown = set(doc) - {
        "version", "policy_id", "bank", "pcrs", "secure_boot", "nonce_ttl",
        "enrollment_ttl", "boot", "runtime", "models",
    }  # fmt: skip
    if unknown:
        raise MalformedInputError(f"unknown appraisal policy field(s) {sorted(unknown)}")
    boot_doc = doc.get("boot")
    if boot_doc == "unsafe-no-policy":
        boot: EventLogPolicy | UnsafeNoPolicy = UnsafeNoPolicy()
    elif isinstance(boot_doc, dict):
        boot = load_policy(json.dumps(boot_doc))
    else:
        raise MalformedInputError("'boot' must be an event-log policy or 'unsafe-no-policy'")
    runtime_doc = doc.get("runtime")
    if runtime_doc is not None and not isinstance(runtime_doc, dict):
        raise MalformedInputError("'runtime' must be an IMA runtime policy or null")
    runtime = None if runtime_doc is None else load_ima_policy(json.dumps(runtime_doc))
    pcrs = doc.get("pcrs", list(_DEFAULT_PCRS))
    if (
        not isinstance(pcrs, list)
        or not pcrs
        or any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 23 for p in pcrs)
    ):
        raise MalformedInputError("'pcrs' must be a non-empty list of PCR indexes 0-23")
    bank = doc.get("bank", "sha256")
    if bank not in ("sha256", "sha384", "sha512"):
        raise MalformedInputError("'bank' must be sha256, sha384 or sha512")
    models = None if doc.get("models") is None else load_model_policy(doc["models"])
    policy_id = doc.get("policy_id", "trustedge-default")
    secure_boot = doc.get("secure_boot", True)
    if not isinstance(policy_id, str) or not isinstance(secure_boot, bool):
        raise MalformedInputError("'policy_id' must be text and 'secure_boot' a boolean")
    try:
        return AppraisalPolicy(
            boot=boot,
            runtime=runtime,
            pcrs=tuple(pcrs),
            bank=bank,
            secure_boot=secure_boot,
            policy_id=policy_id,
            nonce_ttl=_int(doc, "nonce_ttl", 60, 1, 86_400),
            enrollment_ttl=_int(doc, "enrollment_ttl", 300, 1, 86_400 * 7),
            models=models,
        )
    except ValueError as exc:
        raise MalformedInputError(f"inconsistent appraisal policy: {exc}") from None
