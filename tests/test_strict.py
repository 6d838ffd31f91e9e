"""Under tools/test and in CI a skipped test fails the run (``tests/conftest.py``), so "0 skipped"
is enforced, not hoped for: a probe test that skips makes a strict pytest exit 1, and passes a
bare one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("strict", "expected"), [("1", 1), ("0", 0)])
def test_a_skip_fails_a_strict_run(tmp_path: Path, strict: str, expected: int) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\ndef test_skips():\n    pytest.skip('probe')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TRUSTEDGE_STRICT")}
    env["TRUSTEDGE_STRICT"] = strict
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == expected, res.stdout + res.stderr
    assert "1 skipped" in res.stdout
    if expected:
        assert "1 test(s) skipped in a strict run" in res.stdout
