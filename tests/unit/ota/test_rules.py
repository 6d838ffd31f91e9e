"""The OTA rules at the pure level: :class:`UpdateRules` and :class:`RollbackState`, no store,
no device, no file system -- bytes, ``now`` and a state in, a verified manifest or a new state
out (or an exception)."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.ota.conftest import NOW, Releases, ed_key
from trustedge.errors import (
    ExpiredError,
    MalformedInputError,
    PolicyError,
    RollbackError,
    SignatureError,
)
from trustedge.ota import KeySet, RollbackState, TrustRoot, UpdateRules, build_trust_root
from trustedge.ota.rules import component_key
from trustedge.ota.suit import auth as suit_auth
from trustedge.ota.suit import numbers as n

COMP = (b"\x00",)
CID = component_key(COMP)


def _root(
    releases: Releases,
    *,
    version: int = 1,
    fw: int = 1,
    threshold: int = 1,
    expires: int = NOW + 1000,
    component_roles: dict[bytes, tuple[list[object], int]] | None = None,
) -> TrustRoot:
    return TrustRoot.load(
        build_trust_root(
            version=version,
            expires=expires,
            root_keys=[ed_key(10).public_key()],
            root_threshold=1,
            firmware_keys=[k.public_key() for k in releases.keys[:fw]],
            firmware_threshold=threshold,
            signers=[ed_key(10)],
            component_roles=component_roles,  # type: ignore[arg-type]
        )
    )


# -- rule 1: authenticate ------------------------------------------------------------------


def test_trust_root_freshness(releases: Releases) -> None:
    rules = UpdateRules(_root(releases, expires=NOW + 10))
    env = releases.make(1)
    assert rules.authenticate(env, now=NOW + 9).manifest.sequence_number == 1
    with pytest.raises(ExpiredError):
        rules.authenticate(env, now=NOW + 10)
    # a pinned key set has no expiry
    pinned = UpdateRules(KeySet.of([releases.keys[0].public_key()]))
    assert pinned.authenticate(env, now=2**62).signers


def test_size_cap_before_decoding(releases: Releases) -> None:
    env = releases.make(1)
    from trustedge.errors import LimitExceededError

    with pytest.raises(LimitExceededError):
        UpdateRules(_root(releases), max_envelope=len(env) - 1).authenticate(env, now=NOW)


def test_each_signature_verified_once(releases: Releases, monkeypatch: pytest.MonkeyPatch) -> None:
    """3 of 5 signed: three COSE_Sign1 verifications for the whole envelope (the kid hint
    puts the right key first), however the verified ids are then mapped to roles."""
    calls: list[bytes] = []
    real = suit_auth.verify_sign1

    def counting(block, key, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(block.signature)
        return real(block, key, **kwargs)

    monkeypatch.setattr(suit_auth, "verify_sign1", counting)
    rules = UpdateRules(_root(releases, fw=5, threshold=3))
    auth = rules.authenticate(releases.make(1, signers=releases.keys[:3]), now=NOW)
    assert len(auth.signers) == 3
    assert len(calls) == 3 and len(set(calls)) == 3


def test_duplicate_signer_counts_once(releases: Releases) -> None:
    rules = UpdateRules(_root(releases, fw=5, threshold=2))
    env = releases.make(1, signers=releases.keys[:1])
    # the same key's block twice: still one distinct signer
    from trustedge.ota.suit.codec import decode_envelope, encode_envelope

    dec = decode_envelope(env)
    from trustedge import _cbor

    block = _cbor.encode(
        _cbor.CBORTag(
            18,
            [
                dec.auth_blocks[0].protected_raw,
                dict(dec.auth_blocks[0].unprotected),
                None,
                dec.auth_blocks[0].signature,
            ],
        )
    )
    doubled = encode_envelope(dec.manifest_raw, [block, block], payloads=dec.payloads)
    with pytest.raises(SignatureError, match="1 of the required 2"):
        rules.authenticate(doubled, now=NOW)


def test_untrusted_signer_refused_before_parsing(releases: Releases) -> None:
    """No firmware-role key signed: SignatureError, the manifest is never decoded (so a
    manifest the decoder would reject still yields SignatureError, not MalformedInputError)."""
    from trustedge.ota.release import sign_envelope
    from trustedge.ota.suit.codec import encode_envelope

    garbage = encode_envelope(b"\xa1\x63bad\x01")  # a manifest trustedge does not understand
    env = sign_envelope(garbage, [ed_key(99)])
    with pytest.raises(SignatureError, match="no trusted firmware key"):
        UpdateRules(_root(releases)).authenticate(env, now=NOW)
    with pytest.raises(MalformedInputError):
        UpdateRules(KeySet.of([ed_key(99).public_key()])).authenticate(env, now=NOW)


def test_verified_keys_mapped_to_component_roles(releases: Releases) -> None:
    """The component's own role (keys 3, 4; threshold 2) applies instead of 'firmware': the
    firmware key's verified signature counts for nothing there."""
    root = _root(
        releases,
        component_roles={CID: ([releases.keys[3].public_key(), releases.keys[4].public_key()], 2)},
    )
    rules = UpdateRules(root)
    with pytest.raises(SignatureError, match="1 of the required 2"):
        rules.authenticate(releases.make(1, signers=[releases.keys[0], releases.keys[3]]), now=NOW)
    auth = rules.authenticate(
        releases.make(1, signers=[releases.keys[0], *releases.keys[3:5]]), now=NOW
    )
    # only the keys of the roles that applied are reported as signers
    assert auth.signers == {k for k in root.roles[f"firmware/{CID.hex()}"].keys}


