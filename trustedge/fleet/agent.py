"""The device side as a long-running process: enroll once, then push evidence.

:class:`Agent` enrolls the device once (registration token + credential activation by the
TPM), then pushes evidence on a schedule and on demand: each push asks for a challenge,
quotes over its nonce with the PCRs and IMA offset the challenge names, and posts the
evidence; the answer (the signed EAR) is kept in a bounded on-disk queue of results for
local readers. Failures back off exponentially with full jitter (a fleet that lost its
verifier does not come back in lock-step); after a network loss or a reboot it resumes
from its state file, written atomically (``trustedge._fs``) after every change, so a kill
at any moment leaves the previous or the next state, never a torn one.

With ``models`` (a :class:`~trustedge.attestation.modellog.ModelAgent`), each evidence
also carries the model-load log and a ``TPM2_NV_Certify`` of its index over the nonce, so
the verifier's ``model`` submod can say which models the device loaded.

Time, sleep and randomness are passed in; the agent logs to the ``trustedge.agent`` logger
and configures no logging itself.
"""

from __future__ import annotations

import base64
import json
import logging
import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from trustedge._fs import atomic_write
from trustedge.attestation import Attester
from trustedge.attestation.modellog import ModelAgent
from trustedge.errors import MalformedInputError, TrustedgeError
from trustedge.fleet.client import FleetClient, PushResult, ServiceUnavailableError

__all__ = ["Agent", "AgentConfig", "AgentState", "QueuedResult"]

_LOG = logging.getLogger("trustedge.agent")
_STATE_VERSION: Final = 1
_MAX_STATE: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class AgentConfig:
    """How the agent behaves. ``interval`` is the seconds between pushes (± ``jitter`` as
    a fraction of it); failures wait ``backoff_initial`` doubling up to ``backoff_max``;
    ``queue_max`` results are kept; ``result_format`` is ``"jwt"`` or ``"cwt"``."""

    device_id: str
    state_path: Path
    registration_token: str | None = None
    interval: float = 300.0
    jitter: float = 0.1
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    queue_max: int = 100
    result_format: str = "jwt"

    def __post_init__(self) -> None:
        if self.interval <= 0 or not 0 <= self.jitter < 1 or self.backoff_initial <= 0:
            raise ValueError("interval > 0, 0 <= jitter < 1, backoff_initial > 0")
        if self.backoff_max < self.backoff_initial or self.queue_max < 1:
            raise ValueError("backoff_max >= backoff_initial, queue_max >= 1")
        if self.result_format not in ("jwt", "cwt"):
            raise ValueError("result_format must be 'jwt' or 'cwt'")


@dataclass(frozen=True)
class QueuedResult:
    """One answer of the verifier, as received (verify ``token`` before acting on it)."""

    received_at: float
    status: str
    media_type: str
    token: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "status": self.status,
            "media_type": self.media_type,
            "token": base64.b64encode(self.token).decode("ascii"),
        }


