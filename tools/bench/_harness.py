"""The one benchmark harness: alternated pairs, pairwise ratios, load average, one JSON report.

Every ``tools/bench/*.py`` measures through this module so that each figure it prints has the
same meaning:

* trustedge (A) and the peer (B) run alternately, ``A B A B ...``, after one untimed warm-up
  of each, for at least five pairs;
* the figure is the median (min-max) of the **pairwise** ratio ``B time / A time`` — above 1
  means trustedge is faster — never a best-of or a single shot;
* the 1-minute load average is recorded before and after every comparison, because on a shared
  2-core machine a ratio measured at load 4 is not a ratio measured at load 0.2;
* ``--report PATH`` appends each comparison as JSON, and ``tools/bench/all`` merges the reports
  of every benchmark into one document.

Compare like with like: in-process peers are timed in-process (``timed_calls``), per-process
peers per process (``timed_process``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIN_PAIRS = 5

Run = Callable[[], float]
"""One timed run of a fixed workload; returns the seconds it took (lower is better)."""


def load() -> float:
    return os.getloadavg()[0]


def timed_calls(fn: Callable[[], object], calls: int) -> Run:
    """A run that calls ``fn`` ``calls`` times in this process."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start

    return run


def timed_process(
    argv: Sequence[str | os.PathLike[str]],
    *,
    times: int = 1,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    stdout: str | os.PathLike[str] | None = None,
) -> Run:
    """A run that starts ``argv`` ``times`` times, each a new process; a failing run raises.

    The output is captured, or written to the file ``stdout`` (e.g. ``os.devnull`` for a
    command whose output is large, as the user's shell would redirect it)."""
    args = [os.fspath(a) for a in argv]

    def run() -> float:
        start = time.perf_counter()
        for _ in range(times):
            if stdout is None:
                proc = subprocess.run(
                    args, cwd=cwd, env=env, input=stdin, capture_output=True, check=False
                )
            else:
                with open(stdout, "wb") as out:
                    proc = subprocess.run(
                        args, cwd=cwd, env=env, input=stdin, stdout=out,
                        stderr=subprocess.PIPE, check=False,
                    )  # fmt: skip
            if proc.returncode != 0:
                tail = proc.stderr[-600:].decode(errors="replace")
                raise RuntimeError(f"{args[0]} exited {proc.returncode}: {tail}")
        return time.perf_counter() - start

    return run


@dataclass
class Comparison:
    """One A/B comparison: trustedge (A) against a peer (B) on the same workload."""

    name: str
    a: str
    b: str
    work: str
    seconds_a: list[float] = field(default_factory=list)
    seconds_b: list[float] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    target: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ratios(self) -> list[float]:
        return [b / a for a, b in zip(self.seconds_a, self.seconds_b, strict=True)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def summary(self) -> str:
        r = self.ratios
        target = ""
        if self.target is not None:
            verdict = "met" if self.median >= self.target else "NOT met"
            target = f"  target >= {self.target:g}x: {verdict}"
        return (
            f"{self.name}: {self.b}/{self.a} time ratio {statistics.median(r):.2f} "
            f"({min(r):.2f}-{max(r):.2f}) over {len(r)} pairs; A median "
            f"{statistics.median(self.seconds_a) * 1e3:.1f} ms, B median "
            f"{statistics.median(self.seconds_b) * 1e3:.1f} ms per run of {self.work}; "
            f"load {self.load_before:.2f}->{self.load_after:.2f}{target}"
        )

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        r = self.ratios
        doc.update(
            kind="comparison",
            ratio_median=statistics.median(r),
            ratio_min=min(r),
            ratio_max=max(r),
            target_met=None if self.target is None else self.median >= self.target,
        )
        return doc


@dataclass
class Figure:
    """A measured figure with no peer (e.g. MiB above the input, appraisals per second)."""

    name: str
    unit: str
    values: list[float]
    load_before: float
    load_after: float
    target: float | None = None
    higher_is_better: bool = True
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def summary(self) -> str:
        v = self.values
        target = ""
        if self.target is not None:
            m, t = self.median, self.target
            met = m >= t if self.higher_is_better else m <= t
            sign = ">=" if self.higher_is_better else "<="
            target = f"  target {sign} {self.target:g}: {'met' if met else 'NOT met'}"
        return (
            f"{self.name}: {statistics.median(v):.4g} ({min(v):.4g}-{max(v):.4g}) {self.unit} "
            f"over {len(v)} runs; load {self.load_before:.2f}->{self.load_after:.2f}{target}"
        )

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.update(kind="figure", median=self.median, min=min(self.values), max=max(self.values))
        return doc


def alternate(
    name: str,
    a: tuple[str, Run],
    b: tuple[str, Run],
    *,
    work: str,
    pairs: int = MIN_PAIRS,
    target: float | None = None,
    verbose: bool = True,
) -> Comparison:
    """Run A B A B ... (``pairs`` pairs after one untimed warm-up of each)."""
    if pairs < MIN_PAIRS:
        raise SystemExit(f"{name}: at least {MIN_PAIRS} pairs are needed, not {pairs}")
    (a_label, run_a), (b_label, run_b) = a, b
    result = Comparison(
        name=name, a=a_label, b=b_label, work=work, target=target, load_before=load()
    )
    run_a()
    run_b()
    for i in range(pairs):
        ta = run_a()
        tb = run_b()
        result.seconds_a.append(ta)
        result.seconds_b.append(tb)
        if verbose:
            print(
                f"  {name} pair {i + 1}: A {ta * 1e3:9.2f} ms  B {tb * 1e3:9.2f} ms  "
                f"B/A {tb / ta:6.2f}  load {load():.2f}",
                file=sys.stderr,
            )
    result.load_after = load()
    return result


def repeat(
    name: str,
    measure: Callable[[], float],
    *,
    unit: str,
    runs: int = MIN_PAIRS,
    target: float | None = None,
    higher_is_better: bool = True,
) -> Figure:
    """Measure a figure ``runs`` times (after one untimed warm-up)."""
    before = load()
    measure()
    values = [measure() for _ in range(runs)]
    return Figure(
        name=name,
        unit=unit,
        values=values,
        load_before=before,
        load_after=load(),
        target=target,
        higher_is_better=higher_is_better,
    )


def add_arguments(parser: argparse.ArgumentParser, *, pairs: int = MIN_PAIRS) -> None:
    parser.add_argument(
        "--pairs", type=int, default=pairs, help=f"A/B pairs (at least {MIN_PAIRS})"
    )
    parser.add_argument(
        "--report", type=Path, help="append each result as one JSON line to this file"
    )


class Reporter:
    """Prints each result's summary on stdout and appends its JSON to ``--report``."""

    def __init__(self, bench: str, report: Path | None) -> None:
        self.bench = bench
        self.report = report
        self.results: list[Comparison | Figure] = []

    def __call__(self, result: Comparison | Figure) -> Comparison | Figure:
        self.results.append(result)
        print(result.summary(), flush=True)
        if self.report is not None:
            doc = {"bench": self.bench, **result.as_json()}
            with self.report.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(doc, sort_keys=True) + "\n")
        return result


