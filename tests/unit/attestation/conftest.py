"""Fixtures of the attestation unit tests (stores run on SQLite and PostgreSQL)."""

from tests.unit.attestation.stores import open_store, store

__all__ = ["open_store", "store"]
