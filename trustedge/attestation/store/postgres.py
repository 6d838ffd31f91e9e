"""PostgreSQL verifier store: one database shared by appraisal workers on many hosts.

Needs the optional extra ``trustedge[postgres]`` (psycopg 3), imported only
when a store is opened. Every operation is one transaction at READ COMMITTED;
rows that a check-then-update depends on are read ``FOR UPDATE``, so a
concurrent transaction on the same row waits and then sees the committed
result (a used nonce, a moved clock state). Migrations run under a
transaction-level advisory lock so workers starting together do not race.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from trustedge.attestation.store._sql import SQLStore, Tx
from trustedge.errors import BackendError, BackendUnavailableError

__all__ = ["PostgresStore"]

#: Arbitrary constant naming trustedge's migration lock (pg_advisory_xact_lock).
_MIGRATION_LOCK: Final = 0x7472_7573_7465_6467
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class _PgTx:
    __slots__ = ("_cur",)

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(sql.replace("?", "%s"), tuple(params))
        return int(self._cur.rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._cur.execute(sql.replace("?", "%s"), tuple(params))
        row: tuple[Any, ...] | None = self._cur.fetchone()
        return row


class PostgresStore(SQLStore):
    """A :class:`~trustedge.attestation.store.VerifierStore` in PostgreSQL.

    ``dsn`` is a libpq conninfo string or URI. ``schema`` names the PostgreSQL
    schema holding the tables (created when missing; lowercase identifier),
    so several verifiers -- or test runs -- can share one database. Raises
    :class:`~trustedge.errors.BackendUnavailableError` when psycopg is not
    installed and :class:`~trustedge.errors.BackendError` when the server
    cannot be reached or fails.
    """

    for_update = " FOR UPDATE"
    blob_type = "BYTEA"
    bigint_type = "BIGINT"

    def __init__(self, dsn: str, *, schema: str = "trustedge", connect_timeout: int = 10) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema must be a lowercase SQL identifier")
        try:
            import psycopg
        except ImportError as exc:
            raise BackendUnavailableError(
                "PostgreSQL store needs psycopg 3: pip install 'trustedge[postgres]'"
            ) from exc
        self._psycopg: Any = psycopg
        self.schema = schema
        self._lock = threading.Lock()
        try:
            self._conn: Any = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise BackendError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            # Session-wide: this connection only ever works in our schema.
            # The schema is a validated identifier; it cannot be a bound parameter.
            self._conn.execute(f"SET search_path TO {schema}")
        except psycopg.Error as exc:
            self._conn.close()
            raise BackendError(f"PostgreSQL store failed: {exc}") from exc
        with self.transaction() as tx:
            tx.run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            tx.run(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            tx.run("CREATE TABLE IF NOT EXISTS trustedge_schema (version INTEGER NOT NULL)")
            row = tx.one("SELECT version FROM trustedge_schema FOR UPDATE")
            if row is None:
                tx.run("INSERT INTO trustedge_schema (version) VALUES (0)")
            self._migrate(tx, 0 if row is None else int(row[0]))

    @contextmanager
    def transaction(self, *, write: bool = True, sync: bool = True) -> Iterator[Tx]:
        # READ COMMITTED + FOR UPDATE serve reads and writes alike; commits
        # follow the server's synchronous_commit setting, except a sync=False
        # commit (an issued nonce), which does not wait for the WAL flush:
        # the next synced commit flushes it anyway (WAL is sequential).
        del write
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    if not sync:
                        cur.execute("SET LOCAL synchronous_commit = off")
                    yield _PgTx(cur)
            except psycopg.Error as exc:
                raise BackendError(f"PostgreSQL store failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
