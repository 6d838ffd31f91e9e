"""The verifier side of remote attestation: a thin orchestrator over the pure core.

:class:`Verifier` ties together the pieces a cloud verifier needs, each of
which lives on its own:

* **enrollment** -- :class:`~trustedge.attestation.enrollment.Enrollment`
  (EK certificate check, MakeCredential, activation), the verifier's
  ``enrollment`` (``verifier.enrollment.enroll(...)``, ``.complete(...)``);
* **challenges** -- :meth:`Verifier.challenge` issues a single-use nonce
  with an expiry and tells the device where its IMA list should resume;
* **appraisal** -- :func:`~trustedge.attestation.appraisal.appraise`, a pure
  function (no store, no key, no I/O) that runs the identity, quote, model,
  event-log, Secure Boot, IMA and policy checks;
* **commit** -- :meth:`Verifier.appraise` reads the device's state, calls
  ``appraise``, then consumes the nonce (single use, unexpired, for this
  device; consumed also when the appraisal fails) and commits the new clock
  and IMA state in one store transaction;
* **signing** -- :class:`~trustedge.attestation.signer.ResultSigner` signs the
  EAR (:mod:`trustedge.attestation.ear`) whose status, AR4SI vector and
  reasons come from :mod:`trustedge.attestation.findings`.

Appraisal never raises for bad evidence: every failure is a finding in a
signed, *contraindicated* result. Time (``now``) and randomness
(``random``) are passed in.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from trustedge.attestation import ear
from trustedge.attestation.appraisal import (
    Appraisal,
    AppraisalPolicy,
    AppraisalState,
    BootVerdictCache,
    FindingItem,
    appraise,
    load_appraisal_policy,
)
from trustedge.attestation.enrollment import Enrollment, TrustAnchors
from trustedge.attestation.evidence import UnverifiedEvidence
from trustedge.attestation.findings import Finding
from trustedge.attestation.nonces import NonceIssuer
from trustedge.attestation.signer import RESULT_MEDIA_TYPES, AppraisalOutcome, ResultSigner
from trustedge.attestation.store import (
    EnrollmentState,
    StoredResult,
    VerifierStore,
)
from trustedge.errors import MalformedInputError, NonceError, RollbackError, VerificationError
from trustedge.measuredboot import ImaState
from trustedge.measuredboot.predict import BootReference

__all__ = [
    "AppraisalOutcome",
    "AppraisalPolicy",
    "AttestationChallenge",
    "TrustAnchors",
    "Verifier",
    "load_appraisal_policy",
]


@dataclass(frozen=True)
class AttestationChallenge:
    """A nonce for one device and where its IMA list should resume."""

    device_id: str
    nonce: bytes
    expires_at: int
    ima_offset: int
    pcrs: tuple[int, ...]


class Verifier:
    """A remote-attestation verifier over a :class:`VerifierStore` (see the module docstring).

    ``signer`` signs results; without one, it is built from ``trust_anchors``'
    ``signing_key``/``result_format``/``verifier_id``, and a verifier with no
    key at all can enroll devices and issue challenges but not appraise.
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
        signer: ResultSigner | None = None,
        now: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.store = store
        self.policy = policy
        self.anchors = trust_anchors
        if signer is None and trust_anchors.signing_key is not None:
            signer = ResultSigner(
                trust_anchors.signing_key, trust_anchors.result_format, trust_anchors.verifier_id
            )
        self.signer = signer
        self.enrollment = Enrollment(
            store, trust_anchors, ttl=policy.enrollment_ttl, now=now, random=random
        )
        self._now = now
        self._nonces = NonceIssuer(store, ttl=policy.nonce_ttl, random=random)
        #: Firmware-log verdicts by the digests they depend on (an optimisation only;
        #: ``None`` appraises every log in full).
        self.boot_cache: BootVerdictCache | None = BootVerdictCache(policy)

    def now(self) -> int:
        return int(self._now())

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
            ima_offset=state.ima.entries if state.ima is not None else 0,
            pcrs=self.policy.pcrs,
        )

    def expect_boot(self, device_id: str, reference: BootReference | None) -> None:
        """Make ``reference`` (from :meth:`BootReference.from_prediction` of the
        device's pending update) the reference values of the device's next
        appraisals, on top of the boot policy; ``None`` drops it. Replace it by
        :meth:`BootReference.confirmed` once the device confirmed the update."""
        self.store.put_boot_reference(
            device_id, None if reference is None else reference.encode(), self.now()
        )

    # -- appraisal ---------------------------------------------------------------
    def appraise(
        self, evidence: UnverifiedEvidence | bytes, *, keep_result: bool = False
    ) -> AppraisalOutcome:
        """Appraise evidence and return the signed result (see the module docstring).

        ``evidence`` is an :class:`UnverifiedEvidence` or its CBOR bytes. Bad
        evidence gives a contraindicated result, never an exception;
        ``BackendError`` (database failure) propagates; ``ValueError`` when the
        verifier has no result signer. ``keep_result`` also stores the signed result
        as the device's latest (:meth:`VerifierStore.get_result`): for an accepted
        appraisal in the same transaction that consumes the nonce and advances the
        device's state, so a result is stored exactly when its appraisal is committed.
        """
        signer = self.signer
        if signer is None:
            raise ValueError("this Verifier has no result signer (no signing key configured)")
        now = self.now()
        if not isinstance(evidence, UnverifiedEvidence):
            try:
                evidence = UnverifiedEvidence.decode(bytes(evidence))
            except MalformedInputError:  # appraise reports it as its finding
                result = appraise(evidence, enrollment=None, policy=self.policy, now=now)
                return signer.sign_appraisal(result, now=now)
        # One read: the device, its quote clock, IMA position and boot reference.
        state = self.store.device_state(evidence.device_id)
        last = AppraisalState(state.quote, state.ima)
        enrolled = self.enrollment.enrolled_device(state.device)
        appraisal = appraise(
            evidence,
            enrollment=enrolled,
            policy=self.policy,
            last_state=last,
            now=now,
            boot_reference=state.boot_reference if enrolled is not None else None,
            boot_cache=self.boot_cache,
        )
        return self._commit(evidence, appraisal, last, now, signer, keep_result)

    def _stored(self, device_id: str, outcome: AppraisalOutcome, now: int) -> StoredResult:
        token = outcome.token.encode("ascii") if isinstance(outcome.token, str) else outcome.token
        return StoredResult(device_id, self._media_type(), token, outcome.status.value, now)

    def _media_type(self) -> str:
        assert self.signer is not None
        return RESULT_MEDIA_TYPES[self.signer.result_format]

    def _commit(
        self,
        ev: UnverifiedEvidence,
        appraisal: Appraisal,
        last: AppraisalState,
        now: int,
        signer: ResultSigner,
        keep: bool,
    ) -> AppraisalOutcome:
        """Use the nonce up and store the new state; add what the store refused; sign."""
        before: list[FindingItem] = []
        after: list[FindingItem] = []
        new_quote = appraisal.quote_state
        accepted = appraisal.result.status is not ear.TrustTier.CONTRAINDICATED
        if new_quote is not None and accepted:
            ima = None if appraisal.ima_state is None else (last.ima, appraisal.ima_state)
            # Signed before the commit so that the result is stored in it; signed again
            # below (with the store's refusal) only when the commit does not happen.
            outcome = signer.sign_appraisal(appraisal, now=now)
            try:
                self.store.record_appraisal(
                    ev.device_id,
                    quote=(last.quote, new_quote),
                    ima=ima,
                    nonce=ev.nonce,
                    now=now,
                    ima_restart=appraisal.reboot,
                    result=self._stored(ev.device_id, outcome, now) if keep else None,
                )
                return outcome
            except NonceError as exc:
                before.append((Finding.NONCE_REJECTED, str(exc)))
            except RollbackError as exc:
                after.append((Finding.QUOTE_ROLLBACK, str(exc)))
                try:  # the commit rolled back: use the nonce up on its own
                    self._nonces.consume(ev.nonce, ev.device_id, now)
                except NonceError:
                    pass
        else:
            try:
                self._nonces.consume(ev.nonce, ev.device_id, now)
            except NonceError as exc:  # the first thing a reader of the result should see
                before.append((Finding.NONCE_REJECTED, str(exc)))
            if new_quote is not None:  # a genuine quote: never accept it again
                try:
                    if appraisal.reboot and last.ima is not None:
                        # the signed resetCount proves a reboot: the stored IMA position
                        # is the last boot's; the next list starts at entry 0
                        fresh = ImaState(0, 0, bytes(len(last.ima.pcr_value)), last.ima.bank)
                        self.store.record_appraisal(
                            ev.device_id,
                            quote=(last.quote, new_quote),
                            ima=(last.ima, fresh),
                            ima_restart=True,
                        )
                    else:
                        self.store.advance_quote_state(ev.device_id, last.quote, new_quote)
                except RollbackError as exc:
                    after.append((Finding.QUOTE_ROLLBACK, str(exc)))
        outcome = signer.sign_appraisal(appraisal.with_findings(before, after), now=now)
        if keep:
            with contextlib.suppress(KeyError):  # an unknown device has no result row
                self.store.put_result(self._stored(ev.device_id, outcome, now))
        return outcome
