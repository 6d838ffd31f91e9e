"""The model-load log: agent loads, NV extend, certification and appraisal (SoftwareTPM)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustedge import _cbor
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.findings import Finding
from trustedge.attestation.modellog import (
    DEFAULT_NV_INDEX,
    MAX_EVENTS,
    SIGNATURE_FORMAT,
    ModelAgent,
    ModelLoadEvent,
    ModelPolicy,
    appraise_models,
    encode_events,
    parse_model_log,
    replay,
    verify_model_log,
    verify_signed_model,
)
from trustedge.attestation.quote import AttestationKey, QuoteState
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    ReplayMismatchError,
    SignatureError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import Public
from trustedge.models import sign_model

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NONCE = bytes(range(32))


def make_model(root: Path, weights: bytes = b"weights v1") -> Path:
    (root / "tokenizer").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(weights)
    (root / "tokenizer" / "vocab.json").write_text('{"a": 1}')
    return root


@pytest.fixture
def world(tmp_path: Path) -> tuple[SoftwareTPM, ModelAgent, Path, bytes]:
    tpm = SoftwareTPM(tmp_path / "tpm")
    model = make_model(tmp_path / "llm")
    signature = sign_model(model, KEY)
    agent = ModelAgent(tpm, tmp_path / "models.log", [KEY.public_key()])
    return tpm, agent, model, signature


def evidence_for(
    tpm: SoftwareTPM, agent: ModelAgent
) -> tuple[Evidence, AttestationKey, QuoteState]:
    ak = tpm.create_ak()
    q = tpm.quote(ak, NONCE, {"sha256": [0]})
    from trustedge.hazmat.tpm2 import Attest

    state = QuoteState.of(Attest.unmarshal(q.message).clock_info)
    ev = Evidence("dev", NONCE, q.message, q.signature, ak.public, {0x000B: q.pcrs["sha256"]})
    key = AttestationKey.from_public(Public.unmarshal_tpm2b(ak.public))
    return agent.attach(ev, ak), key, state


def policy(**kw: object) -> ModelPolicy:
    return replace(ModelPolicy(allowed_signers=(KEY.public_key(),)), **kw)  # type: ignore[arg-type]


def kinds(found: list[Finding | tuple[Finding, str]]) -> list[Finding]:
    return [f[0] if isinstance(f, tuple) else f for f in found]


def test_load_extends_the_signed_digest(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    tpm, agent, model, signature = world
    loaded = agent.load(model, signature)
    assert loaded.digest == verify_signed_model(signature, [KEY.public_key()]).digest
    # the agent hands out readers that return only verified bytes
    with loaded.verified.open("model.safetensors") as fh:
        assert fh.read() == b"weights v1"
    value = tpm.nv_extend_read(DEFAULT_NV_INDEX)
    assert value == hashlib.sha256(bytes(32) + loaded.digest).digest()
    assert agent.events() == (loaded.event,)
    log = parse_model_log(agent.log_path.read_bytes())
    assert verify_model_log(log, value, nv_index=DEFAULT_NV_INDEX).events == (loaded.event,)


def test_swapped_weights_are_refused_at_load(
    world: tuple[SoftwareTPM, ModelAgent, Path, bytes],
) -> None:
    tpm, agent, model, signature = world
    (model / "model.safetensors").write_bytes(b"weights v2")
    with pytest.raises(VerificationError):
        agent.load(model, signature)
    assert agent.events() == () and tpm.nv_extend_read(DEFAULT_NV_INDEX) is None


def test_untrusted_signer_refused(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    _, agent, model, _ = world
    other = sign_model(model, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError):
        agent.load(model, other)


def test_appraisal_affirms_signed_loads(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    tpm, agent, model, signature = world
    agent.load(model, signature)
    agent.load(model, signature, name="again")
    ev, ak, state = evidence_for(tpm, agent)
    found = appraise_models(ev, policy(), ak, quote_state=state)
    assert kinds(found) == [Finding.MODEL_LOG_CERTIFIED, Finding.MODEL_APPROVED]
    digest = verify_signed_model(signature, [KEY.public_key()]).digest
    found = appraise_models(
        ev, ModelPolicy(allowed_digests=frozenset({digest})), ak, quote_state=state
    )
    assert kinds(found)[-1] is Finding.MODEL_APPROVED
    assert Evidence.decode(ev.encode()) == ev


def test_extend_outside_the_agent_is_a_mismatch(
    world: tuple[SoftwareTPM, ModelAgent, Path, bytes],
) -> None:
    tpm, agent, model, signature = world
    agent.load(model, signature)
    tpm.nv_extend(DEFAULT_NV_INDEX, hashlib.sha256(b"rogue model").digest())
    ev, ak, state = evidence_for(tpm, agent)
    assert kinds(appraise_models(ev, policy(), ak, quote_state=state))[-1] is (
        Finding.MODEL_LOG_MISMATCH
    )


def test_logged_but_unsigned_model_is_unapproved(
    world: tuple[SoftwareTPM, ModelAgent, Path, bytes],
) -> None:
    tpm, agent, model, signature = world
    agent.load(model, signature)
    rogue = hashlib.sha256(b"rogue").digest()
    events = (*agent.events(), ModelLoadEvent(1, DEFAULT_NV_INDEX, rogue, "rogue"))
    agent.log_path.write_bytes(encode_events(events))
    tpm.nv_extend(DEFAULT_NV_INDEX, rogue)
    ev, ak, state = evidence_for(tpm, agent)
    found = appraise_models(ev, policy(), ak, quote_state=state)
    assert kinds(found)[-1] is Finding.MODEL_UNAPPROVED
    # a valid signature for another model does not approve the measured digest
    lie = replace(events[1], signature=signature, signature_format=SIGNATURE_FORMAT)
    agent.log_path.write_bytes(encode_events((events[0], lie)))
    ev, ak, state = evidence_for(tpm, agent)
    found = appraise_models(ev, policy(), ak, quote_state=state)
    assert kinds(found)[-1] is Finding.MODEL_UNAPPROVED and "another model" in str(found[-1])


def test_certification_is_bound(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    tpm, agent, model, signature = world
    agent.load(model, signature)
    ev, ak, state = evidence_for(tpm, agent)
    assert ev.model_certify is not None
    wrong_nonce = replace(ev, nonce=bytes(32))
    assert kinds(appraise_models(wrong_nonce, policy(), ak, quote_state=state)) == [
        Finding.MODEL_CERTIFY_INVALID
    ]
    flipped = bytearray(ev.model_certify)
    flipped[-1] ^= 1
    bad = replace(ev, model_certify=bytes(flipped))
    assert kinds(appraise_models(bad, policy(), ak, quote_state=state)) == [
        Finding.MODEL_CERTIFY_INVALID
    ]
    other_boot = QuoteState(state.reset_count + 1, 0, 1)
    assert kinds(appraise_models(ev, policy(), ak, quote_state=other_boot)) == [
        Finding.MODEL_CERTIFY_INVALID
    ]
    wrong_index = policy(nv_index=DEFAULT_NV_INDEX + 1)
    assert kinds(appraise_models(ev, wrong_index, ak, quote_state=state)) == [
        Finding.MODEL_CERTIFY_INVALID
    ]
    stripped = replace(ev, model_certify=None, model_certify_signature=None)
    assert kinds(appraise_models(stripped, policy(), ak, quote_state=state)) == [
        Finding.MODEL_LOG_MISMATCH
    ]


def test_nothing_loaded(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    tpm, agent, _, _ = world
    ev, ak, state = evidence_for(tpm, agent)
    assert ev.model_certify is None
    assert kinds(appraise_models(ev, policy(), ak, quote_state=state)) == [
        Finding.MODEL_LOG_MISSING
    ]
    assert appraise_models(ev, policy(require_model=False), ak, quote_state=state) == []


def test_recover_after_crash_and_reboot(world: tuple[SoftwareTPM, ModelAgent, Path, bytes]) -> None:
    tpm, agent, model, signature = world
    loaded = agent.load(model, signature)
    # a crash after the log write, before the extend: the event never happened
    ghost = replace(loaded.event, recnum=1)
    agent.log_path.write_bytes(encode_events((loaded.event, ghost)))
    assert agent.recover() == (loaded.event,)
    tpm.reboot()
    assert agent.recover() == () and parse_model_log(agent.log_path.read_bytes()).encode() == (
        _cbor.encode([])
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xa0",
        _cbor.encode([{0: 1}]),
        _cbor.encode(
            [{0: 1, 1: 1, 2: [[11, bytes(32)]], 3: "trustedge.model-load/v1", 4: {0: "m"}}]
        ),
        _cbor.encode(
            [{0: 0, 1: 1, 2: [[4, bytes(32)]], 3: "trustedge.model-load/v1", 4: {0: "m"}}]
        ),
        _cbor.encode(
            [{0: 0, 1: 1, 2: [[11, bytes(31)]], 3: "trustedge.model-load/v1", 4: {0: "m"}}]
        ),
        _cbor.encode([{0: 0, 1: 1, 2: [[11, bytes(32)]], 3: "other", 4: {0: "m"}}]),
        _cbor.encode(
            [{0: 0, 1: 1, 2: [[11, bytes(32)]], 3: "trustedge.model-load/v1", 4: {0: ""}}]
        ),
        _cbor.encode(
            [{0: 0, 1: 1, 2: [[11, bytes(32)]], 3: "trustedge.model-load/v1", 4: {0: "m", 2: b"s"}}]
        ),
    ],
)
def test_malformed_logs(data: bytes) -> None:
    with pytest.raises(MalformedInputError):
        parse_model_log(data)


def test_log_limits_and_replay_rules() -> None:
    events = [ModelLoadEvent(i, 1, bytes([i]) * 32, f"m{i}") for i in range(3)]
    data = encode_events(events)
    assert parse_model_log(data).unverified_events == tuple(events)
    assert replay(()) is None
    with pytest.raises(ReplayMismatchError):
        verify_model_log(parse_model_log(data), bytes(32), nv_index=1)
    with pytest.raises(ReplayMismatchError):
        verify_model_log(parse_model_log(data), replay(events) or b"", nv_index=2)
    too_many = encode_events([ModelLoadEvent(i, 1, bytes(32), "m") for i in range(1025)])
    with pytest.raises(LimitExceededError):
        parse_model_log(too_many)


def _ca_and_leaf() -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A root CA and a code-signing leaf (the OMS certificate method)."""
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model signer")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, leaf, leaf_key


