"""Store fixtures shared by the unit and integration store tests.

``open_store`` is parametrised over SQLite and PostgreSQL: every test that
uses it runs against both. It yields an *opener* (a fresh connection to the
same database on each call), which is what race tests hand to worker
processes. PostgreSQL needs ``TRUSTEDGE_PG_DSN`` (``tools/test`` exports it);
without it the PostgreSQL cases fail in CI and skip elsewhere.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.requirements import unavailable
from trustedge.attestation.store import PostgresStore, SQLiteStore
from trustedge.attestation.store._sql import SQLStore
from trustedge.errors import TrustedgeError

Opener = Callable[[], SQLStore]


def pg_dsn() -> str:
    dsn = os.environ.get("TRUSTEDGE_PG_DSN")
    if not dsn:
        unavailable("TRUSTEDGE_PG_DSN (tools/test starts PostgreSQL)")
    return dsn


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[SQLStore] = []
    parent = os.getpid()
    if request.param == "sqlite":
        path = tmp_path / "verifier.db"

        def opener() -> SQLStore:
            store = SQLiteStore(path)
            opened.append(store)
            return store

        yield opener
    else:
        dsn = pg_dsn()
        schema = "t_" + uuid.uuid4().hex[:20]

        def opener() -> SQLStore:
            store = PostgresStore(dsn, schema=schema)
            opened.append(store)
            return store

        yield opener
    if os.getpid() == parent:
        for store in opened:
            store.close()
        if request.param == "postgres":
            _drop_schema(dsn, schema)


@pytest.fixture
def store(open_store: Opener) -> SQLStore:
    return open_store()


def race(
    opener: Opener,
    action: Callable[[SQLStore, int], Any],
    *,
    workers: int = 8,
    open_first: bool = True,
) -> list[str]:
    """Run ``action(store, i)`` in ``workers`` processes released together.

    Each process opens its own store first, then all wait on a barrier so the
    actions really contend. Returns one outcome per worker: ``"ok"`` or the
    name of the trustedge error it raised (anything else is ``"crash: ..."``).
    ``open_first=False`` opens the store after the barrier instead, so the
    opening itself (schema creation, migrations) races.
    """
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    results: Any = ctx.Queue()

    def work(i: int) -> None:
        try:
            if open_first:
                store = opener()
                barrier.wait(timeout=60)
            else:
                barrier.wait(timeout=60)
                store = opener()
            action(store, i)
            results.put("ok")
        except TrustedgeError as exc:
            results.put(type(exc).__name__)
        except BaseException as exc:  # report, never hang the parent
            results.put(f"crash: {exc!r}")

    procs = [ctx.Process(target=work, args=(i,)) for i in range(workers)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return sorted(outcomes)
