"""YAML view of an event log in the layout of ``tpm2_eventlog --eventlog-version=2``."""

from __future__ import annotations

from trustedge.errors import UnsupportedAlgorithmError
from trustedge.measuredboot.replay import EventLog

__all__ = ["to_tpm2_eventlog_yaml"]


def to_tpm2_eventlog_yaml(log: EventLog) -> str:
    """Render ``log`` as tpm2_eventlog YAML (not implemented yet)."""
    raise UnsupportedAlgorithmError(f"YAML output is not available yet ({log.format} log)")
