"""Project-wide fixtures: shared vectors, a real swtpm, CI strictness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.swtpm import Swtpm, SwtpmUnavailable
from tests.vectors import shared_vectors_dir

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

os.environ.setdefault("TSS2_LOG", "all+none")


def _unavailable(reason: str) -> None:
    """In CI a missing component is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    """``../shared/vectors`` (or ``$TRUSTEDGE_SHARED_VECTORS``)."""
    path = shared_vectors_dir()
    if path is None:
        _unavailable("shared vectors not found (../shared/vectors or $TRUSTEDGE_SHARED_VECTORS)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def swtpm() -> Iterator[Swtpm]:
    """A session-wide swtpm; yields the process (``.tcti`` is the TCTI string).

    Tests must flush every transient handle they create: swtpm has no resource
    manager and only three transient object slots.
    """
    try:
        tpm = Swtpm().start()
    except SwtpmUnavailable as exc:
        _unavailable(str(exc))
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
                _unavailable(str(exc))
            started.append(self)

    yield _Factory
    for tpm in started:
        tpm.cleanup()


@pytest.fixture
def tcti(swtpm: Swtpm) -> str:
    """The TCTI string of the session swtpm."""
    return swtpm.tcti
