"""Generated boot policies on the vendored event-log corpus.

A policy generated from a golden log affirms that log and contraindicates every
single-event mutation of it (a changed digest, a dropped event, a duplicated
event) on the PCRs it covers; a policy from several logs affirms each of them and
reports what varies between them.
"""

from __future__ import annotations

import json

import pytest

from tests.vectors.test_measuredboot_corpus_decode import corpus
from trustedge.errors import MalformedInputError, PolicyError, ReplayMismatchError
from trustedge.measuredboot import EventLog, load_policy
from trustedge.measuredboot.reference import policy_from_event_logs, self_verified


def _golden() -> list[tuple[str, EventLog]]:
    out = []
    for name, log in corpus():
        if log.ccel or "sha256" not in log.banks:
            continue
        try:
            self_verified(log)
        except (MalformedInputError, ReplayMismatchError):
            continue
        out.append((name, log))
    return out


GOLDEN = _golden()


def _mutations(log: EventLog, pcrs: set[int]) -> list[tuple[str, EventLog]]:
    events = list(log.unverified_events)
    measured = [i for i, ev in enumerate(events) if ev.pcr in pcrs and ev.event_type != 3]
    # The first and the last event of every pinned PCR (EV_NO_ACTION is not measured).
    chosen = sorted(
        {next(i for i in measured if events[i].pcr == p) for p in pcrs}
        | {max(i for i in measured if events[i].pcr == p) for p in pcrs}
    )
    out = []
    for i in chosen:
        ev = events[i]
        changed = ev._replace(digests={b: bytes([d[0] ^ 1]) + d[1:] for b, d in ev.digests.items()})
        out.append((f"event {ev.number} digest changed", [*events[:i], changed, *events[i + 1 :]]))
        out.append((f"event {ev.number} dropped", [*events[:i], *events[i + 1 :]]))
        out.append((f"event {ev.number} duplicated", [*events[: i + 1], ev, *events[i + 1 :]]))
    return [(why, EventLog(evs, spec_id=log.spec_id)) for why, evs in out]


def test_corpus_has_golden_logs() -> None:
    assert len(GOLDEN) >= 20


@pytest.mark.parametrize(("name", "log"), GOLDEN, ids=[n for n, _ in GOLDEN])
def test_policy_from_a_log_affirms_it_and_rejects_every_mutation(name: str, log: EventLog) -> None:
    verified = self_verified(log)
    generated = policy_from_event_logs([verified])
    policy = load_policy(json.dumps(generated.document))
    policy.check(verified)  # affirms its own log
    assert generated.varying == ()
    pinned = set(generated.stable_pcrs)
    assert pinned, name
    mutations = _mutations(log, pinned)
    assert mutations
    for why, mutated in mutations:
        try:
            candidate = self_verified(mutated)
        except (ReplayMismatchError, MalformedInputError):
            continue  # a mutation the replay itself refuses (e.g. nothing left to replay)
        with pytest.raises(PolicyError):
            policy.check(candidate)
            pytest.fail(f"{name}: {why} was affirmed")


def test_policy_from_several_logs_reports_what_varies() -> None:
    by_name = dict(GOLDEN)
    a = by_name["keylime/create-mb-policy/binary_bios_measurements-secureboot"]
    events = list(a.unverified_events)
    # A second "machine": the same boot with a different PCR1 configuration event.
    idx = next(i for i, ev in enumerate(events) if ev.pcr == 1 and ev.event_type != 3)
    ev = events[idx]
    other = ev._replace(digests={k: bytes(len(v)) for k, v in ev.digests.items()})
    b = EventLog([*events[:idx], other, *events[idx + 1 :]], spec_id=a.spec_id)
    generated = policy_from_event_logs([self_verified(a), self_verified(b)])
    assert [v.pcr for v in generated.varying] == [1]
    position = generated.varying[0].positions[0]
    assert position[2][1] == "00" * 32
    assert 1 not in generated.stable_pcrs and 0 in generated.stable_pcrs
    policy = load_policy(json.dumps(generated.document))
    policy.check(self_verified(a))
    policy.check(self_verified(b))
    # A third machine with yet another PCR1 event is refused.
    third = ev._replace(digests={k: b"\x11" * len(v) for k, v in ev.digests.items()})
    c = EventLog([*events[:idx], third, *events[idx + 1 :]], spec_id=a.spec_id)
    with pytest.raises(PolicyError, match="event_digests: PCR1"):
        policy.check(self_verified(c))
    assert "PCR1: event" in " ".join(generated.notes)


def test_secure_boot_rules_generated() -> None:
    by_name = dict(GOLDEN)
    log = self_verified(by_name["keylime/create-mb-policy/binary_bios_measurements-secureboot"])
    rules = {r["rule"] for r in policy_from_event_logs([log]).document["rules"]}
    assert {"secure_boot", "db", "boot_applications", "pcr_values"} <= rules


def test_generation_refuses_empty_and_unverified_input() -> None:
    with pytest.raises(MalformedInputError):
        policy_from_event_logs([])
    with pytest.raises(TypeError):
        policy_from_event_logs([GOLDEN[0][1]])  # type: ignore[list-item]
