"""The pure appraisal core: evidence in, a decision out, with no store, no key and no I/O.

:func:`appraise` runs every check of one appraisal on an
:class:`~trustedge.attestation.evidence.UnverifiedEvidence`, in order:

1. the device is enrolled (an :class:`EnrolledDevice`, from
   :class:`~trustedge.attestation.enrollment.Enrollment`), not revoked, and the
   evidence's AK is the enrolled AK (constant time);
2. the quote (every check of :func:`~trustedge.attestation.quote.verify_quote`:
   signature, magic, type, extraData equal to the evidence's nonce, PCR selection
   equal to the policy's, PCR value sizes, pcrDigest, and the clock against
   ``last_state.quote``);
3. the model-load log, when the policy has a model policy (its own EAR submod);
4. the firmware event log replayed against the quoted PCRs, with the policy's
   workarounds; the boot policy and Secure Boot read from the digest-bound
   classification (:func:`trustedge.measuredboot.boot_facts`);
5. the IMA entries replayed incrementally against the quoted PCR 10 from
   ``last_state.ima``; entry 0's boot_aggregate against the quoted PCRs 0-9
   on the first appraisal after a reboot; the runtime policy.

It returns an :class:`Appraisal`: the findings (whose EAR appraisal is
:attr:`Appraisal.result`) and the state to store if the caller accepts it.
Bad evidence never raises: every failure is a finding and the status is
*contraindicated*. What :func:`appraise` does **not** do is the caller's:
checking that the nonce was issued and is unused (the
:class:`~trustedge.attestation.verifier.Verifier` consumes it in the store's
commit; :func:`verify_evidence` compares it with the nonce it was given),
storing the new state, and signing a result
(:class:`~trustedge.attestation.signer.ResultSigner`).

:func:`verify_evidence` is the one-shot recipe over it for CI pipelines and
offline audits: a pinned AK, a policy and the expected nonce in; the
:class:`Appraisal` out when it affirms, :class:`EvidenceRejectedError` otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from trustedge.attestation import ear
from trustedge.attestation.evidence import UnverifiedEvidence
from trustedge.attestation.findings import Finding, appraisal_from_findings
from trustedge.attestation.modellog import ModelPolicy, appraise_models, load_model_policy
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
from trustedge.errors import (
    MalformedInputError,
    PolicyError,
    TrustedgeError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import Public
from trustedge.measuredboot import (
    IMA_MODIFIED_KINDS,
    BootAggregateOutcome,
    EventLogPolicy,
    ImaRuntimePolicy,
    ImaState,
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
from trustedge.measuredboot.predict import BootReference
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = [
    "Appraisal",
    "AppraisalPolicy",
    "AppraisalState",
    "BootVerdictCache",
    "EnrolledDevice",
    "EvidenceRejectedError",
    "FindingItem",
    "appraise",
    "load_appraisal_policy",
    "verify_evidence",
]

#: One observation: a finding, or a finding with its detail text.
FindingItem = Finding | tuple[Finding, str]
Finds = list[FindingItem]
_DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


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
class EnrolledDevice:
    """What enrollment established about a device: the input ``enrollment`` of :func:`appraise`.

    ``ak`` is the AK bound by credential activation (``ak_public`` its
    TPM2B_PUBLIC bytes, compared with the evidence's in constant time);
    ``revoked`` marks a revoked device; ``ek_check`` is the outcome of the EK
    certificate check (``Finding.HARDWARE_TPM``, ``Finding.SOFTWARE_TPM`` or
    ``(Finding.EK_CERT_INVALID, why)``; ``None``: the EK had no certificate).
    Build it with :meth:`of` or get it from
    :meth:`trustedge.attestation.enrollment.Enrollment.enrolled_device`.
    """

    device_id: str
    ak_public: bytes
    ak: AttestationKey
    revoked: bool = False
    ek_check: FindingItem | None = None

    @classmethod
    def of(
        cls,
        device_id: str,
        ak_public: bytes,
        *,
        revoked: bool = False,
        ek_check: FindingItem | None = None,
    ) -> EnrolledDevice:
        """From the AK's TPM2B_PUBLIC bytes (``MalformedInputError`` if they do not parse)."""
        ak = AttestationKey.from_public(Public.unmarshal_tpm2b(ak_public))
        return cls(device_id, bytes(ak_public), ak, revoked, ek_check)


@dataclass(frozen=True)
class AppraisalState:
    """What an appraisal of a device needs from the previous accepted one.

    ``quote``: the clock state of the last accepted quote (the one
    :class:`~trustedge.attestation.quote.QuoteState`); ``ima``: how far the IMA
    list has been verified (the one :class:`~trustedge.measuredboot.ImaState`,
    at byte 0 of the next list). Both are stored as they are.
    """

    quote: QuoteState | None = None
    ima: ImaState | None = None


@dataclass(frozen=True)
class Appraisal:
    """The outcome of :func:`appraise`: findings, their EAR appraisal and the state to keep.

    ``findings`` are in order (the reasons of :attr:`result`); ``model_findings``
    those of the model submod (``None``: the policy has no model policy).
    ``quote`` is the verified quote (``None``: it did not verify, and nothing
    may be stored). ``quote_state`` is the clock state to store once the quote
    verified -- also when the appraisal is contraindicated, so a genuine quote is
    never accepted twice; ``ima_state`` the IMA position to store, only when the
    runtime policy approved (``None``: leave it). ``reboot`` says the quote shows
    a TPM reset (the IMA list started again). ``device_id`` and ``nonce`` are
    the evidence's claims (``None`` when the evidence did not decode).
    """

    device_id: str | None
    nonce: bytes | None
    policy_id: str
    appraised_at: int
    findings: tuple[FindingItem, ...]
    model_findings: tuple[FindingItem, ...] | None = None
    quote: VerifiedQuote | None = None
    quote_state: QuoteState | None = None
    ima_state: ImaState | None = None
    reboot: bool = False

    @functools.cached_property
    def result(self) -> ear.Appraisal:
        """The EAR appraisal of the device (status, AR4SI vector, reasons; computed once)."""
        return appraisal_from_findings(self.findings, policy_id=self.policy_id)

    @property
    def models(self) -> ear.Appraisal | None:
        """The EAR appraisal of the ``model`` submod, when the policy has a model policy."""
        if self.model_findings is None:
            return None
        return appraisal_from_findings(self.model_findings, policy_id=self.policy_id)

    @property
    def status(self) -> ear.TrustTier:
        """The worst status over the device's and the model appraisal."""
        models = self.models
        status = self.result.status
        if models is not None and models.status.rank > status.rank:
            return models.status
        return status

    def with_findings(
        self, before: Sequence[FindingItem] = (), after: Sequence[FindingItem] = ()
    ) -> Appraisal:
        """The same appraisal with findings of the caller's own checks added
        (e.g. a nonce the store refused goes ``before``, a lost race ``after``)."""
        if not before and not after:
            return self
        return Appraisal(
            self.device_id, self.nonce, self.policy_id, self.appraised_at,
            (*before, *self.findings, *after), self.model_findings, self.quote,
            self.quote_state, self.ima_state, self.reboot,
        )  # fmt: skip


class BootVerdictCache:
    """Remembers the firmware-log verdict (step 4 of :func:`appraise`) of evidence seen before.

    The devices of a fleet send the same firmware event log at every push, and replaying,
    classifying and checking it again gives the same findings: that verdict is a function
    of the log's bytes, the quoted firmware PCR values (bound by the quote's signature and
    pcrDigest, which are checked before the cache is consulted, at every appraisal), the
    policy and the device's stored boot reference, and of nothing else. The cache is keyed
    on exactly those -- SHA-256 of the log, SHA-256 of the bank's firmware PCR values with
    their indexes, the bank, the policy's id and SHA-256 of the boot reference -- and is
    bound to one policy object (:func:`appraise` ignores a cache made for another). So it is
    an optimisation only: a changed log, PCR value, policy or reference is a miss and is
    appraised in full. Bounded to ``max_entries`` (the least recently used go first); safe
    to share between threads.
    """

    def __init__(self, policy: AppraisalPolicy, *, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.policy = policy
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, tuple[FindingItem, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, event_log: bytes, pcrs: dict[int, bytes], boot_reference: bytes | None) -> bytes:
        """The cache key of one firmware-log verdict (the digests named above)."""
        policy = self.policy
        h = hashlib.sha256()
        for part in (
            hashlib.sha256(event_log).digest(),
            hashlib.sha256(b"".join(i.to_bytes(1, "big") + pcrs[i] for i in sorted(pcrs))).digest(),
            policy.bank.encode(),
            policy.policy_id.encode("utf-8"),
            b"" if boot_reference is None else hashlib.sha256(boot_reference).digest(),
        ):
            h.update(len(part).to_bytes(4, "big") + part)
        return h.digest()

    def get(self, key: bytes) -> tuple[FindingItem, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, findings: tuple[FindingItem, ...]) -> None:
        with self._lock:
            self._entries[key] = findings
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class EvidenceRejectedError(VerificationError):
    """:func:`verify_evidence` did not affirm the evidence; ``appraisal`` says why."""

    def __init__(self, message: str, appraisal: Appraisal) -> None:
        super().__init__(message)
        self.appraisal = appraisal


def appraise(
    evidence: UnverifiedEvidence | bytes,
    *,
    enrollment: EnrolledDevice | None,
    policy: AppraisalPolicy,
    last_state: AppraisalState | None = None,
    now: int,
    boot_reference: bytes | None = None,
    boot_cache: BootVerdictCache | None = None,
) -> Appraisal:
    """Appraise ``evidence`` (an :class:`UnverifiedEvidence` or its CBOR bytes).

    ``enrollment`` is the device as enrolled (``None``: unknown device);
    ``last_state`` the state stored after its last accepted appraisal
    (``None``: none yet); ``now`` (POSIX seconds) is recorded as
    ``appraised_at``. ``boot_reference`` (an encoded
    :class:`~trustedge.measuredboot.predict.BootReference`, the predicted boot of
    the device's pending update) is checked on top of the boot policy: a boot that
    is neither the predicted chain nor (before confirm) the current one is a
    violation naming the first diverging event. ``boot_cache`` (a
    :class:`BootVerdictCache` of this ``policy``) remembers firmware-log verdicts by the
    digests they depend on; it never changes a decision. A pure function: no store, no
    key, no clock, no I/O. Never raises for bad evidence (see the module docstring for the
    checks).
    """
    if isinstance(now, bool) or not isinstance(now, int):
        raise TypeError("now must be an int (POSIX seconds)")
    last = last_state if last_state is not None else AppraisalState()
    models: Finds | None = [] if policy.models is not None else None
    if not isinstance(evidence, UnverifiedEvidence):
        try:
            evidence = UnverifiedEvidence.decode(bytes(evidence))
        except MalformedInputError as exc:
            return Appraisal(
                None, None, policy.policy_id, now, ((Finding.EVIDENCE_MALFORMED, str(exc)),)
            )
    ev = evidence
    findings: Finds = []
    quote = _check_identity_and_quote(ev, enrollment, policy, last.quote, findings)
    if quote is None or enrollment is None:
        if models is not None:  # the quote did not verify: nothing is certified
            models = [(Finding.MODEL_LOG_MISSING, "the quote did not verify")]
        return Appraisal(
            ev.device_id, ev.nonce, policy.policy_id, now, tuple(findings),
            None if models is None else tuple(models),
        )  # fmt: skip
    if policy.models is not None and models is not None:
        models += appraise_models(
            ev, policy.models, enrollment.ak, quote_state=quote.state, now=now,
            quote_policy=policy.quote,
        )  # fmt: skip
        if not models:
            models = [(Finding.MODEL_LOG_MISSING, "the quote did not verify")]
    if boot_cache is not None and boot_cache.policy is policy and ev.event_log is not None:
        firmware = {i: v for i, v in quote.pcrs[policy.bank].items() if i != 10}
        key = boot_cache.key(ev.event_log, firmware, boot_reference)
        verdict = boot_cache.get(key)
        if verdict is None:
            boot: Finds = []
            _check_boot(ev, quote, policy, boot, boot_reference)
            verdict = tuple(boot)
            boot_cache.put(key, verdict)
        findings.extend(verdict)
    else:
        _check_boot(ev, quote, policy, findings, boot_reference)
    reboot = quote.reboot == "reset"
    ima_state = None
    if policy.runtime is not None:
        ima_state = _check_runtime(ev, quote, policy, policy.runtime, last.ima, reboot, findings)
    return Appraisal(
        ev.device_id, ev.nonce, policy.policy_id, now, tuple(findings),
        None if models is None else tuple(models), quote, quote.state, ima_state, reboot,
    )  # fmt: skip


def verify_evidence(
    evidence: UnverifiedEvidence | bytes,
    *,
    ak_public: bytes,
    policy: AppraisalPolicy,
    nonce: bytes,
    now: int,
    last_state: AppraisalState | None = None,
    ek_check: FindingItem | None = None,
    allow_warning: bool = False,
) -> Appraisal:
    """One-shot check of an evidence bundle against a pinned AK (CI pipelines, offline audits).

    ``ak_public`` is the AK's TPM2B_PUBLIC, trusted by the caller (pinned,
    or bound earlier by credential activation); ``nonce`` the value the
    caller asked the device to quote (compared in constant time with the
    evidence's, which the quote's extraData must equal); ``last_state`` the
    state of an earlier accepted appraisal of this device, if any. Returns
    the :class:`Appraisal` when it is *affirming* (or *warning* with
    ``allow_warning``); raises :class:`EvidenceRejectedError` (a
    ``VerificationError``, with the appraisal) otherwise. Nothing is stored
    and nothing is signed: keep ``appraisal.quote_state`` and
    ``appraisal.ima_state`` yourself for the next call.

    The pinned AK is what identifies the device: the evidence's device id is
    not covered by the quote, and ``appraisal.device_id`` is only its claim.
    ``MalformedInputError`` when ``ak_public`` does not parse (the caller's input).
    """
    device = EnrolledDevice.of(_claimed_device_id(evidence), ak_public, ek_check=ek_check)
    appraisal = appraise(evidence, enrollment=device, policy=policy, last_state=last_state, now=now)
    if appraisal.nonce is None or not hmac.compare_digest(appraisal.nonce, bytes(nonce)):
        appraisal = appraisal.with_findings(
            before=[(Finding.NONCE_REJECTED, "the evidence is not for this nonce")]
        )
    status = appraisal.status
    ok = status is ear.TrustTier.AFFIRMING or (allow_warning and status is ear.TrustTier.WARNING)
    if not ok:
        worst = [r for r in appraisal.result.reasons if not _is_positive(r)] or list(
            appraisal.result.reasons
        )
        raise EvidenceRejectedError(
            f"evidence is {status.value}: " + "; ".join(worst[:3]), appraisal
        )
    return appraisal


def _claimed_device_id(evidence: UnverifiedEvidence | bytes) -> str:
    if isinstance(evidence, UnverifiedEvidence):
        return evidence.device_id
    try:
        return UnverifiedEvidence.decode(bytes(evidence)).device_id
    except MalformedInputError:
        return "evidence"  # appraise reports the malformed bundle


_POSITIVE: Final = frozenset(
    f.value
    for f in (
        Finding.AK_ENROLLED, Finding.HARDWARE_TPM, Finding.SOFTWARE_TPM, Finding.BOOT_APPROVED,
        Finding.SECURE_BOOT_APPROVED, Finding.RUNTIME_APPROVED,
    )
)  # fmt: skip


def _is_positive(reason: str) -> bool:
    return reason.split(":", 1)[0] in _POSITIVE


# ---------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------
def _check_identity_and_quote(
    ev: UnverifiedEvidence,
    device: EnrolledDevice | None,
    pol: AppraisalPolicy,
    last: QuoteState | None,
    findings: Finds,
) -> VerifiedQuote | None:
    if device is None or device.device_id != ev.device_id:
        findings.append((Finding.UNKNOWN_DEVICE, f"device {ev.device_id!r} is not enrolled"))
        return None
    if device.revoked:
        findings.append(Finding.DEVICE_REVOKED)
        return None
    if not hmac.compare_digest(ev.ak_public, device.ak_public):
        findings.append((Finding.UNKNOWN_DEVICE, "evidence AK is not the enrolled AK"))
        return None
    try:
        bank_values = ev.bank(pol.bank)
    except KeyError:
        findings.append((Finding.QUOTE_INVALID, f"no {pol.bank} PCR values in the evidence"))
        return None
    try:
        quote = verify_quote(
            ev.quote,
            ev.signature,
            device.ak,
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
    if device.ek_check is not None:
        findings.append(device.ek_check)
    if quote.warnings:
        findings.append((Finding.CLOCK_UNSAFE, "; ".join(quote.warnings)))
    return quote


def _check_boot(
    ev: UnverifiedEvidence,
    quote: VerifiedQuote,
    pol: AppraisalPolicy,
    findings: Finds,
    boot_reference: bytes | None = None,
) -> None:
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
        if boot_reference is not None:
            _check_boot_reference(boot_reference, verified, pol)
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


def _check_boot_reference(raw: bytes, verified: VerifiedEventLog, pol: AppraisalPolicy) -> None:
    try:
        reference = BootReference.decode(raw)
    except MalformedInputError as exc:
        raise PolicyError(f"stored boot reference is unusable: {exc}") from exc
    if reference.bank != pol.bank:
        raise PolicyError(f"stored boot reference is for bank {reference.bank}")
    reference.check(verified, pol.pcrs)


def _check_runtime(
    ev: UnverifiedEvidence,
    quote: VerifiedQuote,
    pol: AppraisalPolicy,
    runtime: ImaRuntimePolicy,
    stored: ImaState | None,
    reboot: bool,
    findings: Finds,
) -> ImaState | None:
    """The IMA checks; the new position to store when the runtime policy approves."""
    start = None if reboot else stored
    expected_offset = start.entries if start is not None else 0
    if ev.ima_offset != expected_offset:  # not secret: an entry count
        findings.append(
            (
                Finding.IMA_LOG_MISMATCH,
                f"IMA entries start at {ev.ima_offset}, the verifier expects {expected_offset}",
            )
        )
        return None
    try:
        log = parse_ima_log(ev.ima_log or b"", first_number=expected_offset)
        verified = verify_ima_log(log, quote.pcrs[pol.bank][10], bank=pol.bank, state=start)
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
    # The next evidence carries the entries after this position as a list of its own.
    return verified.state._replace(byte_offset=0)


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
    models = None if doc.get("models") is None else load_model_policy(doc["models"])
    bank = doc.get("bank", "sha256")
    if bank not in ("sha256", "sha384", "sha512"):
        raise MalformedInputError("'bank' must be sha256, sha384 or sha512")
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
