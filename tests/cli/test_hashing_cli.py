"""``trustedge hash`` and ``trustedge hash verify`` end to end (in process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trustedge._cli import main


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 100)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["hash", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hash_prints_sha256sum_lines(capsys: pytest.CaptureFixture[str], blob: Path) -> None:
    code, out, _ = run(capsys, str(blob))
    assert code == 0
    assert out == f"{hashlib.sha256(blob.read_bytes()).hexdigest()}  {blob}\n"


def test_hash_tree_json_and_verify(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, str(blob), "--tree", "--leaf-size", "4K", "--threads", "2", "--json")
    assert code == 0
    doc = json.loads(out)
    entry = doc["files"][0]
    assert entry["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert entry["tree"]["leaf_size"] == 4096 and len(entry["tree"]["leaves"]) == 7
    saved = tmp_path / "d.json"
    saved.write_text(out)
    assert run(capsys, "verify", str(blob), "--digest", f"@{saved}")[0] == 0
    assert run(capsys, "verify", str(blob), "--digest", f"@{saved}", "--range", "0:10")[0] == 0
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    code, _, err = run(capsys, "verify", str(blob), "--digest", f"@{saved}")
    assert code == 1 and "verification failed" in err
    assert run(capsys, "verify", str(blob), "--digest", f"@{saved}", "--range", "0:10")[0] == 0


def test_hash_tree_text(capsys: pytest.CaptureFixture[str], blob: Path) -> None:
    code, out, _ = run(capsys, str(blob), "--tree")
    assert code == 0
    _, tree, name = out.split()
    assert tree.startswith(f"tree-v1:{4 << 20}:") and name == str(blob)


def test_verify_hex(capsys: pytest.CaptureFixture[str], blob: Path) -> None:
    good = hashlib.sha256(blob.read_bytes()).hexdigest()
    code, out, _ = run(capsys, "verify", str(blob), "--digest", good)
    assert code == 0 and out == f"{blob}: OK\n"  # like sha256sum -c
    assert run(capsys, "verify", str(blob), "--digest", "0" * 64)[0] == 1


def test_directory_manifest_and_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "a.safetensors").write_bytes(b"a" * 9000)
    (model / "sub" / "b.gguf").write_bytes(b"b" * 10)
    code, out, _ = run(capsys, str(model), "--json", "--leaf-size", "4096")
    assert code == 0
    doc = json.loads(out)
    assert [f["path"] for f in doc["models"][0]["files"]] == ["a.safetensors", "sub/b.gguf"]
    saved = tmp_path / "m.json"
    saved.write_text(out)
    assert run(capsys, "verify", str(model), "--digest", f"@{saved}")[0] == 0
    (model / "extra").write_bytes(b"")
    assert run(capsys, "verify", str(model), "--digest", f"@{saved}")[0] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],
        ["verify", "x", "y", "--digest", "00"],
        ["FILE", "--leaf-size", "1000"],
        ["FILE", "--threads", "0"],
        ["FILE", "--digest", "00"],
        ["verify", "FILE", "--digest", "xyz"],
        ["verify", "FILE", "--digest", "0" * 64, "--range", "0:1"],
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], blob: Path, argv: list[str]) -> None:
    argv = [str(blob) if a == "FILE" else a for a in argv]
    assert run(capsys, *argv)[0] == 2


def test_malformed_digest_file(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": 1, "tree": {"leaf_size": 4096, "root": "00", "leaves": []}}')
    assert run(capsys, "verify", str(blob), "--digest", f"@{bad}")[0] == 3
    bad.write_text("not json")
    assert run(capsys, "verify", str(blob), "--digest", f"@{bad}")[0] == 3


def test_missing_file_is_environment_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, str(tmp_path / "nope"))[0] == 4


def test_matches_coreutils_sha256sum(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("sha256sum") is None:
        pytest.fail("sha256sum (coreutils) is needed to compare against")
    for size in (0, 1, 4095, 4096, 4097, 1 << 20):
        path = tmp_path / f"s{size}"
        path.write_bytes(hashlib.shake_128(str(size).encode()).digest(size))
        theirs = subprocess.run(
            ["sha256sum", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert run(capsys, str(path))[1] == theirs
