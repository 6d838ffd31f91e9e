"""The benchmark harness: what its figures mean, and that every benchmark is on it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_harness", BENCH / "_harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_harness"] = module
    spec.loader.exec_module(module)
    return module


harness = _harness()


def _fixed(times: list[float]):  # type: ignore[no-untyped-def]
    it = iter(times)
    return lambda: next(it)


def test_alternate_runs_a_then_b_and_reports_the_pairwise_ratio_median() -> None:
    order: list[str] = []
    a_times = iter([9.0, 1.0, 1.0, 2.0, 1.0, 4.0])  # first: warm-up, not counted
    b_times = iter([9.0, 2.0, 3.0, 2.0, 5.0, 4.0])

    def run_a() -> float:
        order.append("A")
        return next(a_times)

    def run_b() -> float:
        order.append("B")
        return next(b_times)

    result = harness.alternate("x", ("te", run_a), ("peer", run_b), work="w", verbose=False)
    assert order == ["A", "B"] * 6
    assert result.ratios == [2.0, 3.0, 1.0, 5.0, 1.0]
    assert result.median == 2.0
    assert "2.00 (1.00-5.00) over 5 pairs" in result.summary()
    assert re.search(r"load \d+\.\d\d->\d+\.\d\d", result.summary())


def test_fewer_than_five_pairs_is_refused() -> None:
    with pytest.raises(SystemExit, match="at least 5 pairs"):
        harness.alternate("x", ("a", lambda: 1.0), ("b", lambda: 1.0), work="w", pairs=4)


def test_target_verdict_follows_the_median_not_the_best_pair() -> None:
    a = _fixed([1.0] * 6)
    b = _fixed([1.0, 1.0, 1.0, 1.0, 9.0, 9.0])
    result = harness.alternate("x", ("a", a), ("b", b), work="w", target=2.0, verbose=False)
    assert result.median == 1.0
    assert "NOT met" in result.summary()
    assert result.as_json()["target_met"] is False


def test_repeat_lower_is_better_target() -> None:
    values = iter([99.0, 50.0, 40.0, 70.0, 45.0, 55.0])
    fig = harness.repeat("mem", lambda: next(values), unit="MiB", target=60, higher_is_better=False)
    assert fig.values == [50.0, 40.0, 70.0, 45.0, 55.0]
    assert fig.median == 50.0
    assert "target <= 60: met" in fig.summary()


def test_reporter_appends_one_json_line_per_result(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    reporter = harness.Reporter("bench", report)
    values = iter([1.0] * 12)
    run = lambda: next(values)  # noqa: E731
    reporter(harness.alternate("one", ("a", run), ("b", run), work="w", verbose=False))
    reporter(harness.repeat("two", lambda: 3.0, unit="x"))
    docs = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(d["bench"], d["name"], d["kind"]) for d in docs] == [
        ("bench", "one", "comparison"),
        ("bench", "two", "figure"),
    ]
    assert docs[0]["ratio_median"] == 1.0


@pytest.mark.parametrize(
    "script", sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
)
def test_every_benchmark_uses_the_harness_and_writes_reports(script: str) -> None:
    text = (BENCH / script).read_text()
    assert "_harness" in text, f"{script} does not measure through tools/bench/_harness.py"
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--report" in proc.stdout and "--pairs" in proc.stdout


def test_all_lists_every_benchmark() -> None:
    text = (BENCH / "all").read_text()
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    listed = set(re.findall(r'^\s+"([a-z_0-9]+)": \(', text, re.MULTILINE))
    assert listed == scripts
