"""seal/open round trips for every slot type, suites, contexts and errors."""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import nacl.public
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import envelope
from trustedge.envelope import slots as slotmod
from trustedge.errors import (
    CommitmentError,
    ContextMismatchError,
    KeyNotFoundError,
    KeyProviderError,
    LimitExceededError,
    MalformedInputError,
    UnsupportedAlgorithmError,
)

MSG = bytes(range(256)) * 200  # 51,200 bytes: three full chunks and a short one


def _recipients() -> list[tuple[envelope.Recipient, envelope.Identity]]:
    kek = envelope.KEK.generate()
    hpke = envelope.HPKEIdentity.generate()
    p256 = envelope.HPKEIdentity(ec.generate_private_key(ec.SECP256R1()))
    box = envelope.SealedBoxIdentity.generate()
    kms = envelope.KMSSlot(envelope.LocalKeyFileProvider.generate())
    return [
        (kek, kek),
        (hpke.recipient, hpke),
        (p256.recipient, p256),
        (box.recipient, box),
        (kms, kms),
    ]


@pytest.mark.parametrize(
    "suite", [envelope.SUITE_COBBLESTONE_256, envelope.SUITE_CHACHA20_POLY1305]
)
@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 32768, len(MSG)])
def test_round_trip_every_slot(suite: int, size: int) -> None:
    pairs = _recipients()
    sealed = envelope.seal(MSG[:size], [r for r, _ in pairs], context={"k": "v"}, suite=suite)
    for _, ident in pairs:
        assert envelope.open(sealed, [ident]) == MSG[:size]


def test_seal_from_file_object_has_no_size() -> None:
    kek = envelope.KEK.generate()
    sealed = envelope.seal(io.BytesIO(MSG), [kek], content_type="application/octet-stream")
    info = envelope.inspect(sealed)
    assert info.size is None and info.content_type == "application/octet-stream"
    assert envelope.open(sealed, [kek]) == MSG


def test_required_context() -> None:
    kek = envelope.KEK.generate()
    sealed = envelope.seal(b"data", [kek], context={"device": "gw-7", "blob": b"\x00\x01"})
    assert envelope.open(sealed, [kek], context={"device": "gw-7"}) == b"data"
    assert envelope.open(sealed, [kek], context={"blob": b"\x00\x01"}) == b"data"
    with pytest.raises(ContextMismatchError):
        envelope.open(sealed, [kek], context={"device": "gw-8"})
    with pytest.raises(ContextMismatchError):
        envelope.open(sealed, [kek], context={"missing": "x"})


def test_wrong_key_is_no_matching_slot() -> None:
    sealed = envelope.seal(b"data", [envelope.KEK.generate()])
    with pytest.raises(KeyNotFoundError):
        envelope.open(sealed, [envelope.KEK.generate(), envelope.HPKEIdentity.generate()])


def test_no_recipients_or_identities_is_misuse() -> None:
    with pytest.raises(ValueError):
        envelope.seal(b"x", [])
    sealed = envelope.seal(b"x", [envelope.KEK.generate()])
    with pytest.raises(ValueError):
        envelope.open(sealed, [])


def test_sealed_box_interop_with_libsodium() -> None:
    sk = nacl.public.PrivateKey.generate()
    recipient = envelope.SealedBoxRecipient(sk.public_key)
    slot = recipient.wrap(bytes(32), b"b" * 32, lambda n: bytes(range(n)))
    # libsodium's own crypto_box_seal_open opens what trustedge built.
    plain = nacl.public.SealedBox(sk).decrypt(slot.wrapped)
    assert plain[:32] == bytes(32)
    # and trustedge opens libsodium's own sealed box of the same layout
    aad = envelope._format.slot_aad(b"b" * 32, slot.type, slot.kek_id, {})
    import hashlib

    theirs = nacl.public.SealedBox(sk.public_key).encrypt(
        b"\x07" * 32 + hashlib.sha256(aad).digest()
    )
    ident = envelope.SealedBoxIdentity(sk)
    got = ident.unwrap(envelope.Slot(slot.type, slot.kek_id, {}, theirs), b"b" * 32)
    assert got == b"\x07" * 32


def test_salamander_slot_fails_commitment() -> None:
    """A slot that authenticates but holds a different file key (a sender
    giving two recipients two different plaintexts) fails the commitment."""
    a, b = envelope.KEK.generate(), envelope.KEK.generate()
    sealed = envelope.seal(b"for everyone", [a, b])
    prefix = envelope._format.read_prefix(io.BytesIO(sealed).read)
    bind = envelope._format.binding(prefix.header_bytes)
    evil_slot = b.wrap(b"\x42" * 32, bind, __import__("os").urandom)
    slots = [prefix.slots[0], evil_slot]
    forged = (
        envelope._format.encode_prefix(prefix.header_bytes, slots) + sealed[prefix.body_offset :]
    )
    assert envelope.open(forged, [a]) == b"for everyone"
    with pytest.raises(CommitmentError):
        envelope.open(forged, [b])


