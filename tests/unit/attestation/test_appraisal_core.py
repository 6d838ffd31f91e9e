"""The pure appraisal core (appraise, verify_evidence) and the pieces around it.

``appraise`` runs here with no store and no key: a SoftwareTPM device, an
``EnrolledDevice`` and a policy in, an ``Appraisal`` out, and the state it returns
fed back by hand. The Verifier's split (Enrollment, ResultSigner, thin Verifier)
and the verified-result type are checked too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.attestation.test_issue14_regressions import (
    DEVICE,
    FIRMWARE_PCRS,
    _pcr0_log,
    golden_apps,
    runtime_policy,
    sha256,
)
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import (
    Appraisal,
    AppraisalPolicy,
    AppraisalState,
    AttestationResult,
    Attester,
    EnrolledDevice,
    Enrollment,
    EvidenceRejectedError,
    ResultSigner,
    TrustAnchors,
    TrustTier,
    UnverifiedEvidence,
    VerifiedResult,
    Verifier,
    appraise,
    verify_evidence,
    verify_result,
)
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.findings import Finding
from trustedge.attestation.simulate import (
    append_boot_application,
    boot_from_event_log,
    measure_boot_aggregate,
    measure_file,
)
from trustedge.attestation.store import SQLiteStore
from trustedge.errors import VerificationError
from trustedge.measuredboot import (
    BootApplications,
    EventLogPolicy,
    RequireSecureBoot,
    parse_event_log,
    parse_ima_log,
)

NOW = 1_800_000_000


def policy(**changes: object) -> AppraisalPolicy:
    base: dict[str, object] = {
        "boot": EventLogPolicy((RequireSecureBoot(), BootApplications("sha256", golden_apps()))),
        "runtime": runtime_policy(),
        "pcrs": tuple(range(11)),
        "policy_id": "core",
    }
    base.update(changes)
    return AppraisalPolicy(**base)  # type: ignore[arg-type]


class Device:
    """A booted SoftwareTPM device that makes evidence; nothing verifies anything here."""

    def __init__(self, tmp: Path, log: bytes | None = None) -> None:
        self.tpm = SoftwareTPM(tmp / "tpm")
        self.ak = self.tpm.create_ak("ecc-p256-ecdsa")
        self.ima = tmp / "ima"
        self.log = tmp / "eventlog.bin"
        firmware = log if log is not None else _pcr0_log()
        self.log.write_bytes(firmware)
        self.ima.write_bytes(b"")
        boot_from_event_log(self.tpm, firmware)
        measure_boot_aggregate(self.tpm, self.ima)
        measure_file(self.tpm, self.ima, "/usr/sbin/sshd", sha256(b"sshd"))
        self.attester = Attester(
            self.tpm, ak=self.ak, device_id=DEVICE, eventlog_path=self.log, ima_path=self.ima
        )

    def enrolled(self) -> EnrolledDevice:
        return EnrolledDevice.of(DEVICE, self.ak.public)

    def evidence(self, nonce: bytes, ima_offset: int = 0) -> UnverifiedEvidence:
        return self.attester.evidence(nonce, pcrs=tuple(range(11)), ima_offset=ima_offset)


def test_appraise_needs_no_store_and_returns_the_state_to_keep(tmp_path: Path) -> None:
    device = Device(tmp_path)
    evidence = device.evidence(sha256(b"n1"))
    first = appraise(evidence, enrollment=device.enrolled(), policy=policy(), now=NOW)
    assert first.status is TrustTier.AFFIRMING, first.result.reasons
    assert first.device_id == DEVICE and first.nonce == sha256(b"n1")
    assert first.appraised_at == NOW
    assert first.quote_state is not None and first.ima_state is not None
    assert first.ima_state.entries == 2 and first.ima_state.byte_offset == 0
    assert first.quote is not None and first.quote.state == first.quote_state

    # the next appraisal resumes from the state the caller kept
    measure_file(device.tpm, device.ima, "/usr/bin/agent", sha256(b"agent"))
    kept = AppraisalState(first.quote_state, first.ima_state)
    second = appraise(
        device.evidence(sha256(b"n2"), ima_offset=2),
        enrollment=device.enrolled(),
        policy=policy(),
        last_state=kept,
        now=NOW + 1,
    )
    assert second.status is TrustTier.AFFIRMING, second.result.reasons
    assert second.ima_state is not None and second.ima_state.entries == 3

    # an older quote against the newer state is a rollback
    replayed = appraise(
        evidence,
        enrollment=device.enrolled(),
        policy=policy(),
        last_state=AppraisalState(second.quote_state, second.ima_state),
        now=NOW + 2,
    )
    assert replayed.status is TrustTier.CONTRAINDICATED
    assert replayed.result.reasons[0].startswith("quote-rollback")


def test_appraise_identity_checks(tmp_path: Path) -> None:
    device = Device(tmp_path)
    evidence = device.evidence(sha256(b"n"))
    other = SoftwareTPM(tmp_path / "other").create_ak("ecc-p256-ecdsa")
    cases: list[tuple[EnrolledDevice | None, str]] = [
        (None, "unknown-device"),
        (EnrolledDevice.of("someone-else", device.ak.public), "unknown-device"),
        (EnrolledDevice.of(DEVICE, device.ak.public, revoked=True), "device-revoked"),
        (EnrolledDevice.of(DEVICE, other.public), "unknown-device"),
    ]
    for enrolled, reason in cases:
        got = appraise(evidence, enrollment=enrolled, policy=policy(), now=NOW)
        assert got.status is TrustTier.CONTRAINDICATED
        assert got.result.reasons[0].startswith(reason), got.result.reasons
        assert got.quote is None and got.quote_state is None and got.ima_state is None


def test_appraise_reports_malformed_bytes_and_never_raises() -> None:
    got = appraise(b"\xa1\x00\x02", enrollment=None, policy=policy(), now=NOW)
    assert got.device_id is None and got.nonce is None
    assert got.status is TrustTier.CONTRAINDICATED
    assert got.result.reasons[0].startswith("evidence-malformed")


def test_appraise_ek_check_is_reported(tmp_path: Path) -> None:
    device = Device(tmp_path)
    enrolled = EnrolledDevice.of(
        DEVICE, device.ak.public, ek_check=(Finding.EK_CERT_INVALID, "expired")
    )
    got = appraise(device.evidence(sha256(b"n")), enrollment=enrolled, policy=policy(), now=NOW)
    assert "ek-cert-invalid: expired" in got.result.reasons
    assert got.status is TrustTier.CONTRAINDICATED


def test_verify_evidence_affirms_or_raises(tmp_path: Path) -> None:
    device = Device(tmp_path)
    nonce = sha256(b"ci-run-42")
    wire = device.evidence(nonce).encode()
    got = verify_evidence(wire, ak_public=device.ak.public, policy=policy(), nonce=nonce, now=NOW)
    assert isinstance(got, Appraisal) and got.status is TrustTier.AFFIRMING

    with pytest.raises(EvidenceRejectedError) as wrong_nonce:
        verify_evidence(wire, ak_public=device.ak.public, policy=policy(), nonce=bytes(32), now=NOW)
    assert wrong_nonce.value.appraisal.result.reasons[0].startswith("nonce-rejected")
    assert isinstance(wrong_nonce.value, VerificationError)

    other = SoftwareTPM(tmp_path / "other").create_ak("ecc-p256-ecdsa")
    with pytest.raises(EvidenceRejectedError, match="unknown-device"):
        verify_evidence(wire, ak_public=other.public, policy=policy(), nonce=nonce, now=NOW)
    with pytest.raises(EvidenceRejectedError, match="evidence-malformed"):
        verify_evidence(b"junk", ak_public=device.ak.public, policy=policy(), nonce=nonce, now=NOW)


def test_verify_evidence_rejects_a_bootkit(tmp_path: Path) -> None:
    device = Device(tmp_path, EVENT_LOG)
    device.log.write_bytes(
        append_boot_application(device.tpm, EVENT_LOG, "\\EFI\\evil.efi", b"bootkit")
    )
    firmware = policy(runtime=None, pcrs=FIRMWARE_PCRS)
    nonce = sha256(b"audit")
    evidence = device.attester.evidence(nonce, pcrs=FIRMWARE_PCRS, ima_offset=0)
    with pytest.raises(EvidenceRejectedError, match="boot-policy-violation") as rejected:
        verify_evidence(evidence, ak_public=device.ak.public, policy=firmware, nonce=nonce, now=NOW)
    assert rejected.value.appraisal.quote is not None  # the quote itself was genuine


def test_verifier_without_a_key_enrolls_and_challenges_but_does_not_appraise(
    tmp_path: Path,
) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(software_roots=tuple(load_certificates(tpm.ek_ca_certificate())))
    store = SQLiteStore(tmp_path / "v.db", durable=False)
    verifier = Verifier(store, policy(), anchors, now=lambda: NOW)
    assert verifier.signer is None
    ak = tpm.create_ak("ecc-p256-ecdsa")
    attester = Attester(tpm, ak=ak, device_id=DEVICE)
    req = attester.enrollment_request()
    cred = verifier.enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    verifier.enrollment.complete(DEVICE, attester.activate(cred))
    challenge = verifier.challenge(DEVICE)
    with pytest.raises(ValueError, match="no result signer"):
        verifier.appraise(b"anything")
    # a verifier with a signer over the same store appraises what the keyless one challenged
    key = ec.generate_private_key(ec.SECP256R1())
    signing = Verifier(store, policy(), anchors, signer=ResultSigner(key), now=lambda: NOW)
    outcome = signing.appraise(attester.evidence(challenge.nonce, pcrs=challenge.pcrs).encode())
    assert outcome.status is not TrustTier.NONE
    verified = verify_result(outcome.token, key.public_key(), expected_nonce=challenge.nonce)
    assert isinstance(verified, VerifiedResult) and verified.claims == outcome.result
    store.close()


def test_enrollment_service_alone(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(software_roots=tuple(load_certificates(tpm.ek_ca_certificate())))
    store = SQLiteStore(tmp_path / "v.db", durable=False)
    enrollment = Enrollment(store, anchors, now=lambda: NOW)
    ak = tpm.create_ak("ecc-p256-ecdsa")
    attester = Attester(tpm, ak=ak, device_id=DEVICE)
    req = attester.enrollment_request()
    assert enrollment.enrolled_device(store.get_device(DEVICE)) is None
    cred = enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    assert enrollment.enrolled_device(store.get_device(DEVICE)) is None  # AK not bound yet
    with pytest.raises(VerificationError):
        enrollment.complete(DEVICE, b"\x00" * 32)  # wrong secret; the challenge is used up
    cred = enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    record = enrollment.complete(DEVICE, attester.activate(cred))
    enrolled = enrollment.enrolled_device(record)
    assert enrolled is not None and enrolled.ak_public == ak.public
    assert enrolled.ek_check is Finding.SOFTWARE_TPM and not enrolled.revoked
    store.close()


def test_verified_result_is_not_a_parsed_claims_set() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ResultSigner(key)
    appraisal = Appraisal(DEVICE, bytes(32), "p", NOW, (Finding.AK_ENROLLED,))
    outcome = signer.sign_appraisal(appraisal, now=NOW)
    assert isinstance(outcome.token, str)
    parsed = AttestationResult.from_json_claims(outcome.result.to_json_claims())
    verified = verify_result(outcome.token, key.public_key())
    assert not isinstance(parsed, VerifiedResult) and not isinstance(verified, AttestationResult)
    assert verified.claims == parsed and verified.status is parsed.status


_FORBIDDEN_IN_CORE = {
    "os", "time", "sqlite3", "socket", "pathlib", "trustedge.attestation.store",
    "trustedge.attestation.nonces", "trustedge.attestation._signing",
    "trustedge.attestation.signer", "trustedge.attestation.verifier",
}  # fmt: skip


def test_the_core_imports_no_store_no_key_and_no_io() -> None:
    import trustedge.attestation.appraisal as core

    tree = ast.parse(Path(core.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not imported & _FORBIDDEN_IN_CORE, imported & _FORBIDDEN_IN_CORE
    assert "open(" not in Path(core.__file__).read_text(encoding="utf-8")


@pytest.mark.parametrize("offset", [0, 1, 3], ids=["restart-from-zero", "overlap", "skip"])
def test_ima_tail_must_start_at_the_kept_position(tmp_path: Path, offset: int) -> None:
    """A device that resends verified entries (or skips some) against the kept state is
    refused: the tail must start exactly at ``last_state.ima.entries`` (2 here)."""
    device = Device(tmp_path)
    first = appraise(
        device.evidence(sha256(b"n1")), enrollment=device.enrolled(), policy=policy(), now=NOW
    )
    assert first.ima_state is not None and first.ima_state.entries == 2
    measure_file(device.tpm, device.ima, "/usr/bin/agent", sha256(b"agent"))
    got = appraise(
        device.evidence(sha256(b"n2"), ima_offset=offset),
        enrollment=device.enrolled(),
        policy=policy(),
        last_state=AppraisalState(first.quote_state, first.ima_state),
        now=NOW + 1,
    )
    assert got.status is TrustTier.CONTRAINDICATED
    assert any(r.startswith("ima-log-mismatch") for r in got.result.reasons), got.result.reasons
    assert got.ima_state is None and got.quote_state is not None  # the quote is used up


def test_verify_evidence_device_id_is_a_claim_the_ak_decides(tmp_path: Path) -> None:
    """The evidence's device id is not covered by the quote: verify_evidence identifies the
    device by the pinned AK only, and reports the id as the evidence claims it."""
    device = Device(tmp_path)
    nonce = sha256(b"n")
    evidence = device.evidence(nonce)
    renamed = UnverifiedEvidence(**{**evidence.__dict__, "device_id": "someone-else"})
    got = verify_evidence(renamed, ak_public=device.ak.public, policy=policy(), nonce=nonce, now=1)
    assert got.device_id == "someone-else" and got.status is TrustTier.AFFIRMING
    # ...while the Verifier's enrollment binds the id to the AK: the same trick fails there
    enrolled = EnrolledDevice.of(DEVICE, device.ak.public)
    refused = appraise(renamed, enrollment=enrolled, policy=policy(), now=1)
    assert refused.result.reasons[0].startswith("unknown-device")


_FUZZ_DEVICE: list[EnrolledDevice] = []


def _fuzz_device() -> EnrolledDevice:
    if not _FUZZ_DEVICE:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            ak = SoftwareTPM(Path(tmp) / "tpm").create_ak("ecc-p256-ecdsa")
        _FUZZ_DEVICE.append(EnrolledDevice.of(DEVICE, ak.public))
    return _FUZZ_DEVICE[0]


@given(st.binary(max_size=400), st.booleans())
@settings(max_examples=80, deadline=None)
def test_hostile_bytes_never_raise_out_of_appraise(data: bytes, enrolled: bool) -> None:
    got = appraise(data, enrollment=_fuzz_device() if enrolled else None, policy=policy(), now=NOW)
    assert got.status is TrustTier.CONTRAINDICATED
    assert got.quote is None and got.quote_state is None and got.ima_state is None


_GOLDEN: list[tuple[bytes, EnrolledDevice]] = []


def _golden_evidence() -> tuple[bytes, EnrolledDevice]:
    """One affirming evidence bundle (built once; the device directory is then gone)."""
    if not _GOLDEN:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            device = Device(Path(tmp))
            wire = device.evidence(sha256(b"golden")).encode()
            _GOLDEN.append((wire, device.enrolled()))
    return _GOLDEN[0]


_BOUND = ("device_id", "nonce", "quote", "signature", "ak_public", "ima_offset")


def _measured(evidence: UnverifiedEvidence) -> tuple[object, ...]:
    """What the digests bind: (PCR, sha256 digest) of firmware events on quoted PCRs and
    the IMA template data. Event types, event data of non-data-hashed events, other banks'
    digests and unquoted PCRs are claims (an affirming result may differ there)."""
    quoted = set(policy().pcrs)
    events = parse_event_log(evidence.event_log or b"").unverified_events
    ima = parse_ima_log(evidence.ima_log or b"").unverified_entries
    return (
        [(e.pcr, (e.digests or {}).get("sha256")) for e in events if e.pcr in quoted],
        [e.template_data for e in ima],
    )


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@settings(max_examples=60, deadline=None)
def test_a_flipped_byte_never_affirms_unless_it_missed_what_appraise_reads(
    where: int, mask: int
) -> None:
    """Flip one byte of an affirming bundle: appraise never raises, and an affirming
    answer means the flip landed only where no digest reaches (see ``_measured``)."""
    wire, enrolled = _golden_evidence()
    mutated = bytearray(wire)
    mutated[where % len(wire)] ^= mask
    got = appraise(bytes(mutated), enrollment=enrolled, policy=policy(), now=NOW)
    if got.status is TrustTier.AFFIRMING:
        before = UnverifiedEvidence.decode(wire)
        after = UnverifiedEvidence.decode(bytes(mutated))
        for name in _BOUND:
            assert getattr(before, name) == getattr(after, name), name
        assert dict(before.bank("sha256")) == dict(after.bank("sha256"))
        assert _measured(before) == _measured(after)
