"""``trustedge policy``: generated policies used by the commands that check them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.vectors import third_party_dir
from trustedge.measuredboot import parse_event_log
from trustedge.measuredboot.build import build_ima_entry

LOG = "eventlog/keylime/create-mb-policy/binary_bios_measurements-secureboot"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trustedge", *args], input=stdin, capture_output=True, timeout=120
    )


def _mutated_log(tmp_path: Path) -> Path:
    """The golden log with one PCR4 boot application's digest changed (a bootkit)."""
    data = (third_party_dir() / LOG).read_bytes()
    log = parse_event_log(data)
    ev = next(e for e in log.unverified_events if e.pcr == 4 and e.event_type == 0x80000003)
    old = ev.digests["sha256"]
    assert data.count(old) == 1
    out = tmp_path / "bootkit.bin"
    out.write_bytes(data.replace(old, bytes(32)))
    return out


def test_from_eventlog_then_eventlog_verify(tmp_path: Path) -> None:
    log = third_party_dir() / LOG
    policy = tmp_path / "boot.json"
    done = _run("policy", "from-eventlog", str(log), "-o", str(policy))
    assert done.returncode == 0, done.stderr
    assert json.loads(policy.read_text())["rules"]
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_bytes(_run("eventlog", "replay", str(log), "--json").stdout)
    ok = _run("eventlog", "verify", str(log), "--pcrs", str(pcrs), "--policy", str(policy))
    assert ok.returncode == 0, ok.stderr
    bad = _mutated_log(tmp_path)
    bad_pcrs = tmp_path / "bad-pcrs.json"
    bad_pcrs.write_bytes(_run("eventlog", "replay", str(bad), "--json").stdout)
    refused = _run(
        "eventlog", "verify", str(bad), "--pcrs", str(bad_pcrs), "--policy", str(policy), "--json"
    )
    assert refused.returncode == 1
    assert "pcr_values: PCR4" in refused.stdout.decode() + refused.stderr.decode()


def test_from_eventlog_json_and_stdin(tmp_path: Path) -> None:
    data = (third_party_dir() / LOG).read_bytes()
    done = _run("policy", "from-eventlog", "-", "--json", "--pcr-indices", "0-7", stdin=data)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    assert doc["report"]["pinned_pcrs"] == list(range(8))
    assert {r["rule"] for r in doc["policy"]["rules"]} >= {"pcr_values", "secure_boot"}


def test_bad_inputs_give_one_line_and_exit_codes(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"bogus\ninvalid\n")
    done = _run("policy", "from-eventlog", str(garbage))
    assert done.returncode == 3
    assert len(done.stderr.decode().strip().splitlines()) == 1
    assert b"Traceback" not in done.stderr
    done = _run("policy", "from-eventlog", str(third_party_dir() / LOG), "--pcr-indices", "0-99")
    assert done.returncode == 2
    done = _run("policy", "from-tree", str(garbage))
    assert done.returncode == 3
    done = _run("policy", "merge", str(garbage))
    assert done.returncode == 3


