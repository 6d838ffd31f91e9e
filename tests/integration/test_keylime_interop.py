"""Keylime migration checked against Keylime itself (PyPI ``keylime``, in process).

Keylime's own ``create_mb_refstate`` makes the measured-boot reference state from a
golden log (through Debian's ``tpm2_eventlog``, as Keylime does); trustedge converts
it (``boot_policy_from_refstate``) and both appraise the golden log and its
mutations: the verdicts must agree. The legacy allowlist / excludelist and runtime
policies of the vendored Keylime corpus convert and give Keylime's verdicts on its
IMA lists.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.requirements import unavailable
from tests.vectors import third_party_dir
from trustedge.attestation.keylime import (
    boot_policy_from_refstate,
    runtime_policy_from_allowlist,
    runtime_policy_from_keylime,
    verify_keylime_dsse,
)
from trustedge.errors import MalformedInputError, PolicyError, SignatureError
from trustedge.measuredboot import EventLog, load_policy, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log
from trustedge.measuredboot.events import bank_hash
from trustedge.measuredboot.policy import load_ima_policy
from trustedge.measuredboot.reference import self_verified

SB_LOG = "eventlog/keylime/create-mb-policy/binary_bios_measurements-secureboot"
EV_IPL, EV_APP, EV_DRIVER_CONFIG = 0x0D, 0x80000003, 0x80000001


def _keylime() -> Any:
    if shutil.which("tpm2_eventlog") is None:
        unavailable("tpm2_eventlog (tpm2-tools): Keylime parses logs with it")
    try:
        from keylime.mba import mba
        from keylime.policy import create_mb_policy
    except ImportError:
        unavailable("keylime (pip install '.[dev]')")
        raise
    mba.load_imports(skip_custom_policies=True)
    return mba, create_mb_policy


def _refstate(path: Path) -> dict[str, Any]:
    _, create = _keylime()
    args = argparse.Namespace(
        eventlog_file=str(path), without_secureboot=True, output=str(path) + ".ref"
    )
    ref = create.create_mb_refstate(args)
    assert ref is not None
    return dict(ref)


def _keylime_reason(refstate: dict[str, Any], data: bytes) -> str:
    """Keylime's ``example`` measured-boot policy on a log: "" when it passes.

    (``mba.bootlog_evaluate`` picks the policy from verifier.conf and falls back to
    accept-all without one, so the example policy is called as the verifier calls it.)
    """
    mba, _ = _keylime()
    from keylime.mba.elchecking import policies

    _, _, parsed, failure = mba.bootlog_parse(base64.b64encode(data).decode(), "sha256")
    if failure:  # Keylime's verifier fails an attestation whose log it cannot parse
        return "log not parsed: " + "; ".join(str(e.context) for e in failure.events)
    policy = policies.get_policy("example")
    assert policy is not None
    try:
        reason = policy.evaluate(json.loads(json.dumps(refstate)), parsed)
    except Exception as exc:  # Keylime's verifier turns these into a failed attestation too
        reason = f"policy evaluation failed: {exc}"
    return str(reason or "")


def _keylime_passes(refstate: dict[str, Any], data: bytes) -> bool:
    return _keylime_reason(refstate, data) == ""


def _trustedge_passes(refstate: dict[str, Any], data: bytes) -> bool:
    try:
        policy = load_policy(json.dumps(boot_policy_from_refstate(refstate).document))
    except MalformedInputError:
        return False  # a refstate Keylime's example policy cannot evaluate either
    try:
        policy.check(self_verified(parse_event_log(data)))
    except PolicyError:
        return False
    return True


def _rebuild(log: EventLog, index: int, **change: Any) -> bytes:
    events = []
    for i, ev in enumerate(log.unverified_events):
        if ev.number == 0 and ev.event_type == 3:
            continue  # the Spec ID header: build_event_log writes its own
        if i == index:
            ev = ev._replace(**change)
        events.append(LogEvent(ev.pcr, ev.event_type, ev.data, ev.digests))
    return build_event_log(events, banks=log.banks)


def _mutations(data: bytes) -> dict[str, bytes]:
    """The log rebuilt unchanged, and each single lie it has the events for."""
    log = parse_event_log(data)
    evs = list(log.unverified_events)
    out = {"unchanged": _rebuild(log, -1)}
    app = next((i for i, e in enumerate(evs) if e.pcr == 4 and e.event_type == EV_APP), None)
    if app is not None:
        out["boot application replaced"] = _rebuild(
            log, app, digests={b: bank_hash(b, b"bootkit") for b in evs[app].digests}
        )
    cmd = next((i for i, e in enumerate(evs) if e.pcr == 8 and e.event_type == EV_IPL
                and b"kernel_cmdline" in e.data), None)  # fmt: skip
    if cmd is not None:
        data8 = evs[cmd].data
        new = data8.replace(b" ro ", b" rw ") if b" ro " in data8 else data8 + b"x"
        out["kernel command line changed"] = _rebuild(
            log, cmd, data=new, digests={b: bank_hash(b, new) for b in evs[cmd].digests}
        )
    sb = next((i for i, e in enumerate(evs) if e.pcr == 7 and e.event_type == EV_DRIVER_CONFIG
               and "SecureBoot".encode("utf-16-le") in e.data), None)  # fmt: skip
    if sb is not None:
        off = evs[sb].data[:-1] + bytes([evs[sb].data[-1] ^ 1])
        out["secure boot flipped"] = _rebuild(
            log, sb, data=off, digests={b: bank_hash(b, off) for b in evs[sb].digests}
        )
    return out


def test_refstate_conversion_gives_keylimes_verdicts(tmp_path: Path) -> None:
    golden = tmp_path / "golden.bin"
    golden.write_bytes((third_party_dir() / SB_LOG).read_bytes())
    refstate = _refstate(golden)
    conversion = boot_policy_from_refstate(refstate)
    assert {r["rule"] for r in conversion.document["rules"]} >= {
        "secure_boot",
        "db",
        "boot_applications",
    }
    assert any(u.startswith("pk:") for u in conversion.unconverted)
    verdicts = {}
    for name, data in _mutations(golden.read_bytes()).items():
        verdicts[name] = (_keylime_passes(refstate, data), _trustedge_passes(refstate, data))
    assert verdicts["unchanged"] == (True, True), verdicts
    for name, (keylime, trustedge) in verdicts.items():
        assert keylime == trustedge, f"{name}: Keylime {keylime}, trustedge {trustedge}"
    assert sum(1 for k, _ in verdicts.values() if not k) == 3


def test_verdicts_agree_over_the_corpus(tmp_path: Path) -> None:
    """Every corpus log Keylime makes a refstate of: Keylime's verdict and trustedge's on the
    log and on each single lie it has the events for are the same."""
    from tests.vectors.test_measuredboot_reference import GOLDEN

    compared, passed = 0, 0
    for name, _ in GOLDEN:
        path = tmp_path / name.replace("/", "_")
        path.write_bytes((third_party_dir() / "eventlog" / name).read_bytes())
        try:
            refstate = _refstate(path)
        except AssertionError:
            continue  # Keylime makes no refstate of it (e.g. no Spec ID, unsupported bank)
        for lie, data in _mutations(path.read_bytes()).items():
            keylime, trustedge = _keylime_passes(refstate, data), _trustedge_passes(refstate, data)
            assert keylime == trustedge, f"{name} {lie}: Keylime {keylime}, trustedge {trustedge}"
            compared += 1
            passed += keylime
    assert compared >= 50 and passed >= 4, (compared, passed)


KL = "eventlog/keylime/ima/test_ima_verification"


def test_runtime_policy_conversion_gives_keylimes_verdicts() -> None:
    """Keylime's test_ima_verification: measurements.ascii pass with its runtime policy,
    fail with an empty one (upstream expectations in the corpus' SOURCES.md)."""
    from trustedge.measuredboot import parse_ima_log, verify_ima_log

    base = third_party_dir() / KL
    log = parse_ima_log((base / "measurements.ascii").read_bytes())
    verified = verify_ima_log(log, log.replay("sha1"), bank="sha1")
    converted = runtime_policy_from_keylime((base / "runtime_policy.json").read_bytes())
    load_ima_policy(json.dumps(converted.document)).check(verified)
    empty = runtime_policy_from_keylime(b'{"meta": {"version": 1}, "digests": {}}')
    with pytest.raises(PolicyError):
        load_ima_policy(json.dumps(empty.document)).check(verified)


def test_legacy_allowlist_and_excludelist() -> None:
    from trustedge.measuredboot import parse_ima_log, verify_ima_log

    base = third_party_dir() / KL
    policy = json.loads((base / "runtime_policy.json").read_text())
    lines = [f"{d}  {path}" for path, ds in policy["digests"].items() for d in ds]
    lines.append("a7d52aaa18c23d2d9bb2ad9a9ab5f68f62c7c6f2d3c1d8a0e7e1e6b5c4d3c2b1  %keyring:.ima")
    flat = runtime_policy_from_allowlist("\n".join(lines) + "\nnot-a-valid-line\n", "^/tmp/\n# c\n")
    assert flat.document["excludes"] == ["^/tmp/"]
    assert ".ima" in flat.document["keyrings"]
    assert any("line" in u for u in flat.unconverted)
    as_json = runtime_policy_from_allowlist(json.dumps({"hashes": policy["digests"]}))
    assert as_json.document["digests"] == flat.document["digests"]
    log = parse_ima_log((base / "measurements.ascii").read_bytes())
    verified = verify_ima_log(log, log.replay("sha1"), bank="sha1")
    load_ima_policy(json.dumps(flat.document)).check(verified)
    with pytest.raises(MalformedInputError):
        runtime_policy_from_allowlist("zz-not-hex  /usr/bin/x\n")


def test_signed_keylime_policy_dsse() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge.models import dsse_pae

    key = ec.derive_private_key(0x4B45594C494D45, ec.SECP256R1())
    payload = (third_party_dir() / KL / "runtime_policy.json").read_bytes()
    ptype = "application/vnd.keylime+json"
    sig = key.sign(dsse_pae(ptype, payload), ec.ECDSA(hashes.SHA256()))
    envelope = json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": ptype,
            "signatures": [{"keyid": "k", "sig": base64.b64encode(sig).decode()}],
        }
    )
    assert verify_keylime_dsse(envelope, [key.public_key()]) == (ptype, payload)
    other = ec.derive_private_key(7, ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        verify_keylime_dsse(envelope, [other])
    tampered = json.loads(envelope)
    tampered["payload"] = base64.b64encode(payload.replace(b"dd", b"de")).decode()
    with pytest.raises(SignatureError):
        verify_keylime_dsse(json.dumps(tampered), [key.public_key()])
    with pytest.raises(MalformedInputError):
        verify_keylime_dsse(b"[1]", [key.public_key()])