def test_certificate_chain_signers(tmp_path: Path) -> None:
    ca, leaf, leaf_key = _ca_and_leaf()
    when = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    tpm = SoftwareTPM(tmp_path / "tpm")
    model = make_model(tmp_path / "llm")
    bundle = sign_model(model, leaf_key, certificate_chain=[leaf])
    agent = ModelAgent(tpm, tmp_path / "models.log", [], trusted_roots=[ca])
    with pytest.raises(SignatureError):  # the leaf expired by then
        agent.load(model, bundle, now=when + datetime.timedelta(days=400))
    loaded = agent.load(model, bundle, now=when)
    ev, ak, state = evidence_for(tpm, agent)
    now = int(when.timestamp())
    found = appraise_models(ev, ModelPolicy(allowed_roots=(ca,)), ak, quote_state=state, now=now)
    assert kinds(found) == [Finding.MODEL_LOG_CERTIFIED, Finding.MODEL_APPROVED]
    # a key-only policy does not accept a certificate-signed bundle, nor another CA
    other_ca, _, _ = _ca_and_leaf()
    for pol in (policy(), ModelPolicy(allowed_roots=(other_ca,))):
        found = appraise_models(ev, pol, ak, quote_state=state, now=now)
        assert kinds(found)[-1] is Finding.MODEL_UNAPPROVED
    assert loaded.event.signature == bundle


