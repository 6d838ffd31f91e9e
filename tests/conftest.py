"""Project-wide fixtures: the vendored third-party corpora, a real swtpm, strictness.

Under tools/test and in CI (``tests.requirements.STRICT``) a run with any skipped test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.requirements import STRICT, unavailable
from tests.swtpm import Swtpm, SwtpmUnavailable
from tests.vectors import third_party_dir

os.environ.setdefault("TSS2_LOG", "all+none")


@pytest.fixture(scope="session")
def third_party() -> Path:
    """The vendored third-party corpora, ``tests/data/third_party`` (always present)."""
    return third_party_dir()


@pytest.fixture(scope="session")
def swtpm() -> Iterator[Swtpm]:
    """A session-wide swtpm; yields the process (``.tcti`` is the TCTI string).

    Tests must flush every transient handle they create: swtpm has no resource
    manager and only three transient object slots.
    """
    try:
        tpm = Swtpm().start()
    except SwtpmUnavailable as exc:
        unavailable(str(exc))
        raise
    try:
        yield tpm
    finally:
        tpm.cleanup()


@pytest.fixture
def swtpm_factory(tmp_path: Path) -> Iterator[type[Swtpm]]:
    """Start extra swtpm instances (e.g. for restart tests); all are stopped afterwards."""
    started: list[Swtpm] = []

    class _Factory(Swtpm):
        def __init__(self, state_dir: Path | None = None) -> None:
            try:
                super().__init__(state_dir)
            except SwtpmUnavailable as exc:
                unavailable(str(exc))
            started.append(self)

    yield _Factory
    for tpm in started:
        tpm.cleanup()


@pytest.fixture
def tcti(swtpm: Swtpm) -> str:
    """The TCTI string of the session swtpm."""
    return swtpm.tcti


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Strict runs fail when anything was skipped: nothing skips under tools/test or in CI."""
    if not STRICT or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        if reporter is not None:
            reporter.write_line(f"FAILED: {skipped} test(s) skipped in a strict run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
