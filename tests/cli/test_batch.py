"""Batch mode (docs/cli.md): many inputs in one process, one line or JSON line per input,
exit status the worst; one input behaves as before (the other CLI tests pin that)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge._cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
LOGS = ROOT / "tests/data/third_party/eventlog/tpm2-tss"
LOG = LOGS / "binary_measurements_pc_client.bin"
HCRTM = LOGS / "binary_measurements_hcrtm.bin"


def _lines(capsys: pytest.CaptureFixture[str]) -> tuple[list[str], list[str]]:
    out = capsys.readouterr()
    return out.out.splitlines(), out.err.splitlines()


@pytest.fixture
def quotes(tmp_path: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """An AK (TPM2B_PUBLIC) and three quotes of a software TPM, each with its own nonce."""
    soft = tmp_path / "soft"
    assert main(["tpm", "init", "--software", str(soft), "-o", str(tmp_path / "ak")]) == 0
    out = []
    for i in range(3):
        prefix, nonce = tmp_path / f"q{i}", f"0{i + 1}"
        assert main(["tpm", "quote", "--software", str(soft), "--pcrs", "sha256:0,7",
                     "--nonce", nonce, "-o", str(prefix)]) == 0  # fmt: skip
        out.append((prefix, nonce))
    return tmp_path / "ak.tpm2b", out


def _quote_argv(ak: Path, quotes: list[tuple[Path, str]], nonces: list[str]) -> list[str]:
    argv = ["quote", "verify", "--ak", str(ak)]
    for (prefix, _), nonce in zip(quotes, nonces, strict=True):
        argv += ["--message", f"{prefix}.msg", "--signature", f"{prefix}.sig",
                 "--pcr-values", f"{prefix}.pcrs", "--nonce", nonce]  # fmt: skip
    return argv


def test_quote_verify_batch_text(
    quotes: tuple[Path, list[tuple[Path, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    ak, qs = quotes
    capsys.readouterr()
    assert main(_quote_argv(ak, qs, [n for _, n in qs])) == 0
    out, err = _lines(capsys)
    assert [line.split(": ", 1)[0] for line in out] == [f"{p}.msg" for p, _ in qs]
    assert all(line.split(": ", 1)[1].startswith("OK (ak name 000b") for line in out), out
    assert err == []
    # the second quote checked against another nonce: that line fails, the others pass, exit 1
    assert main(_quote_argv(ak, qs, ["01", "09", "03"])) == 1
    out, err = _lines(capsys)
    assert out[0].endswith(")") and "OK" in out[0] and "OK" in out[2]
    assert out[1].startswith(f"{qs[1][0]}.msg: FAILED: ") and "nonce" in out[1]
    assert err == ["trustedge: 1 of 3 inputs failed"]


def test_quote_verify_batch_json_lines_and_worst_exit(
    quotes: tuple[Path, list[tuple[Path, str]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ak, qs = quotes
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\xffnot a quote")
    argv = [*_quote_argv(ak, qs, ["01", "09", "03"]), "--json"]
    argv[argv.index(f"{qs[2][0]}.pcrs")] = str(garbage)  # the third is malformed: exit 3
    capsys.readouterr()
    assert main(argv) == 3
    out, _ = _lines(capsys)
    docs = [json.loads(line) for line in out]
    assert [d["exit_code"] for d in docs] == [0, 1, 3]
    assert docs[0]["valid"] is True and docs[0]["input"] == f"{qs[0][0]}.msg"
    assert docs[1]["valid"] is False and docs[1]["error"] == "QuoteNonceError"
    assert docs[2]["ok"] is False and docs[2]["input"] == f"{qs[2][0]}.msg"


def test_quote_verify_batch_option_counts(
    quotes: tuple[Path, list[tuple[Path, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    ak, qs = quotes
    argv = _quote_argv(ak, qs, [n for _, n in qs])
    argv += ["--nonce", "04"]  # 4 nonces for 3 quotes
    assert main(argv) == 2
    assert "--nonce: give it once, or once per input (3), not 4" in capsys.readouterr().err
    # one nonce for all: only the quote made with it passes
    argv = ["quote", "verify", "--ak", str(ak), "--nonce", "02"]
    for prefix, _ in qs:
        argv += ["--message", f"{prefix}.msg", "--signature", f"{prefix}.sig",
                 "--pcr-values", f"{prefix}.pcrs"]  # fmt: skip
    assert main(argv) == 1
    out, _ = _lines(capsys)
    assert ["OK" in line for line in out] == [False, True, False]


def test_single_quote_output_unchanged(
    quotes: tuple[Path, list[tuple[Path, str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    ak, qs = quotes
    capsys.readouterr()
    assert main([*_quote_argv(ak, qs[:1], ["01"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # one indented document, no "input" key
    assert doc["valid"] is True and "input" not in doc


def test_eventlog_replay_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not an event log")
    assert main(["eventlog", "replay", str(LOG), str(HCRTM)]) == 0
    out, err = _lines(capsys)
    assert len(out) == 2 and out[0].startswith(f"{LOG}: sha1:0=") and err == []
    assert main(["eventlog", "replay", str(LOG), str(bad), "--json"]) == 3
    out, err = _lines(capsys)
    first, second = (json.loads(line) for line in out)
    assert first["input"] == str(LOG) and first["exit_code"] == 0 and "sha256" in first
    assert second["exit_code"] == 3 and second["ok"] is False
    assert err == ["trustedge: 1 of 2 inputs failed"]


def test_eventlog_verify_batch_pcrs_once_or_per_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcrs = {}
    for name, log in (("a", LOG), ("b", HCRTM)):
        assert main(["eventlog", "replay", str(log), "--json"]) == 0
        pcrs[name] = tmp_path / f"{name}.json"
        pcrs[name].write_text(capsys.readouterr().out)
    both = ["eventlog", "verify", str(LOG), str(HCRTM)]
    assert main([*both, "--pcrs", str(pcrs["a"]), "--pcrs", str(pcrs["b"])]) == 0
    out, _ = _lines(capsys)
    assert all(": verified: PCRs " in line for line in out) and len(out) == 2
    assert main([*both, "--pcrs", str(pcrs["a"])]) == 1  # HCRTM's log against LOG's PCRs
    out, _ = _lines(capsys)
    assert ": verified: " in out[0] and out[1].startswith(f"{HCRTM}: FAILED: replay mismatch")


def test_ima_verify_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = LOGS / "ima" / "sml-ima-sha1-invalidated.bin"
    assert main(["ima", "verify", str(good), str(good)]) == 0
    out, _ = _lines(capsys)
    assert len(out) == 2 and all(": verified: 1 entries" in line for line in out)
    assert main(["ima", "verify", str(good), str(good), "--pcr10", "ab" * 20, "--json"]) == 1
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["exit_code"] for d in docs] == [1, 1]


def test_hash_verify_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(bytes([i]) * 5000)
    names = [str(f) for f in files]
    assert main(["hash", "--tree", "--json", *names]) == 0
    sums = tmp_path / "sums.json"
    sums.write_text(capsys.readouterr().out)
    assert main(["hash", "verify", *names, "--digest", f"@{sums}"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{n}: OK" for n in names]
    files[1].write_bytes(b"changed")
    assert main(["hash", "verify", *names, "--digest", f"@{sums}", "--json"]) == 1
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["exit_code"] for d in docs] == [0, 1, 0]


def test_release_verify_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = tmp_path
    assert main(["release", "keygen", "-o", str(t / "a.key")]) == 0
    payload = t / "fw.bin"
    payload.write_bytes(b"firmware " * 50)
    manifests = []
    for seq in (1, 2):
        spec = {"manifest-version": 1, "manifest-sequence-number": seq, "components": [
            {"install-id": ["00"], "vendor-id": "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
             "class-id": "1492af14-2569-5e48-bf42-9b2d51f2ab45", "file": "fw.bin",
             "uri": "http://example.com/fw.bin", "bootable": True}]}  # fmt: skip
        (t / f"spec{seq}.json").write_text(json.dumps(spec))
        man = str(t / f"m{seq}.suit")
        assert main(["release", "create", str(t / f"spec{seq}.json"), "-o", man]) == 0
        manifests.append(man)
    assert main(["release", "sign", manifests[0], "--key", str(t / "a.key")]) == 0
    capsys.readouterr()
    assert main(["release", "verify", *manifests, "--key", str(t / "a.key.pub")]) == 1
    out, err = _lines(capsys)
    assert out[0].startswith(f"{manifests[0]}: authentic: sequence 1")
    assert out[1].startswith(f"{manifests[1]}: FAILED: ")  # unsigned
    assert err == ["trustedge: 1 of 2 inputs failed"]


def test_stdin_only_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eventlog", "replay", "-", "-"]) == 2
    assert "stdin (-) can be only one of the inputs" in capsys.readouterr().err
