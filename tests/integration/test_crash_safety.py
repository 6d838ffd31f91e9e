"""Crash safety: writers of persistent state are SIGKILLed at random points
(``tools/crashsafety.py``) and the state must load after every kill, never
lose an acknowledged write, never go back, and never show partial output
under its final name.

``STATE_TYPES`` lists what is checked. The reference writer below is the
pattern every trustedge state writer follows (temp file, fsync, rename, fsync
dir); two deliberately broken writers show that the harness catches a torn
write and a write acknowledged too early. To add a real state, append a
``StateType`` naming its writer and checker functions (see the module
docstring of ``tools/crashsafety.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent.parent
_spec = importlib.util.spec_from_file_location("crashsafety", _ROOT / "tools" / "crashsafety.py")
assert _spec is not None and _spec.loader is not None
crashsafety = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crashsafety", crashsafety)
_spec.loader.exec_module(crashsafety)
StateType = crashsafety.StateType

HERE = "tests.integration.test_crash_safety"
STATE = "state.json"
PAYLOAD = 32 * 1024  # big enough that a write takes a while and can be torn


# -- the reference state: a versioned JSON document with a digest --------------


def _document(version: int) -> bytes:
    body = hashlib.shake_256(version.to_bytes(8, "big")).hexdigest(PAYLOAD // 2)
    digest = hashlib.sha256(body.encode()).hexdigest()
    return json.dumps({"version": version, "body": body, "sha256": digest}).encode()


def check_state(state_dir: Path) -> int:
    """Load ``state.json`` as a product would: missing is version 0, anything torn raises."""
    path = state_dir / STATE
    if not path.exists():
        return 0
    doc = json.loads(path.read_bytes())
    body = doc["body"]
    if len(body) != PAYLOAD or hashlib.sha256(body.encode()).hexdigest() != doc["sha256"]:
        raise ValueError("state body does not match its digest")
    return int(doc["version"])


def _resume(state_dir: Path) -> int:
    for stale in state_dir.glob(f".{STATE}.*.tmp"):
        stale.unlink()
    try:
        return check_state(state_dir)
    except ValueError:
        return 0


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over the final name, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:  # several writes, so a kill can land in between
            view = view[os.write(fd, view[:8192]) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    version = _resume(state_dir)
    while True:
        version += 1
        atomic_write(state_dir / STATE, _document(version))
        ack(version)


def torn_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """Broken on purpose: rewrites the final file in place."""
    version = _resume(state_dir)
    while True:
        version += 1
        data = _document(version)
        with open(state_dir / STATE, "wb") as fh:
            for i in range(0, len(data), 4096):
                fh.write(data[i : i + 4096])
                fh.flush()
        ack(version)


def early_ack_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """Broken on purpose: tells the caller a version is stored before storing it."""
    version = _resume(state_dir)
    while True:
        version += 1
        ack(version)
        atomic_write(state_dir / STATE, _document(version))


# -- what is checked -------------------------------------------------------------

STATE_TYPES = [
    StateType("reference-atomic-writer", f"{HERE}:atomic_writer", f"{HERE}:check_state", (STATE,)),
    # The lead registers the real writers here after the module merges:
    # rollback state (trustedge.ota), software-TPM state (trustedge.attestation),
    # verifier store (trustedge.attestation), envelope output files (trustedge.envelope).
]


@pytest.mark.parametrize("state", STATE_TYPES, ids=[s.name for s in STATE_TYPES])
def test_state_survives_random_kills(state: StateType, tmp_path: Path) -> None:
    report = crashsafety.run_campaign(state, tmp_path / "state", seed=1)
    assert report.losses == [], report.summary()
    assert report.kills >= crashsafety.DEFAULT_KILLS
    assert report.acked_writes > 0, "the writer never completed a write: raise max_delay_ms"
    print(report.summary())


def test_harness_catches_a_torn_write(tmp_path: Path) -> None:
    state = StateType("torn", f"{HERE}:torn_writer", f"{HERE}:check_state", (STATE,))
    report = crashsafety.run_campaign(state, tmp_path / "state", kills=200, seed=2)
    assert report.losses, report.summary()
    assert "does not load" in report.losses[0]


def test_harness_catches_an_early_acknowledgement(tmp_path: Path) -> None:
    state = StateType("early-ack", f"{HERE}:early_ack_writer", f"{HERE}:check_state", (STATE,))
    report = crashsafety.run_campaign(state, tmp_path / "state", kills=200, seed=3)
    assert any("acknowledged version" in loss for loss in report.losses), report.summary()


def test_kills_land_inside_writes(tmp_path: Path) -> None:
    """The random delays must hit the middle of writes, not only the gaps between them."""
    state = STATE_TYPES[0]
    report = crashsafety.run_campaign(state, tmp_path / "state", kills=100, seed=4)
    assert report.losses == []
    assert report.mid_write_kills > 0, report.summary()
    assert report.kills_before_first_ack < report.kills
