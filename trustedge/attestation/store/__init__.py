"""Verifier state: devices, enrollment challenges, nonces, quote clocks, IMA positions.

:class:`VerifierStore` is the protocol an appraisal verifier needs;
:class:`SQLiteStore` is the embedded default and :class:`PostgresStore`
(optional extra ``trustedge[postgres]``) the shared one for fleets whose
appraisal workers run on many hosts. Both pass the same test suite, race
tests included: a nonce is consumed once, a quote-clock state advances once.

:func:`open_store` picks the implementation from a location string: a libpq
URI (``postgresql://...``) or conninfo (``host=... dbname=...``) opens
PostgreSQL; anything else is a SQLite file path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from trustedge.attestation.store._model import (
    DeviceRecord,
    DeviceState,
    EnrollmentChallenge,
    EnrollmentState,
    ImaState,
    NonceRecord,
    QuoteClockState,
    StoredResult,
    VerifierStore,
    check_ima_state,
    nonce_key,
)
from trustedge.attestation.store._schema import SCHEMA_VERSION
from trustedge.attestation.store.postgres import PostgresStore
from trustedge.attestation.store.sqlite import SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "DeviceRecord",
    "DeviceState",
    "EnrollmentChallenge",
    "EnrollmentState",
    "ImaState",
    "NonceRecord",
    "PostgresStore",
    "QuoteClockState",
    "SQLiteStore",
    "StoredResult",
    "VerifierStore",
    "check_ima_state",
    "nonce_key",
    "open_store",
]


_CONNINFO = re.compile(r"\s*(host|hostaddr|port|dbname|user|service|sslmode)\s*=")


def open_store(
    location: str | Path, *, pool_size: int = 1, durable: bool = True
) -> SQLiteStore | PostgresStore:
    """Open the store at ``location`` (see the module docstring for the forms).

    ``pool_size`` bounds a PostgreSQL store's connection pool; ``durable`` is SQLite's
    (``False`` skips fsync at commit: faster, loses the last commits on a power cut).
    """
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")) or _CONNINFO.match(text):
        return PostgresStore(text, pool_size=pool_size)
    return SQLiteStore(text, durable=durable)


if TYPE_CHECKING:  # mypy --strict proves both stores implement the protocol

    def _sqlite_is_a_store(store: SQLiteStore) -> VerifierStore:
        return store

    def _postgres_is_a_store(store: PostgresStore) -> VerifierStore:
        return store
