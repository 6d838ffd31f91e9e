"""The suite itself: at least 40 named cases, unique names, real reason ids, run by CI."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.adversarial import test_event_log_lies, test_ima_lies, test_quote_lies
from trustedge.attestation.findings import Finding


def _cases() -> list[tuple[str, str]]:
    out = [(c.name, c.reason) for c in test_event_log_lies.CASES]
    out += [(name, reason) for name, _, reason in test_event_log_lies.WHOLE_LOG]
    out += [(c.name, c.reason) for c in test_ima_lies.CASES]
    out += [(c.name, c.reason) for c in test_quote_lies.CASES]
    return out


def test_at_least_40_named_cases_with_real_reason_ids() -> None:
    cases = _cases()
    names = [name for name, _ in cases]
    assert len(cases) >= 40
    assert len(set(names)) == len(names), "case names must be unique"
    known = {f.value for f in Finding}
    assert {reason for _, reason in cases} <= known


def test_ci_collects_the_suite() -> None:
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "tests" in config["testpaths"]  # tools/test runs pytest with no paths
    assert Path(__file__).resolve().parent.relative_to(root).parts[0] == "tests"
