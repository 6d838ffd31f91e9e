"""Event-log and IMA runtime policies over the shared vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustedge.errors import MalformedInputError, PolicyError, UnsupportedAlgorithmError
from trustedge.measuredboot import ImaKeyring, parse_event_log, parse_ima_log, verify_ima_log
from trustedge.measuredboot.policy import (
    AllOf,
    AnyOf,
    EventDigests,
    EventLogPolicy,
    ImaRuntimePolicy,
    KernelCmdline,
    RequireSecureBoot,
    UnsafeNoPolicy,
    load_ima_policy,
    load_policy,
)


def _verified(shared: Path, rel: str):  # type: ignore[no-untyped-def]
    log = parse_event_log((shared / "eventlog" / rel).read_bytes())
    return log.verify(log.replay())


def test_secure_boot_rule(third_party: Path) -> None:
    on = _verified(third_party, "go-attestation/sb_cert_eventlog")
    off = _verified(third_party, "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
    policy = EventLogPolicy((RequireSecureBoot(),))
    policy.check(on)
    with pytest.raises(PolicyError) as info:
        policy.check(off)
    assert info.value.violations == ["secure_boot: SecureBoot is not enabled"]


def test_every_violation_is_listed(third_party: Path) -> None:
    off = _verified(third_party, "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
    policy = EventLogPolicy(
        (
            RequireSecureBoot(),
            EventDigests(4, "sha256", frozenset()),
            KernelCmdline(required=(r"\bquiet\b",), forbidden=(r"console=ttyS0",)),
        )
    )
    with pytest.raises(PolicyError) as info:
        policy.check(off)
    kinds = {v.split(":", 1)[0] for v in info.value.violations}
    assert kinds == {"secure_boot", "event_digests", "kernel_cmdline"}
    assert len(info.value.violations) >= 5


def test_any_of_and_unsafe(third_party: Path) -> None:
    off = _verified(third_party, "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog")
    pcr4 = frozenset(ev.digests["sha256"] for ev in off.events_for(4))
    EventLogPolicy((AnyOf((RequireSecureBoot(), EventDigests(4, "sha256", pcr4))),)).check(off)
    EventLogPolicy((AllOf(()),)).check(off)
    UnsafeNoPolicy().check(off)
    with pytest.raises(TypeError):
        UnsafeNoPolicy().check(parse_event_log(b"\x00" * 32))  # type: ignore[arg-type]


def test_json_document(third_party: Path) -> None:
    vlog = _verified(third_party, "go-attestation/sb_cert_eventlog")
    apps = [ev.digests["sha256"].hex() for ev in vlog.events_for(4)]
    doc = {
        "version": 1,
        "rules": [
            {"rule": "secure_boot"},
            {"rule": "boot_applications", "bank": "sha256", "digests": apps},
            {"rule": "any_of", "rules": [{"rule": "dbx", "required": []}]},
        ],
    }
    load_policy(json.dumps(doc)).check(vlog)
    doc["rules"].append({"rule": "db", "forbidden": ["00" * 32], "required": ["11" * 32]})  # type: ignore[attr-defined]
    with pytest.raises(PolicyError) as info:
        load_policy(json.dumps(doc).encode()).check(vlog)
    assert info.value.violations == ["db: required entry " + "11" * 32 + " missing"]


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ("[]", MalformedInputError),
        ("{", MalformedInputError),
        ('{"version": 2, "rules": []}', UnsupportedAlgorithmError),
        ('{"version": 1, "rules": [{"rule": "nope"}]}', UnsupportedAlgorithmError),
        ('{"version": 1, "rules": [{"rule": "event_digests", "pcr": 99}]}', MalformedInputError),
        (
            '{"version": 1, "rules": [{"rule": "kernel_cmdline", "required": ["("]}]}',
            MalformedInputError,
        ),
        ('{"version": 1, "rules": [{"rule": "db", "required": ["zz"]}]}', MalformedInputError),
        ('{"version": 1, "rules": [], "workarounds": ["nope"]}', MalformedInputError),
    ],
)
def test_bad_documents(doc: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        load_policy(doc)


def _ima(shared: Path, name: str):  # type: ignore[no-untyped-def]
    data = (shared / "eventlog/keylime/ima/test_ima_verification" / name).read_bytes()
    log = parse_ima_log(data)
    return verify_ima_log(log, log.replay("sha1"))


def _keys(shared: Path, names: list[str]) -> ImaKeyring:
    base = shared / "eventlog/keylime/ima/ima_keys"
    return ImaKeyring.from_pem((base / n).read_bytes() for n in names)


def test_ima_runtime_policy(third_party: Path) -> None:
    base = third_party / "eventlog/keylime/ima/test_ima_verification"
    policy = load_ima_policy((base / "runtime_policy.json").read_bytes())
    policy.check(_ima(third_party, "measurements.ascii"))
    policy.check(_ima(third_party, "keyrings.ascii"))
    with pytest.raises(PolicyError) as info:
        ImaRuntimePolicy().check(_ima(third_party, "measurements.ascii"))
    assert len(info.value.violations) == 2
    ImaRuntimePolicy(excludes=(r"/lib/modules/.*",)).check(_ima(third_party, "measurements.ascii"))


@pytest.mark.parametrize(
    ("keys", "failures"),
    [([], 2), (["rsa2048pub.pem"], 1), (["rsa2048pub.pem", "secp256k1-pub.pem"], 0)],
)
def test_ima_signatures(third_party: Path, keys: list[str], failures: int) -> None:
    policy = ImaRuntimePolicy(keyring=_keys(third_party, keys), require_signatures=True)
    vlog = _ima(third_party, "signatures.ascii")
    if failures == 0:
        policy.check(vlog)
        return
    with pytest.raises(PolicyError) as info:
        policy.check(vlog)
    assert len(info.value.violations) == failures
