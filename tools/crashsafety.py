#!/usr/bin/env python3
"""Crash-safety harness: SIGKILL a state writer at random points, check the state after each.

A *state type* is a pair of plain functions, named as ``"module:function"`` (or
``"path/to/file.py:function"``) so they can be imported in a fresh process:

* ``writer(state_dir: Path, ack: Callable[[int], None]) -> None`` loads whatever
  state ``state_dir`` holds and then loops forever writing new versions of it,
  calling ``ack(version)`` each time a write has *returned* (i.e. the caller
  was told it is persistent). Versions only go up.
* ``checker(state_dir: Path) -> int`` loads the state the way the product does
  and returns its version (0 when there is none yet); it raises on anything
  that does not load, and on partial output under a final name.

For each of ``kills`` rounds the harness forks the writer, lets it run for a
random time (0 to ``max_delay_ms``), SIGKILLs it, and runs the checker. A round
is a *loss* when the state does not load, when its version is below the last
acknowledged one (an acknowledged write was lost), or below the version seen
after the previous kill (state regressed). The campaign runs in its own
subprocess, so forking never touches the test process.

Registering a real writer is a few lines in ``tests/integration/test_crash_safety.py``::

    StateType(
        "rollback-state",
        writer="tests.integration.crash_writers:rollback_writer",
        checker="tests.integration.crash_writers:rollback_checker",
        final_names=("rollback.cbor", "rollback.cbor.bak"),
    )

Command line (for longer campaigns)::

    python tools/crashsafety.py --writer M:F --checker M:F --dir /tmp/x --kills 5000
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Kills per state type in the CI-sized run.
DEFAULT_KILLS = 200
#: Upper bound of the random time a writer runs before it is killed.
DEFAULT_MAX_DELAY_MS = 15.0


@dataclass(frozen=True)
class StateType:
    """A persistent state under test: how to write it and how to load it."""

    name: str
    writer: str
    checker: str
    #: Names the product reads; any other file left in the directory after a
    #: kill is counted as evidence that the kill landed in the middle of a write.
    final_names: tuple[str, ...] = ()
    max_delay_ms: float = DEFAULT_MAX_DELAY_MS


@dataclass
class Report:
    """What one campaign saw."""

    name: str
    kills: int = 0
    losses: list[str] = field(default_factory=list)
    final_version: int = 0
    acked_writes: int = 0
    mid_write_kills: int = 0
    kills_before_first_ack: int = 0
    seconds: float = 0.0

    @property
    def ms_per_kill(self) -> float:
        return 1000 * self.seconds / self.kills if self.kills else 0.0

    def summary(self) -> str:
        return (
            f"{self.name}: {self.kills} kills in {self.seconds:.1f} s "
            f"({self.ms_per_kill:.0f} ms each), {len(self.losses)} losses, "
            f"{self.mid_write_kills} mid-write kills, final version {self.final_version}"
        )


def resolve(spec: str) -> Callable[..., Any]:
    """Import ``"module:function"`` or ``"path/file.py:function"``."""
    modname, _, attr = spec.rpartition(":")
    if not modname or not attr:
        raise ValueError(f"expected 'module:function', got {spec!r}")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if modname.endswith(".py"):
        path = Path(modname)
        loaded = importlib.util.spec_from_file_location(path.stem, path)
        if loaded is None or loaded.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(modname)
    fn = getattr(module, attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn  # type: ignore[no-any-return]


def _run_writer(writer: Callable[..., Any], state_dir: Path, fd: int) -> None:
    def ack(version: int) -> None:
        os.write(fd, f"{version}\n".encode())

    status = 0
    try:
        writer(state_dir, ack)
    except BaseException:  # a broken writer must be visible, not look like an early kill
        traceback.print_exc()
        status = 1
    finally:
        os._exit(status)


def _read_acks(fd: int) -> list[int]:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return [int(line) for line in b"".join(chunks).split()]


def campaign(state: StateType, state_dir: Path, *, kills: int, seed: int) -> Report:
    """Run the kill loop in *this* process (it forks): use :func:`run_campaign` from tests."""
    writer = resolve(state.writer)
    checker = resolve(state.checker)
    rng = random.Random(seed)
    report = Report(state.name)
    state_dir.mkdir(parents=True, exist_ok=True)
    seen = int(checker(state_dir))
    acked = seen
    start = time.monotonic()
    for round_ in range(kills):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            os.close(rfd)
            _run_writer(writer, state_dir, wfd)
        os.close(wfd)
        time.sleep(rng.uniform(0, state.max_delay_ms) / 1000)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        acks = _read_acks(rfd)
        os.close(rfd)
        report.kills += 1
        report.acked_writes += len(acks)
        if not acks:
            report.kills_before_first_ack += 1
        acked = max([acked, *acks])
        if state.final_names and any(p.name not in state.final_names for p in state_dir.iterdir()):
            report.mid_write_kills += 1
        try:
            version = int(checker(state_dir))
        except Exception as exc:
            report.losses.append(f"kill {round_}: state does not load: {type(exc).__name__}: {exc}")
            break  # nothing after this round would mean anything
        if version < acked:
            report.losses.append(
                f"kill {round_}: acknowledged version {acked} lost, state holds {version}"
            )
        elif version < seen:
            report.losses.append(f"kill {round_}: state went back from {seen} to {version}")
        seen = max(seen, version)
        report.final_version = version
    report.seconds = time.monotonic() - start
    return report


def run_campaign(
    state: StateType,
    state_dir: Path,
    *,
    kills: int | None = None,
    seed: int = 0,
    timeout: float = 600,
) -> Report:
    """Run :func:`campaign` in a fresh subprocess and return its report.

    ``kills`` defaults to ``$TRUSTEDGE_CRASH_KILLS`` or :data:`DEFAULT_KILLS`.
    """
    if kills is None:
        kills = int(os.environ.get("TRUSTEDGE_CRASH_KILLS", DEFAULT_KILLS))
    cmd = [
        sys.executable, __file__, "--name", state.name, "--writer", state.writer,
        "--checker", state.checker, "--dir", str(state_dir), "--kills", str(kills),
        "--seed", str(seed), "--max-delay-ms", str(state.max_delay_ms), "--json",
    ]  # fmt: skip
    for name in state.final_names:
        cmd += ["--final-name", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"crash-safety campaign failed to run:\n{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data.pop("ms_per_kill", None)
    return Report(**data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="state")
    parser.add_argument("--writer", required=True, help="module:function")
    parser.add_argument("--checker", required=True, help="module:function")
    parser.add_argument("--dir", help="state directory (default: a fresh temp dir)")
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay-ms", type=float, default=DEFAULT_MAX_DELAY_MS)
    parser.add_argument("--final-name", action="append", default=[])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    state = StateType(
        args.name, args.writer, args.checker, tuple(args.final_name), args.max_delay_ms
    )
    state_dir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="crashsafety-"))
    report = campaign(state, state_dir, kills=args.kills, seed=args.seed)
    if args.json:
        print(json.dumps({**asdict(report), "ms_per_kill": report.ms_per_kill}))
    else:
        print(report.summary())
        for loss in report.losses:
            print(f"  LOSS {loss}")
    return 1 if report.losses else 0


if __name__ == "__main__":
    sys.exit(main())
