"""``trustedge hash`` and ``trustedge hash verify`` end to end (in process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    for i, size in enumerate((9000, 0, 70_000, 4096)):
        (model / f"f{i}.bin").write_bytes(hashlib.shake_128(bytes([i])).digest(size))
    (model / "sub" / "b.gguf").write_bytes(b"b" * 10)
    return model


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_directory_sha256_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, threads: str
) -> None:
    model = _model(tmp_path)
    code, out, _ = run(capsys, str(model), "--threads", threads)
    assert code == 0
    names = ["f0.bin", "f1.bin", "f2.bin", "f3.bin", "sub/b.gguf"]
    want = "".join(
        f"{hashlib.sha256((model / n).read_bytes()).hexdigest()}  {model / n}\n" for n in names
    )
    assert out == want
    (model / "link").symlink_to(model / "f0.bin")
    assert run(capsys, str(model))[0] != 0  # refused like the manifest


def test_tree_only(capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, str(blob), "--tree-only", "--leaf-size", "4K")
    tree, name = out.split()
    full = run(capsys, str(blob), "--tree", "--leaf-size", "4K")[1].split()
    assert code == 0 and name == str(blob) and tree == full[1]
    code, out, _ = run(capsys, str(blob), "--tree-only", "--leaf-size", "4K", "--json")
    entry = json.loads(out)["files"][0]
    assert "sha256" not in entry and entry["tree"]["root"] == tree.rsplit(":", 1)[1]
    saved = tmp_path / "t.json"
    saved.write_text(out)
    code, out, _ = run(capsys, "verify", str(blob), "--digest", f"@{saved}", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["checked"] == ["tree"] and doc["not_checked"] == []


def _sidecar(capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path) -> dict[str, Any]:
    code, out, _ = run(capsys, str(blob), "--tree", "--leaf-size", "4K", "--json")
    assert code == 0
    doc: dict[str, Any] = json.loads(out)
    return doc


def _write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "sidecar.json"
    path.write_text(json.dumps(doc))
    return f"@{path}"


def test_verify_checks_the_tree_and_says_so(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path
) -> None:
    spec = _write(tmp_path, _sidecar(capsys, blob, tmp_path))
    code, out, _ = run(capsys, "verify", str(blob), "--digest", spec)
    assert code == 0 and out == f"{blob}: OK (tree verified; not checked: sha256)\n"
    code, out, _ = run(capsys, "verify", str(blob), "--digest", spec, "--json")
    doc = json.loads(out)
    assert doc["checked"] == ["tree"] and doc["not_checked"] == ["sha256"]
    code, out, _ = run(capsys, "verify", str(blob), "--digest", spec, "--all-digests", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["checked"] == ["tree", "sha256"] and doc["not_checked"] == []


def test_sidecar_whose_digests_disagree(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path
) -> None:
    """The digest checked is chosen from the sidecar, never from what the file matches."""
    good = _sidecar(capsys, blob, tmp_path)
    # Right tree, wrong sha256: the tree binds the bytes, so the default passes and names
    # the sha256 as not checked; --all-digests checks both and fails.
    wrong_sha = json.loads(json.dumps(good))
    wrong_sha["files"][0]["sha256"] = "00" * 32
    spec = _write(tmp_path, wrong_sha)
    code, out, _ = run(capsys, "verify", str(blob), "--digest", spec, "--json")
    assert code == 0 and json.loads(out)["not_checked"] == ["sha256"]
    code, _, err = run(capsys, "verify", str(blob), "--digest", spec, "--all-digests")
    assert code == 1 and "SHA-256" in err
    # Right sha256, a (self-consistent) tree of other bytes: fails, with no fallback to
    # the sha256 that would match.
    other = tmp_path / "other.bin"
    other.write_bytes(blob.read_bytes()[:-1] + b"!")
    tree = run(capsys, str(other), "--tree", "--leaf-size", "4K", "--json")[1]
    wrong_tree = json.loads(json.dumps(good))
    wrong_tree["files"][0]["tree"] = json.loads(tree)["files"][0]["tree"]
    spec = _write(tmp_path, wrong_tree)
    for extra in ([], ["--all-digests"]):
        code, _, err = run(capsys, "verify", str(blob), "--digest", spec, *extra)
        assert code == 1 and "leaf" in err


def test_verify_sha256_only_sidecar(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, str(blob), "--json")
    spec = _write(tmp_path, json.loads(out))
    code, out, _ = run(capsys, "verify", str(blob), "--digest", spec, "--json")
    assert code == 0 and json.loads(out)["checked"] == ["sha256"]
    assert run(capsys, "verify", str(blob), "--digest", spec, "--range", "0:1")[0] == 2
    blob.write_bytes(blob.read_bytes() + b"x")
    code, _, err = run(capsys, "verify", str(blob), "--digest", spec)
    assert code == 1 and "bytes" in err
    bad = {"files": [{"path": str(blob), "size": -1, "sha256": "00" * 32}]}
    assert run(capsys, "verify", str(blob), "--digest", _write(tmp_path, bad))[0] == 3


def test_directory_verify_tree_and_all_digests(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = _model(tmp_path)
    code, out, _ = run(capsys, str(model), "--json", "--leaf-size", "4096", "--threads", "2")
    doc = json.loads(out)
    spec = _write(tmp_path, doc)
    code, out, _ = run(capsys, "verify", str(model), "--digest", spec, "--json")
    got = json.loads(out)
    assert code == 0 and got["checked"] == ["tree"] and got["not_checked"] == ["sha256"]
    assert got["files"] == 5
    doc["models"][0]["files"][2]["sha256"] = "00" * 32
    spec = _write(tmp_path, doc)
    assert run(capsys, "verify", str(model), "--digest", spec)[0] == 0
    assert run(capsys, "verify", str(model), "--digest", spec, "--all-digests")[0] == 1
    (model / "f2.bin").write_bytes(b"changed")
    assert run(capsys, "verify", str(model), "--digest", spec, "--threads", "2")[0] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["FILE", "--tree", "--tree-only"],
        ["DIR", "--tree-only"],
        ["FILE", "--all-digests"],
        ["verify", "FILE", "--digest", "0" * 64, "--tree"],
    ],
)
def test_new_usage_errors(
    capsys: pytest.CaptureFixture[str], blob: Path, tmp_path: Path, argv: list[str]
) -> None:
    subst = {"FILE": str(blob), "DIR": str(tmp_path)}
    assert run(capsys, *[subst.get(a, a) for a in argv])[0] == 2
