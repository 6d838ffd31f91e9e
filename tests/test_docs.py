"""The examples of README.md and docs/ run as written.

* Every ```python block runs (``exec``) in a fresh temporary directory.
* The shell examples (```sh, ```bash, ```console) of each page run in order, in one temporary
  directory per page, with ``bash -euo pipefail`` against the installed ``trustedge`` (the one
  beside this interpreter): later examples use the files earlier ones wrote. What a page takes
  as given (a model directory, a firmware event log, a payload) is made by :data:`SETUP` before
  its first example. A ```console block runs its ``$ `` lines.
* The one substitution: ``swtpm:port=2321`` (the swtpm a reader starts by hand) is the test
  session's swtpm (``tests/swtpm.py``), so the TPM examples run against a real software TPM.
* A block that cannot run here (installing the project, a real TPM, a server that runs until
  stopped, a benchmark of minutes) has ``<!-- not-run: REASON -->`` on the line before it;
  :func:`test_not_run_markers_are_few` counts them per page, so a new one is a decision.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.swtpm import Swtpm

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL = re.compile(
    r"^(?:<!-- not-run: (?P<reason>[^\n]*?) -->\n)?```(?P<lang>sh|bash|console)\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
MARKER = re.compile(r"<!-- not-run:")
BIN = Path(sys.executable).parent

CASES = [
    pytest.param(page, i, code, id=f"{page.relative_to(ROOT)}#{i}")
    for page in PAGES
    for i, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")))
]


@pytest.mark.parametrize(("page", "index", "code"), CASES)
def test_python_example_runs(
    page: Path, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page.name}#{index}", "exec"), {"__name__": "__docs__"})


# -- shell examples ------------------------------------------------------------------------


def _shell_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, not-run reason) of every shell block, in order."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in SHELL.finditer(text):
        code = m["code"]
        if m["lang"] == "console":
            code = "".join(line[2:] + "\n" for line in code.splitlines() if line.startswith("$ "))
        out.append((text.count("\n", 0, m.start("code")), code, m["reason"]))
    return out


#: Pages whose blocks are not run, and how many: a new marker is a decision, made here.
NOT_RUN: dict[str, int] = {
    "README.md": 3,
    "docs/attest-fleet.md": 1,
    "docs/fleet.md": 3,
    "docs/index.md": 1,
    "docs/models.md": 2,
    "docs/threat-model.md": 1,
    "docs/tpm.md": 1,
}


def test_not_run_markers_are_few() -> None:
    found: dict[str, int] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = _shell_blocks(page)
        skipped = [reason for _, _, reason in blocks if reason is not None]
        name = str(page.relative_to(ROOT))
        # every marker stands right before a shell block and gives its reason
        assert len(MARKER.findall(text)) == len(skipped), f"{name}: a marker before no block"
        assert all(reason.strip() for reason in skipped), f"{name}: a marker without a reason"
        if skipped:
            found[name] = len(skipped)
    assert found == NOT_RUN
    total = sum(len(_shell_blocks(p)) for p in PAGES)
    assert sum(NOT_RUN.values()) * 2 < total, "most shell examples run"


def _copy(src: str, dst: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        source = ROOT / "tests/data/third_party" / src
        if source.is_dir():
            shutil.copytree(source, tmp / dst)
        else:
            shutil.copyfile(source, tmp / dst)

    return setup


def _model_dir(tmp: Path, name: str) -> None:
    """A small model directory: a config, weights over 1 MiB, a tokenizer in a subfolder."""
    model = tmp / name
    (model / "tokenizer").mkdir(parents=True)
    (model / "config.json").write_text('{"architectures": ["EdgeLM"]}\n')
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 5000)
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")


def _hashing(tmp: Path) -> None:
    (tmp / "model.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 9000)
    _model_dir(tmp, "my-model")


def _measured_boot(tmp: Path) -> None:
    eventlog = "eventlog/go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog"
    _copy(eventlog, "binary_bios_measurements")(tmp)
    _copy(eventlog, "golden_bios_measurements")(tmp)
    expected = json.loads((ROOT / "tests/data/third_party/eventlog/go-attestation/expected.json")
                          .read_text())  # fmt: skip
    pcrs = expected["logs"]["coreos_36_shielded_vm_no_secure_boot_eventlog"]["pcrs_replayed"]
    (tmp / "pcrs.json").write_text(json.dumps(pcrs))
    ima = "eventlog/keylime/ima/test_ima_verification"
    _copy(f"{ima}/signatures.ascii", "ascii_runtime_measurements")(tmp)
    _copy(f"{ima}/runtime_policy.json", "runtime_policy.json")(tmp)
    _copy("eventlog/keylime/ima/ima_keys", "ima_keys")(tmp)


def _envelope(tmp: Path) -> None:
    (tmp / "log").write_text("gw-7 boot ok\n" * 1000)
    (tmp / "logs").mkdir()
    (tmp / "logs" / "a.log").write_text("a\n")


def _models(tmp: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.models_support import make_chain, write_private, write_public

    _model_dir(tmp, "my-model")
    for name in ("signer", "ec"):
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(tmp / f"{name}.key", key)
        write_public(tmp / f"{name}.pub", key)
    make_chain().write(tmp)  # leaf.key chain.pem (leaf + intermediate) root.pem leaf.pem ...


def _appraisal(tmp: Path) -> None:
    """A CI runner's software TPM that booted the project's published event log, the log,
    and the policy of the page's example."""
    from trustedge._cli._demo_data import EVENT_LOG
    from trustedge.attestation.backends.software import SoftwareTPM
    from trustedge.attestation.simulate import boot_from_event_log

    boot_from_event_log(SoftwareTPM(tmp / "state"), EVENT_LOG)
    (tmp / "eventlog").write_bytes(EVENT_LOG)
    policy = {
        "version": 1,
        "policy_id": "ci",
        "pcrs": [1, 2, 3, 4, 5, 6, 7],
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
        "runtime": None,
    }
    (tmp / "policy.json").write_text(json.dumps(policy))


