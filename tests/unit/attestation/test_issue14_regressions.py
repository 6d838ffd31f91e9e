"""Regression tests for the five findings of issue 14, through the public API only.

Each test builds a device on the SoftwareTPM (a real quote, a real event log replayed into
its PCRs, a real IMA list extended into PCR 10), lets it lie where the issue found a hole,
and asserts the verifier's answer. Every test names the commit it fails on and how.
``b256194^`` (the commit the brief names) already contains the partial fixes of 973767a,
so these tests pass there; they fail on ``973767a^`` (5414cff), the code before any fix
of issue 14. Both were checked with ``git worktree add /tmp/old <commit>`` and
``PYTHONPATH=/tmp/old pytest -p no:cacheprovider <this file>`` (the file copied over).

The helpers use only names that exist in both trees (no ``measure_boot_aggregate``), so the
same file runs unchanged on the old code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import (
    AppraisalPolicy,
    Attester,
    TrustAnchors,
    TrustTier,
    Verifier,
    load_appraisal_policy,
    verify_quote,
)
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.simulate import append_boot_application, boot_from_event_log
from trustedge.attestation.store import SQLiteStore
from trustedge.errors import VerificationError
from trustedge.hazmat.tpm2 import Public
from trustedge.measuredboot import (
    BootApplications,
    EventLogPolicy,
    EventType,
    ImaRuntimePolicy,
    RequireSecureBoot,
    parse_event_log,
    parse_ima_log,
    secure_boot_state,
)
from trustedge.measuredboot.build import LogEvent, build_event_log, build_ima_entry

DEVICE = "issue14-device"
FIRMWARE_PCRS = (1, 2, 3, 4, 5, 6, 7)
NOW = 1_800_000_000
PROGRAMS = {"/usr/sbin/sshd": b"sshd", "/usr/bin/agent": b"agent"}


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def golden_apps() -> frozenset[bytes]:
    parsed = parse_event_log(EVENT_LOG)
    apps = secure_boot_state(parsed.verify(parsed.replay())).boot_applications
    return frozenset(a.digests["sha256"] for a in apps)


def runtime_policy() -> ImaRuntimePolicy:
    return ImaRuntimePolicy(digests={p: frozenset({sha256(c)}) for p, c in PROGRAMS.items()})


@dataclass
class Device:
    """A SoftwareTPM device enrolled with a verifier; it boots whatever log the test gives it."""

    tpm: SoftwareTPM
    attester: Attester
    verifier: Verifier
    dir: Path

    def boot(self, log: bytes) -> None:
        """Extend ``log`` into the PCRs and send it (``send_log`` afterwards to lie)."""
        boot_from_event_log(self.tpm, log)
        self.send_log(log)
        (self.dir / "ima").write_bytes(b"")

    def send_log(self, log: bytes) -> None:
        (self.dir / "eventlog.bin").write_bytes(log)

    def ima(self, path: str, file_digest: bytes) -> None:
        """Append an ima-ng entry and extend PCR 10 as the kernel does (sha256 bank)."""
        record = build_ima_entry(path, file_digest, algo="sha256")
        entry = parse_ima_log(record).unverified_entries[0]
        with open(self.dir / "ima", "ab") as out:
            out.write(record)
        self.tpm.pcr_extend(
            10, {"sha1": entry.template_hash, "sha256": sha256(entry.template_data)}
        )

    def boot_aggregate(self) -> bytes:
        """H(PCR0..9) of the sha256 bank, as kernels >= 5.8 compute it."""
        values = self.tpm.pcr_read({"sha256": tuple(range(10))})["sha256"]
        return sha256(b"".join(values[i] for i in range(10)))

    def appraise(self) -> tuple[TrustTier, list[str]]:
        ch = self.verifier.challenge(DEVICE)
        evidence = self.attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)
        outcome = self.verifier.appraise(evidence.encode())
        return outcome.status, list(outcome.appraisal.reasons)


def make_device(tmp: Path, policy: AppraisalPolicy) -> Device:
    tpm = SoftwareTPM(tmp / "tpm")
    anchors = TrustAnchors(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        software_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
    )
    verifier = Verifier(SQLiteStore(tmp / "v.db", durable=False), policy, anchors, now=lambda: NOW)
    ak = tpm.create_ak("ecc-p256-ecdsa")
    attester = Attester(
        tpm, ak=ak, device_id=DEVICE, eventlog_path=tmp / "eventlog.bin", ima_path=tmp / "ima"
    )
    req = attester.enrollment_request()
    cred = verifier.enrollment.enroll(
        DEVICE,
        ek_public=req.ek_public,
        ak_public=req.ak_public,
        ek_certificate=req.ek_certificate,
    )
    verifier.enrollment.complete(DEVICE, attester.activate(cred))
    return Device(tpm, attester, verifier, tmp)


def reasons_named(reasons: list[str]) -> set[str]:
    return {r.split(":", 1)[0] for r in reasons}


# ---------------------------------------------------------------------------------------
# Finding 1: a bootkit hidden by relabelling its event type
# ---------------------------------------------------------------------------------------
_RELABELS = {
    "EV_EFI_ACTION": (EventType.EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
    "EV_SEPARATOR": (EventType.EV_SEPARATOR, bytes(4)),
    "EV_IPL": (EventType.EV_IPL, b"grub_cmd: linux /vmlinuz\x00"),
    "EV_COMPACT_HASH": (EventType.EV_COMPACT_HASH, b"\x00" * 4),
    "EV_EVENT_TAG": (EventType.EV_EVENT_TAG, bytes(8)),
    "EV_POST_CODE": (EventType.EV_POST_CODE, b"POST CODE"),
    "EV_EFI_HANDOFF_TABLES": (EventType.EV_EFI_HANDOFF_TABLES, bytes(8)),
    "EV_EFI_BOOT_SERVICES_DRIVER": (EventType.EV_EFI_BOOT_SERVICES_DRIVER, bytes(32)),
    "EV_EFI_GPT_EVENT": (EventType.EV_EFI_GPT_EVENT, bytes(92)),
}


@pytest.mark.parametrize("label", sorted(_RELABELS))
def test_finding1_relabelled_bootkit_is_contraindicated(tmp_path: Path, label: str) -> None:
    """A bootkit's PCR4 measurement relabelled to another event type stays loaded code.

    The device loads ``\\EFI\\evil.efi`` (PCR4 extended with its digest) and rewrites only
    that record's type and data in the log it sends: the digest, and so the replay, is
    unchanged. The policy allows only the demo's boot applications.

    fails on 973767a^: the result is ``affirming`` (BootApplications collected
    EV_EFI_BOOT_SERVICES_APPLICATION events by type only); passes on b256194^ (classify.py).
    """
    policy = AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(), BootApplications("sha256", golden_apps()))),
        runtime=None,
        pcrs=FIRMWARE_PCRS,
        policy_id="issue14",
    )
    device = make_device(tmp_path, policy)
    boot_from_event_log(device.tpm, EVENT_LOG)
    honest = append_boot_application(device.tpm, EVENT_LOG, "\\EFI\\evil.efi", b"bootkit")
    event_type, data = _RELABELS[label]
    events = [
        LogEvent(e.pcr, e.event_type, e.data, dict(e.digests))
        for e in parse_event_log(honest).unverified_events
        if e.event_type != EventType.EV_NO_ACTION
    ]
    bootkit = events[-1]
    events[-1] = LogEvent(4, event_type, data, bootkit.digests)
    device.send_log(build_event_log(events, banks=parse_event_log(honest).banks))
    (tmp_path / "ima").write_bytes(b"")

    status, reasons = device.appraise()
    assert status is TrustTier.CONTRAINDICATED, reasons
    assert "boot-policy-violation" in reasons_named(reasons), reasons


def test_finding1_honest_boot_is_affirming(tmp_path: Path) -> None:
    """The control of finding 1: the same device without the bootkit is affirming."""
    policy = AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(), BootApplications("sha256", golden_apps()))),
        runtime=None,
        pcrs=FIRMWARE_PCRS,
    )
    device = make_device(tmp_path, policy)
    device.boot(EVENT_LOG)
    status, reasons = device.appraise()
    assert status is TrustTier.AFFIRMING, reasons


# ---------------------------------------------------------------------------------------
# Findings 2 and 3: IMA boot_aggregate
# ---------------------------------------------------------------------------------------
def _pcr0_log() -> bytes:
    """The demo log without its EV_NO_ACTION records: no StartupLocality, so PCR0 starts
    at zero and replays on the SoftwareTPM (boot_aggregate needs PCR0-9 quoted)."""
    return build_event_log(_demo_events(), banks=parse_event_log(EVENT_LOG).banks)


def _ima_policy() -> AppraisalPolicy:
    return AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(),)),
        runtime=runtime_policy(),
        pcrs=tuple(range(11)),
        policy_id="issue14-ima",
    )


def test_ima_honest_list_is_affirming(tmp_path: Path) -> None:
    """The control of findings 2 and 3: a true boot_aggregate and allowed files affirm."""
    device = make_device(tmp_path, _ima_policy())
    device.boot(_pcr0_log())
    device.ima("boot_aggregate", device.boot_aggregate())
    device.ima("/usr/sbin/sshd", sha256(b"sshd"))
    status, reasons = device.appraise()
    assert status is TrustTier.AFFIRMING, reasons


def test_finding2_boot_aggregate_name_later_in_the_list_is_not_exempt(tmp_path: Path) -> None:
    """An IMA entry named ``boot_aggregate`` after entry 0 is not exempt from the policy.

    The device measures a file that is not in the runtime policy under the name
    ``boot_aggregate`` as its third entry (entry 0 is the true boot_aggregate).

    fails on 973767a^: the result is ``affirming`` (ImaRuntimePolicy._entry_violation
    skipped every entry named boot_aggregate); passes on b256194^.
    """
    device = make_device(tmp_path, _ima_policy())
    device.boot(_pcr0_log())
    device.ima("boot_aggregate", device.boot_aggregate())
    device.ima("/usr/sbin/sshd", sha256(b"sshd"))
    device.ima("boot_aggregate", sha256(b"a rootkit"))
    status, reasons = device.appraise()
    assert status is TrustTier.CONTRAINDICATED, reasons
    assert "ima-boot-aggregate-mismatch" in reasons_named(reasons), reasons


@pytest.mark.parametrize(
    "aggregate",
    [pytest.param(bytes(32), id="all-zero"), pytest.param(sha256(b"other boot"), id="wrong")],
)
def test_finding3_boot_aggregate_value_is_checked(tmp_path: Path, aggregate: bytes) -> None:
    """Entry 0's boot_aggregate must be H(quoted PCR0..9) of the boot the quote shows.

    The demo used to start its list with an all-zero boot_aggregate.

    fails on 973767a^: the result is ``affirming`` (check_boot_aggregate existed but the
    verifier never called it); passes on b256194^.
    """
    device = make_device(tmp_path, _ima_policy())
    device.boot(_pcr0_log())
    device.ima("boot_aggregate", aggregate)
    device.ima("/usr/sbin/sshd", sha256(b"sshd"))
    status, reasons = device.appraise()
    assert status is TrustTier.CONTRAINDICATED, reasons
    assert "ima-boot-aggregate-mismatch" in reasons_named(reasons), reasons


# ---------------------------------------------------------------------------------------
# Finding 4: verify_quote and PCR values of the wrong length
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", [0, 20, 44, 64], ids=["0+64", "20+44", "44+20", "64+0"])
def test_finding4_resplit_pcr_values_are_rejected(tmp_path: Path, split: int) -> None:
    """PCR0 || PCR1 re-split at any other point than 32 bytes must not verify.

    The pcrDigest is a hash of the concatenation, so every split gives the same digest;
    only the length check per bank's digest size ties each value to its PCR.

    fails on 973767a^: ``verify_quote`` returns a VerifiedQuote whose PCR values are the
    re-split ones; passes on b256194^.
    """
    tpm = SoftwareTPM(tmp_path / "tpm")
    tpm.pcr_extend(0, {"sha256": sha256(b"zero")})
    tpm.pcr_extend(1, {"sha256": sha256(b"one")})
    ak = tpm.create_ak("ecc-p256-ecdsa")
    nonce = sha256(b"nonce")
    quote = tpm.quote(ak, nonce, {"sha256": [0, 1]})
    values = quote.pcrs["sha256"]
    joined = values[0] + values[1]
    verified = verify_quote(
        quote.message, quote.signature, Public.unmarshal_tpm2b(ak.public), nonce=nonce,
        pcrs={"sha256": values}, selection={"sha256": [0, 1]},
    )  # fmt: skip
    assert verified.pcrs["sha256"] == dict(values)
    with pytest.raises(VerificationError):
        verify_quote(
            quote.message, quote.signature, Public.unmarshal_tpm2b(ak.public), nonce=nonce,
            pcrs={"sha256": {0: joined[:split], 1: joined[split:]}},
            selection={"sha256": [0, 1]},
        )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Finding 5: a policy document's workarounds reach parse, verify and Secure Boot
# ---------------------------------------------------------------------------------------
def _demo_events() -> list[LogEvent]:
    return [
        LogEvent(e.pcr, e.event_type, e.data, dict(e.digests))
        for e in parse_event_log(EVENT_LOG).unverified_events
        if e.event_type != EventType.EV_NO_ACTION
    ]


def _policy_document(workarounds: list[str]) -> AppraisalPolicy:
    return load_appraisal_policy(
        json.dumps(
            {
                "version": 1,
                "policy_id": "issue14-workarounds",
                "pcrs": list(FIRMWARE_PCRS),
                "secure_boot": True,
                "boot": {
                    "version": 1,
                    "rules": [{"rule": "secure_boot"}],
                    "workarounds": workarounds,
                },
                "runtime": None,
            }
        )
    )


@pytest.mark.parametrize("enabled", [True, False], ids=["workaround-on", "workaround-off"])
def test_finding5_missing_exit_boot_services_workaround_reaches_log_verify(
    tmp_path: Path, enabled: bool
) -> None:
    """Firmware extended PCR5 with the two ExitBootServices actions but did not log them.

    With ``"workarounds": ["missing-exit-boot-services"]`` in the policy document the log
    verifies (the synthetic events fill the gap) and the device is affirming; without it,
    PCR5 does not replay.

    fails on 973767a^ (workaround-on): ``firmware-log-mismatch`` (the policy's workarounds
    never reached ``log.verify``); passes on b256194^.
    """
    device = make_device(
        tmp_path, _policy_document(["missing-exit-boot-services"] if enabled else [])
    )
    events = _demo_events()
    ebs = {b"Exit Boot Services Invocation", b"Exit Boot Services Returned with Success"}
    assert sum(e.pcr == 5 and e.data in ebs for e in events) == 2
    banks = parse_event_log(EVENT_LOG).banks
    boot_from_event_log(device.tpm, EVENT_LOG)
    device.send_log(
        build_event_log([e for e in events if not (e.pcr == 5 and e.data in ebs)], banks=banks)
    )
    (tmp_path / "ima").write_bytes(b"")
    status, reasons = device.appraise()
    if enabled:
        assert status is TrustTier.AFFIRMING, reasons
    else:
        assert status is TrustTier.CONTRAINDICATED, reasons
        assert "firmware-log-mismatch" in reasons_named(reasons), reasons


_EFI_GLOBAL = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")


@pytest.mark.parametrize("enabled", [True, False], ids=["workaround-on", "workaround-off"])
def test_finding5_variable_digest_workaround_reaches_secure_boot(
    tmp_path: Path, enabled: bool
) -> None:
    """TPM 1.2-style firmware hashes only VariableData of the SecureBoot variable.

    With ``"workarounds": ["variable-digest-over-data-only"]`` both the policy's
    ``secure_boot`` rule and the appraisal's own Secure Boot check read Secure Boot as on;
    without it neither may (the variable's name is not bound by its digest).

    fails on 973767a^ (workaround-on): contraindicated, "event 4
    (EV_EFI_VARIABLE_DRIVER_CONFIG): data does not match its sha256 digest" (the verifier
    decoded Secure Boot a second time, without the policy's workarounds); passes on b256194^.
    """
    device = make_device(
        tmp_path, _policy_document(["variable-digest-over-data-only"] if enabled else [])
    )
    name = "SecureBoot".encode("utf-16-le")
    value = b"\x01"
    data = (
        _EFI_GLOBAL + (len(name) // 2).to_bytes(8, "little") + len(value).to_bytes(8, "little")
        + name + value
    )  # fmt: skip
    events = []
    for e in _demo_events():
        if (
            e.pcr == 7
            and e.event_type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
            and (e.data[32 : 32 + len(name)] == name)
        ):
            # the digest covers VariableData only, as the TPM 1.2 firmware did
            e = LogEvent(
                7, e.event_type, data, {b: hashlib.new(b, value).digest() for b in e.digests or {}}
            )
        events.append(e)
    log = build_event_log(events, banks=parse_event_log(EVENT_LOG).banks)
    device.boot(log)
    status, reasons = device.appraise()
    if enabled:
        assert status is TrustTier.AFFIRMING, reasons
    else:
        assert status is TrustTier.CONTRAINDICATED, reasons
        assert "secure-boot-violation" in reasons_named(reasons) or (
            "boot-policy-violation" in reasons_named(reasons)
        ), reasons
