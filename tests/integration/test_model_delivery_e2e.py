"""Encrypted model delivery end to end, on the SoftwareTPM and on swtpm.

A model vendor signs a model (OMS bundle); ``trustedge release model``
builds an encrypted SUIT update of it for one device; ``trustedge update
apply`` installs it (stream, authenticate, decrypt, check the pack digest and
the OMS bundle); ``trustedge update load`` loads it with verification and
extends its signed digest into the TPM's NV extend index; the verifier
appraises the certified index and the model-load log (EAR submod ``model``).
Then each attack must be caught with the right reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.swtpm import Swtpm
from trustedge._cli import main
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation.attester import Attester
from trustedge.attestation.ear import TrustTier, verify_result
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.modellog import (
    DEFAULT_NV_INDEX,
    MODEL_SUBMOD,
    ModelAgent,
    ModelLoadEvent,
    ModelPolicy,
    encode_events,
    parse_model_log,
)
from trustedge.attestation.simulate import boot_from_event_log
from trustedge.attestation.store import SQLiteStore
from trustedge.attestation.verifier import (
    AppraisalOutcome,
    AppraisalPolicy,
    TrustAnchors,
    Verifier,
)
from trustedge.hazmat.tpmbackend import AKHandle, TPMBackend
from trustedge.measuredboot import EventLogPolicy, RequireSecureBoot
from trustedge.models import sign_model

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
DEVICE = "edge-model-1"
COMPONENT = "model/edge-llm"
PCRS = (1, 2, 3, 4, 5, 6, 7)

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


def make_model(root: Path, version: int) -> Path:
    (root / "tokenizer").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(bytes([version]) * 70_000)
    (root / "config.json").write_text(f'{{"version": {version}}}')
    (root / "tokenizer" / "vocab.json").write_text('{"<s>": 0}')
    return root


def pem_private(key: ed25519.Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (path.parent / (path.name + ".pub")).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@dataclass
class Site:
    """Vendor, release engineer, one device and a verifier; ``tpm`` names the backend."""

    dir: Path
    open_backend: Callable[[], TPMBackend]
    tpm_args: list[str]
    anchors: TrustAnchors
    vendor: ed25519.Ed25519PrivateKey
    ak: AKHandle | None = None
    verifier: Verifier | None = None

    def release(self, version: int, sequence: int) -> Path:
        model = make_model(self.dir / f"edge-llm-v{version}", version)
        (self.dir / f"edge-llm-v{version}.sig").write_bytes(sign_model(model, self.vendor))
        out = self.dir / f"update-{sequence}.suit"
        code = main(
            [
                "release", "model", str(model),
                "--recipient", str(self.dir / "device.key.pub"),
                "--key", str(self.dir / "release.key"),
                "--sequence", str(sequence),
                "--vendor-id", VENDOR, "--class-id", CLASS,
                "--component", COMPONENT,
                "--model-key", str(self.dir / "vendor.key.pub"),
                "-o", str(out),
            ]
        )  # fmt: skip
        assert code == 0
        return out

    def apply(self, update: Path) -> int:
        code = main(
            [
                "update", "apply", str(update),
                "--payload", f"{update}.tenv",
                "--key", str(self.dir / "release.key.pub"),
                "--identity", str(self.dir / "device.key"),
                "--model-key", str(self.dir / "vendor.key.pub"),
                "--state", str(self.dir / "ota-state"),
                "--device", str(self.dir / "device"),
            ]
        )  # fmt: skip
        if code == 0:
            code = main(
                ["update", "confirm", "--state", str(self.dir / "ota-state"),
                 "--device", str(self.dir / "device")]
            )  # fmt: skip
        return code

    def load(self, *extra: str) -> int:
        return main(
            [
                "update", "load", "--device", str(self.dir / "device"),
                "--model-key", str(self.dir / "vendor.key.pub"),
                "--log", str(self.dir / "model-load.log"),
                *self.tpm_args, *extra,
            ]
        )  # fmt: skip

    def attest(
        self, *, ak: AKHandle | None = None, edit: Callable[[bytes], bytes] | None = None
    ) -> AppraisalOutcome:
        """Challenge, evidence (with the model log and NV certification), appraisal."""
        assert self.verifier is not None and self.ak is not None
        backend = self.open_backend()
        try:
            attester = Attester(
                backend, ak=self.ak, device_id=DEVICE, eventlog_path=self.dir / "eventlog.bin"
            )
            ch = self.verifier.challenge(DEVICE)
            evidence = attester.evidence(ch.nonce, pcrs=ch.pcrs)
            agent = ModelAgent(backend, self.dir / "model-load.log", [self.vendor.public_key()])
            evidence = agent.attach(evidence, ak or self.ak)
        finally:
            close(backend)
        if edit is not None:
            evidence = replace(evidence, model_log=edit(evidence.model_log or b""))
        outcome = self.verifier.appraise(evidence.encode())
        assert outcome.status is outcome.result.status  # the worst submod, model included
        public = self.anchors.signing_key.public_key()
        assert verify_result(outcome.token, public).claims == outcome.result  # type: ignore[arg-type]
        return outcome


def close(backend: TPMBackend) -> None:
    closer = getattr(backend, "close", None)
    if callable(closer):
        closer()


@pytest.fixture(params=["software", "swtpm"])
def site(
    request: pytest.FixtureRequest, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> Iterator[Site]:
    key = ec.generate_private_key(ec.SECP256R1())
    if request.param == "software":
        from trustedge.attestation.backends.software import SoftwareTPM

        state = tmp_path / "softtpm"
        roots = load_certificates(SoftwareTPM(state).ek_ca_certificate())
        anchors = TrustAnchors(signing_key=key, software_roots=tuple(roots))
        s = Site(tmp_path, lambda: SoftwareTPM(state), ["--software", str(state)], anchors,
                 ed25519.Ed25519PrivateKey.generate())  # fmt: skip
    else:
        from trustedge.attestation.backends.tpm2 import Tpm2Backend

        proc = swtpm_factory().start()
        tcti = proc.tcti
        anchors = TrustAnchors(signing_key=key, allow_uncertified_ek=True)
        s = Site(tmp_path, lambda: Tpm2Backend(tcti), ["--tcti", tcti], anchors,
                 ed25519.Ed25519PrivateKey.generate())  # fmt: skip
    pem_private(s.vendor, tmp_path / "vendor.key")
    assert main(["release", "keygen", "--alg", "ed25519", "-o", str(tmp_path / "release.key")]) == 0
    assert main(["envelope", "keygen", "--type", "x25519", "-o", str(tmp_path / "device.key")]) == 0
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "identity.json").write_text(
        json.dumps({"vendor-id": VENDOR, "class-id": CLASS, "model-components": [COMPONENT]})
    )
    # enroll the device and boot it (the published firmware log)
    policy = AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(),)),
        runtime=None,
        pcrs=PCRS,
        models=ModelPolicy(allowed_signers=(s.vendor.public_key(),)),
    )
    s.verifier = Verifier(SQLiteStore(tmp_path / "verifier.db", durable=False), policy, anchors)
    backend = s.open_backend()
    try:
        s.ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
        attester = Attester(backend, ak=s.ak, device_id=DEVICE)
        req = attester.enrollment_request()
        cert = req.ek_certificate if request.param == "software" else None
        cred = s.verifier.enrollment.enroll(
            DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=cert
        )
        s.verifier.enrollment.complete(DEVICE, attester.activate(cred))
        boot_from_event_log(backend, EVENT_LOG)
    finally:
        close(backend)
    (tmp_path / "eventlog.bin").write_bytes(EVENT_LOG)
    yield s


def model_findings(outcome: AppraisalOutcome) -> list[str]:
    return [r.split(":", 1)[0] for r in outcome.result.submods[MODEL_SUBMOD].reasons]


def test_model_delivery_end_to_end(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    device = site.dir / "device"
    # nothing loaded yet: the model submod is not affirming
    assert model_findings(site.attest()) == ["model-log-missing"]

    # v1 then v2, each delivered encrypted, installed, loaded with verification
    old = site.release(1, 1)
    assert site.apply(old) == 0 and site.load() == 0
    new = site.release(2, 2)
    assert site.apply(new) == 0
    capsys.readouterr()
    assert site.load("--json") == 0
    loaded = json.loads(capsys.readouterr().out)
    slot_model = Path(str(loaded["directory"]))
    assert (slot_model / "model.safetensors").read_bytes() == bytes([2]) * 70_000
    assert bytes([2]) * 64 not in (site.dir / "update-2.suit.tenv").read_bytes()
    # no plaintext outside the slot, no leftovers of the streaming install
    assert not [p for p in device.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]

    good = site.attest()
    assert good.result.status is TrustTier.AFFIRMING
    submod = good.result.submods[MODEL_SUBMOD]
    assert submod.status is TrustTier.AFFIRMING
    assert model_findings(good) == ["model-log-certified", "model-approved"]
    assert {n: v for _, n, v in submod.trust_vector.items()} == {
        "instance-identity": 2,
        "executables": 2,
    }
    events = parse_model_log((site.dir / "model-load.log").read_bytes()).unverified_events
    assert [e.name for e in events] == ["edge-llm-v1", "edge-llm-v2"]
    assert events[1].digest.hex() == loaded["digest"]["sha256"]  # type: ignore[index]

    # attack: the model-load log with an entry dropped, or two entries reordered
    def renumber(evs: list[ModelLoadEvent]) -> bytes:
        return encode_events([replace(e, recnum=i) for i, e in enumerate(evs)])

    def dropped(log: bytes) -> bytes:
        return renumber(list(parse_model_log(log).unverified_events[1:]))

    def reordered(log: bytes) -> bytes:
        return renumber(list(reversed(parse_model_log(log).unverified_events)))

    for edit in (dropped, reordered):
        outcome = site.attest(edit=edit)
        assert outcome.result.status is TrustTier.CONTRAINDICATED
        assert model_findings(outcome)[-1] == "model-log-mismatch"
        assert "does not replay to the certified NV value" in str(
            outcome.result.submods[MODEL_SUBMOD].reasons
        )

    # attack: the NV index certified by another AK of the same TPM
    backend = site.open_backend()
    try:
        rogue_ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    finally:
        close(backend)
    outcome = site.attest(ak=rogue_ak)
    assert outcome.result.submods[MODEL_SUBMOD].status is TrustTier.CONTRAINDICATED
    assert model_findings(outcome) == ["model-certify-invalid"]

    # attack: weights swapped on disk after the install -> refused at load
    (slot_model / "model.safetensors").write_bytes(bytes([9]) * 70_000)
    before = (site.dir / "model-load.log").read_bytes()
    assert site.load() == 1
    assert (site.dir / "model-load.log").read_bytes() == before
    assert site.attest().result.status is TrustTier.AFFIRMING  # nothing was extended

    # attack: an older signed model -> rollback refused, v2 stays
    assert site.apply(old) == 1
    assert (slot_model / "config.json").read_text() == '{"version": 2}'

    # attack: the older signed model copied onto the disk (a storage adversary, past the
    # OTA floor): its signature verifies, so the agent loads and measures it; the verifier
    # sees exactly that, and a policy that revoked v1 refuses it
    shutil.rmtree(slot_model)
    shutil.copytree(site.dir / "edge-llm-v1", slot_model)
    (slot_model.parent / "model.sig").write_bytes((site.dir / "edge-llm-v1.sig").read_bytes())
    assert site.load() == 0
    v1 = parse_model_log((site.dir / "model-load.log").read_bytes()).unverified_events[0]
    assert model_findings(site.attest())[-1] == "model-approved"  # signed by the vendor
    assert site.verifier is not None
    plain = site.verifier
    models = replace(plain.policy.models, revoked_digests=frozenset({v1.digest}))
    site.verifier = Verifier(plain.store, replace(plain.policy, models=models), site.anchors)
    outcome = site.attest()
    assert outcome.result.status is TrustTier.CONTRAINDICATED
    assert model_findings(outcome)[-1] == "model-unapproved"
    assert "revoked" in " ".join(outcome.result.submods[MODEL_SUBMOD].reasons)

    # attack: a model loaded outside the agent (NV extended with an unknown digest)
    backend = site.open_backend()
    try:
        backend.nv_extend(DEFAULT_NV_INDEX, hashlib.sha256(bytes([9]) * 70_000).digest())
    finally:
        close(backend)
    outcome = site.attest()
    assert outcome.result.status is TrustTier.CONTRAINDICATED
    assert model_findings(outcome)[-1] == "model-log-mismatch"
    # ... and one that also forged its log entry (no allowed signature): unapproved
    rogue = hashlib.sha256(bytes([9]) * 70_000).digest()
    events = parse_model_log((site.dir / "model-load.log").read_bytes()).unverified_events
    forged = replace(events[1], recnum=len(events), digest=rogue, name="edge-llm-v2")
    outcome = site.attest(edit=lambda log: encode_events([*events, forged]))
    assert model_findings(outcome)[-1] == "model-unapproved"
    assert "another model" in " ".join(outcome.result.submods[MODEL_SUBMOD].reasons)