def test_from_tree_merge_and_ima_verify(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for root, text in ((old, b"v1"), (new, b"v2")):
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin/app").write_bytes(text)
    for root in (old, new):
        done = _run("policy", "from-tree", str(root), "-o", str(root) + ".json")
        assert done.returncode == 0, done.stderr
    merged = tmp_path / "merged.json"
    done = _run("policy", "merge", f"{old}.json", f"{new}.json", "-o", str(merged))
    assert done.returncode == 0, done.stderr
    assert len(json.loads(merged.read_text())["digests"]["/usr/bin/app"]) == 2
    import hashlib

    from trustedge.measuredboot import parse_ima_log

    ima = tmp_path / "ima.bin"
    ima.write_bytes(build_ima_entry("/usr/bin/app", hashlib.sha256(b"v1").digest()))
    pcr10 = parse_ima_log(ima.read_bytes()).replay("sha1").hex()
    ok = _run(
        "ima", "verify", str(ima), "--pcr10", pcr10, "--bank", "sha1", "--policy", str(merged)
    )
    assert ok.returncode == 0, ok.stderr
    refused = _run(
        "ima", "verify", str(ima), "--pcr10", pcr10, "--bank", "sha1", "--policy", f"{new}.json"
    )
    assert refused.returncode == 1, refused.stderr


def test_import_keylime_runtime_signed_and_allowlist(tmp_path: Path) -> None:
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge.models import dsse_pae

    source = third_party_dir() / "eventlog/keylime/ima/test_ima_verification/runtime_policy.json"
    done = _run("policy", "import-keylime", str(source), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["report"]["kind"] == "runtime" and out["report"]["signed"] is False
    assert "/usr/bin/dd" in out["policy"]["digests"]

    key = ec.derive_private_key(0x5151, ec.SECP256R1())
    pub = tmp_path / "key.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    payload = source.read_bytes()
    ptype = "application/vnd.keylime+json"
    sig = key.sign(dsse_pae(ptype, payload), ec.ECDSA(hashes.SHA256()))
    signed = tmp_path / "signed.json"
    signed.write_text(json.dumps({
        "payload": base64.b64encode(payload).decode(), "payloadType": ptype,
        "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
    }))  # fmt: skip
    done = _run(
        "policy", "import-keylime", str(signed), "--key", str(pub), "-o", str(tmp_path / "p")
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "p").read_text())["digests"] == out["policy"]["digests"]
    assert _run("policy", "import-keylime", str(signed)).returncode == 1  # no key: refused
    other = tmp_path / "other.pem"
    other.write_bytes(
        ec.derive_private_key(3, ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert _run("policy", "import-keylime", str(signed), "--key", str(other)).returncode == 1

    allow = tmp_path / "allowlist.txt"
    allow.write_text(f"{'ab' * 32}  /usr/bin/x\n")
    excl = tmp_path / "exclude.txt"
    excl.write_text("^/tmp/\n")
    done = _run("policy", "import-keylime", str(allow), "--excludelist", str(excl), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["policy"]
    assert doc["digests"] == {"/usr/bin/x": ["ab" * 32]} and doc["excludes"] == ["^/tmp/"]


def test_diff_explain_sign_verify(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    log = third_party_dir() / LOG
    policy = tmp_path / "boot.json"
    assert _run("policy", "from-eventlog", str(log), "-o", str(policy)).returncode == 0
    same = _run("policy", "diff", str(policy), str(policy))
    assert same.returncode == 0 and b"same" in same.stdout
    bad = _mutated_log(tmp_path)
    other = tmp_path / "other.json"
    assert _run("policy", "from-eventlog", str(bad), "-o", str(other)).returncode == 0
    changed = _run("policy", "diff", str(policy), str(other), "--json")
    assert changed.returncode == 1
    changes = json.loads(changed.stdout)["changes"]
    assert any("pcr_values PCR4" in c for c in changes), changes

    ok = _run("policy", "explain", str(policy), str(log))
    assert ok.returncode == 0, ok.stdout
    failed = _run("policy", "explain", str(policy), str(bad), "--json")
    assert failed.returncode == 1
    rules = json.loads(failed.stdout)["rules"]
    assert [r["rule"]["pcr"] for r in rules if not r["ok"] and "pcr" in r["rule"]] == [4]

    key = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    pem = serialization.Encoding.PEM
    priv.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signed = tmp_path / "boot.signed"
    done = _run("policy", "sign", str(policy), "--key", str(priv), "--kind", "boot",
                "--version", "2", "--expires", "2000000000", "-o", str(signed))  # fmt: skip
    assert done.returncode == 0, done.stderr
    back = tmp_path / "back.json"
    done = _run("policy", "verify", str(signed), "--key", str(pub), "--kind", "boot",
                "--now", "1900000000", "-o", str(back), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == policy.read_bytes()
    assert json.loads(done.stdout)["version"] == 2
    expired = _run("policy", "verify", str(signed), "--key", str(pub), "--now", "2000000000")
    assert expired.returncode == 1
    older = _run("policy", "verify", str(signed), "--key", str(pub), "--min-version", "3")
    assert older.returncode == 1


def test_corim_export_import(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    log = third_party_dir() / LOG
    policy = tmp_path / "boot.json"
    assert _run("policy", "from-eventlog", str(log), "-o", str(policy)).returncode == 0
    key = ec.derive_private_key(0xC0, ec.SECP256R1())
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    pem = serialization.Encoding.PEM
    priv.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pub.write_bytes(
        key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    corim = tmp_path / "ref.corim"
    done = _run("policy", "export-corim", str(policy), "--corim-id", "gw-2026", "--vendor", "acme",
                "--model", "gw", "--key", str(priv), "-o", str(corim))  # fmt: skip
    assert done.returncode == 0, done.stderr
    back = tmp_path / "back.json"
    done = _run("policy", "import-corim", str(corim), "--key", str(pub), "-o", str(back), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["report"]["environments"] == [{"vendor": "acme", "model": "gw"}]
    pcrs = tmp_path / "pcrs.json"
    pcrs.write_bytes(_run("eventlog", "replay", str(log), "--json").stdout)
    ok = _run("eventlog", "verify", str(log), "--pcrs", str(pcrs), "--policy", str(back))
    assert ok.returncode == 0, ok.stderr
    assert _run("policy", "import-corim", str(corim)).returncode == 1  # signed, no key
    unsigned = tmp_path / "u.corim"
    assert _run("policy", "export-corim", str(policy), "--corim-id", "x", "--vendor", "a",
                "--model", "b", "-o", str(unsigned)).returncode == 0  # fmt: skip
    assert _run("policy", "import-corim", str(unsigned)).returncode == 1  # unsigned refused
    assert _run("policy", "import-corim", str(unsigned), "--unsigned").returncode == 0


def test_from_update_pins_the_predicted_boot(tmp_path: Path) -> None:
    from tests.cli.test_update_predict_cli import GRUB, _release
    from tests.cli.test_update_predict_cli import LOG as RHEL
    from trustedge.measuredboot.authenticode import authenticode_digest
    from trustedge.measuredboot.build import LogEvent, build_event_log

    manifest, key = _release(tmp_path)
    policy = tmp_path / "next.json"
    args = ["policy", "from-update", str(manifest), "--eventlog", str(RHEL), "--key", f"{key}.pub"]
    done = _run(*args, "-o", str(policy), "--json")
    assert done.returncode == 0, done.stderr
    assert 4 in json.loads(done.stdout)["report"]["pinned_pcrs"]
    log = parse_event_log(RHEL.read_bytes())
    events = []
    for ev in log.unverified_events:
        if ev.number == 0 and ev.event_type == 3:
            continue
        digests = ev.digests
        if ev.number == 26:  # the boot loader the update replaces
            digests = {b: authenticode_digest(GRUB, b) for b in digests}
        events.append(LogEvent(ev.pcr, ev.event_type, ev.data, digests))
    after = tmp_path / "after.bin"
    after.write_bytes(build_event_log(events, banks=log.banks))

    def verify(log_path: Path, policy_path: Path) -> int:
        pcrs = tmp_path / "p.json"
        pcrs.write_bytes(_run("eventlog", "replay", str(log_path), "--json").stdout)
        return _run("eventlog", "verify", str(log_path), "--pcrs", str(pcrs),
                    "--policy", str(policy_path)).returncode  # fmt: skip

    assert verify(after, policy) == 0  # the predicted boot passes
    assert verify(RHEL, policy) == 1  # the old boot does not
    window = tmp_path / "window.json"
    assert _run(*args, "--window", "-o", str(window)).returncode == 0
    assert verify(RHEL, window) == 0 and verify(after, window) == 0
    unsigned = _run("policy", "from-update", str(manifest), "--eventlog", str(RHEL))
    assert unsigned.returncode == 1  # reference values only from an authenticated update
