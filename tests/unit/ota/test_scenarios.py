"""Scenario tests: one per attack class of the research note's table (issue 8)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.ota.conftest import NOW, Releases, ed_key
from trustedge import _cbor
from trustedge.errors import (
    ExpiredError,
    LimitExceededError,
    MalformedInputError,
    PolicyError,
    RollbackError,
    SignatureError,
    VerificationError,
)
from trustedge.ota import (
    FileStateStore,
    FileSystemDevice,
    KeySet,
    TrustRoot,
    Updater,
    build_trust_root,
    component_key,
)

COMP = (b"\x00",)


def _root(
    releases: Releases,
    version: int = 1,
    *,
    fw: int = 1,
    fw_threshold: int = 1,
    signers: list[int] | None = None,
    root_keys: list[int] | None = None,
    expires: int = NOW + 1000,
    floor_reset: dict[bytes, int] | None = None,
) -> bytes:
    root_keys = [3, 4] if root_keys is None else root_keys
    return build_trust_root(
        version=version,
        expires=expires,
        root_keys=[ed_key(10 + i).public_key() for i in root_keys],
        root_threshold=2,
        firmware_keys=[k.public_key() for k in releases.keys[:fw]],
        firmware_threshold=fw_threshold,
        signers=[ed_key(10 + i) for i in (signers if signers is not None else root_keys)],
        floor_reset=floor_reset,
    )


def _installed(device: FileSystemDevice, releases: Releases, seq: int) -> None:
    slot = device.active_slot(COMP)
    fh = device.read(COMP, slot)
    assert fh is not None
    with fh:
        assert fh.read() == releases.payload(seq)


def test_genuine_update_installs_and_confirms(
    make_updater: Callable[..., Updater], releases: Releases, device: FileSystemDevice
) -> None:
    up = make_updater()
    result = up.apply(releases.make(1), now=NOW)
    assert result.sequence_number == 1
    assert up.store.load().component(component_key(COMP)).floor == 0  # not before confirm
    up.confirm(result.components)
    assert up.store.load().component(component_key(COMP)).floor == 1
    _installed(device, releases, 1)


def test_arbitrary_software_unsigned_or_wrong_key(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    up = make_updater()
    with pytest.raises(SignatureError):
        up.apply(releases.make(1, signers=[]), now=NOW)
    with pytest.raises(SignatureError):
        up.apply(releases.make(1, signers=[ed_key(99)]), now=NOW)
    assert not up.store.load().components


def test_rollback_rejected_after_confirm(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    up = make_updater()
    up.confirm(up.apply(releases.make(3), now=NOW).components)
    with pytest.raises(RollbackError):
        up.apply(releases.make(2), now=NOW)


def test_equal_sequence_only_same_manifest(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    up = make_updater()
    first = releases.make(3)
    up.confirm(up.apply(first, now=NOW).components)
    up.confirm(up.apply(first, now=NOW).components)  # exact reinstall is fine
    with pytest.raises(RollbackError, match="different manifest"):
        up.apply(releases.make(3, payload=b"other firmware, same number"), now=NOW)


def test_indefinite_freeze_expired_root(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    root = TrustRoot.load(_root(releases, expires=NOW + 10))
    up = make_updater(root)
    up.apply(releases.make(1), now=NOW)
    up.revert((COMP,))
    with pytest.raises(ExpiredError):
        up.apply(releases.make(2), now=NOW + 10)


def test_use_before_expired(make_updater: Callable[..., Updater], releases: Releases) -> None:
    from trustedge.ota.release import compile_spec, sign_envelope
    from trustedge.ota.suit import numbers as n
    from trustedge.ota.suit.codec import Command, encode_envelope, encode_manifest

    m = compile_spec(releases.spec(1))
    shared = (Command(n.DIR_OVERRIDE_PARAMETERS, {n.P_USE_BEFORE: NOW - 1}), *m.shared_sequence)
    from dataclasses import replace

    raw, _ = encode_manifest(replace(m, shared_sequence=shared))
    env = sign_envelope(
        encode_envelope(raw, payloads={"#fw": releases.payload(1)}), releases.keys[:1]
    )
    with pytest.raises(ExpiredError):
        make_updater().apply(env, now=NOW)


def test_endless_data_envelope_capped(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    up = make_updater(max_envelope=4096)
    with pytest.raises(LimitExceededError):
        up.apply(releases.make(1, payload=b"x" * 10_000), now=NOW)


def test_oversized_payload_rejected_without_reading_all(tmp_path: Path, releases: Releases) -> None:
    import uuid

    from tests.unit.ota.conftest import CLASS, VENDOR

    seen = []

    def endless(uri: str):  # type: ignore[no-untyped-def]
        while True:
            seen.append(1)
            yield b"A" * 4096

    device = FileSystemDevice(
        tmp_path / "d",
        vendor_id=uuid.UUID(VENDOR).bytes,
        class_id=uuid.UUID(CLASS).bytes,
        fetcher=endless,
    )
    up = Updater(KeySet.of([releases.keys[0].public_key()]), FileStateStore(tmp_path / "s"), device)
    env = releases.make(1, uri="http://example.com/fw.bin")
    with pytest.raises(VerificationError, match="exceeds image-size"):
        up.apply(env, now=NOW)
    assert len(seen) <= len(releases.payload(1)) // 4096 + 2
    assert device.read(COMP, 1) is None  # nothing half-written left in a slot


def test_oversized_integrated_payload(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    with pytest.raises(VerificationError):
        make_updater().apply(releases.make(1, integrated=releases.payload(1) + b"!"), now=NOW)


def test_substituted_payload(make_updater: Callable[..., Updater], releases: Releases) -> None:
    evil = bytearray(releases.payload(1))
    evil[0] ^= 1
    up = make_updater()
    with pytest.raises(VerificationError, match="digest"):
        up.apply(releases.make(1, integrated=bytes(evil)), now=NOW)
    assert not up.store.load().has_pending


def test_wrong_device_class(make_updater: Callable[..., Updater], releases: Releases) -> None:
    env = releases.make(1, **{"class-id": "00000000-0000-5000-8000-000000000000"})
    with pytest.raises(PolicyError, match="class"):
        make_updater().apply(env, now=NOW)
    env = releases.make(1, **{"vendor-id": "00000000-0000-5000-8000-000000000000"})
    with pytest.raises(PolicyError, match="vendor"):
        make_updater().apply(env, now=NOW)


def test_mix_and_match_tampered_manifest(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    """Swap the manifest of one release into the signed wrapper of another."""
    a = _cbor.decode(releases.make(1))
    b = _cbor.decode(releases.make(2))
    a.value[3] = b.value[3]
    with pytest.raises(SignatureError, match="SUIT_Digest"):
        make_updater().apply(_cbor.encode(a), now=NOW)


def test_threshold_not_met_and_duplicate_signer(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    root = TrustRoot.load(_root(releases, fw=5, fw_threshold=3))
    up = make_updater(root)
    with pytest.raises(SignatureError, match="2 of the required 3"):
        up.apply(releases.make(1, signers=releases.keys[:2]), now=NOW)
    # the same key signing three times counts once
    env = releases.make(1, signers=releases.keys[:1])
    env_dup = _cbor.decode(env)
    wrapper = _cbor.decode(env_dup.value[2])
    env_dup.value[2] = _cbor.encode([wrapper[0], wrapper[1], wrapper[1], wrapper[1]])
    with pytest.raises(SignatureError, match="1 of the required 3"):
        up.apply(_cbor.encode(env_dup), now=NOW)
    assert up.apply(releases.make(1, signers=releases.keys[:3]), now=NOW).signers


def test_revoked_key_rejected_after_rotation(releases: Releases) -> None:
    v1 = TrustRoot.load(_root(releases, fw=2))
    v2 = v1.rotate(_root(releases, 2, fw=1))  # key 1 dropped = revoked
    from trustedge.ota.suit import authenticate, decode_envelope

    env = decode_envelope(releases.make(1, signers=[releases.keys[1]]))
    authenticate(env, v1.keyset("firmware"))
    with pytest.raises(SignatureError):
        authenticate(env, v2.keyset("firmware"))


def test_rotated_root_chain(releases: Releases) -> None:
    v1 = TrustRoot.load(_root(releases, root_keys=[0, 1]))
    # v2 signed by old (0,1) and new (2,3) root keys; v3 by (2,3) and (4,5)
    v2 = _root(releases, 2, root_keys=[2, 3], signers=[0, 1, 2, 3])
    v3 = _root(releases, 3, root_keys=[4, 5], signers=[2, 3, 4, 5])
    assert v1.rotate_chain([v2, v3], now=NOW).version == 3
    with pytest.raises(RollbackError):
        v1.rotate(v3)  # skipping a version
    with pytest.raises(SignatureError):
        v1.rotate(_root(releases, 2, root_keys=[2, 3], signers=[2, 3]))  # old root did not sign
    with pytest.raises(SignatureError):
        v1.rotate(_root(releases, 2, root_keys=[2, 3], signers=[0, 1, 2]))  # new threshold unmet
    with pytest.raises(ExpiredError):
        v1.rotate_chain([_root(releases, 2, root_keys=[0, 1], expires=NOW)], now=NOW)


def test_fast_forward_and_floor_reset(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    v1 = TrustRoot.load(_root(releases, fw=2))
    up = make_updater(v1)
    # a (later revoked) firmware key pushes the floor to uint64 max
    ff = releases.make(2**64 - 1, signers=[releases.keys[1]])
    up.confirm(up.apply(ff, now=NOW).components)
    with pytest.raises(RollbackError):
        up.apply(releases.make(5), now=NOW)
    # recovery: root v2 (root threshold) revokes key 1 and resets the floor
    v2 = v1.rotate(_root(releases, 2, fw=1, floor_reset={component_key(COMP): 0}))
    state = up.adopt_trust_root(v2)
    assert state.component(component_key(COMP)).floor == 0
    up.confirm(up.apply(releases.make(5), now=NOW).components)
    # the reset applies once: adopting v2 again changes nothing
    assert up.adopt_trust_root(v2).component(component_key(COMP)).floor == 5
    with pytest.raises(SignatureError):
        up.apply(releases.make(2**64 - 1, signers=[releases.keys[1]]), now=NOW)


def test_floor_reset_needs_root_threshold(releases: Releases) -> None:
    v1 = TrustRoot.load(_root(releases))
    forged = _root(releases, 2, floor_reset={component_key(COMP): 0}, signers=[3])
    with pytest.raises(SignatureError):
        v1.rotate(forged)


def test_max_seq_jump(make_updater: Callable[..., Updater], releases: Releases) -> None:
    with pytest.raises(PolicyError, match="jumps"):
        make_updater(max_seq_jump=100).apply(releases.make(1000), now=NOW)


def test_pending_update_blocks_next(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    up = make_updater()
    up.apply(releases.make(1), now=NOW)
    with pytest.raises(PolicyError, match="pending"):
        up.apply(releases.make(2), now=NOW)
    up.revert((COMP,))
    assert up.store.load().component(component_key(COMP)).floor == 0


def test_state_tamper_detected(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    from trustedge.ota import RollbackState

    store.save(RollbackState())
    store.save(RollbackState())
    for p in tmp_path.glob("state.*"):
        data = bytearray(p.read_bytes())
        data[12] ^= 0xFF
        p.write_bytes(bytes(data))
    with pytest.raises(MalformedInputError):
        store.load()


def test_digest_helper_is_sha256() -> None:
    from trustedge.ota._digest import digest_stream

    assert digest_stream([b"ab", b"c"], 10) == (hashlib.sha256(b"abc").digest(), 3)
    assert digest_stream([b"abcd"], 3)[1] == 4


def test_per_component_firmware_role(
    make_updater: Callable[..., Updater], releases: Releases
) -> None:
    """Component [h'00'] has its own role (keys 3, 4; threshold 2): the general
    firmware role's key alone is not enough for it."""
    doc = build_trust_root(
        version=1,
        expires=NOW + 1000,
        root_keys=[ed_key(10).public_key(), ed_key(11).public_key()],
        root_threshold=2,
        firmware_keys=[releases.keys[0].public_key()],
        firmware_threshold=1,
        signers=[ed_key(10), ed_key(11)],
        component_roles={
            component_key(COMP): ([releases.keys[3].public_key(), releases.keys[4].public_key()], 2)
        },
    )
    up = make_updater(TrustRoot.load(doc))
    with pytest.raises(SignatureError):
        up.apply(releases.make(1, signers=releases.keys[:1]), now=NOW)
    with pytest.raises(SignatureError):
        up.apply(releases.make(1, signers=releases.keys[3:4]), now=NOW)
    assert up.apply(releases.make(1, signers=releases.keys[3:5]), now=NOW).signers


