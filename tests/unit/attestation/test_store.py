"""The VerifierStore contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.attestation.stores import Opener
from trustedge.attestation.store import (
    SCHEMA_VERSION,
    DeviceRecord,
    EnrollmentChallenge,
    EnrollmentState,
    ImaState,
    NonceRecord,
    QuoteClockState,
    SQLiteStore,
    VerifierStore,
    check_ima_state,
    open_store,
)
from trustedge.attestation.store._sql import SQLStore
from trustedge.errors import (
    BackendError,
    ExpiredError,
    NonceError,
    RollbackError,
    UnsupportedAlgorithmError,
)

NOW = 1_700_000_000
EK = b"\x00\x01ek-public"
AK = b"\x00\x23ak-public"
AK_NAME = b"\x00\x0b" + bytes(32)
NONCE = bytes(range(32))
PCR = bytes(32)


def _device(store: SQLStore, device_id: str = "dev-1") -> DeviceRecord:
    device = DeviceRecord(device_id=device_id, ek_public=EK, ek_certificate=b"cert", updated_at=NOW)
    store.add_device(device)
    return device


def test_store_satisfies_protocol(store: SQLStore) -> None:
    assert isinstance(store, VerifierStore)
    assert store.schema_version() == SCHEMA_VERSION


def test_device_roundtrip_and_duplicate(store: SQLStore) -> None:
    device = _device(store)
    assert store.get_device("dev-1") == device
    assert store.get_device("nope") is None
    with pytest.raises(ValueError, match="already registered"):
        store.add_device(device)


def test_bind_ak_enrolls_and_resets_state(store: SQLStore) -> None:
    _device(store)
    enrolled = store.bind_ak("dev-1", AK, AK_NAME, NOW + 1)
    assert enrolled.state is EnrollmentState.ENROLLED
    assert store.get_device("dev-1") == enrolled
    store.advance_quote_state("dev-1", None, QuoteClockState(1, 0, 10))
    store.advance_ima_state("dev-1", None, ImaState(5, 0, PCR, "sha256"))
    # Same AK again keeps the state; a new AK forgets it.
    store.bind_ak("dev-1", AK, AK_NAME, NOW + 2)
    assert store.get_quote_state("dev-1") == QuoteClockState(1, 0, 10)
    store.bind_ak("dev-1", AK, b"\x00\x0b" + b"\x01" * 32, NOW + 3)
    assert store.get_quote_state("dev-1") is None
    assert store.get_ima_state("dev-1") is None


def test_unknown_device_is_key_error(store: SQLStore) -> None:
    with pytest.raises(KeyError):
        store.bind_ak("ghost", AK, AK_NAME, NOW)
    with pytest.raises(KeyError):
        store.advance_quote_state("ghost", None, QuoteClockState(0, 0, 1))
    with pytest.raises(KeyError):
        store.revoke_device("ghost", NOW)


def test_revoked_device_cannot_bind(store: SQLStore) -> None:
    _device(store)
    store.revoke_device("dev-1", NOW)
    device = store.get_device("dev-1")
    assert device is not None and device.state is EnrollmentState.REVOKED
    with pytest.raises(ValueError, match="revoked"):
        store.bind_ak("dev-1", AK, AK_NAME, NOW)


def _challenge(expires_at: int = NOW + 60) -> EnrollmentChallenge:
    return EnrollmentChallenge(
        device_id="dev-1",
        ak_public=AK,
        ak_name=AK_NAME,
        secret_digest=hashlib.sha256(b"secret").digest(),
        expires_at=expires_at,
    )


def test_enrollment_challenge_single_use(store: SQLStore) -> None:
    _device(store)
    store.put_enrollment_challenge(_challenge())
    assert store.take_enrollment_challenge("dev-1", NOW) == _challenge()
    with pytest.raises(NonceError):
        store.take_enrollment_challenge("dev-1", NOW)


def test_enrollment_challenge_replaced_and_expires(store: SQLStore) -> None:
    _device(store)
    store.put_enrollment_challenge(_challenge(NOW + 5))
    store.put_enrollment_challenge(_challenge(NOW + 10))
    with pytest.raises(ExpiredError):
        store.take_enrollment_challenge("dev-1", NOW + 10)
    with pytest.raises(NonceError):  # removed even though it had expired
        store.take_enrollment_challenge("dev-1", NOW)


def test_enrollment_challenge_needs_device(store: SQLStore) -> None:
    with pytest.raises(KeyError):
        store.put_enrollment_challenge(_challenge())


def test_nonce_consumed_once(store: SQLStore) -> None:
    record = NonceRecord(NONCE, "dev-1", NOW + 30)
    store.issue_nonce(record)
    assert store.consume_nonce(NONCE, "dev-1", NOW) == record
    with pytest.raises(NonceError, match="already used"):
        store.consume_nonce(NONCE, "dev-1", NOW)


def test_nonce_duplicate_issue_refused(store: SQLStore) -> None:
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    with pytest.raises(ValueError):
        store.issue_nonce(NonceRecord(NONCE, "dev-2", NOW + 30))


@pytest.mark.parametrize(
    ("nonce", "device", "now", "message"),
    [
        pytest.param(b"\xff" * 32, "dev-1", NOW, "unknown", id="unknown"),
        pytest.param(NONCE, "dev-2", NOW, "another device", id="other-device"),
        pytest.param(NONCE, "dev-1", NOW + 30, "expired", id="expired-at-boundary"),
        pytest.param(NONCE, "dev-1", NOW + 3600, "expired", id="expired-late"),
    ],
)
def test_nonce_rejections(
    store: SQLStore, nonce: bytes, device: str, now: int, message: str
) -> None:
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    with pytest.raises(NonceError, match=message):
        store.consume_nonce(nonce, device, now)


def test_expired_nonce_is_used_up_and_other_device_is_not(store: SQLStore) -> None:
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    with pytest.raises(NonceError, match="another device"):
        store.consume_nonce(NONCE, "dev-2", NOW)
    with pytest.raises(NonceError, match="expired"):
        store.consume_nonce(NONCE, "dev-1", NOW + 31)
    with pytest.raises(NonceError, match="already used"):
        store.consume_nonce(NONCE, "dev-1", NOW)


def test_purge_expired(store: SQLStore) -> None:
    _device(store)
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    store.issue_nonce(NonceRecord(b"\x01" * 32, "dev-1", NOW + 300))
    store.put_enrollment_challenge(_challenge(NOW + 10))
    assert store.purge_expired(NOW + 30) == 2
    with pytest.raises(NonceError, match="unknown"):
        store.consume_nonce(NONCE, "dev-1", NOW)
    store.consume_nonce(b"\x01" * 32, "dev-1", NOW)


def test_quote_state_compare_and_set(store: SQLStore) -> None:
    _device(store)
    first = QuoteClockState(3, 0, 1000)
    store.advance_quote_state("dev-1", None, first)
    assert store.get_quote_state("dev-1") == first
    with pytest.raises(RollbackError):  # someone already created it
        store.advance_quote_state("dev-1", None, QuoteClockState(3, 0, 2000))
    second = QuoteClockState(3, 0, 2000)
    store.advance_quote_state("dev-1", first, second)
    with pytest.raises(RollbackError, match="concurrently"):  # stale expectation
        store.advance_quote_state("dev-1", first, QuoteClockState(3, 0, 3000))
    assert store.get_quote_state("dev-1") == second


def test_quote_state_large_clock(store: SQLStore) -> None:
    _device(store)
    top = QuoteClockState(2**32 - 1, 2**32 - 1, 2**64 - 1)
    store.advance_quote_state("dev-1", None, top)
    assert store.get_quote_state("dev-1") == top


@pytest.mark.parametrize(
    ("new", "ok"),
    [
        pytest.param(QuoteClockState(3, 0, 999), False, id="clock-back"),
        pytest.param(QuoteClockState(3, 0, 1000), False, id="same"),
        pytest.param(QuoteClockState(2, 9, 99999), False, id="reset-back"),
        pytest.param(QuoteClockState(3, 1, 5), True, id="resume-clock-may-not-matter"),
        pytest.param(QuoteClockState(4, 0, 10), True, id="reboot-clock-back"),
    ],
)
def test_quote_state_must_advance(store: SQLStore, new: QuoteClockState, ok: bool) -> None:
    _device(store)
    old = QuoteClockState(3, 0, 1000)
    store.advance_quote_state("dev-1", None, old)
    if ok:
        store.advance_quote_state("dev-1", old, new)
        assert store.get_quote_state("dev-1") == new
    else:
        with pytest.raises(RollbackError, match="does not advance"):
            store.advance_quote_state("dev-1", old, new)
        assert store.get_quote_state("dev-1") == old


def test_ima_state_compare_and_set(store: SQLStore) -> None:
    _device(store)
    a = ImaState(10, 0, b"\x01" * 32, "sha256")
    b = ImaState(20, 0, b"\x02" * 32, "sha256")
    store.advance_ima_state("dev-1", None, a)
    store.advance_ima_state("dev-1", a, b)
    assert store.get_ima_state("dev-1") == b
    with pytest.raises(RollbackError, match="concurrently"):
        store.advance_ima_state("dev-1", a, ImaState(30, 0, b"\x03" * 32, "sha256"))
    with pytest.raises(RollbackError, match="backwards"):
        store.advance_ima_state("dev-1", b, ImaState(5, 0, b"\x03" * 32, "sha256"))


def test_record_appraisal_is_all_or_nothing(store: SQLStore) -> None:
    _device(store)
    q1, q2 = QuoteClockState(1, 0, 1), QuoteClockState(1, 0, 2)
    i1 = ImaState(1, 0, b"\x01" * 32, "sha256")
    store.record_appraisal("dev-1", quote=(None, q1), ima=(None, i1))
    # The IMA half conflicts, so the quote half must not be applied either.
    with pytest.raises(RollbackError):
        store.record_appraisal(
            "dev-1", quote=(q1, q2), ima=(None, ImaState(2, 0, b"\x02" * 32, "sha256"))
        )
    assert store.get_quote_state("dev-1") == q1
    assert store.get_ima_state("dev-1") == i1
    store.record_appraisal("dev-1", quote=(q1, q2))
    assert store.get_quote_state("dev-1") == q2


def test_state_survives_reopen(open_store: Opener) -> None:
    first = open_store()
    _device(first)
    first.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    first.advance_quote_state("dev-1", None, QuoteClockState(1, 2, 3))
    first.close()
    second = open_store()
    assert second.schema_version() == SCHEMA_VERSION
    assert second.get_quote_state("dev-1") == QuoteClockState(1, 2, 3)
    second.consume_nonce(NONCE, "dev-1", NOW)


def test_threads_share_one_store(store: SQLStore) -> None:
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            store.consume_nonce(NONCE, "dev-1", NOW)
            outcomes.append("ok")
        except NonceError:
            outcomes.append("used")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["used"] * 7


# -- record validation and SQLite specifics -------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeviceRecord(device_id="", ek_public=EK),
        lambda: DeviceRecord(device_id="a\nb", ek_public=EK),
        lambda: DeviceRecord(device_id="x" * 257, ek_public=EK),
        lambda: DeviceRecord(device_id="d", ek_public=EK, state=EnrollmentState.ENROLLED),
        lambda: NonceRecord(b"short", "d", 1),
        lambda: NonceRecord(NONCE, "d", -1),
        lambda: QuoteClockState(-1, 0, 0),
        lambda: QuoteClockState(0, 2**32, 0),
        lambda: QuoteClockState(0, 0, 2**64),
        lambda: check_ima_state(ImaState(0, 0, b"short", "sha256")),
        lambda: check_ima_state(ImaState(0, 0, PCR, bank="md5")),
        lambda: check_ima_state(ImaState(0, 7, PCR, bank="sha256")),  # not at a list start
        lambda: EnrollmentChallenge("d", AK, AK_NAME, b"short", 1),
    ],
)
def test_records_reject_bad_values(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_sqlite_refuses_newer_schema(tmp_path: object) -> None:
    path = f"{tmp_path}/v.db"
    SQLiteStore(path).close()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE trustedge_schema SET version = 999")
    with pytest.raises(UnsupportedAlgorithmError, match="999"):
        SQLiteStore(path)


def test_sqlite_wal_mode(tmp_path: object) -> None:
    store = SQLiteStore(f"{tmp_path}/w.db")
    with store.transaction() as tx:
        pass
    import sqlite3

    with sqlite3.connect(f"{tmp_path}/w.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    del tx
    store.close()


def test_sqlite_unopenable_path_is_backend_error(tmp_path: object) -> None:
    with pytest.raises(BackendError):
        SQLiteStore(f"{tmp_path}/missing-dir/x.db")


def test_open_store_picks_sqlite(tmp_path: object) -> None:
    store = open_store(f"{tmp_path}/o.db")
    assert isinstance(store, SQLiteStore)
    store.close()


def test_migrations_apply_in_order_once(
    open_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trustedge.attestation.store import _sql

    first = open_store()
    _device(first)
    first.close()
    nxt = _sql.SCHEMA_VERSION + 1
    extra = (nxt, ("CREATE TABLE appraisal_log (device_id TEXT NOT NULL, at {bigint} NOT NULL)",))
    monkeypatch.setattr(_sql, "MIGRATIONS", (*_sql.MIGRATIONS, extra))
    monkeypatch.setattr(_sql, "SCHEMA_VERSION", nxt)
    second = open_store()
    assert second.schema_version() == nxt
    assert second.get_device("dev-1") is not None  # data kept across the upgrade
    with second.transaction() as tx:
        tx.run("INSERT INTO appraisal_log (device_id, at) VALUES (?, ?)", ("dev-1", NOW))
    second.close()
    third = open_store()  # already at nxt: nothing re-applied (CREATE TABLE would fail)
    assert third.schema_version() == nxt
    monkeypatch.setattr(_sql, "SCHEMA_VERSION", nxt - 1)
    with pytest.raises(UnsupportedAlgorithmError, match="newer"):
        open_store()


def test_device_state_snapshot(store: SQLStore) -> None:
    empty = store.device_state("dev-1")
    assert empty.device is None and empty.quote is None and empty.ima is None
    _device(store)
    store.record_appraisal(
        "dev-1", quote=(None, QuoteClockState(1, 0, 5)), ima=(None, ImaState(3, 0, PCR, "sha256"))
    )
    state = store.device_state("dev-1")
    assert state.device == store.get_device("dev-1")
    assert state.quote == QuoteClockState(1, 0, 5)
    assert state.ima == ImaState(3, 0, PCR, "sha256")


def test_record_appraisal_consumes_nonce_atomically(store: SQLStore) -> None:
    _device(store)
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    q1, q2 = QuoteClockState(1, 0, 1), QuoteClockState(1, 0, 2)
    store.record_appraisal("dev-1", quote=(None, q1), nonce=NONCE, now=NOW)
    assert store.get_quote_state("dev-1") == q1
    # The nonce is gone: the same evidence cannot be recorded again...
    with pytest.raises(NonceError, match="already used"):
        store.record_appraisal("dev-1", quote=(q1, q2), nonce=NONCE, now=NOW)
    assert store.get_quote_state("dev-1") == q1
    # ...and a failed compare-and-set leaves a fresh nonce unused.
    other = b"\x01" * 32
    store.issue_nonce(NonceRecord(other, "dev-1", NOW + 30))
    with pytest.raises(RollbackError):
        store.record_appraisal("dev-1", quote=(None, q2), nonce=other, now=NOW)
    store.consume_nonce(other, "dev-1", NOW)


def test_record_appraisal_expired_nonce_applies_nothing(store: SQLStore) -> None:
    _device(store)
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    with pytest.raises(NonceError, match="expired"):
        store.record_appraisal(
            "dev-1", quote=(None, QuoteClockState(1, 0, 1)), nonce=NONCE, now=NOW + 30
        )
    assert store.get_quote_state("dev-1") is None
    with pytest.raises(ValueError, match="now"):
        store.record_appraisal("dev-1", quote=(None, QuoteClockState(1, 0, 1)), nonce=NONCE)


def test_sqlite_non_durable_mode(tmp_path: object) -> None:
    import sqlite3

    store = SQLiteStore(f"{tmp_path}/nd.db", durable=False)
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    store.consume_nonce(NONCE, "dev-1", NOW)
    store.close()
    with sqlite3.connect(f"{tmp_path}/nd.db") as conn:
        assert conn.execute("SELECT count(*) FROM nonces").fetchone()[0] == 1


def test_sqlite_relaxed_sync_is_scoped(tmp_path: object) -> None:
    store = SQLiteStore(f"{tmp_path}/s.db")
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))  # a sync=False commit
    with store.transaction(write=False) as tx:
        assert tx.one("PRAGMA synchronous") == (2,)  # back to FULL afterwards
    store.close()


@pytest.mark.parametrize(
    "device_id", ["x'; DROP TABLE nonces; --", 'quote"d', "ünïcødé-設備", "a" * 256]
)
def test_hostile_device_ids_are_just_data(store: SQLStore, device_id: str) -> None:
    store.add_device(DeviceRecord(device_id=device_id, ek_public=EK))
    store.issue_nonce(NonceRecord(NONCE, device_id, NOW + 30))
    assert store.consume_nonce(NONCE, device_id, NOW).device_id == device_id
    got = store.get_device(device_id)
    assert got is not None and got.device_id == device_id


_counts = st.integers(0, 3)


@given(
    a=st.tuples(_counts, _counts, st.integers(0, 5)),
    b=st.tuples(_counts, _counts, st.integers(0, 5)),
)
def test_advances_is_the_reboot_aware_rule(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    # research note (a): resetCount up -> newer (restartCount may drop to 0,
    # clock may go back); same resetCount, restartCount up -> newer; both
    # equal -> the clock must rise.
    old, new = QuoteClockState(*a), QuoteClockState(*b)
    expected = (
        new.reset_count > old.reset_count
        or (new.reset_count == old.reset_count and new.restart_count > old.restart_count)
        or (
            new.reset_count == old.reset_count
            and new.restart_count == old.restart_count
            and new.clock > old.clock
        )
    )
    assert new.advances(old) is expected
    assert new.advances(None)


def test_open_store_recognises_conninfo(monkeypatch: pytest.MonkeyPatch) -> None:
    from trustedge.attestation import store as store_pkg

    seen: list[str] = []
    monkeypatch.setattr(store_pkg, "PostgresStore", lambda dsn, **kw: seen.append(dsn))
    for dsn in ("postgresql://u@h/db", "host=127.0.0.1 port=5432", " user=x dbname=y"):
        store_pkg.open_store(dsn)
    assert len(seen) == 3


def test_enrollment_secret_check(store: SQLStore) -> None:
    from trustedge.errors import VerificationError

    _device(store)
    store.put_enrollment_challenge(
        EnrollmentChallenge("dev-1", AK, AK_NAME, EnrollmentChallenge.digest(b"s3cret"), NOW + 60)
    )
    challenge = store.take_enrollment_challenge("dev-1", NOW)
    challenge.verify_secret(b"s3cret")
    with pytest.raises(VerificationError, match="activation failed"):
        challenge.verify_secret(b"guess")


def test_latest_result_is_replaced_per_device(store: SQLStore) -> None:
    from trustedge.attestation.store import StoredResult

    assert store.get_result("dev-1") is None
    with pytest.raises(KeyError):  # results only for known devices
        store.put_result(StoredResult("dev-1", "application/eat+jwt", b"t0", "affirming", NOW))
    _device(store)
    store.put_result(StoredResult("dev-1", "application/eat+jwt", b"t1", "affirming", NOW))
    store.put_result(StoredResult("dev-1", "application/eat+cwt", b"\x01t2", "warning", NOW + 1))
    got = store.get_result("dev-1")
    assert got == StoredResult("dev-1", "application/eat+cwt", b"\x01t2", "warning", NOW + 1)


def test_boot_reference_per_device(store: SQLStore) -> None:
    with pytest.raises(KeyError):  # references only for known devices
        store.put_boot_reference("dev-1", b"x", NOW)
    _device(store)
    assert store.get_boot_reference("dev-1") is None
    store.put_boot_reference("dev-1", b"\xa0first", NOW)
    store.put_boot_reference("dev-1", b"\xa0second", NOW + 1)
    assert store.get_boot_reference("dev-1") == b"\xa0second"
    store.put_boot_reference("dev-1", None, NOW + 2)
    assert store.get_boot_reference("dev-1") is None


def test_record_appraisal_stores_the_result_in_the_same_transaction(store: SQLStore) -> None:
    from trustedge.attestation.store import StoredResult

    _device(store)
    store.issue_nonce(NonceRecord(NONCE, "dev-1", NOW + 30))
    q1, q2 = QuoteClockState(1, 0, 1), QuoteClockState(1, 0, 2)
    r1 = StoredResult("dev-1", "application/eat+jwt", b"t1", "affirming", NOW)
    store.record_appraisal("dev-1", quote=(None, q1), nonce=NONCE, now=NOW, result=r1)
    assert store.get_result("dev-1") == r1
    # a refused commit (nonce used) stores no result either
    r2 = StoredResult("dev-1", "application/eat+jwt", b"t2", "affirming", NOW + 1)
    with pytest.raises(NonceError):
        store.record_appraisal("dev-1", quote=(q1, q2), nonce=NONCE, now=NOW, result=r2)
    # nor does a lost compare-and-set
    other = b"\x01" * 32
    store.issue_nonce(NonceRecord(other, "dev-1", NOW + 30))
    with pytest.raises(RollbackError):
        store.record_appraisal("dev-1", quote=(None, q2), nonce=other, now=NOW, result=r2)
    assert store.get_result("dev-1") == r1 and store.get_quote_state("dev-1") == q1
    with pytest.raises(ValueError, match="another device"):
        store.record_appraisal(
            "dev-2", quote=(None, q1), result=StoredResult("dev-1", "x", b"t", "affirming", NOW)
        )


def test_device_state_reads_the_boot_reference(store: SQLStore) -> None:
    _device(store)
    assert store.device_state("dev-1").boot_reference is None
    store.put_boot_reference("dev-1", b"\xa0ref", NOW)
    assert store.device_state("dev-1").boot_reference == b"\xa0ref"
