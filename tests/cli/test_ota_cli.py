"""The release / root / update commands end to end (in process, through main())."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge._cli import main

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
NOW = "1800000000"


def _spec(tmp: Path, seq: int, payload: bytes) -> Path:
    (tmp / "fw.bin").write_bytes(payload)
    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": seq,
        "components": [
            {
                "install-id": ["00"],
                "vendor-id": VENDOR,
                "class-id": CLASS,
                "file": "fw.bin",
                "uri": "http://example.com/fw.bin",
                "bootable": True,
            }
        ],
    }
    path = tmp / f"spec{seq}.json"
    path.write_text(json.dumps(spec))
    return path


def _run(*argv: str) -> int:
    return main(list(argv))


def test_release_and_update_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = str(tmp_path)
    for name, alg in (("a", "es256"), ("b", "ed25519"), ("r1", "ed25519"), ("r2", "es256")):
        assert _run("release", "keygen", "--alg", alg, "-o", f"{t}/{name}.key") == 0
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
    # trust root: 2-of-2 firmware keys, 2-of-2 root keys
    assert (
        _run(
            "root",
            "init",
            "--root-key",
            f"{t}/r1.key.pub",
            "--root-key",
            f"{t}/r2.key.pub",
            "--root-threshold",
            "2",
            "--firmware-key",
            f"{t}/a.key.pub",
            "--firmware-key",
            f"{t}/b.key.pub",
            "--firmware-threshold",
            "2",
            "--expires",
            "1900000000",
            "--sign",
            f"{t}/r1.key",
            "-o",
            f"{t}/root.cbor",
        )
        == 0
    )
    assert _run("root", "verify", f"{t}/root.cbor", "--now", NOW) == 1  # 1 of 2 root sigs
    assert _run("root", "sign", f"{t}/root.cbor", "--key", f"{t}/r2.key") == 0
    assert _run("root", "verify", f"{t}/root.cbor", "--now", NOW) == 0

    payload = b"hello device " * 100
    spec = _spec(tmp_path, 7, payload)
    man = f"{t}/m7.suit"
    assert _run("release", "create", str(spec), "-o", man) == 0
    assert _run("release", "verify", man, "--key", f"{t}/a.key.pub") == 1  # unsigned
    assert _run("release", "sign", man, "--key", f"{t}/a.key") == 0
    assert _run("release", "verify", man, "--key", f"{t}/a.key.pub") == 0
    assert _run("release", "verify", man, "--trust-root", f"{t}/root.cbor", "--now", NOW) == 1
    assert _run("release", "sign", man, "--key", f"{t}/b.key", "--key", f"{t}/a.key") == 0
    capsys.readouterr()
    assert (
        _run("release", "verify", man, "--trust-root", f"{t}/root.cbor", "--now", NOW, "--json")
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["sequence_number"] == 7 and len(out["signers"]) == 2
    assert _run("release", "inspect", man) == 0
    assert "UNVERIFIED" in capsys.readouterr().out

    dev = [
        "--state",
        f"{t}/state",
        "--device",
        f"{t}/dev",
        "--vendor-id",
        VENDOR,
        "--class-id",
        CLASS,
    ]
    trust = ["--trust-root", f"{t}/root.cbor", "--now", NOW]
    assert _run("update", "apply", man, *trust, *dev) == 2  # usage: no payload for the URI
    assert _run("update", "apply", man, *trust, *dev, "--payload", f"{t}/fw.bin") == 0
    # apply recorded the device identity: confirm needs no ids (docs/ota.md runs it so)
    assert json.loads(Path(f"{t}/dev/identity.json").read_text()) == {
        "vendor-id": VENDOR,
        "class-id": CLASS,
    }
    assert _run("update", "confirm", "--state", f"{t}/state", "--device", f"{t}/dev") == 0
    # rollback: an older release, properly signed, is refused with exit 1
    spec5 = _spec(tmp_path, 5, payload)
    old = f"{t}/m5.suit"
    assert _run("release", "create", str(spec5), "-o", old) == 0
    assert _run("release", "sign", old, "--key", f"{t}/a.key", "--key", f"{t}/b.key") == 0
    capsys.readouterr()
    assert _run("update", "apply", old, *trust, *dev, "--payload", f"{t}/fw.bin") == 1
    assert "rollback" in capsys.readouterr().err
    # wrong device class: exit 1, nothing installed
    other = [*dev[:-1], "00000000-0000-5000-8000-000000000000"]
    other[3] = f"{t}/dev2"
    assert _run("update", "apply", man, *trust, *other, "--payload", f"{t}/fw.bin") == 1
    # rotation: v2 replaces firmware key b by c (b revoked), signed by both root keys
    assert _run("release", "keygen", "-o", f"{t}/c.key") == 0
    assert (
        _run(
            "root",
            "rotate",
            f"{t}/root.cbor",
            "--firmware-key",
            f"{t}/a.key.pub",
            "--firmware-key",
            f"{t}/c.key.pub",
            "--expires",
            "1900000000",
            "--sign",
            f"{t}/r1.key",
            "--sign",
            f"{t}/r2.key",
            "--floor-reset",
            "00=0",
            "-o",
            f"{t}/root2.cbor",
        )
        == 0
    )
    assert _run("root", "verify", f"{t}/root.cbor", f"{t}/root2.cbor", "--now", NOW) == 0
    assert _run("release", "verify", man, "--trust-root", f"{t}/root2.cbor", "--now", NOW) == 1
    # the device adopts v2 (floor reset to 0 for [h'00']), then the old release installs
    assert _run("release", "sign", old, "--key", f"{t}/c.key") == 0
    assert (
        _run(
            "update",
            "apply",
            old,
            *trust,
            *dev,
            "--payload",
            f"{t}/fw.bin",
            "--rotate",
            f"{t}/root2.cbor",
        )
        == 0
    )


def test_malformed_manifest_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.suit"
    bad.write_bytes(b"\xd8\x6b\xa1\x01")
    key = tmp_path / "k"
    assert _run("release", "keygen", "-o", str(key)) == 0
    assert _run("release", "verify", str(bad), "--key", f"{key}.pub") == 3
    assert _run("release", "inspect", str(bad)) == 3


def test_draft_example_with_cose_key(third_party: Path, tmp_path: Path) -> None:
    from trustedge.cose import encode_key
    from trustedge.keys import load_public_key

    pem = (third_party / "suit/keys/suit-draft-es256-pub.pem").read_bytes()
    (tmp_path / "k.cose").write_bytes(encode_key(load_public_key(pem)))
    ex = third_party / "suit/ietf-suit-manifest-37"
    assert (
        _run(
            "release", "verify", str(ex / "example3.signed.suit"), "--key", str(tmp_path / "k.cose")
        )
        == 0
    )
    assert (
        _run(
            "release",
            "verify",
            str(ex / "example3.unsigned.suit"),
            "--key",
            str(tmp_path / "k.cose"),
        )
        == 1
    )
    lib = third_party / "suit/libcsuit-2023/suit_manifest_exp1.cbor"
    key = str(third_party / "suit/keys/suit-draft-es256-pub.pem")
    assert _run("release", "verify", str(lib), "--key", key) == 3
    assert _run("release", "verify", str(lib), "--key", key, "--legacy-install") == 0
