"""Power-loss test: a child process applies and confirms updates in a loop and
is killed with SIGKILL at random points, 200+ times. After every kill the state
must load, the floor must never go down, and no confirmed update may be lost.

The child is forked from the test process (modules already imported), so each
round costs milliseconds; kills land anywhere in apply/confirm, including in
the middle of the atomic state write.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
import traceback
import uuid
from pathlib import Path

from tests.unit.ota.conftest import CLASS, NOW, VENDOR, Releases
from trustedge.errors import PolicyError
from trustedge.ota import FileStateStore, FileSystemDevice, KeySet, Updater, component_key

ROUNDS = 220
COMP = (b"\x00",)


def _child(root: Path, write_fd: int) -> None:
    try:
        releases = Releases()
        device = FileSystemDevice(
            root / "device", vendor_id=uuid.UUID(VENDOR).bytes, class_id=uuid.UUID(CLASS).bytes
        )
        up = Updater(
            KeySet.of([releases.keys[0].public_key()]), FileStateStore(root / "state"), device
        )
        state = up.store.load()
        if state.has_pending:  # "boot" into the pending image and confirm it
            try:
                up.confirm((COMP,))
            except PolicyError:
                pass  # killed before the slot was marked pending: nothing booted
            state = up.store.load()
            os.write(write_fd, b"c %d\n" % state.component(component_key(COMP)).floor)
        seq = state.component(component_key(COMP)).floor
        while True:
            seq += 1
            up.apply(releases.make(seq), now=NOW)
            up.confirm((COMP,))
            os.write(write_fd, b"c %d\n" % seq)
    except BaseException:
        os.write(write_fd, b"E " + traceback.format_exc().encode().replace(b"\n", b" | ") + b"\n")
    finally:
        os._exit(1)


def _drain(fd: int) -> list[str]:
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode().splitlines()


def test_sigkill_during_apply_and_confirm(tmp_path: Path) -> None:
    # trustedge.cose loads its Ed25519 verifier (libsodium) on first use: load it here, so that
    # every forked child starts with its modules imported, as the docstring says
    import nacl.bindings  # noqa: F401

    rng = random.Random(8)
    store = FileStateStore(tmp_path / "state")
    last_confirmed = 0
    prev_floor = 0
    prev_gen = 0
    kills_mid_run = 0
    for _ in range(ROUNDS):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            _child(tmp_path, write_fd)
        os.close(write_fd)
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        lines = _drain(read_fd)
        os.close(read_fd)
        errors = [ln for ln in lines if ln.startswith("E ")]
        assert not errors, errors[0]
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            kills_mid_run += 1
        confirmed = [int(ln.split()[1]) for ln in lines if ln.startswith("c ")]
        if confirmed:
            last_confirmed = max(last_confirmed, *confirmed)
        state = store.load()  # must load: never torn, never corrupt
        floor = state.component(component_key(COMP)).floor
        assert floor >= prev_floor, "floor went down"
        assert floor >= last_confirmed, "a confirmed update was lost"
        assert state.generation >= prev_gen
        prev_floor, prev_gen = floor, state.generation
    assert kills_mid_run >= 200
    assert prev_floor > 20  # the loop made progress between kills
