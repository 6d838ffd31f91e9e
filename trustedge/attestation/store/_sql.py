"""The store logic both SQL dialects share.

Dialects supply a transaction context (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction with row locks) and type names; every query is
written once here with ``?`` placeholders. Concurrency rests on two things:
check-then-update always runs inside one transaction that holds a write lock
on the row (SQLite serialises writers, PostgreSQL's ``FOR UPDATE``), and the
compare-and-set updates carry the expected old values in their ``WHERE``.

Values are always bound parameters; the only text spliced into SQL is
class-level constants (column lists, ``FOR UPDATE``, type names).
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol

from trustedge.attestation.store._model import (
    DeviceRecord,
    DeviceState,
    EnrollmentChallenge,
    EnrollmentState,
    ImaState,
    NonceRecord,
    QuoteClockState,
    StoredResult,
    check_ima_state,
    nonce_key,
)
from trustedge.attestation.store._schema import MIGRATIONS, SCHEMA_VERSION
from trustedge.errors import (
    ExpiredError,
    NonceError,
    RollbackError,
    UnsupportedAlgorithmError,
)

__all__ = ["SQLStore", "Tx"]


class Tx(Protocol):
    """One open transaction: run a statement, read rows."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; return the affected row count."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Execute; return the first row or ``None``."""
        ...


_ISSUE_NONCE: Final = (
    "INSERT INTO nonces (nonce_key, device_id, expires_at, consumed_at)"
    " VALUES (?, ?, ?, NULL) ON CONFLICT (nonce_key) DO NOTHING"
)


def _clock_bytes(clock: int) -> bytes:
    # uint64 does not fit a signed BIGINT; equality on 8 big-endian bytes is exact.
    return clock.to_bytes(8, "big")


class SQLStore(ABC):
    """A :class:`~trustedge.attestation.store.VerifierStore` over a SQL database."""

    #: Appended to a SELECT that must lock its row until commit.
    for_update = ""
    blob_type = "BLOB"
    bigint_type = "INTEGER"

    @abstractmethod
    def transaction(
        self, *, write: bool = True, sync: bool = True, single: bool = False
    ) -> AbstractContextManager[Tx]:
        """A transaction: commits on success, rolls back on error.

        ``single=True`` promises exactly one statement, which is atomic on its own;
        stores may then skip the explicit BEGIN/COMMIT (a client/server store saves two
        round trips). A ``write=False`` transaction of one statement may do the same.

        ``write=False`` promises only reads, which lets SQLite readers run
        beside a writer instead of queueing for the write lock. ``sync=False``
        marks a commit whose loss on a power cut is harmless (an issued
        nonce: losing it only fails that appraisal); stores may skip the
        disk sync for it, and the next synced commit persists it anyway.
        """

    # -- schema -----------------------------------------------------------------
    def _migrate(self, tx: Tx, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise UnsupportedAlgorithmError(
                f"store schema version {current} is newer than this trustedge"
                f" supports ({SCHEMA_VERSION})"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                tx.run(statement.format(blob=self.blob_type, bigint=self.bigint_type))
            tx.run("UPDATE trustedge_schema SET version = ?", (version,))

    def schema_version(self) -> int:
        """The schema version the database is at."""
        with self.transaction(write=False) as tx:
            row = tx.one("SELECT version FROM trustedge_schema")
        return int(row[0]) if row else 0

    # -- devices ------------------------------------------------------------------
    @staticmethod
    def _device(row: tuple[Any, ...]) -> DeviceRecord:
        return DeviceRecord(
            device_id=row[0],
            ek_public=bytes(row[1]),
            ek_certificate=None if row[2] is None else bytes(row[2]),
            ak_public=None if row[3] is None else bytes(row[3]),
            ak_name=None if row[4] is None else bytes(row[4]),
            state=EnrollmentState(row[5]),
            updated_at=int(row[6]),
        )

    _DEVICE_COLUMNS = "device_id, ek_public, ek_certificate, ak_public, ak_name, state, updated_at"

    def add_device(self, device: DeviceRecord) -> None:
        with self.transaction() as tx:
            inserted = tx.run(
                f"INSERT INTO devices ({self._DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - constant fragments only
                " ON CONFLICT (device_id) DO NOTHING",
                (
                    device.device_id,
                    device.ek_public,
                    device.ek_certificate,
                    device.ak_public,
                    device.ak_name,
                    device.state.value,
                    device.updated_at,
                ),
            )
        if inserted != 1:
            raise ValueError(f"device {device.device_id!r} is already registered")

    def get_device(self, device_id: str) -> DeviceRecord | None:
        with self.transaction(write=False) as tx:
            row = tx.one(
                f"SELECT {self._DEVICE_COLUMNS} FROM devices WHERE device_id = ?",  # noqa: S608
                (device_id,),
            )
        return None if row is None else self._device(row)

    def _require_device(self, tx: Tx, device_id: str) -> DeviceRecord:
        row = tx.one(
            f"SELECT {self._DEVICE_COLUMNS} FROM devices WHERE device_id = ?{self.for_update}",  # noqa: S608 - constant fragments only
            (device_id,),
        )
        if row is None:
            raise KeyError(device_id)
        return self._device(row)

    def bind_ak(self, device_id: str, ak_public: bytes, ak_name: bytes, now: int) -> DeviceRecord:
        with self.transaction() as tx:
            old = self._require_device(tx, device_id)
            if old.state is EnrollmentState.REVOKED:
                raise ValueError(f"device {device_id!r} is revoked")
            new = DeviceRecord(
                device_id=device_id,
                ek_public=old.ek_public,
                ek_certificate=old.ek_certificate,
                ak_public=bytes(ak_public),
                ak_name=bytes(ak_name),
                state=EnrollmentState.ENROLLED,
                updated_at=now,
            )
            tx.run(
                "UPDATE devices SET ak_public = ?, ak_name = ?, state = ?, updated_at = ?"
                " WHERE device_id = ?",
                (new.ak_public, new.ak_name, new.state.value, now, device_id),
            )
            if old.ak_name is None or not hmac.compare_digest(old.ak_name, new.ak_name or b""):
                tx.run("DELETE FROM quote_state WHERE device_id = ?", (device_id,))
                tx.run("DELETE FROM ima_state WHERE device_id = ?", (device_id,))
        return new

    def revoke_device(self, device_id: str, now: int) -> None:
        with self.transaction() as tx:
            self._require_device(tx, device_id)
            tx.run(
                "UPDATE devices SET state = ?, updated_at = ? WHERE device_id = ?",
                (EnrollmentState.REVOKED.value, now, device_id),
            )

    # -- enrollment -------------------------------------------------------------------
    def put_enrollment_challenge(self, challenge: EnrollmentChallenge) -> None:
        with self.transaction() as tx:
            self._require_device(tx, challenge.device_id)
            tx.run("DELETE FROM enrollment_challenges WHERE device_id = ?", (challenge.device_id,))
            tx.run(
                "INSERT INTO enrollment_challenges"
                " (device_id, ak_public, ak_name, secret_digest, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    challenge.device_id,
                    challenge.ak_public,
                    challenge.ak_name,
                    challenge.secret_digest,
                    challenge.expires_at,
                ),
            )

    def take_enrollment_challenge(self, device_id: str, now: int) -> EnrollmentChallenge:
        with self.transaction() as tx:
            row = tx.one(
                "SELECT ak_public, ak_name, secret_digest, expires_at"  # noqa: S608 - constant fragments only
                f" FROM enrollment_challenges WHERE device_id = ?{self.for_update}",
                (device_id,),
            )
            if row is None:
                raise NonceError(f"no pending enrollment challenge for device {device_id!r}")
            tx.run("DELETE FROM enrollment_challenges WHERE device_id = ?", (device_id,))
        challenge = EnrollmentChallenge(
            device_id=device_id,
            ak_public=bytes(row[0]),
            ak_name=bytes(row[1]),
            secret_digest=bytes(row[2]),
            expires_at=int(row[3]),
        )
        if now >= challenge.expires_at:
            raise ExpiredError(f"enrollment challenge of device {device_id!r} expired")
        return challenge

    # -- nonces -------------------------------------------------------------------------
    def issue_nonce(self, record: NonceRecord) -> None:
        with self.transaction(sync=False) as tx:
            inserted = tx.run(
                _ISSUE_NONCE, (nonce_key(record.nonce), record.device_id, record.expires_at)
            )
        if inserted != 1:
            raise ValueError("nonce already issued")

    def _consume(self, tx: Tx, key: bytes, device_id: str, now: int) -> int:
        """Mark the nonce used inside ``tx``; return its expiry (checked by the caller)."""
        # One round trip on the common path: the UPDATE takes the row lock, and a
        # concurrent consumer waits for it, then finds consumed_at set (0 rows).
        row = tx.one(
            "UPDATE nonces SET consumed_at = ? WHERE nonce_key = ? AND device_id = ?"
            " AND consumed_at IS NULL RETURNING expires_at",
            (now, key, device_id),
        )
        if row is not None:
            return int(row[0])
        row = tx.one("SELECT device_id FROM nonces WHERE nonce_key = ?", (key,))
        if row is None:
            raise NonceError("unknown nonce")
        if row[0] != device_id:
            # Not consumed: a nonce seen on the wire must not let anyone burn it.
            raise NonceError("nonce was issued to another device")
        raise NonceError("nonce already used")

    def consume_nonce(self, nonce: bytes, device_id: str, now: int) -> NonceRecord:
        key = nonce_key(bytes(nonce))
        with self.transaction() as tx:
            expires_at = self._consume(tx, key, device_id, now)
        # Raised after the commit: an expired nonce is used up as well.
        if now >= expires_at:
            raise NonceError("nonce expired")
        return NonceRecord(nonce=bytes(nonce), device_id=device_id, expires_at=expires_at)

    def purge_expired(self, now: int) -> int:
        with self.transaction() as tx:
            gone = tx.run("DELETE FROM nonces WHERE expires_at <= ?", (now,))
            gone += tx.run("DELETE FROM enrollment_challenges WHERE expires_at <= ?", (now,))
        return gone

    # -- appraisal state -----------------------------------------------------------------
    def get_quote_state(self, device_id: str) -> QuoteClockState | None:
        with self.transaction(write=False) as tx:
            row = tx.one(
                "SELECT reset_count, restart_count, clock FROM quote_state WHERE device_id = ?",
                (device_id,),
            )
        return None if row is None else self._quote(row)

    @staticmethod
    def _quote(row: tuple[Any, ...]) -> QuoteClockState:
        return QuoteClockState(int(row[0]), int(row[1]), int.from_bytes(bytes(row[2]), "big"))

    def get_ima_state(self, device_id: str) -> ImaState | None:
        with self.transaction(write=False) as tx:
            row = tx.one(
                "SELECT ima_offset, pcr10, bank FROM ima_state WHERE device_id = ?", (device_id,)
            )
        return None if row is None else self._ima(row)

    @staticmethod
    def _ima(row: tuple[Any, ...]) -> ImaState:
        state = ImaState(int(row[0]), 0, bytes(row[1]), str(row[2]))
        check_ima_state(state)
        return state

    def _cas_quote(
        self, tx: Tx, device_id: str, expected: QuoteClockState | None, new: QuoteClockState
    ) -> None:
        if not new.advances(expected):
            raise RollbackError(
                f"quote state {new} does not advance over {expected} for device {device_id!r}"
            )
        values = (new.reset_count, new.restart_count, _clock_bytes(new.clock))
        if expected is None:
            changed = tx.run(
                "INSERT INTO quote_state (device_id, reset_count, restart_count, clock)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO NOTHING",
                (device_id, *values),
            )
        else:
            changed = tx.run(
                "UPDATE quote_state SET reset_count = ?, restart_count = ?, clock = ?"
                " WHERE device_id = ? AND reset_count = ? AND restart_count = ? AND clock = ?",
                (
                    *values,
                    device_id,
                    expected.reset_count,
                    expected.restart_count,
                    _clock_bytes(expected.clock),
                ),
            )
        if changed != 1:
            raise RollbackError(
                f"quote state of device {device_id!r} changed concurrently; appraisal not recorded"
            )

    def _cas_ima(
        self,
        tx: Tx,
        device_id: str,
        expected: ImaState | None,
        new: ImaState,
        restart: bool = False,
    ) -> None:
        check_ima_state(new)
        # After a TPM reset the IMA list starts again: the offset may drop then.
        backwards = new.entries < expected.entries if expected is not None else False
        if expected is not None and ((backwards and not restart) or new.bank != expected.bank):
            raise RollbackError(f"IMA state of device {device_id!r} would go backwards")
        if expected is None:
            changed = tx.run(
                "INSERT INTO ima_state (device_id, ima_offset, pcr10, bank) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (device_id) DO NOTHING",
                (device_id, new.entries, new.pcr_value, new.bank),
            )
        else:
            changed = tx.run(
                "UPDATE ima_state SET ima_offset = ?, pcr10 = ?, bank = ?"
                " WHERE device_id = ? AND ima_offset = ? AND pcr10 = ? AND bank = ?",
                (
                    new.entries,
                    new.pcr_value,
                    new.bank,
                    device_id,
                    expected.entries,
                    expected.pcr_value,
                    expected.bank,
                ),
            )
        if changed != 1:
            raise RollbackError(
                f"IMA state of device {device_id!r} changed concurrently; appraisal not recorded"
            )

    def advance_quote_state(
        self, device_id: str, expected: QuoteClockState | None, new: QuoteClockState
    ) -> None:
        with self.transaction() as tx:
            self._require_device(tx, device_id)
            self._cas_quote(tx, device_id, expected, new)

    def advance_ima_state(self, device_id: str, expected: ImaState | None, new: ImaState) -> None:
        with self.transaction() as tx:
            self._require_device(tx, device_id)
            self._cas_ima(tx, device_id, expected, new)

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
        if result is not None and result.device_id != device_id:
            raise ValueError("the result is for another device")
        with self.transaction() as tx:
            if nonce is not None:
                if now is None:
                    raise ValueError("consuming a nonce needs now")
                if now >= self._consume(tx, nonce_key(bytes(nonce)), device_id, now):
                    raise NonceError("nonce expired")  # rolls the whole appraisal back
            self._require_device(tx, device_id)
            self._cas_quote(tx, device_id, *quote)
            if ima is not None:
                self._cas_ima(tx, device_id, *ima, restart=ima_restart)
            if result is not None:
                self._put_result(tx, result)

    def device_state(self, device_id: str) -> DeviceState:
        # One statement (one round trip, one snapshot) instead of one per table: this
        # runs twice per push (challenge and appraisal).
        cols = ", ".join(f"d.{c.strip()}" for c in self._DEVICE_COLUMNS.split(","))
        with self.transaction(write=False) as tx:
            row = tx.one(
                f"SELECT {cols}, q.reset_count, q.restart_count, q.clock,"  # noqa: S608 - constant fragments only
                " i.ima_offset, i.pcr10, i.bank, b.reference FROM devices d"
                " LEFT JOIN quote_state q ON q.device_id = d.device_id"
                " LEFT JOIN ima_state i ON i.device_id = d.device_id"
                " LEFT JOIN boot_references b ON b.device_id = d.device_id"
                " WHERE d.device_id = ?",
                (device_id,),
            )
        if row is None:
            return DeviceState(device=None, quote=None, ima=None)
        n = len(self._DEVICE_COLUMNS.split(","))
        qrow, irow = row[n : n + 3], row[n + 3 : n + 6]
        return DeviceState(
            device=self._device(row[:n]),
            quote=None if qrow[0] is None else self._quote(qrow),
            ima=None if irow[0] is None else self._ima(irow),
            boot_reference=None if row[n + 6] is None else bytes(row[n + 6]),
        )

    # -- results ------------------------------------------------------------------
    def put_result(self, result: StoredResult) -> None:
        # One upsert statement (a single round trip).
        with self.transaction(single=True) as tx:
            self._put_result(tx, result)

    @staticmethod
    def _put_result(tx: Tx, result: StoredResult) -> None:
        # The SELECT from devices makes an unknown device insert nothing, which is
        # reported as KeyError.
        changed = tx.run(
            "INSERT INTO results (device_id, media_type, token, status, created_at)"
            " SELECT device_id, ?, ?, ?, ? FROM devices WHERE device_id = ?"
            " ON CONFLICT (device_id) DO UPDATE SET media_type = excluded.media_type,"
            " token = excluded.token, status = excluded.status,"
            " created_at = excluded.created_at",
            (result.media_type, result.token, result.status, result.created_at, result.device_id),
        )
        if changed != 1:
            raise KeyError(result.device_id)

    def get_result(self, device_id: str) -> StoredResult | None:
        with self.transaction(write=False) as tx:
            row = tx.one(
                "SELECT media_type, token, status, created_at FROM results WHERE device_id = ?",
                (device_id,),
            )
        if row is None:
            return None
        return StoredResult(device_id, row[0], bytes(row[1]), row[2], int(row[3]))

    def put_boot_reference(self, device_id: str, reference: bytes | None, now: int) -> None:
        with self.transaction() as tx:
            self._require_device(tx, device_id)
            if reference is None:
                tx.run("DELETE FROM boot_references WHERE device_id = ?", (device_id,))
                return
            updated = tx.run(
                "UPDATE boot_references SET reference = ?, created_at = ? WHERE device_id = ?",
                (reference, now, device_id),
            )
            if updated == 0:
                tx.run(
                    "INSERT INTO boot_references (device_id, reference, created_at)"
                    " VALUES (?, ?, ?)",
                    (device_id, reference, now),
                )

    def get_boot_reference(self, device_id: str) -> bytes | None:
        with self.transaction(write=False) as tx:
            row = tx.one("SELECT reference FROM boot_references WHERE device_id = ?", (device_id,))
        return None if row is None else bytes(row[0])

    @abstractmethod
    def close(self) -> None:
        """Release the database connection."""

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
