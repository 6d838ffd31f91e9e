"""``serve``: N stateless worker processes behind one listening socket, supervised.

The supervisor binds the socket (TLS is terminated by each worker), allocates the shared
metrics block and forks the workers; each worker opens its own store connections (never
shared across ``fork``) and runs uvicorn on the inherited socket. A worker that dies is
replaced. SIGTERM or SIGINT stops the service gracefully: workers stop accepting, finish
the requests in flight (an appraisal commits in one store transaction, so an appraisal cut
short by the grace period is rolled back, never half-committed), then exit.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trustedge.fleet.metrics import SharedCounters
from trustedge.fleet.service import ServiceConfig, create_app

__all__ = ["ListenConfig", "serve"]


@dataclass(frozen=True)
class ListenConfig:
    """Where and how to listen. ``port`` 0 picks a free port (reported to ``on_ready``)."""

    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 2
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: CA (PEM) whose client certificates the TLS layer verifies (optional: devices send
    #: none); the service treats a verified client certificate as an operator's.
    tls_client_ca: Path | None = None
    graceful_timeout: float = 10.0
    keep_alive: float = 30.0
    backlog: int = 2048
    max_concurrency: int | None = None


def _bind(listen: ListenConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((listen.host, listen.port))
    sock.listen(listen.backlog)
    sock.set_inheritable(True)
    return sock


def _client_cert_protocol() -> type:
    """uvicorn's httptools protocol, plus the ASGI TLS extension's ``client_cert_chain``:
    the client certificate the TLS handshake verified (against ``tls_client_ca``)."""
    import ssl

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class ClientCertProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            ssl_object = self.transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:
                tls: dict[object, object] = {"client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)]}
                self.scope["extensions"] = {"tls": tls}

    return ClientCertProtocol


def _worker(config: ServiceConfig, listen: ListenConfig, sock: socket.socket, row: int,
            counters: SharedCounters) -> None:  # fmt: skip
    import uvicorn

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app = create_app(config, metrics=counters.row(row))
    import ssl

    client_ca = listen.tls_client_ca
    uconfig = uvicorn.Config(
        app,
        http=_client_cert_protocol() if client_ca is not None else "auto",
        ssl_ca_certs=str(client_ca) if client_ca is not None else None,
        # optional: a device presents no certificate; one that is presented must verify
        ssl_cert_reqs=ssl.CERT_OPTIONAL if client_ca is not None else ssl.CERT_NONE,
        lifespan="on",
        log_config=None,  # the library configures no logging; the CLI does
        access_log=False,
        timeout_keep_alive=int(listen.keep_alive),
        timeout_graceful_shutdown=int(listen.graceful_timeout),
        limit_concurrency=listen.max_concurrency,
        ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
        ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
        server_header=False,
    )
    uvicorn.Server(uconfig).run(sockets=[sock])


def serve(
    config: ServiceConfig,
    listen: ListenConfig,
    *,
    on_ready: Callable[[str, int], None] | None = None,
) -> int:
    """Run the service until SIGTERM/SIGINT; returns the exit status (0 after a clean stop).

    ``on_ready(host, port)`` is called once the socket listens (before workers are ready to
    answer; ``GET /healthz`` tells when they are).
    """
    if listen.workers < 1:
        raise ValueError("workers must be >= 1")
    if (listen.tls_cert is None) != (listen.tls_key is None):
        raise ValueError("TLS needs both a certificate and a key file")
    if listen.tls_client_ca is not None and listen.tls_cert is None:
        raise ValueError("client certificates need TLS (a certificate and a key file)")
    sock = _bind(listen)
    host, port = sock.getsockname()[:2]
    counters = SharedCounters(listen.workers)
    children: dict[int, int] = {}  # pid -> metrics row
    stopping = False

    def spawn(row: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            status = 0
            try:
                _worker(config, listen, sock, row, counters)
            except BaseException as exc:  # report and exit: never return into the supervisor
                sys.stderr.write(f"trustedge verifier worker {row}: {exc}\n")
                status = 1
            finally:
                os._exit(status)
        children[pid] = row

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for row in range(listen.workers):
            spawn(row)
        if on_ready is not None:
            on_ready(str(host), int(port))
        deadline: float | None = None
        failures = 0
        while children:
            if stopping and deadline is None:
                deadline = time.monotonic() + listen.graceful_timeout + 5.0
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    for child in list(children):  # past the grace period: stop hard
                        try:
                            os.kill(child, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                time.sleep(0.05)
                continue
            row = children.pop(pid)
            if not stopping:
                failures += 1
                if failures > 100:
                    stop(signal.SIGTERM, None)
                    continue
                spawn(row)  # a worker died (killed, crashed): replace it
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
