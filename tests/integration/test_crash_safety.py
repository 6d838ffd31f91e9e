"""Crash safety by system-call injection (``tools/crashsafety.py``, scenarios in
``crash_scenarios.py``): each writer of persistent state is SIGKILLed by ``strace`` at one of
its own write/fsync/rename/linkat/openat calls, and the state must then be the old or the new
version, never lower (floors), never torn, never plaintext.

CI runs one injection point per system call of each state type (the middle call); the full run
(every call) is ``python tools/crashsafety.py``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from tests.requirements import unavailable

_ROOT = Path(__file__).resolve().parent.parent.parent
_spec = importlib.util.spec_from_file_location("crashsafety", _ROOT / "tools" / "crashsafety.py")
assert _spec is not None and _spec.loader is not None
crashsafety = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crashsafety", crashsafety)
_spec.loader.exec_module(crashsafety)
scenarios = crashsafety.load_scenarios()

#: What each state type must be killed at (at least these calls occur in one write).
EXPECTED_CALLS = {
    "ota-rollback-state": {"openat", "write", "fsync", "linkat", "rename"},
    "trust-roots": {"openat", "write", "fsync", "linkat", "rename"},
    "software-tpm-state": {"openat", "write", "fsync", "linkat", "rename"},
    "verifier-store": {"pwrite64", "fdatasync"},
    "envelope-output": {"openat", "write", "fsync", "linkat", "rename"},
    "key-files": {"openat", "write", "fsync", "linkat"},
    "fleet-agent-state": {"openat", "write", "fsync", "linkat", "rename"},
    "ota-sealed-state-key": {"openat", "write", "fsync", "linkat", "rename", "unlink"},
}


@pytest.fixture(autouse=True)
def _strace() -> None:
    if shutil.which("strace") is None:
        unavailable("strace (apt-get install strace)")


def test_every_state_type_is_covered() -> None:
    assert set(EXPECTED_CALLS) == set(scenarios.SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CALLS))
def test_kills_land_at_each_call_and_lose_nothing(name: str, tmp_path: Path) -> None:
    rows = crashsafety.campaign(name, tmp_path, per_call=1, scenarios=scenarios)
    print(crashsafety.table(rows))
    assert EXPECTED_CALLS[name] <= {r.syscall for r in rows}
    for row in rows:
        assert row.tried > 0
        assert row.landed == row.tried, crashsafety.table(rows)  # every kill hit its call
        assert row.losses == [], crashsafety.table(rows)


def test_harness_catches_a_write_in_place(tmp_path: Path) -> None:
    rows = crashsafety.campaign("broken-in-place", tmp_path, scenarios=scenarios)
    writes = [r for r in rows if r.syscall == "write"]
    assert writes and writes[0].landed == writes[0].tried == 8
    losses = [loss for r in rows for loss in r.losses]
    assert any("does not load" in loss and "torn" in loss for loss in losses), losses
