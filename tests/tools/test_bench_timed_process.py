"""``timed_process(..., stdout=FILE)``: a per-process peer's large output goes to a file (as a
shell redirection would), not into the benchmark's memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"


def _harness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_harness", BENCH / "_harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_harness"] = module
    spec.loader.exec_module(module)
    return module


def test_output_goes_to_the_file(tmp_path: Path) -> None:
    h = _harness()
    out = tmp_path / "out"
    run = h.timed_process([sys.executable, "-c", "print('x' * 1000)"], stdout=out)
    assert run() > 0
    assert out.read_text() == "x" * 1000 + "\n"


def test_a_failing_run_still_raises_with_stderr(tmp_path: Path) -> None:
    h = _harness()
    run = h.timed_process(
        [sys.executable, "-c", "import sys; sys.exit('boom')"], stdout=tmp_path / "out"
    )
    with pytest.raises(RuntimeError, match="boom"):
        run()
