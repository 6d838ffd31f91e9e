"""``trustedge verifier serve`` and ``trustedge agent``: the fleet service and the device agent."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from trustedge._cli._common import (
    EXIT_OK,
    CommandError,
    add_json_flag,
    read_input,
)

if TYPE_CHECKING:
    from trustedge.ota import KeySet
    from trustedge.ota.trustroot import TrustRoot

__all__ = ["register"]

_SMALL: Final = 1 << 20


def _tokens(path: str | None) -> frozenset[bytes]:
    """Token digests from a file of tokens (one per line; blank lines and # comments skipped)."""
    from trustedge.fleet.service import token_digest

    if path is None:
        return frozenset()
    text = read_input(path, limit=_SMALL).decode("utf-8", "replace")
    tokens = [line.strip() for line in text.splitlines()]
    return frozenset(token_digest(t) for t in tokens if t and not t.startswith("#"))


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CommandError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _release_trust(args: argparse.Namespace) -> KeySet | TrustRoot | None:
    """What authenticates the updates of ``POST /v1/devices/{id}/boot-reference``."""
    from trustedge.keys import load_public_key
    from trustedge.ota import KeySet
    from trustedge.ota.trustroot import TrustRoot

    if args.release_trust_root:
        return TrustRoot.load(read_input(args.release_trust_root, limit=_SMALL))
    if args.release_key:
        return KeySet.of([load_public_key(read_input(k, limit=1 << 16)) for k in args.release_key])
    return None


def _verifier_serve(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from trustedge._cli.attestation import _certs
    from trustedge._cli.policy import appraisal_policy_from_args
    from trustedge.attestation import TrustAnchors
    from trustedge.fleet.server import ListenConfig, serve
    from trustedge.fleet.service import ServiceConfig
    from trustedge.keys import load_private_key

    key = load_private_key(read_input(args.signing_key, limit=_SMALL))
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise CommandError("--signing-key must be a P-256 or Ed25519 key", exit_code=3)
    anchors = TrustAnchors(
        signing_key=key,
        ek_roots=_certs(args.ek_roots),
        software_roots=_certs(args.software_roots),
        intermediates=_certs(args.intermediates),
        allow_uncertified_ek=args.allow_uncertified_ek,
    )
    config = ServiceConfig(
        store=args.store,
        policy=appraisal_policy_from_args(args, read_input(args.policy, limit=_SMALL)),
        anchors=anchors,
        registration_tokens=_tokens(args.registration_tokens),
        operator_tokens=_tokens(args.operator_tokens),
        operator_client_certificates=args.operator_client_ca is not None,
        max_request_bytes=args.max_request_bytes,
        device_rate=args.rate,
        device_burst=args.burst,
        threads=args.threads,
        sqlite_durable=not args.no_sync,
        release_trust=_release_trust(args),
    )
    host, port = _listen(args.listen)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CommandError("--tls-cert and --tls-key go together")
    if args.operator_client_ca is not None and args.tls_cert is None:
        raise CommandError("--operator-client-ca needs --tls-cert and --tls-key")
    listen = ListenConfig(
        host=host,
        port=port,
        workers=args.workers,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        tls_client_ca=Path(args.operator_client_ca) if args.operator_client_ca else None,
        graceful_timeout=args.graceful_timeout,
    )
    scheme = "https" if listen.tls_cert else "http"

    def ready(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"{scheme}://{shown}:{bound_port}"
        if args.json:
            print(json.dumps({"listening": url, "workers": listen.workers}), flush=True)
        else:
            print(f"trustedge verifier: listening on {url} ({listen.workers} workers)",
                  file=sys.stderr, flush=True)  # fmt: skip

    return serve(config, listen, on_ready=ready)


def _agent(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from trustedge._cli.attestation import _ak_blob_path, _close, open_backend
    from trustedge.attestation import Attester
    from trustedge.fleet import Agent, AgentConfig, FleetClient

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s trustedge-agent %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    token = None
    if args.registration_token_file:
        token = read_input(args.registration_token_file, limit=_SMALL).decode().strip()
    config = AgentConfig(
        device_id=args.device_id,
        state_path=Path(args.state),
        registration_token=token,
        interval=args.interval,
        result_format=args.format,
    )
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        attester = Attester(backend, ak=ak, device_id=args.device_id, bank=args.bank,
                            eventlog_path=args.eventlog, ima_path=args.ima)  # fmt: skip
        models = None
        if args.model_log:  # the model-load log of 'update load', certified on every push
            from trustedge.attestation.modellog import ModelAgent

            models = ModelAgent(backend, args.model_log, (), nv_index=args.model_nv_index)
        with FleetClient(args.server, ca_file=args.ca_file, timeout=args.timeout) as client:
            agent = Agent(config, attester, client, models=models)
            stop = threading.Event()
            wake = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
            signal.signal(signal.SIGUSR1, lambda *_: wake.set())  # push now
            agent.run(stop=stop, wake=wake, max_attempts=1 if args.once else None)
            state = agent.state
    finally:
        _close(backend)
    failed = bool(args.once and state.failures)
    if args.json:  # one document, on success and on failure
        last = state.results[-1].to_json() if state.results else None
        doc = {"device_id": state.device_id, "enrolled": state.enrolled,
               "pushes": state.pushes, "failures": state.failures,
               "last_error": state.last_error, "last_result": last}  # fmt: skip
        if failed:
            doc["exit_code"] = 4
        print(json.dumps(doc))
        if failed:
            print(f"trustedge: push failed: {state.last_error}", file=sys.stderr)
            return 4
    if failed:
        raise CommandError(f"push failed: {state.last_error}", exit_code=4)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verifier = sub.add_parser("verifier", help="the fleet verifier service (HTTP)")
    vsub = verifier.add_subparsers(dest="verifier_command", metavar="COMMAND", required=True)
    p = vsub.add_parser("serve", help="serve push-mode attestation over HTTP(S)")
    p.set_defaults(handler=_verifier_serve)
    p.add_argument("--store", required=True, help="SQLite path or postgresql:// URI (shared)")
    p.add_argument("--policy", required=True, help="appraisal policy (JSON, or signed)")
    from trustedge._cli.policy import add_policy_key_args

    add_policy_key_args(p)
    p.add_argument("--signing-key", required=True, help="result signing key (P-256 or Ed25519)")
    p.add_argument("--ek-roots", action="append", default=[], metavar="PEM",
                   help="TPM manufacturer root(s): genuine hardware")  # fmt: skip
    p.add_argument("--software-roots", action="append", default=[], metavar="PEM",
                   help="software-TPM CA(s): enrolled, labelled software")  # fmt: skip
    p.add_argument("--intermediates", action="append", default=[], metavar="PEM")
    p.add_argument("--allow-uncertified-ek", action="store_true",
                   help="admit EKs without a certificate (no hardware claim)")  # fmt: skip
    p.add_argument("--registration-tokens", metavar="FILE",
                   help="file of registration tokens, one per line")  # fmt: skip
    p.add_argument("--operator-tokens", metavar="FILE",
                   help="file of operator bearer tokens, one per line")  # fmt: skip
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4,
                   help="appraisals at once and store connections per worker")  # fmt: skip
    p.add_argument("--tls-cert", help="server certificate chain (PEM)")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--operator-client-ca", metavar="PEM",
                   help="CA of operator TLS client certificates (instead of tokens)")  # fmt: skip
    p.add_argument("--rate", type=float, default=1.0, help="requests/s per device (default 1)")
    p.add_argument("--burst", type=int, default=10, help="burst per device (default 10)")
    p.add_argument("--max-request-bytes", type=int, default=4 << 20)
    p.add_argument("--graceful-timeout", type=float, default=10.0,
                   help="seconds in-flight requests get at shutdown")  # fmt: skip
    p.add_argument("--no-sync", action="store_true",
                   help="SQLite: no fsync at commit (last commits lost on power cut)")  # fmt: skip
    release = p.add_mutually_exclusive_group()
    release.add_argument("--release-key", action="append", default=[], metavar="PUB",
                         help="release key whose signed updates set boot references")  # fmt: skip
    release.add_argument("--release-trust-root", metavar="ROOT",
                         help="trust root whose firmware role signs updates")  # fmt: skip
    add_json_flag(p)

    p = sub.add_parser("agent", help="device agent: enroll once, push evidence on a schedule")
    p.set_defaults(handler=_agent)
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p)
    p.add_argument("--ak-blob", help="AK blob from tpm init (default: the software state's AK)")
    p.add_argument("--server", required=True, help="verifier URL, e.g. https://verifier:8443")
    p.add_argument("--ca-file", help="CA certificate that signs the verifier's TLS certificate")
    p.add_argument("--device-id", required=True)
    p.add_argument("--state", required=True, help="agent state file (written atomically)")
    p.add_argument("--registration-token-file", help="registration token (first enrollment)")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between pushes")
    p.add_argument("--bank", default="sha256", choices=("sha256", "sha384", "sha512"))
    p.add_argument("--eventlog", help="firmware event log (binary_bios_measurements)")
    p.add_argument("--ima", help="IMA list (binary_runtime_measurements)")
    p.add_argument("--model-log", metavar="LOG",
                   help="model-load log (update load), sent with an NV certification")  # fmt: skip
    p.add_argument("--model-nv-index", type=lambda t: int(t, 0), default=0x013E0D01,
                   help="the model log's NV extend index (default 0x013e0d01)")  # fmt: skip
    p.add_argument("--format", choices=("jwt", "cwt"), default="jwt", help="result format")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--once", action="store_true",
                   help="enroll if needed, try one push, exit (4 when it failed)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")
    add_json_flag(p)
