"""The fleet verifier served for real (``trustedge verifier serve``: supervisor + workers,
TLS on loopback), on SQLite and on PostgreSQL, driven by real software TPMs and swtpm."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.fleet_support import (
    OPERATOR_TOKEN,
    REGISTRATION_TOKEN,
    ROOT,
    Device,
    Served,
    boot_device,
    client_for,
    operator_certificate,
    serve_verifier,
    software_device,
)
from tests.swtpm import Swtpm
from tests.unit.attestation.stores import pg_dsn
from trustedge.attestation import verify_result
from trustedge.fleet import (
    FleetClient,
    ServiceRefusedError,
    ServiceUnavailableError,
)
from trustedge.fleet.openapi import openapi_document
from trustedge.fleet.service import ROUTES

FAST = ["--rate", "1000", "--burst", "1000"]


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _enroll(client: FleetClient, device: Device) -> None:
    credential = client.enroll(device.attester.enrollment_request(), REGISTRATION_TOKEN)
    assert client.activate(device.device_id, device.attester.activate(credential)) == "enrolled"


def _push(client: FleetClient, device: Device, fmt: str = "jwt") -> Any:
    ch = client.challenge(device.device_id)
    ev = device.attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)
    return client.push_evidence(device.device_id, ev.encode(), result_format=fmt), ev


def test_openapi_document_matches_routes() -> None:
    doc = openapi_document()
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    implemented = {(method, path) for method, path, _ in ROUTES}
    assert documented == implemented
    jsonschema.Draft202012Validator.check_schema({"$defs": doc["components"]["schemas"]})


def _validate(doc: dict[str, Any], path: str, method: str, status: int, body: bytes) -> None:
    """A JSON response body against the OpenAPI schema of (path, method, status)."""
    spec = openapi_document()
    responses = spec["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, (path, method, status)
    response = responses[str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response["content"]
    ctype, schema = next(iter(content.items()))
    if "json" not in ctype:
        return
    resolver_doc = {"components": spec["components"], **schema}
    jsonschema.validate(doc, resolver_doc)
    assert json.loads(body) == doc


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_enroll_push_result_revoke_over_tls(tmp_path: Path, store_kind: str) -> None:
    device = software_device(tmp_path / "dev", "edge-0001")
    roots = [_pem(device.backend.ek_ca_certificate())]  # type: ignore[attr-defined]
    location = str(tmp_path / "v.db") if store_kind == "sqlite" else _fresh_pg_database()
    with serve_verifier(tmp_path / "srv", location, software_roots=roots, extra=FAST) as served:
        assert served.url.startswith("https://")
        with client_for(served) as client:
            # a wrong registration token is refused, nothing registered
            with pytest.raises(ServiceRefusedError) as refused:
                client.enroll(device.attester.enrollment_request(), "not-the-token")
            assert refused.value.status == 403
            _enroll(client, device)
            result, _ = _push(client, device)
            assert result.status == "affirming" and result.media_type == "application/eat+jwt"
            verified = verify_result(result.token.decode(), served.signing_key.public_key())
            assert verified.status.value == "affirming"
            cwt, _ = _push(client, device, "cwt")
            assert cwt.media_type == "application/eat+cwt"
            assert verify_result(cwt.token, served.signing_key.public_key()).status.value == (
                "affirming"
            )
            latest = client.result(device.device_id, OPERATOR_TOKEN)
            assert latest.token == cwt.token and latest.status == "affirming"
            with pytest.raises(ServiceRefusedError) as denied:
                client.result(device.device_id, "wrong-operator-token")
            assert denied.value.status == 403
            status, ctype, body, _ = client.request("GET", f"/v1/devices/{device.device_id}/result")
            assert status == 401 and ctype == "application/problem+json"
            _validate(json.loads(body), "/v1/devices/{device_id}/result", "GET", 401, body)
            client.revoke(device.device_id, OPERATOR_TOKEN)
            with pytest.raises(ServiceRefusedError) as gone:
                client.challenge(device.device_id)
            assert gone.value.status == 404
        assert served.stop() == 0


def _fresh_pg_database() -> str:
    import uuid

    import psycopg

    dsn = pg_dsn()
    name = "fleet_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{dsn} dbname={name}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Device]]:
    device = software_device(tmp_path / "dev", "edge-0001")
    roots = [_pem(device.backend.ek_ca_certificate())]  # type: ignore[attr-defined]
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, extra=FAST
    ) as srv:
        with client_for(srv) as client:
            _enroll(client, device)
        yield srv, device


def test_responses_follow_the_openapi_document(served: tuple[Served, Device]) -> None:
    srv, _ = served
    with client_for(srv) as client:
        cases = [
            ("POST", "/v1/devices/edge-0001/challenges", None, None, 201,
             "/v1/devices/{device_id}/challenges"),
            ("POST", "/v1/devices/nobody/challenges", None, None, 404,
             "/v1/devices/{device_id}/challenges"),
            ("POST", "/v1/devices/edge-0001/evidence", b"\xa0", "application/cbor", 400,
             "/v1/devices/{device_id}/evidence"),
            ("POST", "/v1/devices/edge-0001/evidence", b"{}", "application/json", 415,
             "/v1/devices/{device_id}/evidence"),
            ("POST", "/v1/enrollments", b"[]", "application/json", 400, "/v1/enrollments"),
            ("POST", "/v1/enrollments", b"not json", "application/json", 400, "/v1/enrollments"),
            ("GET", "/healthz", None, None, 200, "/healthz"),
        ]  # fmt: skip
        for method, path, body, ctype, want, template in cases:
            status, got_type, data, _ = client.request(method, path, body=body, content_type=ctype)
            assert status == want, (path, status, data)
            _validate(json.loads(data), template, method, status, data)
            if status >= 400:
                assert got_type == "application/problem+json"


def test_request_size_and_slow_body_are_bounded(served: tuple[Served, Device]) -> None:
    srv, _ = served
    with client_for(srv) as client:
        status, _, data, _ = client.request(
            "POST", "/v1/devices/edge-0001/evidence",
            body=bytes(5 * 1024 * 1024), content_type="application/cbor",
        )  # fmt: skip
        assert status == 413, data
    # a body that never finishes arriving: 408 after the body timeout, not a hung worker
    ctx = ssl.create_default_context(cafile=str(srv.ca))
    host, port = "localhost", int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(
                b"POST /v1/enrollments HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            started = time.monotonic()
            answer = tls.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            assert time.monotonic() - started < 25


def test_same_nonce_from_16_clients_affirms_once(served: tuple[Served, Device]) -> None:
    srv, device = served
    with client_for(srv) as client:
        ch = client.challenge(device.device_id)
    evidence = device.attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset).encode()
    barrier = threading.Barrier(16)

    def post(_: int) -> str:
        with client_for(srv, timeout=30) as c:
            barrier.wait()
            return c.push_evidence(device.device_id, evidence).status

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(post, range(16)))
    assert statuses.count("affirming") == 1, statuses
    assert statuses.count("contraindicated") == 15, statuses


def test_a_device_over_its_rate_is_throttled_others_are_not(tmp_path: Path) -> None:
    noisy = software_device(tmp_path / "noisy", "noisy")
    quiet = software_device(tmp_path / "quiet", "quiet")
    roots = [
        _pem(d.backend.ek_ca_certificate())  # type: ignore[attr-defined]
        for d in (noisy, quiet)
    ]
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, workers=1,
        extra=["--rate", "2", "--burst", "4"],
    ) as srv:  # fmt: skip
        with client_for(srv) as client:
            _enroll(client, noisy)
            _enroll(client, quiet)
            codes = []
            for _ in range(200):  # 100x its rate within a second or so
                status, _, _, headers = client.request("POST", "/v1/devices/noisy/challenges")
                codes.append(status)
                if status == 429:
                    assert int(headers["Retry-After"]) >= 1
            assert codes.count(429) >= 190, codes.count(429)
            result, _ = _push(client, quiet)  # unaffected
            assert result.status == "affirming"


def test_metrics_sum_every_worker(served: tuple[Served, Device]) -> None:
    srv, device = served
    with client_for(srv) as client:
        for _ in range(4):
            result, _ = _push(client, device)
            assert result.status == "affirming"
    # new connections land on either worker; every scrape reports the same totals
    for _ in range(4):
        with client_for(srv) as c:
            text = c.metrics()
        assert 'trustedge_appraisals_total{status="affirming"} 4' in text
        assert "trustedge_appraisal_seconds_count 4" in text
        assert 'trustedge_appraisal_seconds_bucket{le="+Inf"} 4' in text


def test_killed_worker_is_replaced_and_nothing_is_accepted_twice(tmp_path: Path) -> None:
    """SIGKILL a worker while devices push: the supervisor replaces it, every push either
    got a signed result or an error, and no accepted evidence is accepted again."""
    devices = [software_device(tmp_path / f"d{i}", f"edge-{i}") for i in range(4)]
    roots = [_pem(d.backend.ek_ca_certificate()) for d in devices]  # type: ignore[attr-defined]
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, extra=FAST
    ) as srv:
        with client_for(srv) as client:
            for d in devices:
                _enroll(client, d)
        accepted: list[tuple[Device, bytes]] = []
        errors: list[str] = []
        stop = threading.Event()

        def pusher(device: Device) -> None:
            with client_for(srv, timeout=20) as c:
                while not stop.is_set():
                    try:
                        result, ev = _push(c, device)
                    except ServiceUnavailableError as exc:
                        errors.append(str(exc))  # told: the device retries
                        continue
                    if result.status == "affirming":
                        accepted.append((device, ev.encode()))

        threads = [threading.Thread(target=pusher, args=(d,)) for d in devices]
        for t in threads:
            t.start()
        time.sleep(2.0)
        before = srv.worker_pids()
        os.kill(before[0], signal.SIGKILL)
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join(60)
        after = srv.worker_pids()
        assert len(after) == 2 and before[0] not in after
        assert len(accepted) > 10
        with client_for(srv) as client:
            for device, wire in accepted[:: max(1, len(accepted) // 10)]:
                again = client.push_evidence(device.device_id, wire)
                assert again.status == "contraindicated"
            result, _ = _push(client, devices[0])
            assert result.status == "affirming"  # the service recovered
        assert srv.stop() == 0


def test_graceful_shutdown_exits_zero_and_closes(served: tuple[Served, Device]) -> None:
    srv, device = served
    with client_for(srv) as client:
        result, _ = _push(client, device)
        assert result.status == "affirming"
    assert srv.stop(signal.SIGTERM) == 0
    with pytest.raises(ServiceUnavailableError), client_for(srv, timeout=2) as client:
        client.healthz()


def test_agent_cli_enrolls_once_and_pushes(tmp_path: Path) -> None:
    device = software_device(tmp_path / "dev", "edge-agent-1")
    roots = [_pem(device.backend.ek_ca_certificate())]  # type: ignore[attr-defined]
    (tmp_path / "reg.token").write_text(REGISTRATION_TOKEN + "\n")
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, extra=FAST
    ) as srv:
        base = [
            sys.executable, "-m", "trustedge", "agent", "--json", "--once",
            "--software", str(tmp_path / "dev" / "tpm"), "--ak-blob", str(device.ak_blob),
            "--server", srv.url, "--ca-file", str(srv.ca), "--device-id", device.device_id,
            "--state", str(tmp_path / "agent.json"),
            "--registration-token-file", str(tmp_path / "reg.token"),
            "--eventlog", str(device.eventlog), "--ima", str(device.ima),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        first = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
        assert first.returncode == 0, first.stderr
        doc = json.loads(first.stdout)
        assert doc["enrolled"] and doc["pushes"] == 1
        assert doc["last_result"]["status"] == "affirming"
        assert "enrolled device edge-agent-1" in first.stderr
        second = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["pushes"] == 2
        assert "enrolled device" not in second.stderr  # resumed from its state file
    # the verifier is gone: the agent reports the failure, keeps its state, exits 4
    third = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
    assert third.returncode == 4
    assert json.loads(third.stdout)["failures"] == 1
    assert json.loads((tmp_path / "agent.json").read_text())["pushes"] == 2


def test_swtpm_device_pushes_through_the_service(
    tmp_path: Path, swtpm_factory: type[Swtpm]
) -> None:
    from trustedge.attestation.backends.tpm2 import Tpm2Backend

    (tmp_path / "swtpm").mkdir()
    tpm = swtpm_factory(tmp_path / "swtpm").start()  # its own: the boot extends PCRs
    with Tpm2Backend(tpm.tcti) as backend:
        device = boot_device(backend, tmp_path / "dev", "swtpm-edge")
        # swtpm's EK certificate is not from a CA we configure: pin it (no hardware claim)
        with serve_verifier(
            tmp_path / "srv", str(tmp_path / "v.db"), software_roots=[],
            extra=[*FAST, "--allow-uncertified-ek"],
        ) as srv:  # fmt: skip
            with client_for(srv) as client:
                request = device.attester.enrollment_request()
                request = type(request)(
                    request.device_id, request.ek_public, request.ak_public, None
                )
                credential = client.enroll(request, REGISTRATION_TOKEN)
                secret = device.attester.activate(credential)
                assert client.activate(device.device_id, secret) == "enrolled"
                result, _ = _push(client, device)
                assert result.status == "affirming", result


def test_agent_pushes_the_model_log(tmp_path: Path) -> None:
    """``trustedge agent --model-log``: the service's policy names the allowed model signer;
    a model loaded with verification is affirming, an extend outside the agent is not."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tests.fleet_support import policy_document
    from trustedge.attestation.backends.software import SoftwareTPM
    from trustedge.attestation.modellog import DEFAULT_NV_INDEX, ModelAgent
    from trustedge.models import sign_model

    device = software_device(tmp_path / "dev", "edge-model-1")
    roots = [_pem(device.backend.ek_ca_certificate())]  # type: ignore[attr-defined]
    vendor = ed25519.Ed25519PrivateKey.generate()
    model = tmp_path / "edge-llm"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x01" * 10_000)
    ModelAgent(device.backend, tmp_path / "models.log", [vendor.public_key()]).load(
        model, sign_model(model, vendor)
    )
    signer = vendor.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    policy = {**policy_document(), "models": {"allowed_signers": [signer.decode()]}}
    (tmp_path / "reg.token").write_text(REGISTRATION_TOKEN + "\n")
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, extra=FAST, policy=policy
    ) as srv:
        base = [
            sys.executable, "-m", "trustedge", "agent", "--json", "--once",
            "--software", str(tmp_path / "dev" / "tpm"), "--ak-blob", str(device.ak_blob),
            "--server", srv.url, "--ca-file", str(srv.ca), "--device-id", device.device_id,
            "--state", str(tmp_path / "agent.json"),
            "--registration-token-file", str(tmp_path / "reg.token"),
            "--eventlog", str(device.eventlog), "--ima", str(device.ima),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        run = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
        assert run.returncode == 0, run.stderr
        # without the log the policy's required model is missing: not affirming
        assert json.loads(run.stdout)["last_result"]["status"] == "warning"
        with_log = [*base, "--model-log", str(tmp_path / "models.log")]
        run = subprocess.run(with_log, capture_output=True, text=True, env=env, check=False)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["last_result"]["status"] == "affirming"
        # a model loaded outside the agent: its extend does not replay from the log
        SoftwareTPM(tmp_path / "dev" / "tpm").nv_extend(
            DEFAULT_NV_INDEX, hashlib.sha256(b"rogue").digest()
        )
        run = subprocess.run(with_log, capture_output=True, text=True, env=env, check=False)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["last_result"]["status"] == "contraindicated"
        with client_for(srv) as client:
            latest = client.result(device.device_id, OPERATOR_TOKEN)
        verified = verify_result(latest.token.decode(), srv.signing_key.public_key())
        assert verified.submods["model"].status.value == "contraindicated"
        assert any("model-log-mismatch" in r for r in verified.submods["model"].reasons)


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_agent_and_operator_client_certificate_over_tls(tmp_path: Path, store_kind: str) -> None:
    """TLS end to end: ``trustedge agent`` enrolls and pushes; an operator reads the result
    and revokes with a client certificate (no token); other certificates are refused."""
    device = software_device(tmp_path / "dev", "edge-tls-1")
    roots = [_pem(device.backend.ek_ca_certificate())]  # type: ignore[attr-defined]
    (tmp_path / "reg.token").write_text(REGISTRATION_TOKEN + "\n")
    op_ca, op_cert, op_key = operator_certificate(tmp_path / "op")
    _, rogue_cert, rogue_key = operator_certificate(tmp_path / "rogue", "rogue")
    location = str(tmp_path / "v.db") if store_kind == "sqlite" else _fresh_pg_database()
    with serve_verifier(
        tmp_path / "srv", location, software_roots=roots,
        extra=[*FAST, "--operator-client-ca", str(op_ca)],
    ) as srv:  # fmt: skip
        assert srv.url.startswith("https://")
        agent = [
            sys.executable, "-m", "trustedge", "agent", "--json", "--once",
            "--software", str(tmp_path / "dev" / "tpm"), "--ak-blob", str(device.ak_blob),
            "--server", srv.url, "--ca-file", str(srv.ca), "--device-id", device.device_id,
            "--state", str(tmp_path / "agent.json"),
            "--registration-token-file", str(tmp_path / "reg.token"),
            "--eventlog", str(device.eventlog), "--ima", str(device.ima),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        run = subprocess.run(agent, capture_output=True, text=True, env=env, check=False)
        assert run.returncode == 0, run.stderr
        pushed = json.loads(run.stdout)["last_result"]
        assert pushed["status"] == "affirming"
        with FleetClient(srv.url, ca_file=srv.ca, cert_file=op_cert, key_file=op_key) as op:
            latest = op.result(device.device_id)  # no token: the certificate is enough
            assert latest.status == "affirming"
            assert verify_result(latest.token.decode(), srv.signing_key.public_key())
        with client_for(srv) as anonymous:  # neither certificate nor token
            status, _, _, _ = anonymous.request("GET", f"/v1/devices/{device.device_id}/result")
            assert status == 401
        # a certificate from another CA does not get through the handshake
        with pytest.raises(ServiceUnavailableError):
            with FleetClient(srv.url, ca_file=srv.ca, cert_file=rogue_cert,
                             key_file=rogue_key) as rogue:  # fmt: skip
                rogue.revoke(device.device_id)
        with FleetClient(srv.url, ca_file=srv.ca, cert_file=op_cert, key_file=op_key) as op:
            op.revoke(device.device_id)
        again = subprocess.run(agent, capture_output=True, text=True, env=env, check=False)
        assert again.returncode == 4  # revoked: the device's push is refused
        assert srv.stop() == 0


def test_openapi_security_names_both_operator_schemes() -> None:
    doc = openapi_document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["operatorCertificate"]["type"] == "mutualTLS"
    for method, path, fn in ROUTES:
        security = doc["paths"][path][method.lower()].get("security")
        operator = fn.__name__ in (
            "_result",
            "_revoke",
            "_set_boot_reference",
            "_drop_boot_reference",
        )
        assert (security == [{"operatorToken": []}, {"operatorCertificate": []}]) == operator, path


def test_operator_client_ca_without_tls_is_a_usage_error(tmp_path: Path) -> None:
    """Client certificates only exist under TLS: asking for them on plain HTTP is refused
    (exit 2), never silently served without the check."""
    from tests.fleet_support import policy_document

    (tmp_path / "policy.json").write_text(json.dumps(policy_document()))
    key = tmp_path / "signing.pem"
    from cryptography.hazmat.primitives.asymmetric import ec

    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    op_ca, _, _ = operator_certificate(tmp_path / "op")
    args = [
        sys.executable, "-m", "trustedge", "verifier", "serve", "--json",
        "--store", str(tmp_path / "v.db"), "--policy", str(tmp_path / "policy.json"),
        "--signing-key", str(key), "--listen", "127.0.0.1:0",
        "--operator-client-ca", str(op_ca),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "--operator-client-ca needs --tls-cert" in run.stderr
    assert "Traceback" not in run.stderr
