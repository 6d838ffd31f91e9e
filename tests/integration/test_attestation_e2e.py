"""Remote attestation end to end, on the SoftwareTPM and on swtpm (Tpm2Backend).

A device is enrolled by credential activation, boots by replaying the
project's published firmware event log into its PCRs, measures programs
with IMA and is appraised; then each tampering case must come back
contraindicated with the right finding. Result tokens are checked with
joserfc (JWT) and pycose (CWT), not only with trustedge.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

from tests.swtpm import Swtpm
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation.attester import Attester
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ear import AttestationResult, TrustTier, verify_result
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.simulate import (
    append_boot_application,
    boot_from_event_log,
    measure_boot_aggregate,
    measure_file,
)
from trustedge.attestation.store import EnrollmentState, SQLiteStore
from trustedge.attestation.verifier import (
    AppraisalOutcome,
    AppraisalPolicy,
    TrustAnchors,
    Verifier,
)
from trustedge.errors import VerificationError
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.measuredboot import (
    BootApplications,
    EventLogPolicy,
    ImaRuntimePolicy,
    RequireSecureBoot,
    parse_event_log,
    secure_boot_state,
)

PCRS = (1, 2, 3, 4, 5, 6, 7, 8, 10)
PROGRAMS = {"/usr/sbin/sshd": b"sshd", "/usr/bin/agent": b"agent", "/usr/bin/later": b"later"}
DEVICE = "edge-7"


def digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def golden_policy(**changes: object) -> AppraisalPolicy:
    parsed = parse_event_log(EVENT_LOG)
    apps = secure_boot_state(parsed.verify(parsed.replay())).boot_applications
    policy = AppraisalPolicy(
        boot=EventLogPolicy(
            (RequireSecureBoot(), BootApplications("sha256", {a.digests["sha256"] for a in apps}))
        ),
        runtime=ImaRuntimePolicy(digests={p: frozenset({digest(c)}) for p, c in PROGRAMS.items()}),
        pcrs=PCRS,
        policy_id="golden",
    )
    return replace(policy, **changes)  # type: ignore[arg-type]


@dataclass
class World:
    """One device and one verifier, with a clock the test moves."""

    backend: TPMBackend
    attester: Attester
    verifier: Verifier
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    clock: list[int]
    dir: Path

    @property
    def ima(self) -> Path:
        assert self.attester.ima_path is not None
        return self.attester.ima_path

    def boot(self) -> None:
        (self.dir / "eventlog.bin").write_bytes(EVENT_LOG)
        self.ima.write_bytes(b"")
        boot_from_event_log(self.backend, EVENT_LOG)
        measure_boot_aggregate(self.backend, self.ima)
        measure_file(self.backend, self.ima, "/usr/sbin/sshd", digest(b"sshd"))
        measure_file(self.backend, self.ima, "/usr/bin/agent", digest(b"agent"))

    def evidence(self) -> Evidence:
        ch = self.verifier.challenge(DEVICE)
        return self.attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)

    def appraise(self, evidence: Evidence | bytes | None = None) -> AppraisalOutcome:
        outcome = self.verifier.appraise(evidence if evidence is not None else self.evidence())
        assert verify_result(outcome.token, self.key.public_key()).claims == outcome.result
        return outcome


def findings(outcome: AppraisalOutcome) -> list[str]:
    return [r.split(":", 1)[0] for r in outcome.appraisal.reasons]


def make_world(
    backend: TPMBackend, tmp: Path, anchors: TrustAnchors, *, enroll: bool = True
) -> World:
    clock = [int(time.time())]
    store = SQLiteStore(tmp / "verifier.db", durable=False)
    verifier = Verifier(store, golden_policy(), anchors, now=lambda: clock[0])
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    attester = Attester(
        backend, ak=ak, device_id=DEVICE, eventlog_path=tmp / "eventlog.bin", ima_path=tmp / "ima"
    )
    world = World(backend, attester, verifier, anchors.signing_key, clock, tmp)  # type: ignore[arg-type]
    if enroll:
        req = attester.enrollment_request()
        cred = verifier.enrollment.enroll(
            DEVICE,
            ek_public=req.ek_public,
            ak_public=req.ak_public,
            ek_certificate=req.ek_certificate,
        )
        verifier.enrollment.complete(DEVICE, attester.activate(cred))
        world.boot()
    return world


# -- backends -------------------------------------------------------------------------
@dataclass(frozen=True)
class SwtpmTemplate:
    state: Path
    root: x509.Certificate
    issuer: x509.Certificate


@pytest.fixture(scope="module")
def swtpm_template(tmp_path_factory: pytest.TempPathFactory) -> SwtpmTemplate:
    """A swtpm manufactured once (EK certificates from its own local CA); copied per test."""
    from tests.unit.attestation.test_ekcert import manufacture

    base = tmp_path_factory.mktemp("manufactured")
    state = manufacture(base)
    return SwtpmTemplate(
        state,
        load_certificates((base / "ca" / "swtpm-localca-rootca-cert.pem").read_bytes())[0],
        load_certificates((base / "ca" / "issuercert.pem").read_bytes())[0],
    )


@pytest.fixture(params=["software", "swtpm"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> Iterator[World]:
    key = ec.generate_private_key(ec.SECP256R1())
    if request.param == "software":
        tpm = SoftwareTPM(tmp_path / "tpm")
        anchors = TrustAnchors(
            signing_key=key, software_roots=tuple(load_certificates(tpm.ek_ca_certificate()))
        )
        yield make_world(tpm, tmp_path, anchors)
        return
    from trustedge.attestation.backends.tpm2 import Tpm2Backend

    template: SwtpmTemplate = request.getfixturevalue("swtpm_template")
    state = tmp_path / "swtpm-state"
    shutil.copytree(template.state, state)
    proc = swtpm_factory(state).start()
    anchors = TrustAnchors(
        signing_key=key,
        ek_roots=(template.root,),
        intermediates=(template.issuer,),
        result_format="cwt",
    )
    backend = Tpm2Backend(proc.tcti)
    try:
        yield make_world(backend, tmp_path, anchors)
    finally:
        backend.close()


pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


# -- the story ------------------------------------------------------------------------
def test_enrollment_binds_the_ak_and_labels_the_tpm(world: World) -> None:
    record = world.verifier.store.get_device(DEVICE)
    assert record is not None and record.state is EnrollmentState.ENROLLED
    assert record.ak_public == world.attester.ak.public
    outcome = world.appraise()
    expected = "software-tpm" if isinstance(world.backend, SoftwareTPM) else "hardware-tpm"
    assert expected in findings(outcome)
    vector = outcome.appraisal.trust_vector
    assert vector.hardware == (0 if expected == "software-tpm" else 2)


def test_affirming_appraisal_and_independent_token_check(world: World) -> None:
    outcome = world.appraise()
    assert outcome.status is TrustTier.AFFIRMING, outcome.appraisal.reasons
    assert findings(outcome) == [
        "ak-enrolled",
        "software-tpm" if isinstance(world.backend, SoftwareTPM) else "hardware-tpm",
        "boot-approved",
        "secure-boot-approved",
        "ima-boot-aggregate-unchecked",  # PCRS leaves out PCR0 (locality 3) and PCR9
        "runtime-approved",
    ]
    key = world.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    if isinstance(outcome.token, str):  # JWT: joserfc
        from cryptography.hazmat.primitives import serialization

        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        decoded = jose_jwt.decode(outcome.token, ECKey.import_key(pem), algorithms=["ES256"])
        assert decoded.claims["submods"][DEVICE]["ear.status"] == "affirming"
        assert decoded.claims == outcome.result.to_json_claims()
    else:  # CWT: pycose
        nums = key.private_numbers()
        outer = cbor2.loads(outcome.token)
        assert outer.tag == 18
        protected, unprotected, payload, signature = outer.value
        msg = Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)
        msg.key = EC2Key(
            crv=P256,
            x=nums.public_numbers.x.to_bytes(32, "big"),
            y=nums.public_numbers.y.to_bytes(32, "big"),
            d=nums.private_value.to_bytes(32, "big"),
        )
        assert msg.verify_signature()
        claims = cbor2.loads(msg.payload)
        assert AttestationResult.from_cbor_claims(claims) == outcome.result


def test_incremental_ima_sends_only_new_entries(world: World) -> None:
    assert world.appraise().status is TrustTier.AFFIRMING
    measure_file(world.backend, world.ima, "/usr/bin/later", digest(b"later"))
    evidence = world.evidence()
    assert evidence.ima_offset == 3  # boot_aggregate, sshd, agent already verified
    outcome = world.appraise(evidence)
    assert outcome.status is TrustTier.AFFIRMING, outcome.appraisal.reasons
    state = world.verifier.store.get_ima_state(DEVICE)
    assert state is not None and state.entries == 4


def test_replayed_evidence_is_rejected(world: World) -> None:
    evidence = world.evidence()
    assert world.appraise(evidence).status is TrustTier.AFFIRMING
    outcome = world.appraise(evidence.encode())
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome)[0] == "nonce-rejected"
    assert "quote-rollback" in findings(outcome)


def test_fresh_quote_with_used_nonce_is_rejected(world: World) -> None:
    evidence = world.evidence()
    assert world.appraise(evidence).status is TrustTier.AFFIRMING
    again = world.attester.evidence(evidence.nonce, pcrs=PCRS, ima_offset=3)
    outcome = world.appraise(again)
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome)[0] == "nonce-rejected"
    assert "quote-rollback" not in findings(outcome)


def test_expired_nonce_is_rejected_and_used_up(world: World) -> None:
    evidence = world.evidence()
    world.clock[0] += world.verifier.policy.nonce_ttl + 1
    outcome = world.appraise(evidence)
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome)[0] == "nonce-rejected"
    assert "expired" in outcome.appraisal.reasons[0]


def test_held_back_quote_is_a_rollback(world: World) -> None:
    held = world.evidence()
    assert world.appraise().status is TrustTier.AFFIRMING
    outcome = world.appraise(held)
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome) == ["quote-rollback"]


def test_modified_program_is_caught(world: World) -> None:
    assert world.appraise().status is TrustTier.AFFIRMING
    measure_file(world.backend, world.ima, "/usr/sbin/sshd", digest(b"sshd + backdoor"))
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "ima-file-modified" in findings(outcome)
    assert outcome.appraisal.trust_vector.file_system == 96
    # The bad entry stays unverified: the next appraisal sees it again.
    assert "ima-file-modified" in findings(world.appraise())


def test_unknown_program_is_a_warning(world: World) -> None:
    measure_file(world.backend, world.ima, "/tmp/unknown", digest(b"x"))
    outcome = world.appraise()
    assert outcome.status is TrustTier.WARNING
    assert "ima-file-unknown" in findings(outcome)


def test_unexpected_boot_application_is_caught(world: World) -> None:
    log = append_boot_application(world.backend, EVENT_LOG, r"\EFI\evil.efi", b"evil")
    (world.dir / "eventlog.bin").write_bytes(log)
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "boot-policy-violation" in findings(outcome)
    assert "evil.efi" in " ".join(outcome.appraisal.reasons)


def test_log_that_does_not_match_the_pcrs_is_caught(world: World) -> None:
    world.backend.pcr_extend(4, {"sha256": bytes(32)})  # measured but not logged
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "firmware-log-mismatch" in findings(outcome)


def test_ima_list_that_does_not_match_pcr10_is_caught(world: World) -> None:
    with open(world.ima, "ab") as out:  # logged but never extended
        from trustedge.measuredboot.build import build_ima_entry

        out.write(build_ima_entry("/usr/bin/agent", digest(b"agent"), algo="sha256"))
    world.backend.pcr_extend(10, {"sha256": bytes(32)})
    outcome = world.appraise()
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert "ima-log-mismatch" in findings(outcome)


def test_evidence_from_another_ak_is_not_accepted(world: World) -> None:
    other = world.backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    ch = world.verifier.challenge(DEVICE)
    rogue = Attester(
        world.backend, ak=other, device_id=DEVICE, eventlog_path=world.dir / "eventlog.bin"
    )
    outcome = world.appraise(rogue.evidence(ch.nonce, pcrs=PCRS))
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome)[-1] == "unknown-device"


def test_forged_pcr_values_are_caught(world: World) -> None:
    evidence = world.evidence()
    bank = dict(evidence.bank("sha256"))
    bank[4] = bytes(32)
    forged = replace(evidence, pcrs={0x000B: bank})
    outcome = world.appraise(forged)
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome) == ["pcr-digest-mismatch"]


def test_malformed_evidence_gives_a_signed_contraindicated_result(world: World) -> None:
    outcome = world.appraise(b"\xa1\x00\x02")
    assert outcome.status is TrustTier.CONTRAINDICATED
    assert findings(outcome) == ["evidence-malformed"]


def test_wrong_activation_secret_does_not_bind(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        software_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
    )
    world = make_world(tpm, tmp_path, anchors, enroll=False)
    req = world.attester.enrollment_request()
    world.verifier.enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    with pytest.raises(VerificationError):
        world.verifier.enrollment.complete(DEVICE, bytes(32))
    record = world.verifier.store.get_device(DEVICE)
    assert record is not None and record.state is EnrollmentState.REGISTERED
    with pytest.raises(VerificationError):
        world.verifier.challenge(DEVICE)


def test_ek_certificate_from_an_untrusted_ca_is_refused(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    other = SoftwareTPM(tmp_path / "other")
    anchors = TrustAnchors(
        signing_key=ed25519.Ed25519PrivateKey.generate(),
        software_roots=tuple(load_certificates(other.ek_ca_certificate())),
    )
    world = make_world(tpm, tmp_path, anchors, enroll=False)
    req = world.attester.enrollment_request()
    with pytest.raises(VerificationError):
        world.verifier.enrollment.enroll(
            DEVICE,
            ek_public=req.ek_public,
            ak_public=req.ak_public,
            ek_certificate=req.ek_certificate,
        )


def test_software_tpm_is_never_genuine_hardware(tmp_path: Path) -> None:
    """Even with its CA configured as a hardware root."""
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        ek_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
    )
    world = make_world(tpm, tmp_path, anchors)
    outcome = world.appraise()
    assert "software-tpm" in findings(outcome) and "hardware-tpm" not in findings(outcome)
    assert outcome.appraisal.trust_vector.hardware == 0


def test_reboot_restarts_the_ima_position(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        software_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
        result_format="cwt",
    )
    world = make_world(tpm, tmp_path, anchors)
    measure_file(tpm, world.ima, "/usr/bin/later", digest(b"later"))
    assert world.appraise().status is TrustTier.AFFIRMING
    tpm.reboot()
    world.boot()
    outcome = world.appraise()
    assert outcome.status is TrustTier.AFFIRMING, outcome.appraisal.reasons
    state = world.verifier.store.get_ima_state(DEVICE)
    assert state is not None and state.entries == 3
    assert json.loads(json.dumps(outcome.result.to_json_claims()))["submods"][DEVICE]
