#!/usr/bin/env python3
"""Crash-safety harness: SIGKILL each state writer at each of its system calls, check the state.

The kills come from system-call injection, not from timers: Debian's ``strace`` attaches to a
writer (``tests/integration/crash_scenarios.py``) once it has built everything the write needs,
and ``-e inject=SYSCALL:signal=KILL:when=N`` kills it at the N-th call of SYSCALL of the write
itself. So every kill lands inside the write, at a known call, and the strace log says which.

For each state type the harness

1. prepares the *old* state (version 1; nothing for state that is created, such as key files),
2. traces one write of the *new* version (2) without injection to count its calls of
   :data:`SYSCALLS` -- these are the injection points ``(syscall, N)``,
3. for each point (all of them, or ``--per-call`` evenly spread ones), copies the old state,
   runs the write under injection, confirms in the strace log that the kill landed at that
   call, and loads the state the way the product does.

A *loss* is a state that does not load, a version that is neither the old nor the new one
(rollback floors and adopted trust roots: lower than the old one is a floor that dropped),
a version other than the new one after a write that was not killed, or plaintext visible under
any name. The table lists, per state type and system call, the points, the kills that landed
and the losses::

    python tools/crashsafety.py                    # every point of every state type
    python tools/crashsafety.py --per-call 2 --state envelope-output --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_SCRIPT = ROOT / "tests" / "integration" / "crash_scenarios.py"

#: The system calls a kill is injected at (what writes, syncs, names or creates a file; SQLite
#: writes with pwrite64 and syncs with fdatasync).
SYSCALLS = (
    "openat", "write", "pwrite64", "fsync", "fdatasync", "rename", "renameat2", "linkat",
    "unlink", "ftruncate",
)  # fmt: skip
OLD, NEW = 1, 2
_TIMEOUT = 120.0


def load_scenarios() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_scenarios", SCENARIO_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("crash_scenarios", module)
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    """One traced write."""

    returncode: int
    killed_at: str | None  # the system call strace shows the process killed in
    calls: Counter[str]


@dataclass
class PointResult:
    syscall: str
    n: int
    landed: bool
    version: int | None
    loss: str | None


@dataclass
class CallRow:
    """One row of the table: a state type and one of its system calls."""

    state: str
    syscall: str
    points: int  # calls of it in one write
    tried: int = 0
    landed: int = 0
    losses: list[str] = field(default_factory=list)


_CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(")


def _parse_log(text: str) -> tuple[Counter[str], str | None]:
    calls: Counter[str] = Counter()
    killed_at = None
    previous = None
    for line in text.splitlines():
        m = _CALL.match(line)
        if m and "resumed>" not in line:
            calls[m.group(1)] += 1
            previous = (m.group(1), line)
        elif "+++ killed by SIGKILL" in line and previous is not None:
            if previous[1].rstrip().endswith("= ?") or "<unfinished" in previous[1]:
                killed_at = previous[0]
    return calls, killed_at


def traced_write(
    name: str, state_dir: Path, version: int, inject: tuple[str, int] | None, log: Path
) -> Run:
    """Run one write of ``version`` in a child; strace attaches before the write begins."""
    argv = [sys.executable, str(SCENARIO_SCRIPT), "write", name, str(state_dir), str(version)]
    child = subprocess.Popen(
        [*argv, "--wait"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        ready = child.stdout.readline().decode()
        if not ready.startswith("ready "):
            child.wait(_TIMEOUT)
            err = child.stderr.read().decode() if child.stderr else ""
            raise RuntimeError(f"{name}: the writer did not start: {ready!r} {err}")
        cmd = ["strace", "-f", "-o", str(log), "-e", "trace=" + ",".join(SYSCALLS)]
        if inject is not None:
            cmd += ["-e", f"inject={inject[0]}:signal=KILL:when={inject[1]}"]
        tracer = subprocess.Popen(
            [*cmd, "-p", str(child.pid)], stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert tracer.stderr is not None
        line = tracer.stderr.readline().decode()
        if "attached" not in line:
            tracer.kill()
            raise RuntimeError(f"strace did not attach: {line!r}")
        child.stdin.write(b"g")
        child.stdin.close()
        child.wait(_TIMEOUT)
        tracer.wait(_TIMEOUT)
        tracer.stderr.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        if child.stderr:
            err = child.stderr.read().decode(errors="replace")
            child.stderr.close()
            if child.returncode not in (0, -9) and err:
                sys.stderr.write(err)
    calls, killed_at = _parse_log(log.read_text(errors="replace"))
    return Run(child.returncode, killed_at, calls)


def _check(
    scenarios: ModuleType, name: str, state_dir: Path, run: Run
) -> tuple[int | None, str | None]:
    sc = scenarios.ALL[name]
    old = 0 if sc.fresh else OLD
    new = 1 if sc.fresh else NEW
    try:
        version = int(sc.check(state_dir))
    except Exception as exc:  # any failure to load is a loss: the product would not boot
        return None, f"does not load: {type(exc).__name__}: {exc}"
    if version < old:
        return version, f"version {version} below the old {old} (a floor dropped)"
    if version not in (old, new):
        return version, f"version {version} is neither the old {old} nor the new {new}"
    if run.returncode == 0 and version != new:
        return version, f"the write returned but the state is version {version}, not {new}"
    return version, None


def campaign(
    name: str, workdir: Path, *, per_call: int | None = None, scenarios: ModuleType | None = None
) -> list[CallRow]:
    """All (or ``per_call`` evenly spread) injection points of one state type."""
    scenarios = scenarios or load_scenarios()
    sc = scenarios.ALL[name]
    base = workdir / "old"
    base.mkdir(parents=True)
    if not sc.fresh:
        subprocess.run(
            [sys.executable, str(SCENARIO_SCRIPT), "write", name, str(base), str(OLD)],
            check=True, timeout=_TIMEOUT,
        )  # fmt: skip
    probe = workdir / "probe"
    shutil.copytree(base, probe)
    run = traced_write(name, probe, NEW, None, workdir / "probe.log")
    if run.returncode != 0:
        raise RuntimeError(f"{name}: the write failed without a kill ({run.returncode})")
    _, loss = _check(scenarios, name, probe, run)
    if loss is not None:
        raise RuntimeError(f"{name}: the uninterrupted write is already wrong: {loss}")
    rows = []
    for syscall in SYSCALLS:
        count = run.calls.get(syscall, 0)
        if not count:
            continue
        row = CallRow(name, syscall, count)
        for n in _spread(count, per_call):
            target = workdir / f"{syscall}-{n}"
            shutil.copytree(base, target)
            result = traced_write(name, target, NEW, (syscall, n), workdir / f"{syscall}-{n}.log")
            landed = result.returncode == -9 and result.killed_at == syscall
            _, loss = _check(scenarios, name, target, result)
            row.tried += 1
            row.landed += landed
            if loss is not None:
                row.losses.append(f"{syscall} #{n}: {loss}")
            shutil.rmtree(target)
        rows.append(row)
    return rows


def _spread(count: int, per_call: int | None) -> list[int]:
    if per_call is None or per_call >= count:
        return list(range(1, count + 1))
    if per_call == 1:
        return [(count + 1) // 2]
    step = (count - 1) / (per_call - 1)
    return sorted({1 + round(i * step) for i in range(per_call)})


def table(rows: list[CallRow]) -> str:
    row = "{:<22} {:<10} {:>6} {:>6} {:>6} {:>6}"
    lines = [row.format("state type", "syscall", "points", "tried", "landed", "losses")]
    for r in rows:
        lines.append(row.format(r.state, r.syscall, r.points, r.tried, r.landed, len(r.losses)))
    lines += [loss for r in rows for loss in r.losses]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", action="append", help="state type (repeatable; default all)")
    parser.add_argument("--per-call", type=int, help="points per system call (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        print("strace is not installed (apt-get install strace)", file=sys.stderr)
        return 4
    scenarios = load_scenarios()
    names = args.state or list(scenarios.SCENARIOS)
    rows: list[CallRow] = []
    with tempfile.TemporaryDirectory(prefix="trustedge-crash.") as tmp:
        for name in names:
            rows += campaign(name, Path(tmp) / name, per_call=args.per_call, scenarios=scenarios)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(table(rows))
    bad = any(r.losses or r.landed == 0 for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