@dataclass
class AgentState:
    """What survives a restart: enrollment, counters, the failure streak, the results."""

    device_id: str
    enrolled: bool = False
    pushes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_success_at: float | None = None
    results: list[QueuedResult] = field(default_factory=list)

    def encode(self) -> bytes:
        doc = {
            "version": _STATE_VERSION,
            "device_id": self.device_id,
            "enrolled": self.enrolled,
            "pushes": self.pushes,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_success_at": self.last_success_at,
            "results": [r.to_json() for r in self.results],
        }
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> AgentState:
        """Parse a state file strictly (``MalformedInputError`` on anything unexpected)."""
        if len(data) > _MAX_STATE:
            raise MalformedInputError("agent state file too large")
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != _STATE_VERSION:
                raise ValueError("not a version-1 agent state")
            results = [
                QueuedResult(
                    float(r["received_at"]),
                    str(r["status"]),
                    str(r["media_type"]),
                    base64.b64decode(r["token"], validate=True),
                )
                for r in doc["results"]
            ]
            last = doc["last_success_at"]
            return cls(
                device_id=str(doc["device_id"]),
                enrolled=bool(doc["enrolled"]),
                pushes=int(doc["pushes"]),
                failures=int(doc["failures"]),
                last_error=None if doc["last_error"] is None else str(doc["last_error"]),
                last_success_at=None if last is None else float(last),
                results=results,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedInputError(f"agent state file is not valid: {exc}") from None


class Agent:
    """One device's agent (see the module docstring)."""

    def __init__(
        self,
        config: AgentConfig,
        attester: Attester,
        client: FleetClient,
        *,
        now: Callable[[], float] = time.time,
        rng: _random.Random | None = None,
        models: ModelAgent | None = None,
    ) -> None:
        if attester.device_id != config.device_id:
            raise ValueError("the attester and the config name different devices")
        self.config = config
        self.attester = attester
        self.client = client
        self.models = models
        self._now = now
        self._rng = rng if rng is not None else _random.Random()  # noqa: S311 (jitter only)
        self.state = self._load()

    # -- state -----------------------------------------------------------------------
    def _load(self) -> AgentState:
        path = self.config.state_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return AgentState(self.config.device_id)
        state = AgentState.decode(data)
        if state.device_id != self.config.device_id:
            raise MalformedInputError(
                f"state file {path} belongs to device {state.device_id!r}, not"
                f" {self.config.device_id!r}"
            )
        return state

    def _save(self) -> None:
        atomic_write(self.config.state_path, self.state.encode())

    # -- steps -----------------------------------------------------------------------
    def ensure_enrolled(self) -> None:
        """Enroll once (no-op when the state says enrolled). Raises the client's errors."""
        if self.state.enrolled:
            return
        if self.config.registration_token is None:
            raise ValueError("the device is not enrolled and no registration token is set")
        request = self.attester.enrollment_request()
        credential = self.client.enroll(request, self.config.registration_token)
        secret = self.attester.activate(credential)
        self.client.activate(self.config.device_id, secret)
        self.state.enrolled = True
        self._save()
        _LOG.info("enrolled device %s", self.config.device_id)

    def push_once(self) -> PushResult:
        """One challenge → quote → evidence → result round; the result is queued."""
        self.ensure_enrolled()
        challenge = self.client.challenge(self.config.device_id)
        evidence = self.attester.evidence(
            challenge.nonce, pcrs=challenge.pcrs, ima_offset=challenge.ima_offset
        )
        if self.models is not None:
            evidence = self.models.attach(evidence, self.attester.ak)
        result = self.client.push_evidence(
            self.config.device_id, evidence.encode(), result_format=self.config.result_format
        )
        now = self._now()
        self.state.pushes += 1
        self.state.failures = 0
        self.state.last_error = None
        self.state.last_success_at = now
        self.state.results.append(QueuedResult(now, result.status, result.media_type, result.token))
        del self.state.results[: -self.config.queue_max]
        self._save()
        _LOG.info("pushed evidence: %s", result.status or "(no status)")
        return result

    def next_delay(self, *, failed: bool, retry_after: float | None = None) -> float:
        """Seconds to wait before the next push (backoff with full jitter after failures)."""
        if failed:
            cap = min(
                self.config.backoff_max,
                self.config.backoff_initial * (2 ** min(self.state.failures - 1, 30)),
            )
            delay = self._rng.uniform(0, cap)
            return max(delay, retry_after or 0.0)
        spread = self.config.interval * self.config.jitter
        return self.config.interval + self._rng.uniform(-spread, spread)

    def run(
        self,
        *,
        stop: threading.Event,
        wake: threading.Event | None = None,
        max_pushes: int | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """Push until ``stop`` is set, ``max_pushes`` pushes succeeded or ``max_attempts``
        were made; ``wake`` set by another thread (a signal handler) triggers a push now."""
        wake = wake if wake is not None else threading.Event()
        done = attempts = 0
        while not stop.is_set():
            attempts += 1
            retry_after: float | None = None
            try:
                self.push_once()
                failed = False
                done += 1
            except ServiceUnavailableError as exc:
                failed, retry_after = True, exc.retry_after
                self._failed(exc)
            except TrustedgeError as exc:  # refused, TPM failure, bad answer: retry later too
                failed = True
                self._failed(exc)
            if (max_pushes is not None and done >= max_pushes) or (
                max_attempts is not None and attempts >= max_attempts
            ):
                return
            delay = self.next_delay(failed=failed, retry_after=retry_after)
            _LOG.debug("next push in %.1f s", delay)
            deadline = time.monotonic() + delay
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if wake.wait(min(left, 0.5)):
                    wake.clear()
                    _LOG.info("push requested")
                    break

    def _failed(self, exc: TrustedgeError) -> None:
        self.state.failures += 1
        self.state.last_error = str(exc)
        self._save()
        _LOG.warning("push failed (%d in a row): %s", self.state.failures, exc)
