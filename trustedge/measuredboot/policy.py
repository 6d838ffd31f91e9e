"""Reference-value policies over verified event logs."""

from __future__ import annotations

from typing import Protocol

from trustedge.errors import UnsupportedAlgorithmError
from trustedge.measuredboot.replay import VerifiedEventLog

__all__ = ["EventLogPolicy", "load_policy"]


class EventLogPolicy(Protocol):
    """Anything that checks a verified log and raises PolicyError on violations."""

    def check(self, log: VerifiedEventLog) -> None: ...


def load_policy(document: bytes) -> EventLogPolicy:
    """Load a JSON policy document (not implemented yet)."""
    raise UnsupportedAlgorithmError(f"policy documents are not available yet ({len(document)} B)")