def test_only_oms_bundles_identify_a_model(
    world: tuple[SoftwareTPM, ModelAgent, Path, bytes],
) -> None:
    tpm, agent, model, signature = world
    with pytest.raises(MalformedInputError):  # not an OMS bundle (e.g. a COSE_Sign1)
        agent.load(model, _cbor.encode([b"", {}, b"payload", b"sig"]))
    loaded = agent.load(model, signature)
    # the same bundle under another format name is not trusted by the verifier
    relabelled = replace(loaded.event, signature_format="trustedge-cose-manifest-v1")
    agent.log_path.write_bytes(encode_events((relabelled,)))
    ev, ak, state = evidence_for(tpm, agent)
    found = appraise_models(ev, policy(), ak, quote_state=state)
    assert kinds(found)[-1] is Finding.MODEL_UNAPPROVED and "signature format" in str(found[-1])


def test_a_full_log_parses_and_refuses_the_next_load(
    world: tuple[SoftwareTPM, ModelAgent, Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    tpm, agent, model, signature = world
    # MAX_EVENTS signed events (the largest item count per event) parse
    full = [
        ModelLoadEvent(i, DEFAULT_NV_INDEX, bytes(32), "m", signature, SIGNATURE_FORMAT)
        for i in range(MAX_EVENTS)
    ]
    assert len(parse_model_log(encode_events(full)).unverified_events) == MAX_EVENTS
    # a full log (here: 8 events) refuses the next load before it writes or extends
    monkeypatch.setattr("trustedge.attestation.modellog.MAX_EVENTS", 8)
    digests = [hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(8)]
    events = [ModelLoadEvent(i, DEFAULT_NV_INDEX, d, f"m{i}") for i, d in enumerate(digests)]
    tpm.nv_extend_define(DEFAULT_NV_INDEX)
    for d in digests:
        tpm.nv_extend(DEFAULT_NV_INDEX, d)
    agent.log_path.write_bytes(encode_events(events))
    before = tpm.nv_extend_read(DEFAULT_NV_INDEX)
    with pytest.raises(LimitExceededError, match="reboot"):
        agent.load(model, signature)
    # nothing written or extended: the log still parses and replays, the device still attests
    assert tpm.nv_extend_read(DEFAULT_NV_INDEX) == before
    assert agent.events() == tuple(events)
    ev, ak, state = evidence_for(tpm, agent)
    allowed = ModelPolicy(allowed_digests=frozenset(digests))
    found = appraise_models(ev, allowed, ak, quote_state=state)
    assert kinds(found) == [Finding.MODEL_LOG_CERTIFIED, Finding.MODEL_APPROVED]
    # ... and one whose bytes would outgrow the size cap
    monkeypatch.setattr("trustedge.attestation.modellog.MAX_EVENTS", 1024)
    monkeypatch.setattr("trustedge.attestation.modellog.MAX_LOG_BYTES", len(encode_events(events)))
    with pytest.raises(LimitExceededError, match="exceed"):
        agent.load(model, signature)
    assert tpm.nv_extend_read(DEFAULT_NV_INDEX) == before