def _ota(tmp: Path) -> None:
    (tmp / "fw-42.bin").write_bytes(b"\x7fELF firmware 42" + bytes(4096))


def _deliver(tmp: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.models_support import write_private, write_public

    _model_dir(tmp, "edge-llm")
    key = ec.generate_private_key(ec.SECP256R1())
    write_private(tmp / "vendor.key", key)
    write_public(tmp / "vendor.pub", key)


#: What a page takes as given, made before its first example.
SETUP: dict[str, Callable[[Path], None]] = {
    "docs/hashing.md": _hashing,
    "docs/measured-boot.md": _measured_boot,
    "docs/envelope.md": _envelope,
    "docs/models.md": _models,
    "docs/deliver-a-model.md": _deliver,
    "docs/ota.md": _ota,
    "docs/appraisal.md": _appraisal,
}

SHELL_PAGES = [
    pytest.param(page, id=str(page.relative_to(ROOT)))
    for page in PAGES
    if any(reason is None for _, _, reason in _shell_blocks(page))
]


@pytest.mark.parametrize("page", SHELL_PAGES)
def test_shell_examples_run(page: Path, tmp_path: Path, swtpm: Swtpm) -> None:
    name = str(page.relative_to(ROOT))
    work = tmp_path / "work"
    work.mkdir()
    if name in SETUP:
        SETUP[name](work)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("TRUSTEDGE_KEY_PASSWORD", None)
    ran = 0
    for line, code, reason in _shell_blocks(page):
        if reason is not None:
            continue
        script = code.replace("swtpm:port=2321", swtpm.tcti)
        res = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
            text=True, stdin=subprocess.DEVNULL, timeout=600,
        )  # fmt: skip
        where = f"{name}:{line + 1}"
        assert res.returncode == 0, f"{where}: exit {res.returncode}\n{script}\n{res.stderr}"
        assert "Traceback" not in res.stderr, f"{where}: {res.stderr}"
        ran += 1
    assert ran > 0
