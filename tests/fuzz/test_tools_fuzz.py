"""tools/fuzz: budgets of the sized runs, and parsing of libFuzzer's output."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
_loader = importlib.machinery.SourceFileLoader("tools_fuzz", str(ROOT / "tools" / "fuzz"))
_spec = importlib.util.spec_from_loader("tools_fuzz", _loader)
assert _spec is not None
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["tools_fuzz"] = fuzz  # dataclasses look their module up there
_loader.exec_module(fuzz)

LIBFUZZER_TAIL = """\
#2048	pulse  cov: 150 ft: 700 corp: 120/3000b lim: 21 exec/s: 1024 rss: 60Mb
#40000	NEW    cov: 168 ft: 1067 corp: 299/9Kb lim: 4096 exec/s: 1664 rss: 70Mb L: 12/400
Done 800589 runs in 481 second(s)
stat::number_of_executed_units: 800589
stat::average_exec_per_sec:     1664
"""


def test_parses_executions_and_coverage() -> None:
    result = fuzz.Result("x")
    fuzz._parse(result, LIBFUZZER_TAIL)
    assert (result.execs, result.cov, result.ft, result.corpus) == (800589, 168, 1067, 299)


def test_parses_progress_when_the_run_was_cut_short() -> None:
    result = fuzz.Result("x")
    fuzz._parse(result, LIBFUZZER_TAIL.split("Done")[0])
    assert result.execs == 40000


@pytest.mark.parametrize("harnesses", [1, 2, 5, 14, 30])
def test_quick_run_stays_within_its_budget(harnesses: int) -> None:
    jobs = 2
    per = fuzz._per_harness(fuzz.QUICK_BUDGET, harnesses, jobs, fuzz.QUICK_MAX_PER_HARNESS)
    waves = -(-harnesses // jobs)
    assert per >= 1
    assert waves * (per + fuzz.STARTUP_ALLOWANCE) <= fuzz.QUICK_BUDGET  # 4.5 of CI's 5 minutes


def test_smoke_run_stays_short() -> None:
    per = fuzz._per_harness(fuzz.SMOKE_BUDGET, 14, 2, 5)
    assert 7 * (per + fuzz.STARTUP_ALLOWANCE) <= 25


def test_lists_the_harnesses() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fuzz"), "--list"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert "cbor_decode" in out.stdout and "binary_reader" in out.stdout
