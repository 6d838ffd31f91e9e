"""Versioned schema of the verifier store, shared by SQLite and PostgreSQL.

Each migration is a list of statements applied in one transaction, after
which ``trustedge_schema.version`` is set to its number. ``{blob}`` and
``{bigint}`` stand for the dialect's byte-string and 64-bit integer types.
A database whose version is newer than :data:`SCHEMA_VERSION` is refused.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            """CREATE TABLE devices (
                device_id TEXT PRIMARY KEY,
                ek_public {blob} NOT NULL,
                ek_certificate {blob},
                ak_public {blob},
                ak_name {blob},
                state TEXT NOT NULL,
                updated_at {bigint} NOT NULL
            )""",
            """CREATE TABLE enrollment_challenges (
                device_id TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
                ak_public {blob} NOT NULL,
                ak_name {blob} NOT NULL,
                secret_digest {blob} NOT NULL,
                expires_at {bigint} NOT NULL
            )""",
            """CREATE TABLE nonces (
                nonce_key {blob} PRIMARY KEY,
                device_id TEXT NOT NULL,
                expires_at {bigint} NOT NULL,
                consumed_at {bigint}
            )""",
            "CREATE INDEX nonces_expiry ON nonces (expires_at)",
            """CREATE TABLE quote_state (
                device_id TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
                reset_count {bigint} NOT NULL,
                restart_count {bigint} NOT NULL,
                clock {blob} NOT NULL
            )""",
            """CREATE TABLE ima_state (
                device_id TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
                ima_offset {bigint} NOT NULL,
                pcr10 {blob} NOT NULL,
                bank TEXT NOT NULL
            )""",
        ),
    ),
    (
        2,
        (
            # The latest signed result of each device (``GET /v1/devices/{id}/result``):
            # one row per device, replaced by each appraisal.
            """CREATE TABLE results (
                device_id TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
                media_type TEXT NOT NULL,
                token {blob} NOT NULL,
                status TEXT NOT NULL,
                created_at {bigint} NOT NULL
            )""",
        ),
    ),
    (
        3,
        (
            # Reference values for a device's next appraisal, predicted from a
            # signed update (``measuredboot.predict.BootReference``, CBOR): one row
            # per device, replaced when the next update is expected.
            """CREATE TABLE boot_references (
                device_id TEXT PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
                reference {blob} NOT NULL,
                created_at {bigint} NOT NULL
            )""",
        ),
    ),
)

SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
