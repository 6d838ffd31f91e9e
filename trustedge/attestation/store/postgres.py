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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from trustedge.attestation.store._model import (
    EnrollmentState,
    ImaState,
    NonceRecord,
    QuoteClockState,
    StoredResult,
    nonce_key,
)
from trustedge.attestation.store._sql import _CHALLENGE_STATE, _ISSUE_NONCE, SQLStore, Tx
from trustedge.errors import BackendError, BackendUnavailableError

__all__ = ["PostgresStore"]

#: Arbitrary constant naming trustedge's migration lock (pg_advisory_xact_lock).
_MIGRATION_LOCK: Final = 0x7472_7573_7465_6467
#: admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or gone.
_SHUTDOWN_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
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

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "trustedge",
        connect_timeout: int = 10,
        pool_size: int = 1,
        pool_timeout: float = 30.0,
    ) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError("schema must be a lowercase SQL identifier")
        if not 1 <= pool_size <= 1000:
            raise ValueError("pool_size must be 1-1000")
        try:
            import psycopg
            import psycopg_pool
        except ImportError as exc:
            raise BackendUnavailableError(
                "PostgreSQL store needs psycopg 3 and psycopg-pool:"
                " pip install 'trustedge[postgres]'"
            ) from exc
        self._psycopg: Any = psycopg
        self.schema = schema
        self.pool_size = pool_size

        def configure(conn: Any) -> None:
            # Session-wide: a pooled connection only ever works in our schema.
            # The schema is a validated identifier; it cannot be a bound parameter.
            conn.execute(f"SET search_path TO {schema}")

        # A bounded pool: at most ``pool_size`` connections per store (one per worker
        # thread that appraises at once). A connection that breaks (server restart,
        # network cut) is discarded when it is returned, and the next transaction gets
        # a fresh one: workers recover without a restart.
        self._pool: Any = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            configure=configure,
            open=False,
            name=f"trustedge-{schema}",
        )
        try:
            self._pool.open(wait=True, timeout=max(float(connect_timeout), 1.0))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._pool.close()
            raise BackendError(f"cannot connect to PostgreSQL: {exc}") from exc
        with self.transaction() as tx:
            tx.run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            tx.run(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            tx.run("CREATE TABLE IF NOT EXISTS trustedge_schema (version INTEGER NOT NULL)")
            row = tx.one("SELECT version FROM trustedge_schema FOR UPDATE")
            if row is None:
                tx.run("INSERT INTO trustedge_schema (version) VALUES (0)")
            self._migrate(tx, 0 if row is None else int(row[0]))

    def pool_stats(self) -> dict[str, int]:
        """Connections of this store's pool: ``size`` (open), ``available`` (idle),
        ``waiting`` (requests queued for one) and ``max`` (the bound)."""
        stats = self._pool.get_stats()
        return {
            "size": int(stats.get("pool_size", 0)),
            "available": int(stats.get("pool_available", 0)),
            "waiting": int(stats.get("requests_waiting", 0)),
            "max": self.pool_size,
        }

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection, with the store's one failure rule: a psycopg error is a
        BackendError (a lost server also tests the pool's other connections, ``_lost``),
        and so is a pool failure (PoolTimeout, PoolClosed)."""
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            self._lost(exc)
            raise BackendError(f"PostgreSQL store failed: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):  # PoolTimeout, PoolClosed
                raise BackendError(f"PostgreSQL connection pool: {exc}") from exc
            raise

    @contextmanager
    def transaction(
        self, *, write: bool = True, sync: bool = True, single: bool = False
    ) -> Iterator[Tx]:
        # READ COMMITTED + FOR UPDATE serve reads and writes alike; commits
        # follow the server's synchronous_commit setting, except a sync=False
        # commit (an issued nonce), which does not wait for the WAL flush:
        # the next synced commit flushes it anyway (WAL is sequential).
        # A single statement, and every read of this store (each is one
        # statement), runs on the autocommit connection as its own transaction:
        # no BEGIN and COMMIT round trips.
        with self._connection() as conn:
            if (single or not write) and sync:
                with conn.cursor() as cur:
                    yield _PgTx(cur)
                return
            with conn.transaction(), conn.cursor() as cur:
                if not sync:
                    cur.execute("SET LOCAL synchronous_commit = off")
                yield _PgTx(cur)

    def _lost(self, exc: Exception) -> None:
        # A connection the server dropped (restart, failover, network cut): its idle
        # siblings are most likely gone too. Test them all now, so that one request per
        # outage fails here instead of one per pooled connection.
        state = getattr(exc, "sqlstate", None)
        if isinstance(exc, self._psycopg.OperationalError) and (
            state is None  # client side: the socket is gone
            or state.startswith("08")  # connection exception
            or state in _SHUTDOWN_STATES
        ):
            self._pool.check()

    def record_appraisal(
        self,
        device_id: str,
        *,
        quote: tuple[QuoteClockState | None, QuoteClockState],
        ima: tuple[ImaState | None, ImaState] | None = None,
        nonce: bytes | None = None,
        now: int | None = None,
        ima_restart: bool = False,
        result: StoredResult | None = None,
    ) -> None:
        # Pipelined: BEGIN and every statement go out in one round trip and their
        # outcomes are checked when they are back; then COMMIT, or ROLLBACK when a check
        # raised -- two round trips instead of seven, the same transaction and the same
        # checks as the base class's one-by-one execution (each statement's SQL is
        # independent of the others' results; the row locks are taken in the same order).
        steps = self._appraisal_steps(device_id, quote, ima, nonce, now, ima_restart, result)
        with self._connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                cursors = [conn.execute(step.sql.replace("?", "%s"), step.params) for step in steps]
                pipeline.sync()
                with conn.cursor() as cur:
                    tx = _PgTx(cur)  # for a check that must ask why (a refused nonce)
                    for step, done in zip(steps, cursors, strict=True):
                        row = done.fetchone() if step.returns else None
                        step.check(tx, int(done.rowcount), row)

    def issue_challenge_nonce(self, record: NonceRecord) -> int | None:
        # Pipelined, one round trip: BEGIN, SET LOCAL, the insert (only for an enrolled
        # device: INSERT ... SELECT from devices), the read of the state and the IMA
        # position, COMMIT. The read sees the device row as the insert did (same
        # transaction); a device not enrolled gets no nonce.
        key = nonce_key(record.nonce)
        with self._connection() as conn:
            with conn.pipeline(), conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                ins = conn.execute(
                    "INSERT INTO nonces (nonce_key, device_id, expires_at, consumed_at)"
                    " SELECT %s, device_id, %s, NULL FROM devices"
                    " WHERE device_id = %s AND state = %s"
                    " ON CONFLICT (nonce_key) DO NOTHING",
                    (key, record.expires_at, record.device_id, EnrollmentState.ENROLLED.value),
                )
                cur = conn.execute(_CHALLENGE_STATE.replace("?", "%s"), (record.device_id,))
            inserted = int(ins.rowcount)
            row = cur.fetchone()
        if inserted == 1:  # the insert found the device enrolled
            return 0 if row is None or row[1] is None else int(row[1])
        if row is None or row[0] != EnrollmentState.ENROLLED.value:
            return None  # nothing was inserted: the device is unknown or not enrolled
        raise ValueError("nonce already issued")

    def issue_nonce(self, record: NonceRecord) -> None:
        # Pipelined: BEGIN, SET LOCAL, INSERT and COMMIT go out in one round trip (the
        # base class's transaction takes four); the row count is read after the sync.
        params = (nonce_key(record.nonce), record.device_id, record.expires_at)
        with self._connection() as conn:
            with conn.pipeline(), conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                cur = conn.execute(_ISSUE_NONCE.replace("?", "%s"), params)
            inserted = int(cur.rowcount)
        if inserted != 1:
            raise ValueError("nonce already issued")

    def close(self) -> None:
        self._pool.close()
