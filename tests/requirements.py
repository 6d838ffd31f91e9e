"""The one rule for a component a test needs (swtpm, tpm2-pytss, PostgreSQL, the C extension).

Under ``tools/test`` (which installs every component and sets ``TRUSTEDGE_STRICT=1``) and in CI
a missing component is a failure, never a skip: the suite that passes there is the whole suite.
A bare ``pytest`` run outside ``tools/test`` may skip, and says why.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["STRICT", "unavailable"]

STRICT = any(
    os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("CI", "TRUSTEDGE_STRICT")
)


def unavailable(reason: str) -> NoReturn:
    """Fail (strict) or skip (a bare pytest run) because ``reason`` is missing."""
    if STRICT:
        pytest.fail(f"required under tools/test and in CI: {reason}")
    pytest.skip(reason)
