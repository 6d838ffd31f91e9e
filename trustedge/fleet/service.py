"""The fleet verifier as an ASGI application (Starlette): push-mode attestation over HTTP.

Devices push: they ask for a challenge, quote over its nonce and post the evidence; the
answer is the signed EAR. A device call is authenticated by what its TPM proves (the
AK-signed quote over the server's single-use nonce, checked by the appraisal itself), so a
device stores no long-lived bearer secret; enrollment takes a registration token and the
credential-activation round trip; operator calls (results, revocation) take an operator
token (``Authorization: Bearer``). Both kinds of token are configured as SHA-256 digests.

The rules stay where they are: every decision is :class:`~trustedge.attestation.Verifier`'s
(enrollment, nonces, appraisal, signing) over the shared ``VerifierStore``; this module only
moves bytes, bounds them (body size, read time, per-device rate) and maps errors to HTTP
(``application/problem+json``). Workers hold no state of their own, so any number of them,
on any number of hosts, can share one store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trustedge.attestation import AppraisalPolicy, Evidence, TrustAnchors, Verifier
from trustedge.attestation.signer import RESULT_MEDIA_TYPES
from trustedge.attestation.store import (
    PostgresStore,
    SQLiteStore,
    open_store,
)
from trustedge.errors import (
    BackendError,
    BackendUnavailableError,
    ExpiredError,
    MalformedInputError,
    NonceError,
    PolicyError,
    TrustedgeError,
    VerificationError,
)
from trustedge.fleet.metrics import Metrics, SharedCounters
from trustedge.fleet.ratelimit import RateLimiter
from trustedge.measuredboot.predict import BootReference
from trustedge.ota.suit.auth import KeySet
from trustedge.ota.trustroot import TrustRoot

__all__ = [
    "CBOR",
    "CWT",
    "JWT",
    "ServiceConfig",
    "create_app",
    "token_digest",
]

T = TypeVar("T")

CBOR: Final = "application/cbor"
JWT: Final = RESULT_MEDIA_TYPES["jwt"]
CWT: Final = RESULT_MEDIA_TYPES["cwt"]
_PROBLEM: Final = "application/problem+json"
_MAX_JSON: Final = 64 * 1024


def token_digest(token: str) -> bytes:
    """The SHA-256 digest under which a registration or operator token is configured."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a worker needs; passed in, never read from the environment.

    ``store`` is a store location (:func:`~trustedge.attestation.store.open_store`: a SQLite
    path or a PostgreSQL URI/conninfo); each worker opens its own connection pool of
    ``threads`` connections, and at most ``threads`` appraisals run at once per worker.
    ``registration_tokens`` / ``operator_tokens`` are :func:`token_digest` values.
    ``operator_client_certificates`` admits operator calls that come with a TLS client
    certificate the server verified (the ASGI TLS extension's ``client_cert_chain``, which
    :func:`trustedge.fleet.serve` fills when ``ListenConfig.tls_client_ca`` is set).
    ``max_request_bytes`` bounds a request body, ``body_timeout`` the time to receive it
    (slow senders get 408), ``device_rate``/``device_burst`` the per-device request rate
    of challenge and evidence calls (per worker process). ``nonce_purge_interval`` is how
    often expired nonces are deleted.
    """

    store: str
    policy: AppraisalPolicy
    anchors: TrustAnchors
    registration_tokens: frozenset[bytes] = frozenset()
    operator_tokens: frozenset[bytes] = frozenset()
    operator_client_certificates: bool = False
    max_request_bytes: int = 4 * 1024 * 1024
    body_timeout: float = 10.0
    device_rate: float = 1.0
    device_burst: int = 10
    threads: int = 4
    nonce_purge_interval: float = 60.0
    sqlite_durable: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    #: The release keys (or trust root) whose signed updates set boot references
    #: (``POST /v1/devices/{id}/boot-reference``); None: that call is refused.
    release_trust: KeySet | TrustRoot | None = None

    def __post_init__(self) -> None:
        if self.max_request_bytes < 1024 or self.threads < 1 or self.body_timeout <= 0:
            raise ValueError("max_request_bytes >= 1024, threads >= 1, body_timeout > 0")


class _Problem(Exception):
    """An HTTP error answered as ``application/problem+json`` (RFC 9457)."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"type": "about:blank", "title": self.title, "status": self.status}
        body["detail"] = self.detail
        return JSONResponse(
            body, status_code=self.status, media_type=_PROBLEM, headers=self.headers
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(doc: dict[str, Any], key: str, *, required: bool = True) -> bytes | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise _Problem(400, "Bad request", f"missing field {key!r}")
        return None
    if not isinstance(value, str) or len(value) > _MAX_JSON:
        raise _Problem(400, "Bad request", f"{key!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Problem(400, "Bad request", f"{key!r} is not valid base64") from None


def _error_problem(exc: BaseException) -> _Problem:
    """The HTTP answer for an error raised by the verifier or the store."""
    if isinstance(exc, _Problem):
        return exc
    if isinstance(exc, MalformedInputError):
        return _Problem(400, "Malformed input", str(exc))
    if isinstance(exc, (NonceError, ExpiredError)):
        return _Problem(403, "Challenge not valid", str(exc))
    if isinstance(exc, VerificationError):
        return _Problem(403, "Verification failed", str(exc))
    if isinstance(exc, (BackendError, BackendUnavailableError)):
        return _Problem(503, "Store unavailable", str(exc), {"Retry-After": "1"})
    if isinstance(exc, KeyError):
        return _Problem(404, "Not found", "unknown device")
    if isinstance(exc, ValueError):
        return _Problem(409, "Conflict", str(exc))
    if isinstance(exc, TrustedgeError):
        return _Problem(400, "Rejected", str(exc))
    return _Problem(500, "Internal error", type(exc).__name__)


class _Metered:
    """ASGI middleware: counts responses by status class and requests in flight."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        self.metrics.in_flight(1)
        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.in_flight(-1)
            self.metrics.request(status[0])


class _Service:
    """Per-worker state: the store, two verifiers (JWT and CWT results) and the limits."""

    def __init__(
        self,
        config: ServiceConfig,
        metrics: Metrics,
        now: Callable[[], float],
        random: Callable[[int], bytes],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.now = now
        self.random = random
        self.limiter = RateLimiter(config.device_rate, config.device_burst)
        self.threads = anyio.CapacityLimiter(config.threads)
        self.store: SQLiteStore | PostgresStore | None = None
        self.jwt: Verifier | None = None
        self.cwt: Verifier | None = None

    # -- lifecycle -------------------------------------------------------------------
    def open(self) -> None:
        store = open_store(
            self.config.store, pool_size=self.config.threads, durable=self.config.sqlite_durable
        )
        self.store = store
        anchors = self.config.anchors
        self.jwt = Verifier(
            store, self.config.policy, replace(anchors, result_format="jwt"),
            now=self.now, random=self.random,
        )  # fmt: skip
        self.cwt = Verifier(
            store, self.config.policy, replace(anchors, result_format="cwt"),
            now=self.now, random=self.random,
        )  # fmt: skip

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            return fn(*args, **kwargs)

        return await anyio.to_thread.run_sync(call, limiter=self.threads)

    # -- request plumbing --------------------------------------------------------------
    async def body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _Problem(400, "Bad request", "Content-Length is not a number")
            if int(length) > limit:
                raise _Problem(413, "Request too large", f"at most {limit} bytes")
        chunks: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Problem(413, "Request too large", f"at most {limit} bytes")
                chunks.append(chunk)

        try:
            async with asyncio.timeout(self.config.body_timeout):  # no extra task per request
                await read()
        except TimeoutError:
            raise _Problem(408, "Request timeout", "the body took too long to arrive") from None
        return b"".join(chunks)

    async def json(self, request: Request, limit: int = _MAX_JSON) -> dict[str, Any]:
        raw = await self.body(request, limit)
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise _Problem(400, "Bad request", "body is not JSON") from None
        if not isinstance(doc, dict):
            raise _Problem(400, "Bad request", "body must be a JSON object")
        return doc

    def throttle(self, device_id: str) -> None:
        wait = self.limiter.take(device_id, time.monotonic())
        if wait > 0:
            raise _Problem(
                429,
                "Too many requests",
                f"device {device_id!r} is over its rate limit",
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    def operator(self, request: Request) -> None:
        if self.config.operator_client_certificates:
            tls = request.scope.get("extensions", {}).get("tls", {})
            if tls.get("client_cert_chain"):  # verified by the TLS handshake
                return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Problem(
                401, "Unauthorized", "operator token required", {"WWW-Authenticate": "Bearer"}
            )
        if not _token_ok(token.strip(), self.config.operator_tokens):
            raise _Problem(403, "Forbidden", "operator token not accepted")

    def device_id(self, request: Request) -> str:
        device_id = str(request.path_params["device_id"])
        if not 0 < len(device_id.encode("utf-8")) <= 256:
            raise _Problem(400, "Bad request", "device id must be 1-256 bytes")
        return device_id

    @property
    def verifier(self) -> Verifier:
        assert self.jwt is not None, "service not started"
        return self.jwt


def _token_ok(token: str, accepted: frozenset[bytes]) -> bool:
    digest = token_digest(token)
    ok = False
    for candidate in accepted:  # every candidate compared, in constant time
        ok |= hmac.compare_digest(digest, candidate)
    return ok


def _handler(
    fn: Callable[[_Service, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        service: _Service = request.app.state.service
        try:
            return await fn(service, request)
        except Exception as exc:  # every error becomes a problem document, never a traceback
            return _error_problem(exc).response()

    return endpoint


# -- endpoints ---------------------------------------------------------------------------
async def _enroll(s: _Service, request: Request) -> Response:
    doc = await s.json(request)
    token = doc.get("registration_token")
    if not isinstance(token, str) or not _token_ok(token, s.config.registration_tokens):
        raise _Problem(403, "Forbidden", "registration token not accepted")
    device_id = doc.get("device_id")
    if not isinstance(device_id, str) or not 0 < len(device_id.encode("utf-8")) <= 256:
        raise _Problem(400, "Bad request", "device_id must be a 1-256 byte string")
    ek_public = _unb64(doc, "ek_public")
    ak_public = _unb64(doc, "ak_public")
    ek_certificate = _unb64(doc, "ek_certificate", required=False)
    assert ek_public is not None and ak_public is not None
    credential = await s.run(
        s.verifier.enrollment.enroll,
        device_id,
        ek_public=ek_public,
        ak_public=ak_public,
        ek_certificate=ek_certificate,
    )
    return JSONResponse(
        {
            "enrollment_id": device_id,
            "credential_blob": _b64(credential.credential_blob),
            "encrypted_secret": _b64(credential.encrypted_secret),
            "expires_in": s.config.policy.enrollment_ttl,
        },
        status_code=201,
    )


async def _activate(s: _Service, request: Request) -> Response:
    device_id = str(request.path_params["enrollment_id"])
    doc = await s.json(request)
    secret = _unb64(doc, "secret")
    assert secret is not None
    record = await s.run(s.verifier.enrollment.complete, device_id, secret)
    return JSONResponse({"device_id": record.device_id, "state": record.state.value})


async def _challenge(s: _Service, request: Request) -> Response:
    device_id = s.device_id(request)
    s.throttle(device_id)
    await s.body(request, 1024)  # no body expected; read (and bound) whatever came
    try:
        issued = await s.run(s.verifier.challenge, device_id)
    except VerificationError as exc:
        raise _Problem(404, "Not enrolled", str(exc)) from None
    return JSONResponse(
        {
            "device_id": device_id,
            "nonce": _b64(issued.nonce),
            "pcrs": list(issued.pcrs),
            "bank": s.config.policy.bank,
            "ima_offset": issued.ima_offset,
            "expires_at": issued.expires_at,
        },
        status_code=201,
    )


def _wants_cwt(accept: str) -> bool:
    """CWT when the first result type ``Accept`` names is a CWT type; JWT otherwise."""
    for part in accept.split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in (CWT, "application/cwt"):
            return True
        if kind in (JWT, "application/jwt"):
            return False
    return False


async def _evidence(s: _Service, request: Request) -> Response:
    device_id = s.device_id(request)
    s.throttle(device_id)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != CBOR:
        raise _Problem(415, "Unsupported media type", f"evidence must be {CBOR}")
    raw = await s.body(request, s.config.max_request_bytes)
    started = time.perf_counter()
    cwt = _wants_cwt(request.headers.get("accept", ""))
    verifier = s.cwt if cwt else s.jwt
    assert verifier is not None
    media = CWT if cwt else JWT

    def appraise() -> tuple[bytes, str]:
        # Decode, appraise and store the result in one hop to a worker thread: the event
        # loop only moves bytes, and each push costs one thread hand-off.
        try:
            evidence = Evidence.decode(raw)  # unverified until appraised
        except MalformedInputError as exc:
            raise _Problem(400, "Malformed evidence", str(exc)) from None
        if evidence.device_id != device_id:
            raise _Problem(400, "Bad request", "evidence names another device than the URL")
        # keep_result: the EAR is stored as the device's latest result in the commit of
        # the appraisal itself (one transaction: nonce, state, result).
        outcome = verifier.appraise(evidence, keep_result=True)
        token = outcome.token.encode("ascii") if isinstance(outcome.token, str) else outcome.token
        return token, outcome.status.value

    try:
        token, status = await s.run(appraise)
    except BaseException:
        s.metrics.appraisal("error", time.perf_counter() - started)
        raise
    s.metrics.appraisal(status, time.perf_counter() - started)
    if isinstance(s.store, PostgresStore):  # every worker's pool gauges stay current
        s.metrics.pool(s.store.pool_stats())
    return Response(token, media_type=media, headers={"Trustedge-Status": status})


async def _result(s: _Service, request: Request) -> Response:
    s.operator(request)
    device_id = s.device_id(request)
    assert s.store is not None
    stored = await s.run(s.store.get_result, device_id)
    if stored is None:
        raise _Problem(404, "Not found", f"no result for device {device_id!r}")
    return Response(
        stored.token, media_type=stored.media_type, headers={"Trustedge-Status": stored.status}
    )


async def _revoke(s: _Service, request: Request) -> Response:
    s.operator(request)
    device_id = s.device_id(request)
    assert s.store is not None
    await s.run(s.store.revoke_device, device_id, int(s.now()))
    return JSONResponse({"device_id": device_id, "state": "revoked"})


def _b64_field(doc: dict[str, Any], key: str, limit: int) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > limit:
        raise _Problem(400, "Bad request", f"{key!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Problem(400, "Bad request", f"{key!r} is not valid base64") from None


def _predicted_reference(
    config: ServiceConfig, update: bytes, eventlog: bytes, *, now: int, confirmed: bool
) -> tuple[BootReference, Any, int]:
    """The reference of a device's next boot after ``update``: the update authenticated by
    the release trust, the device's current log parsed and checked against the boot policy
    (the events the update does not replace, and the fallback chain, come from it)."""
    from trustedge.measuredboot import boot_facts, parse_event_log
    from trustedge.ota.bootchain import boot_measurements, predict_update
    from trustedge.ota.updater import verify_envelope

    if config.release_trust is None:
        raise _Problem(409, "Conflict", "no release key configured (verifier serve --release-key)")
    manifest = verify_envelope(
        update, config.release_trust, now=now, max_envelope=max(len(update), 1)
    ).manifest
    if not boot_measurements(manifest):
        raise MalformedInputError("the update has no component with a trustedge-boot-measurement")
    pol = config.policy
    workarounds = pol.boot.workarounds
    log = parse_event_log(eventlog, workarounds=workarounds)
    verified = log.verify(log.replay(), workarounds=workarounds)
    # the reference narrows what the boot policy accepts, never widens it (appraisals still
    # run the policy); a current log the policy rejects is no base for a prediction
    pol.boot.check(verified, facts=boot_facts(verified, workarounds=workarounds))
    prediction = predict_update(manifest, verified)
    if pol.bank not in prediction.next:
        raise PolicyError(f"the update predicts nothing in the policy's bank {pol.bank}")
    reference = BootReference.from_prediction(prediction, bank=pol.bank)
    if confirmed:
        reference = reference.confirmed()
    return reference, prediction, manifest.sequence_number


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


async def _set_boot_reference(s: _Service, request: Request) -> Response:
    s.operator(request)
    device_id = s.device_id(request)
    limit = s.config.max_request_bytes
    doc = await s.json(request, limit)
    update = _b64_field(doc, "update", limit)
    eventlog = _b64_field(doc, "eventlog", limit)
    confirmed = doc.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise _Problem(400, "Bad request", "'confirmed' must be true or false")

    def put() -> tuple[BootReference, Any, int]:
        out = _predicted_reference(
            s.config, update, eventlog, now=int(s.now()), confirmed=confirmed
        )
        s.verifier.expect_boot(device_id, out[0])
        return out

    reference, prediction, sequence = await s.run(put)
    return JSONResponse(
        {
            "device_id": device_id,
            "bank": reference.bank,
            "sequence_number": sequence,
            "confirmed": confirmed,
            "pcrs": {
                str(pcr): {
                    "current": _hex(prediction.current.get(reference.bank, {}).get(pcr)),
                    "next": prediction.next[reference.bank][pcr].hex(),
                }
                for pcr in sorted(reference.expected)
            },
            "changes": [
                {"pcr": c.pcr, "event_number": c.event_number, "action": c.action}
                for c in prediction.changes
            ],
        }
    )


async def _drop_boot_reference(s: _Service, request: Request) -> Response:
    s.operator(request)
    device_id = s.device_id(request)
    await s.run(s.verifier.expect_boot, device_id, None)
    return JSONResponse({"device_id": device_id, "boot_reference": None})


async def _healthz(s: _Service, request: Request) -> Response:
    assert s.store is not None
    version = await s.run(s.store.schema_version)
    return JSONResponse({"status": "ok", "schema_version": version})


async def _metrics(s: _Service, request: Request) -> Response:
    store = s.store
    if isinstance(store, PostgresStore):
        s.metrics.pool(store.pool_stats())
    return PlainTextResponse(s.metrics.render(), media_type="text/plain; version=0.0.4")


async def _openapi(s: _Service, request: Request) -> Response:
    from trustedge.fleet.openapi import openapi_document

    return JSONResponse(openapi_document())


#: (method, path, endpoint): the API; tests check it against the OpenAPI document.
ROUTES: Final = (
    ("POST", "/v1/enrollments", _enroll),
    ("POST", "/v1/enrollments/{enrollment_id}/activation", _activate),
    ("POST", "/v1/devices/{device_id}/challenges", _challenge),
    ("POST", "/v1/devices/{device_id}/evidence", _evidence),
    ("GET", "/v1/devices/{device_id}/result", _result),
    ("POST", "/v1/devices/{device_id}/revocation", _revoke),
    ("POST", "/v1/devices/{device_id}/boot-reference", _set_boot_reference),
    ("DELETE", "/v1/devices/{device_id}/boot-reference", _drop_boot_reference),
    ("GET", "/healthz", _healthz),
    ("GET", "/metrics", _metrics),
    ("GET", "/openapi.json", _openapi),
)


def create_app(
    config: ServiceConfig,
    *,
    metrics: Metrics | None = None,
    now: Callable[[], float] = time.time,
    random: Callable[[int], bytes] = os.urandom,
) -> ASGIApp:
    """The verifier service as an ASGI application (store opened at start-up, closed at
    shutdown). ``metrics`` is this worker's row of the service-wide counters (the supervisor
    in :func:`trustedge.fleet.serve` passes one); ``now`` and ``random`` go to the verifiers.
    """
    row = metrics if metrics is not None else SharedCounters(1).row(0)
    service = _Service(config, row, now, random)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(service.open)
        purge = asyncio.create_task(_purge_nonces(service))
        try:
            yield
        finally:
            purge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purge
            await anyio.to_thread.run_sync(service.close)

    app = Starlette(
        routes=[Route(path, _handler(fn), methods=[method]) for method, path, fn in ROUTES],
        lifespan=lifespan,
    )
    app.state.service = service
    return _Metered(app, row)


async def _purge_nonces(service: _Service) -> None:
    while True:
        await asyncio.sleep(service.config.nonce_purge_interval)
        store = service.store
        if store is None:
            continue
        with contextlib.suppress(TrustedgeError):
            await service.run(store.purge_expired, int(service.now()))