def test_uuid5_names_like_suit_tool() -> None:
    from trustedge.ota.release import class_id, vendor_id

    vid = vendor_id("arm.com")
    assert str(__import__("uuid").UUID(bytes=vid)) == "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
    assert len(class_id(vid, "board-x")) == 16


def test_confirm_after_interrupted_apply_does_not_raise_floor(
    make_updater: Callable[..., Updater], releases: Releases, device: FileSystemDevice
) -> None:
    up = make_updater()
    up.apply(releases.make(4), now=NOW)
    device.revert(COMP)  # as if power failed before the slot was marked pending
    with pytest.raises(PolicyError, match="never reached"):
        up.confirm((COMP,))
    state = up.store.load()
    assert state.component(component_key(COMP)).floor == 0 and not state.has_pending


def test_confirm_and_revert_need_no_keys(
    make_updater: Callable[..., Updater], releases: Releases, device: FileSystemDevice,
    tmp_path: Path,
) -> None:  # fmt: skip
    """confirm/revert act on the pending state apply recorded: no trust root, no key set."""
    from trustedge.ota.updater import confirm, revert

    up = make_updater()
    up.apply(releases.make(1), now=NOW)
    store = FileStateStore(tmp_path / "state")  # a fresh handle: nothing but the files
    assert confirm(store, device).component(component_key(COMP)).floor == 1
    assert device.pending_slot(COMP) is None
    _installed(device, releases, 1)
    up.apply(releases.make(2), now=NOW)
    assert device.pending_slot(COMP) is not None
    state = revert(store, device)
    assert state.component(component_key(COMP)).floor == 1 and not state.has_pending
    assert device.pending_slot(COMP) is None
    _installed(device, releases, 1)
