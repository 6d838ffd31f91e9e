"""Races across processes: each runs on SQLite and on PostgreSQL.

Eight worker processes, each with its own connection, are released together
on a barrier and fight over one nonce or one clock state. Exactly one wins.
"""

from __future__ import annotations

from tests.unit.attestation.stores import Opener, open_store, race, store
from trustedge.attestation.store import (
    SCHEMA_VERSION,
    DeviceRecord,
    ImaState,
    NonceRecord,
    QuoteClockState,
)
from trustedge.attestation.store._sql import SQLStore
from trustedge.errors import NonceError

__all__ = ["open_store", "store"]  # fixtures imported for pytest

NOW = 1_700_000_000
NONCE = b"\x5a" * 32
WORKERS = 8


def test_parallel_nonce_consumption_one_winner(open_store: Opener, store: SQLStore) -> None:
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 60))
    outcomes = race(open_store, lambda s, i: s.consume_nonce(NONCE, "dev-1", NOW), workers=WORKERS)
    assert outcomes == ["NonceError"] * (WORKERS - 1) + ["ok"]


def test_parallel_quote_state_cas_one_winner(open_store: Opener, store: SQLStore) -> None:
    store.add_device(DeviceRecord(device_id="dev-1", ek_public=b"ek"))
    base = QuoteClockState(1, 0, 100)
    store.advance_quote_state("dev-1", None, base)

    def advance(s: SQLStore, i: int) -> None:
        s.advance_quote_state("dev-1", base, QuoteClockState(1, 0, 200 + i))

    outcomes = race(open_store, advance, workers=WORKERS)
    assert outcomes == ["RollbackError"] * (WORKERS - 1) + ["ok"]
    state = store.get_quote_state("dev-1")
    assert state is not None and 200 <= state.clock < 200 + WORKERS


def test_parallel_first_quote_state_one_winner(open_store: Opener, store: SQLStore) -> None:
    store.add_device(DeviceRecord(device_id="dev-1", ek_public=b"ek"))
    outcomes = race(
        open_store,
        lambda s, i: s.record_appraisal(
            "dev-1",
            quote=(None, QuoteClockState(1, 0, i + 1)),
            ima=(None, ImaState(i, 0, bytes([i]) * 32, "sha256")),
        ),
        workers=WORKERS,
    )
    assert outcomes == ["RollbackError"] * (WORKERS - 1) + ["ok"]


def test_parallel_distinct_nonces_all_win(open_store: Opener, store: SQLStore) -> None:
    nonces = [bytes([i]) * 32 for i in range(WORKERS)]
    for nonce in nonces:
        store.issue_nonce(NonceRecord(nonce, "dev-1", NOW + 60))

    def consume(s: SQLStore, i: int) -> None:
        s.consume_nonce(nonces[i], "dev-1", NOW)

    assert race(open_store, consume, workers=WORKERS) == ["ok"] * WORKERS


def test_parallel_first_open_migrates_once(open_store: Opener) -> None:
    # Eight processes open a brand-new database at once: schema creation and
    # migrations must serialise (SQLite write lock, PostgreSQL advisory lock).
    def check(s: SQLStore, i: int) -> None:
        assert s.schema_version() == SCHEMA_VERSION
        s.issue_nonce(NonceRecord(bytes([i]) * 32, "dev-1", NOW + 60))

    assert race(open_store, check, workers=WORKERS, open_first=False) == ["ok"] * WORKERS
    store = open_store()
    for i in range(WORKERS):
        store.consume_nonce(bytes([i]) * 32, "dev-1", NOW)


def test_threads_and_processes_together(open_store: Opener, store: SQLStore) -> None:
    # Four processes, each with four threads on one shared store object,
    # all consuming the same nonce: still exactly one winner.
    import threading

    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 60))

    def threaded(s: SQLStore, i: int) -> None:
        wins: list[int] = []
        errors: list[BaseException] = []

        def one() -> None:
            try:
                s.consume_nonce(NONCE, "dev-1", NOW)
                wins.append(1)
            except NonceError:
                pass
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        if not wins:
            raise NonceError("lost")

    assert race(open_store, threaded, workers=4) == ["NonceError"] * 3 + ["ok"]


def test_parallel_record_appraisal_same_nonce_one_winner(
    open_store: Opener, store: SQLStore
) -> None:
    # Each worker read a different (stale or fresh) state but presents the
    # same nonce: the nonce alone lets only one commit.
    store.add_device(DeviceRecord(device_id="dev-1", ek_public=b"ek"))
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 60))

    def commit(s: SQLStore, i: int) -> None:
        s.record_appraisal(
            "dev-1",
            quote=(s.get_quote_state("dev-1"), QuoteClockState(1, 0, 100 + i)),
            nonce=NONCE,
            now=NOW,
        )

    outcomes = race(open_store, commit, workers=WORKERS)
    assert outcomes.count("ok") == 1
    assert set(outcomes) <= {"ok", "NonceError", "RollbackError"}
