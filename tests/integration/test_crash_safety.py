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

# Imported here, not in the writers: the harness forks the writers from a process
# that has these loaded, so a kill lands in the store code, not in an import.
from trustedge import envelope
from trustedge.attestation.backends.software import STATE_FILE, SoftwareTPM
from trustedge.attestation.store import DeviceRecord, QuoteClockState, SQLiteStore
from trustedge.errors import BackendError
from trustedge.ota import FileStateStore

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


# -- the product's own state writers --------------------------------------------
# Each writer stores versions 1, 2, 3, ... through the product API and acks after the
# call returned; each checker loads the state the way the product does.

_COMPONENT = b"firmware"


def rollback_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """OTA rollback floor (``FileStateStore``): begin + confirm an update per version."""
    store = FileStateStore(state_dir, mac_key=b"k" * 32)
    if store.load().has_pending:  # killed between begin and confirm: the reboot abandons
        store.save(store.load().abandon())
    version = store.load().component(_COMPONENT).floor
    while True:
        version += 1
        digest = hashlib.sha256(version.to_bytes(8, "big")).digest()
        pending = store.save(store.load().begin([_COMPONENT], version, digest))
        store.save(pending.confirm())
        ack(version)


def rollback_checker(state_dir: Path) -> int:
    state = FileStateStore(state_dir, mac_key=b"k" * 32).load()
    comp = state.component(_COMPONENT)
    if comp.floor and comp.floor_digest != hashlib.sha256(comp.floor.to_bytes(8, "big")).digest():
        raise ValueError("the floor digest does not belong to the floor")
    return comp.floor


_NV_INDEX = 0x01500020
_PCR = 16


def softtpm_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """Software-TPM state: an NV counter increment and a PCR extend per version."""
    tpm = SoftwareTPM(state_dir, seed=b"crash-safety-seed" * 2)
    try:
        tpm.nv_counter_define(_NV_INDEX)
    except BackendError:
        pass  # defined by an earlier (killed) writer
    while True:
        tpm.pcr_extend(_PCR, {"sha256": bytes(32)})
        ack(tpm.nv_counter_increment(_NV_INDEX))


def softtpm_checker(state_dir: Path) -> int:
    if not (state_dir / STATE_FILE).exists():
        return 0
    tpm = SoftwareTPM(state_dir)  # raises on a torn or foreign state file
    try:
        return tpm.nv_counter_read(_NV_INDEX)
    except BackendError:  # not defined or never incremented yet
        return 0


_DB = "verifier.db"
_DEVICE = "crash-device"


def store_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """Verifier store (``SQLiteStore``): ``advance_quote_state`` with a rising clock."""
    store = SQLiteStore(state_dir / _DB)
    if store.get_device(_DEVICE) is None:
        store.add_device(DeviceRecord(_DEVICE, ek_public=b"ek"))
    last = store.device_state(_DEVICE).quote
    version = 0 if last is None else last.clock
    while True:
        version += 1
        new = QuoteClockState(1, 0, version)
        store.advance_quote_state(_DEVICE, last, new)
        last = new
        ack(version)


def store_checker(state_dir: Path) -> int:
    if not (state_dir / _DB).exists():
        return 0
    store = SQLiteStore(state_dir / _DB)
    try:
        quote = store.device_state(_DEVICE).quote
    finally:
        store.close()  # the harness forks the next writer from this process
    return 0 if quote is None else quote.clock


_ENVELOPE = "payload.env"
_KEK_BYTES = b"\x5a" * 32


def _plaintext(version: int) -> bytes:
    return version.to_bytes(8, "big") + hashlib.shake_256(version.to_bytes(8, "big")).digest(
        PAYLOAD * 4
    )


def envelope_writer(state_dir: Path, ack: Callable[[int], None]) -> None:
    """Envelope output (``seal_file`` through ``atomic_output``) over the final name."""
    src = state_dir.parent / "envelope-plaintext"
    version = envelope_checker(state_dir)
    while True:
        version += 1
        src.write_bytes(_plaintext(version))
        envelope.seal_file(src, state_dir / _ENVELOPE, [envelope.KEK(_KEK_BYTES)])
        ack(version)


def envelope_checker(state_dir: Path) -> int:
    """The file under the final name must open and authenticate completely."""
    path = state_dir / _ENVELOPE
    if not path.exists():
        return 0
    plain = envelope.open(path.read_bytes(), [envelope.KEK(_KEK_BYTES)])
    version = int.from_bytes(plain[:8], "big")
    if plain != _plaintext(version):
        raise ValueError("the envelope opened to the wrong plaintext")
    return version


# -- what is checked -------------------------------------------------------------

STATE_TYPES = [
    StateType("reference-atomic-writer", f"{HERE}:atomic_writer", f"{HERE}:check_state", (STATE,)),
    StateType("ota-rollback-state", f"{HERE}:rollback_writer", f"{HERE}:rollback_checker",
              ("state.0", "state.1"), max_delay_ms=40.0),
    StateType("software-tpm-state", f"{HERE}:softtpm_writer", f"{HERE}:softtpm_checker",
              ("softtpm.cbor",), max_delay_ms=25.0),
    StateType("verifier-store", f"{HERE}:store_writer", f"{HERE}:store_checker",
              (_DB, f"{_DB}-wal", f"{_DB}-shm"), max_delay_ms=40.0),
    StateType("envelope-output", f"{HERE}:envelope_writer", f"{HERE}:envelope_checker",
              (_ENVELOPE,), max_delay_ms=100.0),
]  # fmt: skip


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