def test_kms_provider_errors(tmp_path: Path) -> None:
    keyfile = tmp_path / "kms.key"
    keyfile.write_bytes(b"\x01" * 32)
    provider = envelope.LocalKeyFileProvider.from_file(keyfile)
    assert isinstance(provider, envelope.KeyProvider)
    sealed = envelope.seal(b"x", [envelope.KMSSlot(provider)])
    assert envelope.open(sealed, [envelope.KMSSlot(provider)]) == b"x"
    with pytest.raises(KeyProviderError):
        envelope.LocalKeyFileProvider.from_file(tmp_path / "missing")
    other = envelope.LocalKeyFileProvider(b"\x02" * 32, key_id=provider.key_id)
    with pytest.raises(KeyNotFoundError):
        envelope.open(sealed, [envelope.KMSSlot(other)])


def test_hpke_pem_round_trip() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519

    sk = x25519.X25519PrivateKey.generate()
    pem_priv = sk.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_pub = sk.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sealed = envelope.seal(b"x", [envelope.HPKERecipient.from_pem(pem_pub)])
    assert envelope.open(sealed, [envelope.HPKEIdentity.from_pem(pem_priv)]) == b"x"
    with pytest.raises(MalformedInputError):
        envelope.HPKERecipient.from_pem(b"junk")
    ed = __import__(
        "cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]
    ).Ed25519PrivateKey.generate()
    with pytest.raises(UnsupportedAlgorithmError):
        envelope.HPKERecipient.from_pem(
            ed.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def test_slot_limit() -> None:
    kek = envelope.KEK.generate()
    sealed = envelope.seal(b"x", [kek])
    prefix = envelope._format.read_prefix(io.BytesIO(sealed).read)
    many = prefix.slots * 65
    raw = envelope._format._cbor.encode([s.to_cbor() for s in many])
    forged = (
        envelope._format.PREAMBLE
        + len(prefix.header_bytes).to_bytes(4, "big")
        + prefix.header_bytes
        + len(raw).to_bytes(4, "big")
        + raw
        + sealed[prefix.body_offset :]
    )
    with pytest.raises(LimitExceededError):
        envelope.open(forged, [kek])


def test_unknown_suite_and_version() -> None:
    kek = envelope.KEK.generate()
    sealed = bytearray(envelope.seal(b"x", [kek]))
    sealed[4] = 2
    with pytest.raises(UnsupportedAlgorithmError):
        envelope.open(bytes(sealed), [kek])
    with pytest.raises(ValueError):
        envelope.seal(b"x", [kek], suite=9)


def test_identity_protocols() -> None:
    for r, i in _recipients():
        assert isinstance(r, slotmod.Recipient)
        assert isinstance(i, slotmod.Identity)


def test_output_to_a_device_or_fifo_streams_in_place(tmp_path: Path) -> None:
    # Renaming a temporary file over /dev/null would replace the device node.
    kek = envelope.KEK.generate()
    src = tmp_path / "plain"
    src.write_bytes(b"data " * 5000)
    envelope.seal_file(src, "/dev/null", [kek])
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    envelope.seal_file(src, fifo, [kek])
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert envelope.open(received[0], [kek]) == src.read_bytes()


def test_seal_file_reads_ahead_across_many_blocks(tmp_path: Path) -> None:
    # Several read-ahead blocks (1 MiB each) and a ragged tail: what the reader
    # thread fills must never overwrite a block still being encrypted.
    kek = envelope.KEK.generate()
    data = os.urandom(3 * 1024 * 1024 + 12345)
    src, dst = tmp_path / "plain", tmp_path / "sealed"
    src.write_bytes(data)
    envelope.seal_file(src, dst, [kek])
    assert envelope.open(dst.read_bytes(), [kek]) == data


def test_killed_writer_leaves_no_partial_file(tmp_path: Path) -> None:
    # SIGKILL inside atomic_output (as during a long `open`): no file at the
    # final name and, where O_TMPFILE exists, no hidden temporary file either.
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from trustedge.envelope import atomic_output\n"
        "with atomic_output(sys.argv[1]) as f:\n"
        "    f.write(b'partial plaintext' * 1000)\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    dst = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", code, str(dst)], check=False)
    assert res.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    if hasattr(os, "O_TMPFILE"):
        assert left == []
    else:
        assert all(name.startswith(".out.") for name in left)


def test_atomic_output_replaces_and_cleans_up(tmp_path: Path) -> None:
    dst = tmp_path / "out"
    dst.write_bytes(b"old")
    with envelope.atomic_output(dst) as f:
        f.write(b"new")
        assert dst.read_bytes() == b"old"  # nothing visible before success
    assert dst.read_bytes() == b"new"
    assert stat.S_IMODE(dst.stat().st_mode) & 0o077 == 0
    with pytest.raises(RuntimeError), envelope.atomic_output(dst) as f:
        f.write(b"partial")
        raise RuntimeError
    assert dst.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