# --- before/after: the same benchmark over an older tree, alternated in one run -------------

ROOT = Path(__file__).resolve().parents[2]
TREE_VARIABLE = "TRUSTEDGE_BENCH_TREE"
"""Set for a benchmark's child process: the tree whose ``trustedge`` it must import."""


def tree_root() -> Path:
    """The tree a benchmark process measures: ``$TRUSTEDGE_BENCH_TREE`` or this checkout.

    Call ``sys.path.insert(0, str(tree_root()))`` before importing trustedge.
    """
    return Path(os.environ.get(TREE_VARIABLE) or ROOT)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def describe_tree() -> str:
    """``HEAD``'s short commit, marked when the work tree has uncommitted changes."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)" if dirty else "")


@contextlib.contextmanager
def old_tree(rev: str) -> Iterator[Path]:
    """``rev`` checked out in a temporary git worktree (removed on exit), extension built.

    The C hashing extension is built in place: this tree's build is reused when the source
    is unchanged, so both sides measure the same hashing code; otherwise it is compiled.
    """
    path = Path(tempfile.mkdtemp(prefix="trustedge-bench-against-"))
    _git("worktree", "add", "--detach", str(path), rev)
    try:
        src = Path("trustedge/hashing/_speedups.c")
        built = sorted((ROOT / "trustedge" / "hashing").glob("_speedups*.so"))
        if (
            built
            and (path / src).is_file()
            and (ROOT / src).read_bytes() == (path / src).read_bytes()
        ):
            shutil.copy2(built[0], path / "trustedge" / "hashing" / built[0].name)
        elif (path / "setup.py").is_file():
            subprocess.run(
                [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                cwd=path, capture_output=True, check=True,
            )  # fmt: skip
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(path, ignore_errors=True)


def tree_run(tree: Path, script: Path, args: Sequence[str]) -> Run:
    """A run that executes ``script args`` as a child importing ``tree``'s trustedge.

    The child prints one JSON object as its last line, ``{"seconds": s, "trustedge": path}``:
    the seconds of its fixed workload, timed inside the child (start-up excluded), and the
    ``trustedge.__file__`` it imported, checked to lie in ``tree``.
    """

    def run() -> float:
        env = {**os.environ, TREE_VARIABLE: str(tree)}
        proc = subprocess.run(
            [sys.executable, str(script), *args],
            env=env, cwd=tree, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark child on {tree} failed:\n{proc.stderr[-2000:]}")
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        if not str(doc["trustedge"]).startswith(str(tree)):
            raise RuntimeError(f"child for {tree} imported trustedge from {doc['trustedge']}")
        return float(doc["seconds"])

    return run
