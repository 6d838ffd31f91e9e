"""The model chapter of ``trustedge demo``: a signed model delivered encrypted, loaded, attested.

A model vendor signs a tiny model (OpenSSF Model Signing bundle); the release
engineer packs it, encrypts it to the device's HPKE key and signs a SUIT
manifest for it; the device streams, decrypts, checks and installs it. The
device's agent loads it with verification (bundle, then every file) and
extends its signed digest into a TPM NV extend index; the verifier appraises
the certified index and the model-load log into the EAR submod ``model``.
Then three attacks: weights swapped on disk (refused at load), a model loaded
outside the agent (contraindicated), an older signed model (rollback refused).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge.attestation.attester import Attester
from trustedge.attestation.ear import verify_result
from trustedge.attestation.modellog import MODEL_SUBMOD, ModelAgent, ModelPolicy
from trustedge.attestation.store import SQLiteStore
from trustedge.attestation.verifier import AppraisalOutcome, AppraisalPolicy, TrustAnchors, Verifier
from trustedge.envelope import HPKEIdentity
from trustedge.errors import BackendError, TrustedgeError
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.models import sign_model
from trustedge.ota import FileStateStore, KeySet, Updater
from trustedge.ota.model import ModelDevice, build_model_release

__all__ = ["MODEL_STEPS", "run_model_chapter"]

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
COMPONENT = (b"model", b"edge-llm")
#: The demo's own NV extend index (owner range), undefined before and after the chapter so
#: that a second run on the same TPM starts from an unwritten index and a real deployment's
#: index (``modellog.DEFAULT_NV_INDEX``) is never touched.
DEMO_NV_INDEX = 0x013E0D0F
#: Titles of the chapter's steps, in order (the tests read them).
MODEL_STEPS = (
    "Deliver a signed model, encrypted",
    "Load the model with verification and attest",
    "Attack: weights swapped on disk",
    "Attack: a model loaded outside the agent",
    "Attack: an older signed model",
)


def _model(root: Path, version: int) -> Path:
    """A tiny model: weights, config and a tokenizer (a few KiB)."""
    (root / "tokenizer").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(bytes([version]) * 4096)
    (root / "config.json").write_text(f'{{"architecture": "edge-llm", "version": {version}}}')
    (root / "tokenizer" / "vocab.json").write_text('{"<s>": 0, "</s>": 1}')
    return root


def run_model_chapter(
    *,
    backend: TPMBackend,
    workdir: Path,
    attester: Attester,
    store: SQLiteStore,
    policy: AppraisalPolicy,
    anchors: TrustAnchors,
    device_id: str,
    result_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
    record: Callable[[str, str, str, str, list[str], dict[str, int]], None],
) -> None:
    """Play the chapter; ``record(title, story, expected, status, reasons, vector)``
    reports each step (status ``installed``/``refused`` or an EAR tier)."""
    _undefine(backend)
    try:
        _chapter(backend, workdir, attester, store, policy, anchors, device_id, result_key, record)
    finally:
        _undefine(backend)


def _undefine(backend: TPMBackend) -> None:
    try:
        backend.nv_undefine(DEMO_NV_INDEX)
    except BackendError:
        pass  # not defined


def _chapter(
    backend: TPMBackend,
    workdir: Path,
    attester: Attester,
    store: SQLiteStore,
    policy: AppraisalPolicy,
    anchors: TrustAnchors,
    device_id: str,
    result_key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey,
    record: Callable[[str, str, str, str, list[str], dict[str, int]], None],
) -> None:
    vendor_key = ed25519.Ed25519PrivateKey.generate()  # the model vendor's OMS key
    release_key = ed25519.Ed25519PrivateKey.generate()  # the OTA release key
    identity = HPKEIdentity.generate()  # the device's decryption key
    cdn = workdir / "cdn"
    cdn.mkdir()

    def release(version: int, sequence: int) -> tuple[bytes, bytes]:
        source = _model(workdir / f"edge-llm-v{version}", version)
        bundle = sign_model(source, vendor_key)
        with open(cdn / f"edge-llm-{sequence}.tenv", "wb") as out:
            built = build_model_release(
                source,
                bundle,
                [identity.recipient],
                out,
                sequence_number=sequence,
                vendor_id=VENDOR,
                class_id=CLASS,
                keys=[release_key],
                component=COMPONENT,
                uri=f"edge-llm-{sequence}.tenv",
            )
        return built.envelope, bundle

    def fetch(uri: str) -> Iterator[bytes]:
        with open(cdn / uri, "rb") as fh:
            while chunk := fh.read(4096):  # small pieces: the device streams
                yield chunk

    device = ModelDevice(
        workdir / "device",
        vendor_id=uuid.UUID(VENDOR).bytes,
        class_id=uuid.UUID(CLASS).bytes,
        model_components=[COMPONENT],
        fetcher=fetch,
        model_keys=[vendor_key.public_key()],  # only models this vendor signed install
    )
    updater = Updater(
        KeySet.of([release_key.public_key()]),
        FileStateStore(workdir / "ota-state"),
        device,
        decrypt={COMPONENT: [identity]},
    )
    old_envelope, _ = release(1, 1)
    new_envelope, _ = release(2, 2)

    # 1. deliver
    result = updater.apply(new_envelope, now=1)
    updater.confirm(result.components)
    directory, bundle = device.model(COMPONENT)
    wire = (cdn / "edge-llm-2.tenv").read_bytes()
    clear = (directory / "model.safetensors").read_bytes()
    record(
        MODEL_STEPS[0],
        "The model vendor signs edge-llm v2 (OpenSSF Model Signing bundle, Ed25519). The "
        "release engineer packs its 3 files and the bundle into one SUIT component, encrypts "
        "it to the device's HPKE key and signs the manifest (sequence 2), which names the "
        "envelope. The device streams fetch -> authenticate every chunk against that envelope "
        "-> decrypt -> check the pack digest and the vendor's signature -> install into an A/B "
        "slot; nothing unauthenticated reaches the disk.",
        "installed",
        "installed",
        [
            f"sequence {result.sequence_number} installed in slot {result.slots[0]}, confirmed",
            f"{len(wire)} bytes on the wire, ciphertext only "
            f"({'weights not visible' if clear[:64] not in wire else 'WEIGHTS VISIBLE'})",
        ],
        {},
    )

    # 2. load with verification and attest
    agent = ModelAgent(
        backend, workdir / "model-load.log", [vendor_key.public_key()], nv_index=DEMO_NV_INDEX
    )
    if bundle is None:
        raise TrustedgeError("the installed model has no signature")
    loaded = agent.load(directory, bundle)
    models = ModelPolicy(allowed_signers=(vendor_key.public_key(),), nv_index=DEMO_NV_INDEX)
    verifier = Verifier(store, replace(policy, models=models), anchors)

    def attest() -> AppraisalOutcome:
        ch = verifier.challenge(device_id)
        evidence = attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)
        outcome = verifier.appraise(agent.attach(evidence, attester.ak).encode())
        verify_result(outcome.token, result_key)
        return outcome

    def record_outcome(title: str, story: str, expected: str, outcome: AppraisalOutcome) -> None:
        submod = outcome.result.submods[MODEL_SUBMOD]
        vector = {n: v for _, n, v in submod.trust_vector.items()}
        record(title, story, expected, outcome.result.status.value, list(submod.reasons), vector)

    record_outcome(
        MODEL_STEPS[1],
        f"The device's agent loads the model: it checks the bundle against the vendor key, "
        f"hashes every file against it, then extends the signed digest "
        f"(sha256:{loaded.digest.hex()[:16]}...) into TPM NV index 0x{DEMO_NV_INDEX:08x} "
        "and appends to the model-load log. Evidence now carries the log and a TPM2_NV_Certify "
        "of the index over the verifier's nonce; the verifier replays the log and checks each "
        "model's signer (EAR submod 'model').",
        "affirming",
        attest(),
    )

    # 3. weights swapped on disk
    (directory / "model.safetensors").write_bytes(b"\x66" * 4096)
    try:
        agent.load(directory, bundle)
        status, reasons = "loaded", ["the swapped weights were loaded"]
    except TrustedgeError as exc:
        status, reasons = "refused", [f"load refused: {exc}"]
    after_one_load = hashlib.sha256(bytes(32) + loaded.digest).digest()
    register = backend.nv_extend_read(DEMO_NV_INDEX)
    if register != after_one_load:  # not secret: a public register, the demo's own check
        status = "extended"
    record(
        MODEL_STEPS[2],
        "Malware on the device overwrites model.safetensors after the install. At the next "
        "load the agent hashes the file against the signed bundle: nothing is loaded, logged "
        "or extended.",
        "refused",
        status,
        reasons,
        {},
    )

    # 4. a model loaded outside the agent
    rogue = hashlib.sha256(b"\x66" * 4096).digest()
    backend.nv_extend(DEMO_NV_INDEX, rogue)
    record_outcome(
        MODEL_STEPS[3],
        "The malware loads its own model without the agent and extends its digest into the "
        "NV index (it cannot reset the index, unlike PCR 16/23), or writes no log entry at "
        "all. The certified value no longer matches the log's replay.",
        "contraindicated",
        attest(),
    )

    # 5. an older signed model
    try:
        updater.apply(old_envelope, now=2)
        status, reasons = "installed", ["the older model was installed"]
    except TrustedgeError as exc:
        status, reasons = "refused", [f"{type(exc).__name__}: {exc}"]
    record(
        MODEL_STEPS[4],
        "An attacker replays the genuine, signed update of edge-llm v1 (sequence 1), say to "
        "bring back a model with a known weakness. The device's rollback floor is 2.",
        "refused",
        status,
        reasons,
        {},
    )
