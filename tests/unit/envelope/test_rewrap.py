"""Re-wrap rewrites only the slot list."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from trustedge import envelope
from trustedge.envelope._format import read_prefix
from trustedge.errors import CommitmentError, KeyNotFoundError

MSG = b"telemetry " * 5000


def _body_hash(data: bytes) -> str:
    p = read_prefix(io.BytesIO(data).read)
    return hashlib.sha256(data[p.body_offset :]).hexdigest()


def _header(data: bytes) -> bytes:
    return read_prefix(io.BytesIO(data).read).header_bytes


def test_rotate_kek_body_unchanged() -> None:
    old, new = envelope.KEK.generate(), envelope.KEK.generate()
    hpke = envelope.HPKEIdentity.generate()
    sealed = envelope.seal(MSG, [old, hpke.recipient], context={"v": "1"})
    rotated = envelope.rewrap(sealed, [old], add=[new], remove=[old])
    assert _body_hash(rotated) == _body_hash(sealed)
    assert _header(rotated) == _header(sealed)
    assert envelope.open(rotated, [new]) == MSG
    assert envelope.open(rotated, [hpke]) == MSG
    with pytest.raises(KeyNotFoundError):
        envelope.open(rotated, [old])
    assert [s["kek_id"] for s in envelope.inspect(rotated).slots] == [
        hpke.kek_id,
        new.kek_id,
    ]


def test_remove_by_key_id_and_misuse() -> None:
    a, b = envelope.KEK.generate(), envelope.KEK.generate()
    sealed = envelope.seal(MSG, [a, b])
    only_b = envelope.rewrap(sealed, [b], remove=[a.kek_id])
    with pytest.raises(KeyNotFoundError):
        envelope.open(only_b, [a])
    with pytest.raises(ValueError):
        envelope.rewrap(only_b, [b], remove=[b])  # would leave no slot
    with pytest.raises(ValueError):
        envelope.rewrap(only_b, [b], remove=["kek:unknown"])
    with pytest.raises(ValueError):
        envelope.rewrap(only_b, [b], add=[b])  # duplicate


def test_rewrap_needs_a_working_key() -> None:
    sealed = envelope.seal(MSG, [envelope.KEK.generate()])
    with pytest.raises(KeyNotFoundError):
        envelope.rewrap(sealed, [envelope.KEK.generate()], add=[envelope.KEK.generate()])


def test_rewrap_checks_commitment_before_adding() -> None:
    a = envelope.KEK.generate()
    sealed = bytearray(envelope.seal(MSG, [a]))
    p = read_prefix(io.BytesIO(bytes(sealed)).read)
    sealed[p.body_offset + 30] ^= 1  # commitment byte
    with pytest.raises(CommitmentError):
        envelope.rewrap(bytes(sealed), [a], add=[envelope.KEK.generate()])


def test_rewrap_file_in_place(tmp_path: Path) -> None:
    old, new = envelope.KEK.generate(), envelope.KEK.generate()
    src = tmp_path / "data.bin"
    src.write_bytes(MSG)
    env = tmp_path / "data.tenv"
    envelope.seal_file(src, env, [old])
    before = _body_hash(env.read_bytes())
    envelope.rewrap_file(env, [old], add=[new], remove=[old])
    assert _body_hash(env.read_bytes()) == before
    out = tmp_path / "out.bin"
    envelope.open_file(env, out, [new])
    assert out.read_bytes() == MSG
    with pytest.raises(KeyNotFoundError):
        envelope.open_file(env, tmp_path / "never.bin", [old])
    assert not (tmp_path / "never.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "data.tenv", "out.bin"]