# -- rule 2: admit -----------------------------------------------------------------------


def _auth(releases: Releases, seq: int, **kw: object) -> suit_auth.AuthenticatedManifest:
    return UpdateRules(_root(releases)).authenticate(releases.make(seq, **kw), now=NOW)  # type: ignore[arg-type]


def test_admit_records_pending(releases: Releases) -> None:
    auth = _auth(releases, 3)
    pending = UpdateRules(_root(releases)).admit(RollbackState(), auth)
    comp = pending.component(CID)
    assert (comp.floor, comp.pending, comp.pending_digest) == (0, 3, auth.digest)
    assert pending.pending_components == (COMP,)
    assert pending.confirm().component(CID).floor == 3
    assert pending.abandon().component(CID) == RollbackState().component(CID)


def test_admit_refuses_an_older_trust_root(releases: Releases) -> None:
    state = RollbackState(trust_root_version=2)
    rules = UpdateRules(_root(releases, version=1))
    with pytest.raises(RollbackError, match="older"):
        rules.admit(state, _auth(releases, 1))
    assert UpdateRules(_root(releases, version=2)).admit(state, _auth(releases, 1)).has_pending


def test_admit_refuses_while_pending(releases: Releases) -> None:
    rules = UpdateRules(_root(releases))
    pending = rules.admit(RollbackState(), _auth(releases, 1))
    with pytest.raises(PolicyError, match="pending"):
        rules.admit(pending, _auth(releases, 2))


def test_admit_rollback_floor(releases: Releases) -> None:
    rules = UpdateRules(_root(releases))
    same = _auth(releases, 5)
    state = rules.admit(RollbackState(), same).confirm()
    with pytest.raises(RollbackError, match="below the floor"):
        rules.admit(state, _auth(releases, 4))
    with pytest.raises(RollbackError, match="different manifest"):
        rules.admit(state, _auth(releases, 5, payload=b"another image, same number"))
    assert rules.admit(state, same).component(CID).pending == 5  # the same manifest again


def test_admit_max_seq_jump(releases: Releases) -> None:
    rules = UpdateRules(_root(releases), max_seq_jump=10)
    state = UpdateRules(_root(releases)).admit(RollbackState(), _auth(releases, 5)).confirm()
    assert rules.admit(state, _auth(releases, 15)).component(CID).pending == 15
    with pytest.raises(PolicyError, match="jumps more than 10"):
        rules.admit(state, _auth(releases, 16))
    with pytest.raises(ValueError):
        UpdateRules(_root(releases), max_seq_jump=-1)


def test_admit_needs_an_install_sequence(releases: Releases) -> None:
    auth = _auth(releases, 1)
    sequences = {k: v for k, v in auth.manifest.sequences.items() if k != n.INSTALL}
    no_install = replace(auth, manifest=replace(auth.manifest, sequences=sequences))
    with pytest.raises(PolicyError, match="no install sequence"):
        UpdateRules(_root(releases)).admit(RollbackState(), no_install)


def test_pending_components_refuses_a_foreign_key() -> None:
    state = RollbackState().begin([b"firmware"], 1, b"\x01" * 32)
    with pytest.raises(MalformedInputError):
        _ = state.pending_components


def test_rules_module_does_no_io() -> None:
    """The rules module imports nothing that touches files, processes or the network."""
    import trustedge.ota.rules as rules

    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open"
    forbidden = {"os", "io", "pathlib", "shutil", "subprocess", "socket", "trustedge._fs"}
    assert not {m for m in imported if m.split(".")[0] in forbidden or m in forbidden}
    assert not any(
        m.startswith(("trustedge.ota.device", "trustedge.ota.updater")) for m in imported
    )
