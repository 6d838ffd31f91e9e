"""The firmware-log verdict cache (``BootVerdictCache``): an optimisation that cannot
change a decision.

Every test compares an appraisal made with a warm cache with the same appraisal made
without one: a hit gives the same findings, and a changed log, a changed quoted PCR, a
changed policy or a changed boot reference is a miss that is appraised in full.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.attestation.test_appraisal_core import NOW, Device, policy
from tests.unit.attestation.test_issue14_regressions import sha256
from trustedge.attestation import AppraisalPolicy, appraise
from trustedge.attestation.appraisal import BootVerdictCache
from trustedge.attestation.findings import Finding
from trustedge.measuredboot import (
    BootApplications,
    EventLogPolicy,
    RequireSecureBoot,
    parse_event_log,
)


def _reasons(findings: object) -> list[str]:
    return [str(f[0].value if isinstance(f, tuple) else f.value) for f in findings]  # type: ignore[attr-defined]


def _appraise(
    device: Device,
    nonce: bytes,
    pol: AppraisalPolicy,
    cache: BootVerdictCache | None,
    **changes: object,
) -> list[str]:
    evidence = device.evidence(nonce)
    if changes:
        evidence = dataclasses.replace(evidence, **changes)  # type: ignore[arg-type]
    result = appraise(evidence, enrollment=device.enrolled(), policy=pol, now=NOW, boot_cache=cache)
    return _reasons(result.findings)


def test_a_hit_gives_the_findings_of_a_full_appraisal(tmp_path: Path) -> None:
    device, pol = Device(tmp_path), policy()
    cache = BootVerdictCache(pol)
    uncached = _appraise(device, sha256(b"n0"), pol, None)
    first = _appraise(device, sha256(b"n1"), pol, cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 1, 1)
    second = _appraise(device, sha256(b"n2"), pol, cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert first == second == uncached
    assert Finding.BOOT_APPROVED.value in second and Finding.SECURE_BOOT_APPROVED.value in second


def test_a_changed_log_misses(tmp_path: Path) -> None:
    device, pol = Device(tmp_path), policy()
    cache = BootVerdictCache(pol)
    _appraise(device, sha256(b"n1"), pol, cache)
    log = device.log.read_bytes()
    # one quoted event's SHA-256 digest changed: the log no longer replays to the quote
    event = next(
        e
        for e in parse_event_log(log).unverified_events
        if 0 <= e.pcr <= 7 and "sha256" in e.digests
    )
    at = log.index(event.digests["sha256"], event.offset)
    tampered = log[:at] + bytes([log[at] ^ 1]) + log[at + 1 :]
    got = _appraise(device, sha256(b"n2"), pol, cache, event_log=tampered)
    assert cache.misses == 2 and cache.hits == 0
    assert got == _appraise(device, sha256(b"n3"), pol, None, event_log=tampered)
    assert Finding.BOOT_APPROVED.value not in got


def test_a_changed_quoted_pcr_misses(tmp_path: Path) -> None:
    device, pol = Device(tmp_path), policy()
    cache = BootVerdictCache(pol)
    approved = _appraise(device, sha256(b"n1"), pol, cache)
    assert Finding.BOOT_APPROVED.value in approved
    # Something the log does not show was measured into PCR 4: the same log bytes, a
    # different (genuinely quoted) PCR 4. The cached approval must not be reused.
    device.tpm.pcr_extend(4, {"sha256": sha256(b"unlogged"), "sha1": bytes(20)})
    got = _appraise(device, sha256(b"n2"), pol, cache)
    assert cache.hits == 0 and cache.misses == 2
    assert Finding.FIRMWARE_LOG_MISMATCH.value in got
    assert got == _appraise(device, sha256(b"n3"), pol, None)


def test_a_changed_policy_misses(tmp_path: Path) -> None:
    device, pol = Device(tmp_path), policy()
    cache = BootVerdictCache(pol)
    _appraise(device, sha256(b"n1"), pol, cache)
    # Same policy id, other rules: a cache bound to another policy object is not used.
    strict = policy(
        boot=EventLogPolicy((RequireSecureBoot(), BootApplications("sha256", frozenset())))
    )
    got = _appraise(device, sha256(b"n2"), strict, cache)
    assert cache.hits == 0
    assert got == _appraise(device, sha256(b"n3"), strict, None)
    assert Finding.BOOT_POLICY_VIOLATION.value in got
    # and the key itself names the policy id
    other = BootVerdictCache(policy(policy_id="other"))
    pcrs = {0: bytes(32)}
    assert other.key(b"log", pcrs, None) != cache.key(b"log", pcrs, None)


def test_a_changed_boot_reference_misses() -> None:
    cache = BootVerdictCache(policy())
    pcrs = {0: bytes(32), 7: b"\x01" * 32}
    keys = {
        cache.key(b"log", pcrs, None),
        cache.key(b"log", pcrs, b"reference-1"),
        cache.key(b"log", pcrs, b"reference-2"),
        cache.key(b"log", {**pcrs, 7: b"\x02" * 32}, None),
        cache.key(b"log", {0: bytes(32), 8: b"\x01" * 32}, None),  # the index counts too
        cache.key(b"log!", pcrs, None),
    }
    assert len(keys) == 6


def test_the_cache_is_bounded() -> None:
    cache = BootVerdictCache(policy(), max_entries=2)
    for i in range(5):
        cache.put(bytes([i]) * 32, (Finding.BOOT_APPROVED,))
    assert len(cache) == 2
    assert cache.get(bytes([0]) * 32) is None and cache.get(bytes([4]) * 32) is not None
    with pytest.raises(ValueError):
        BootVerdictCache(policy(), max_entries=0)
