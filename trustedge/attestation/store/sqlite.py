"""SQLite verifier store: the embedded default.

One database file shared by any number of threads and processes. The file
runs in WAL mode with ``synchronous=FULL`` (an accepted appraisal survives a
power cut), every write is a ``BEGIN IMMEDIATE`` transaction (the write lock
is taken up front, so check-then-update can never interleave), and a busy
timeout makes contenders wait instead of failing. Within one process a lock
serialises use of the connection, so a store object may be shared by threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trustedge.attestation.store._sql import SQLStore, Tx
from trustedge.errors import BackendError

__all__ = ["SQLiteStore"]


class _SQLiteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, tuple(params)).fetchone()
        return row


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds
    the lock: SQLite answers a journal-mode change that meets a concurrent
    first open with "database is locked" at once, without its busy handler."""
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class SQLiteStore(SQLStore):
    """A :class:`~trustedge.attestation.store.VerifierStore` in one SQLite file.

    ``SQLiteStore(path)`` opens (creating when missing) the database at
    ``path`` and applies pending schema migrations. ``busy_timeout`` is how
    long, in seconds, a writer waits for another one before the operation
    fails with :class:`~trustedge.errors.BackendError`.

    ``durable=True`` (the default) syncs every commit to disk
    (``synchronous=FULL``): an accepted appraisal or a used nonce survives a
    power cut. ``durable=False`` (``synchronous=NORMAL``) survives process
    crashes but may lose the last commits on a power cut -- a nonce could
    then be accepted twice, or a quote-clock step forgotten; use it only when
    the disk's sync latency, not the CPU, limits throughput and that window
    is acceptable. Raises
    :class:`~trustedge.errors.UnsupportedAlgorithmError` for a database made
    by a newer trustedge.
    """

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, durable: bool = True
    ) -> None:
        self.path = Path(path)
        self._durable = durable
        self._lock = threading.Lock()
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            _switch_to_wal(self._conn, busy_timeout)
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open SQLite store {self.path}: {exc}") from exc
        with self.transaction() as tx:
            tx.run("CREATE TABLE IF NOT EXISTS trustedge_schema (version INTEGER NOT NULL)")
            row = tx.one("SELECT version FROM trustedge_schema")
            if row is None:
                tx.run("INSERT INTO trustedge_schema (version) VALUES (0)")
            self._migrate(tx, 0 if row is None else int(row[0]))

    @contextmanager
    def transaction(
        self, *, write: bool = True, sync: bool = True, single: bool = False
    ) -> Iterator[Tx]:
        del single  # an embedded database has no round trips to save
        with self._lock:
            relax = self._durable and not sync
            if relax:
                # WAL is sequential: the next FULL commit syncs these frames too.
                self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with self._begin(write) as tx:
                    yield tx
            finally:
                if relax:
                    self._conn.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _begin(self, write: bool) -> Iterator[Tx]:
        try:
            # IMMEDIATE takes the write lock up front: a check-then-update
            # can never be overtaken between its SELECT and its UPDATE.
            self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite store busy or failed: {exc}") from exc
        try:
            yield _SQLiteTx(self._conn)
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise BackendError(f"SQLite store failed: {exc}") from exc
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise BackendError(f"SQLite commit failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
