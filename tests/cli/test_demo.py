"""``trustedge demo``: the whole story runs, on the SoftwareTPM and on swtpm."""

from __future__ import annotations

import json

import pytest

from tests.swtpm import Swtpm
from trustedge._cli import main
from trustedge._cli._demo_data import EVENT_LOG, VECTOR_FILE, VECTOR_TC_ID

EXPECTED = [
    ("Manufacture and enroll", "enrolled", None),
    ("Boot and attest", "affirming", None),
    ("Attack: replay yesterday's good evidence", "contraindicated", "nonce-rejected"),
    ("Attack: a held-back (rolled-back) quote", "contraindicated", "quote-rollback"),
    ("Deliver a signed model, encrypted", "installed", "sequence 2 installed"),
    ("Load the model with verification and attest", "affirming", "model-approved"),
    ("Attack: weights swapped on disk", "refused", "load refused: model.safetensors"),
    ("Attack: a model loaded outside the agent", "contraindicated", "model-log-mismatch"),
    ("Attack: an older signed model", "refused", "RollbackError"),
    ("Attack: a modified program runs", "contraindicated", "ima-file-modified"),
    ("Attack: an unexpected boot application", "contraindicated", "boot-policy-violation"),
]


def check_story(doc: dict[str, object]) -> None:
    assert doc["ok"] is True
    steps = doc["steps"]
    assert isinstance(steps, list)
    assert [(s["title"], s["status"]) for s in steps] == [(t, st) for t, st, _ in EXPECTED]
    for step, (_, _, reason) in zip(steps, EXPECTED, strict=True):
        assert step["ok"] is True
        if reason is not None:
            assert any(r.startswith(reason) for r in step["reasons"]), step["reasons"]
    assert steps[1]["trust_vector"]["instance-identity"] == 2
    # the model step reports the EAR submod 'model' and its AR4SI claims
    assert steps[5]["trust_vector"] == {"instance-identity": 2, "executables": 2}
    # the whole story, model chapter included, stays within the README's 10 s budget
    assert isinstance(doc["seconds"], float) and doc["seconds"] < 10


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    check_story(json.loads(capsys.readouterr().out))


def test_demo_text_reads_as_a_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for title, _, _ in EXPECTED:
        assert f"== {title}" in out
    assert "11/11 steps as expected" in out and "every attack was caught" in out
    assert "never 'genuine hardware'" in " ".join(out.split())
    assert max(len(line) for line in out.splitlines()) <= 120


@pytest.mark.tpm
def test_demo_on_swtpm(swtpm_factory: type[Swtpm], capsys: pytest.CaptureFixture[str]) -> None:
    tpm = swtpm_factory().start()
    assert main(["demo", "--json", "--tcti", tpm.tcti]) == 0
    doc = json.loads(capsys.readouterr().out)
    check_story(doc)
    assert "TPM at" in doc["backend"]


@pytest.mark.tpm
def test_demo_on_a_used_swtpm_refuses_and_extends_nothing(
    swtpm_factory: type[Swtpm], capsys: pytest.CaptureFixture[str]
) -> None:
    """Run twice on one swtpm: the second run finds PCRs 0-10 measured and refuses with one
    line and exit 4 (environment), before it extends anything."""
    from trustedge.attestation.backends.tpm2 import Tpm2Backend

    tpm = swtpm_factory().start()
    assert main(["demo", "--json", "--tcti", tpm.tcti]) == 0
    capsys.readouterr()
    with Tpm2Backend(tpm.tcti) as backend:
        before = backend.pcr_read({"sha256": list(range(24))})
    assert main(["demo", "--json", "--tcti", tpm.tcti]) == 4
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "has measured a boot already" in err, err
    assert "Traceback" not in captured.err
    with Tpm2Backend(tpm.tcti) as backend:
        assert backend.pcr_read({"sha256": list(range(24))}) == before


def test_demo_refuses_a_real_tpm_before_extending(tmp_path: object) -> None:
    """The manufacturer check comes first: a backend that is not libtpms is never extended."""
    from dataclasses import replace
    from pathlib import Path

    from trustedge._cli._common import CommandError
    from trustedge._cli.demo import require_unused_simulator
    from trustedge.attestation.backends.software import SoftwareTPM

    soft = SoftwareTPM(Path(str(tmp_path)))
    chip = replace(soft.info(), kind="tpm", manufacturer="IFX")
    soft.info = lambda: chip  # type: ignore[method-assign]
    before = soft.pcr_read({"sha256": list(range(24))})
    with pytest.raises(CommandError) as err:
        require_unused_simulator(soft, "TPM at device:/dev/tpmrm0")
    assert err.value.exit_code == 4 and "is a real TPM (IFX)" in str(err.value)
    assert soft.pcr_read({"sha256": list(range(24))}) == before


def test_demo_log_is_the_published_vector() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = json.loads((root / VECTOR_FILE).read_text())
    cases = [t for g in doc["testGroups"] for t in g["tests"] if int(t["tcId"]) == VECTOR_TC_ID]
    assert bytes.fromhex(cases[0]["log"]) == EVENT_LOG


def test_demo_on_the_software_tpm_checks_boot_aggregate(capsys: pytest.CaptureFixture[str]) -> None:
    """The SoftwareTPM starts at locality 3 like the logged platform: PCR0-9 are quoted,
    so the IMA list's boot_aggregate is checked (never "unchecked")."""
    assert main(["demo", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    boot = next(s for s in steps if s["title"] == "Boot and attest")
    assert not any(r.startswith("ima-boot-aggregate") for r in boot["reasons"]), boot["reasons"]
