"""``--yaml`` against tpm2-tools' expected YAML for its own fixtures, field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.vectors import third_party_dir
from trustedge._cli import main
from trustedge.measuredboot import Workaround, parse_event_log
from trustedge.measuredboot.tpm2yaml import to_tpm2_eventlog_yaml

_BASE = third_party_dir()
LOGS = sorted(p.name for p in (_BASE / "eventlog/tpm2-tools/logs").iterdir())


def _expected_path(shared: Path, name: str) -> Path:
    base = shared / "eventlog/tpm2-tools/expected-yaml"
    raw = base / "raw" / f"{name}.yaml"
    return raw if raw.exists() else base / f"{name}.yaml"


def _diff(ours: Any, theirs: Any, path: str = "") -> list[str]:
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = [f"{path}/{k}: key only on one side" for k in set(ours) ^ set(theirs)]
        for key in set(ours) & set(theirs):
            out += _diff(ours[key], theirs[key], f"{path}/{key}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list):
        out = [f"{path}: {len(ours)} != {len(theirs)} items"] if len(ours) != len(theirs) else []
        for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            out += _diff(a, b, f"{path}[{i}]")
        return out
    return [] if ours == theirs else [f"{path}: {ours!r} != {theirs!r}"]


@pytest.mark.parametrize("name", LOGS)
def test_yaml_matches_tpm2_tools(third_party: Path, name: str) -> None:
    data = (third_party / "eventlog/tpm2-tools/logs" / name).read_bytes()
    log = parse_event_log(data, workarounds={Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT})
    expected_text = _expected_path(third_party, name).read_text()
    version = 2 if expected_text.startswith("---\nversion: 2") else 1
    ours = to_tpm2_eventlog_yaml(log, version=version)
    if log.format == "sha1":
        # tpm2-tools prints SHA-1 logs as repeated mapping keys (not valid YAML
        # lists); trustedge prints a list. Everything else is identical text.
        lines = [line for line in ours.splitlines() if not line.startswith("- EventNum")]
        assert lines == expected_text.splitlines()
        return
    assert _diff(yaml.safe_load(ours), yaml.safe_load(expected_text)) == []


def test_cli_yaml(third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = "event-gce-ubuntu-2104-log.bin"
    path = third_party / "eventlog/tpm2-tools/logs" / name
    assert main(["eventlog", "show", str(path), "--yaml"]) == 0
    ours = yaml.safe_load(capsys.readouterr().out)
    theirs = yaml.safe_load(_expected_path(third_party, name).read_text())
    assert ours == theirs
    expected = json.loads((third_party / "eventlog/tpm2-tools/expected.json").read_text())
    pcrs = expected["logs"][f"logs/{name}"]["pcrs_replayed"]
    assert {b: {str(k): f"{v:x}".zfill(len(pcrs[b][str(k)])) for k, v in vals.items()}
            for b, vals in ours["pcrs"].items()} == pcrs
