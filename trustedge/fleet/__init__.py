"""The fleet verifier service and the device agent (push-mode attestation over HTTP).

* :func:`serve` runs :func:`create_app` (an ASGI app on Starlette, served by uvicorn) in N
  stateless worker processes behind one listening socket; every worker, on any host, shares
  the ``VerifierStore`` (SQLite on one host, PostgreSQL for many). ADR 0006 records the stack.
* :class:`Agent` is the device side: enroll once, push evidence on a schedule and on demand.
* :class:`FleetClient` speaks the API (``trustedge/fleet/openapi.json``).

Needs the optional extra ``trustedge[fleet]`` for the service (Starlette, uvicorn); the
agent and the client need only the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export
from trustedge.fleet.agent import Agent, AgentConfig, AgentState, QueuedResult
from trustedge.fleet.client import (
    Challenge,
    FleetClient,
    PushResult,
    ServiceRefusedError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    from trustedge.fleet.server import ListenConfig, serve
    from trustedge.fleet.service import ServiceConfig, create_app, token_digest

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentState",
    "Challenge",
    "FleetClient",
    "ListenConfig",
    "PushResult",
    "QueuedResult",
    "ServiceConfig",
    "ServiceRefusedError",
    "ServiceUnavailableError",
    "create_app",
    "serve",
    "token_digest",
]

_LAZY = {
    "ListenConfig": "trustedge.fleet.server",
    "serve": "trustedge.fleet.server",
    "ServiceConfig": "trustedge.fleet.service",
    "create_app": "trustedge.fleet.service",
    "token_digest": "trustedge.fleet.service",
}


def __getattr__(name: str) -> object:
    # The service side imports Starlette and uvicorn; a device running only the agent
    # never pays for (or needs) them.
    return load_export(__name__, _LAZY, name)
