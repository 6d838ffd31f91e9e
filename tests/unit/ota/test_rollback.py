"""The rollback rules (no I/O) and both storage backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustedge.errors import MalformedInputError, PolicyError, RollbackError
from trustedge.ota import FileStateStore, NVCounterStateStore, RollbackState

C = b"\x81\x41\x00"
D1, D2 = b"\x01" * 32, b"\x02" * 32


def test_rules() -> None:
    s = RollbackState()
    s = s.begin([C], 5, D1)
    assert s.component(C).floor == 0 and s.component(C).pending == 5
    with pytest.raises(PolicyError):
        s.begin([C], 6, D2)
    s = s.confirm()
    assert s.component(C).floor == 5 and s.component(C).pending is None
    s.check(C, 5, D1)
    s.check(C, 6, D2)
    with pytest.raises(RollbackError):
        s.check(C, 4, D1)
    with pytest.raises(RollbackError):
        s.check(C, 5, D2)
    with pytest.raises(RollbackError):
        s.check(C, 2**64, D1)
    s2 = s.begin([C], 9, D2).abandon()
    assert s2.component(C).floor == 5 and not s2.has_pending


def test_floor_reset_only_for_newer_root() -> None:
    s = (
        RollbackState(components={C: RollbackState().component(C)})
        .begin([C], 2**64 - 1, D1)
        .confirm()
    )
    s = s.apply_floor_reset(2, {C: 7})
    assert s.component(C).floor == 7 and s.trust_root_version == 2
    assert s.apply_floor_reset(2, {C: 0}) is s
    with pytest.raises(RollbackError):
        s.apply_floor_reset(1, {})


def test_encoding_round_trip_and_hostile() -> None:
    s = RollbackState(3, 1).begin([C], 4, D1)
    assert RollbackState.decode(s.encode()) == s
    for bad in (
        b"",
        b"\x80",
        b"\x84\x02\x00\x00\xa0",
        s.encode()[:-1],
        b"\x84\x01\x00\x00\xa1\x41\x00\x80",
    ):
        with pytest.raises(MalformedInputError):
            RollbackState.decode(bad)


def test_file_store_two_copies(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    assert store.load() == RollbackState()
    a = store.save(RollbackState().begin([C], 1, D1))
    b = store.save(a.confirm())
    assert (a.generation, b.generation) == (1, 2)
    assert store.load() == b
    # corrupt the newest copy: the previous generation is still there
    newest = tmp_path / f"state.{b.generation % 2}"
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x00")
    assert store.load() == a
    assert not list(tmp_path.glob("*.tmp"))


def test_nv_counter_store(tmp_path: Path, tpm_backend: object) -> None:
    key = b"k" * 32
    store = NVCounterStateStore(tmp_path, tpm_backend, 0x1500020, key)  # type: ignore[arg-type]
    fresh = store.provision()
    s1 = store.save(fresh.begin([C], 1, D1))
    s2 = store.save(s1.confirm())
    assert store.load() == s2
    old_copy = (tmp_path / f"state.{s1.generation % 2}").read_bytes()
    store.save(s2.begin([C], 2, D2))
    # an attacker restores an old state file (both copies): detected
    (tmp_path / "state.0").write_bytes(old_copy)
    (tmp_path / "state.1").write_bytes(old_copy)
    with pytest.raises(RollbackError):
        store.load()
    # a file MAC'd with another key is not accepted either
    other = NVCounterStateStore(tmp_path, tpm_backend, 0x1500020, b"x" * 32)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        other.load()


def test_nv_counter_crash_between_write_and_increment(tmp_path: Path, tpm_backend: object) -> None:
    store = NVCounterStateStore(tmp_path, tpm_backend, 0x1500021, b"k" * 32)  # type: ignore[arg-type]
    s0 = store.provision()
    # simulate: file written with generation c+1, power lost before the increment
    store.files.write(s0.begin([C], 1, D1).__class__(s0.generation + 1, 0, {}))
    loaded = store.load()
    assert loaded.generation == s0.generation + 1
    assert tpm_backend.nv_counter_read(0x1500021) == s0.generation + 1  # type: ignore[attr-defined]


def test_trust_root_unknown_fields_of_mixed_key_types() -> None:
    """A signed trust root whose map has bytes, int and str keys besides the known
    ones is refused as malformed (the fuzzer found the error message itself raising
    TypeError while sorting the mixed keys)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustedge import _cbor
    from trustedge.cose import create_sign
    from trustedge.ota import TrustRoot

    key = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    doc = {"type": "trustedge-trust-root", b"x": 1, 7: 2, "extra": 3}
    signed = create_sign(_cbor.encode(doc), [key])
    with pytest.raises(MalformedInputError, match="unknown trust root fields"):
        TrustRoot.load(signed, now=0)
