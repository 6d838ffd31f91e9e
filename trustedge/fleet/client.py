"""A small synchronous client of the fleet verifier's API (what the device agent uses).

Built on the standard library's ``http.client`` (keep-alive, TLS through ``ssl``), so a
device needs nothing beyond trustedge's own dependencies. Every answer is bounded in size
and checked for shape before use; a server or network failure raises
:class:`ServiceUnavailableError` (retry later), a refusal :class:`ServiceRefusedError`
(with the HTTP status and the problem document's detail).
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trustedge.attestation import EnrollmentRequest
from trustedge.errors import BackendError, MalformedInputError, VerificationError
from trustedge.hazmat.tpm2 import Credential

__all__ = [
    "Challenge",
    "FleetClient",
    "PushResult",
    "ServiceRefusedError",
    "ServiceUnavailableError",
]

_MAX_RESPONSE: Final = 1024 * 1024
_CBOR: Final = "application/cbor"


class ServiceUnavailableError(BackendError):
    """The verifier could not be reached or failed (network, 5xx, 429): try again later.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ServiceRefusedError(VerificationError):
    """The verifier refused the request (4xx other than 429); ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Challenge:
    """What ``POST /v1/devices/{id}/challenges`` answers."""

    device_id: str
    nonce: bytes
    pcrs: tuple[int, ...]
    bank: str
    ima_offset: int
    expires_at: int


@dataclass(frozen=True)
class PushResult:
    """The signed EAR the verifier answered a push with, and the status it announced.

    ``status`` is the ``Trustedge-Status`` header: informative only. A relying party that
    acts on the result verifies ``token`` with the verifier's public key
    (:func:`trustedge.attestation.verify_result`).
    """

    token: bytes
    media_type: str
    status: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise MalformedInputError(f"verifier answer lacks {key!r}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedInputError(f"verifier answer: {key!r} is not base64") from None


class FleetClient:
    """Talks to one verifier at ``base_url`` (``http://`` or ``https://``).

    ``ca_file`` pins the CA that signs the server's certificate (default: the system's
    roots); ``cert_file`` (with ``key_file``, or a PEM holding both) is an operator's TLS
    client certificate; ``timeout`` bounds each request in seconds. One connection is kept alive and
    re-opened after an error. Not thread-safe: one client per thread.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        timeout: float = 10.0,
    ):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("base_url must be http://HOST[:PORT] or https://HOST[:PORT]")
        self.base_url = base_url.rstrip("/")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._timeout = timeout
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(
                cafile=str(ca_file) if ca_file is not None else None
            )
            if cert_file is not None:
                self._context.load_cert_chain(
                    str(cert_file), str(key_file) if key_file is not None else None
                )
        elif cert_file is not None:
            raise ValueError("a client certificate needs an https:// base_url")
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        token: str | None = None,
    ) -> tuple[int, str, bytes, http.client.HTTPMessage]:
        """One request; returns (status, content type, body, headers). Network errors raise
        :class:`ServiceUnavailableError`; HTTP errors are returned, not raised."""
        headers = {"Content-Length": str(len(body or b""))}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=body or b"", headers=headers)
            response = conn.getresponse()
            data = response.read(_MAX_RESPONSE + 1)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServiceUnavailableError(f"verifier {self.base_url} unreachable: {exc}") from exc
        if len(data) > _MAX_RESPONSE:
            self.close()
            raise MalformedInputError("verifier answer too large")
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        ctype = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        return response.status, ctype, data, response.headers

    def _call(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[str, bytes, http.client.HTTPMessage]:
        status, ctype, data, headers = self.request(method, path, **kwargs)
        if 200 <= status < 300:
            return ctype, data, headers
        detail = data[:500].decode("utf-8", "replace")
        if ctype == "application/problem+json":
            try:
                detail = str(json.loads(data).get("detail", detail))
            except (ValueError, AttributeError):
                pass
        if status == 429 or status >= 500 or status == 408:
            retry = headers.get("Retry-After")
            raise ServiceUnavailableError(
                f"verifier answered {status}: {detail}",
                status=status,
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
        raise ServiceRefusedError(f"verifier answered {status}: {detail}", status=status)

    def _json(
        self, method: str, path: str, doc: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        body = None if doc is None else json.dumps(doc).encode("utf-8")
        _, data, _ = self._call(
            method, path, body=body, content_type="application/json" if body else None, **kw
        )
        try:
            answer = json.loads(data)
        except ValueError:
            raise MalformedInputError("verifier answer is not JSON") from None
        if not isinstance(answer, dict):
            raise MalformedInputError("verifier answer is not a JSON object")
        return answer

    @staticmethod
    def _path(device_id: str) -> str:
        return urllib.parse.quote(device_id, safe="")

    # -- API -------------------------------------------------------------------------
    def enroll(self, request: EnrollmentRequest, registration_token: str) -> Credential:
        """``POST /v1/enrollments``: the credential challenge to activate with the TPM."""
        doc: dict[str, Any] = {
            "device_id": request.device_id,
            "ek_public": _b64(request.ek_public),
            "ak_public": _b64(request.ak_public),
            "registration_token": registration_token,
        }
        if request.ek_certificate is not None:
            doc["ek_certificate"] = _b64(request.ek_certificate)
        answer = self._json("POST", "/v1/enrollments", doc)
        return Credential(_unb64(answer, "credential_blob"), _unb64(answer, "encrypted_secret"))

    def activate(self, device_id: str, secret: bytes) -> str:
        """``POST /v1/enrollments/{id}/activation``; returns the device's new state."""
        answer = self._json(
            "POST", f"/v1/enrollments/{self._path(device_id)}/activation", {"secret": _b64(secret)}
        )
        return str(answer.get("state", ""))

    def challenge(self, device_id: str) -> Challenge:
        """``POST /v1/devices/{id}/challenges``."""
        a = self._json("POST", f"/v1/devices/{self._path(device_id)}/challenges")
        pcrs = a.get("pcrs")
        offset = a.get("ima_offset")
        expires = a.get("expires_at")
        if (
            not isinstance(pcrs, list)
            or not all(isinstance(p, int) and 0 <= p <= 23 for p in pcrs)
            or not isinstance(offset, int)
            or offset < 0
            or not isinstance(expires, int)
            or not isinstance(a.get("bank"), str)
        ):
            raise MalformedInputError("verifier challenge has the wrong shape")
        return Challenge(
            device_id, _unb64(a, "nonce"), tuple(pcrs), str(a["bank"]), offset, expires
        )

    def push_evidence(
        self, device_id: str, evidence: bytes, *, result_format: str = "jwt"
    ) -> PushResult:
        """``POST /v1/devices/{id}/evidence`` (CBOR); the signed EAR in ``result_format``."""
        accept = "application/eat+cwt" if result_format == "cwt" else "application/eat+jwt"
        ctype, data, headers = self._call(
            "POST",
            f"/v1/devices/{self._path(device_id)}/evidence",
            body=evidence,
            content_type=_CBOR,
            accept=accept,
        )
        return PushResult(data, ctype, headers.get("Trustedge-Status", ""))

    def result(self, device_id: str, operator_token: str | None = None) -> PushResult:
        """``GET /v1/devices/{id}/result`` (operator: a token, or this client's certificate)."""
        ctype, data, headers = self._call(
            "GET", f"/v1/devices/{self._path(device_id)}/result", token=operator_token
        )
        return PushResult(data, ctype, headers.get("Trustedge-Status", ""))

    def revoke(self, device_id: str, operator_token: str | None = None) -> None:
        """``POST /v1/devices/{id}/revocation`` (operator)."""
        self._json("POST", f"/v1/devices/{self._path(device_id)}/revocation", token=operator_token)

    def expect_boot(
        self,
        device_id: str,
        update: bytes,
        eventlog: bytes,
        operator_token: str | None = None,
        *,
        confirmed: bool = False,
    ) -> dict[str, Any]:
        """``POST /v1/devices/{id}/boot-reference`` (operator): the device's next appraisals
        expect the boot that ``update`` (the release-signed SUIT envelope) predicts from
        ``eventlog`` (the device's current log). Returns the server's summary."""
        doc = {"update": _b64(update), "eventlog": _b64(eventlog), "confirmed": confirmed}
        path = f"/v1/devices/{self._path(device_id)}/boot-reference"
        return self._json("POST", path, doc, token=operator_token)

    def drop_boot_reference(self, device_id: str, operator_token: str | None = None) -> None:
        """``DELETE /v1/devices/{id}/boot-reference`` (operator)."""
        path = f"/v1/devices/{self._path(device_id)}/boot-reference"
        self._json("DELETE", path, token=operator_token)

    def healthz(self) -> dict[str, Any]:
        return self._json("GET", "/healthz")

    def metrics(self) -> str:
        _, data, _ = self._call("GET", "/metrics")
        return data.decode("utf-8", "replace")
