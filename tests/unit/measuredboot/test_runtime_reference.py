"""IMA runtime policies generated from a file tree and from Debian packages.

The packages are built by Debian's own ``dpkg-deb`` in the test, so the reader is
checked against the real producer; hostile archives get a trustedge error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.requirements import unavailable
from trustedge.errors import MalformedInputError, PolicyError, UnsupportedAlgorithmError
from trustedge.measuredboot import parse_ima_log, verify_ima_log
from trustedge.measuredboot.build import build_ima_entry
from trustedge.measuredboot.policy import load_ima_policy
from trustedge.measuredboot.runtime_reference import (
    merge_runtime_policies,
    runtime_policy_from_debs,
    runtime_policy_from_tree,
)


def _tree(root: Path, version: str) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/app").mkdir(parents=True)
    (root / "usr/bin/app").write_bytes(b"#!/bin/sh\necho app " + version.encode() + b"\n")
    (root / "usr/lib/app/model.bin").write_bytes(bytes(range(256)) * 100 + version.encode())
    (root / "usr/lib/app/same.txt").write_bytes(b"unchanged\n")
    (root / "usr/bin/app-link").symlink_to("app")
    return root


def _ima(entries: list[tuple[str, bytes]]) -> bytes:
    return b"".join(build_ima_entry(path, digest) for path, digest in entries)


def _check(policy_doc: dict[str, object], entries: list[tuple[str, bytes]]) -> None:
    data = _ima(entries)
    log = parse_ima_log(data)
    verified = verify_ima_log(log, log.replay("sha1"), bank="sha1")
    load_ima_policy(json.dumps(policy_doc)).check(verified)


def _sha(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def test_from_tree_affirms_its_files_and_rejects_others(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", "1")
    doc = runtime_policy_from_tree(root)
    assert set(doc["digests"]) == {
        "/usr/bin/app",
        "/usr/lib/app/model.bin",
        "/usr/lib/app/same.txt",
    }
    good = [
        (f"/{p.relative_to(root)}", _sha(p))
        for p in (root / "usr/bin/app", root / "usr/lib/app/model.bin")
    ]
    _check(doc, good)
    with pytest.raises(PolicyError):  # a modified file under a known path
        _check(doc, [("/usr/bin/app", hashlib.sha256(b"evil").digest())])
    with pytest.raises(PolicyError):  # a file the tree does not have
        _check(doc, [("/usr/bin/other", _sha(root / "usr/bin/app"))])
    prefixed = runtime_policy_from_tree(root / "usr", prefix="/usr")
    assert "/usr/bin/app" in prefixed["digests"]


def test_merge_allows_old_and_new_across_an_upgrade(tmp_path: Path) -> None:
    old_root = _tree(tmp_path / "old", "1")
    new_root = _tree(tmp_path / "new", "2")
    old, new = runtime_policy_from_tree(old_root), runtime_policy_from_tree(new_root)
    merged = merge_runtime_policies(old, new)
    old_entry = [("/usr/bin/app", _sha(old_root / "usr/bin/app"))]
    new_entry = [("/usr/bin/app", _sha(new_root / "usr/bin/app"))]
    _check(merged, old_entry)
    _check(merged, new_entry)
    with pytest.raises(PolicyError):
        _check(new, old_entry)  # after the window: only the new policy
    assert merged["digests"]["/usr/lib/app/same.txt"] == old["digests"]["/usr/lib/app/same.txt"]


def _dpkg_deb() -> str:
    tool = shutil.which("dpkg-deb")
    if tool is None:
        unavailable("dpkg-deb (Debian's dpkg) is needed to build test packages")
    assert tool is not None
    return tool


@pytest.mark.parametrize("compression", ["xz", "gzip", "none"])
def test_from_debs_equals_from_the_tree(tmp_path: Path, compression: str) -> None:
    root = _tree(tmp_path / "pkg", "1")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: app\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    deb = tmp_path / "app_1_all.deb"
    subprocess.run(
        [_dpkg_deb(), f"-Z{compression}", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root / "DEBIAN")
    assert runtime_policy_from_debs([deb])["digests"] == runtime_policy_from_tree(root)["digests"]


def test_hostile_debs_are_refused(tmp_path: Path) -> None:
    cases = {
        "empty": b"",
        "not-ar": b"PK\x03\x04" + bytes(100),
        "short-header": b"!<arch>\n" + b"debian-binary   ",
        "bad-size": b"!<arch>\n" + b"debian-binary   0           0     0     100644  zz        `\n",
        "huge-size": b"!<arch>\n"
        + b"debian-binary   0           0     0     100644  9999999999`\n2.0\n",
        "no-data": b"!<arch>\n"
        + b"debian-binary   0           0     0     100644  4         `\n2.0\n",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.deb"
        path.write_bytes(data)
        with pytest.raises(MalformedInputError):
            runtime_policy_from_debs([path])
    member = b"data.tar.xz     0           0     0     100644  5         `\n" + b"junk\n\n"
    path = tmp_path / "broken-xz.deb"
    path.write_bytes(
        b"!<arch>\n"
        + b"debian-binary   0           0     0     100644  4         `\n2.0\n"
        + member
    )
    with pytest.raises(MalformedInputError, match="broken package data"):
        runtime_policy_from_debs([path])
    with pytest.raises(UnsupportedAlgorithmError):
        runtime_policy_from_tree(tmp_path, algorithm="md5")
