"""Encrypted model delivery: pack, envelope, SUIT manifest, streaming install (no mocks)."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from trustedge import envelope
from trustedge.errors import (
    ChunkAuthenticationError,
    ContextMismatchError,
    KeyNotFoundError,
    LimitExceededError,
    MalformedInputError,
    RollbackError,
    SignatureError,
    TruncationError,
    VerificationError,
)
from trustedge.ota import FileStateStore, KeySet, Updater
from trustedge.ota.model import (
    PACK_MAGIC,
    ModelDevice,
    PackHeader,
    PackWriter,
    build_model_release,
    iter_pack,
    pack_header,
)

VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
COMPONENT = (b"model", b"llm")
RELEASE_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def make_model(root: Path, weights: bytes) -> Path:
    (root / "tok").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(weights)
    (root / "tok" / "vocab.json").write_bytes(b'{"a": 1}')
    (root / "config.json").write_bytes(b"{}")
    return root


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.identity = envelope.HPKEIdentity.generate()
        self.payloads = tmp / "cdn"
        self.payloads.mkdir(parents=True)
        self.device = ModelDevice(
            tmp / "device",
            vendor_id=uuid.UUID(VENDOR).bytes,
            class_id=uuid.UUID(CLASS).bytes,
            model_components=[COMPONENT],
            fetcher=self.fetch,
        )
        self.updater = Updater(
            KeySet.of([RELEASE_KEY.public_key()]),
            FileStateStore(tmp / "state"),
            self.device,
            decrypt={COMPONENT: [self.identity]},
        )

    def fetch(self, uri: str) -> Iterator[bytes]:
        with open(self.payloads / uri, "rb") as fh:
            while chunk := fh.read(7000):
                yield chunk

    def release(self, weights: bytes, seq: int, *, name: str = "m.tenv") -> bytes:
        model = make_model(self.tmp / f"src-{seq}-{name}", weights)
        with open(self.payloads / name, "wb") as out:
            built = build_model_release(
                model,
                b"signature bytes",
                [self.identity.recipient],
                out,
                sequence_number=seq,
                vendor_id=VENDOR,
                class_id=CLASS,
                keys=[RELEASE_KEY],
                component=COMPONENT,
                uri=name,
            )
        assert built.payload_size == (self.payloads / name).stat().st_size
        return built.envelope

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.device.root.rglob("*") if ".tmp-" in p.name)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_install_confirm_and_read_back(site: Site) -> None:
    weights = bytes(range(256)) * 300
    result = site.updater.apply(site.release(weights, 5), now=1)
    assert result.sequence_number == 5
    site.updater.confirm(result.components)
    directory, signature = site.device.model(COMPONENT)
    assert (directory / "model.safetensors").read_bytes() == weights
    assert (directory / "tok" / "vocab.json").read_bytes() == b'{"a": 1}'
    assert signature == b"signature bytes"
    assert site.leftovers() == []
    # the payload on the wire is ciphertext, not the weights
    assert weights[:64] not in (site.payloads / "m.tenv").read_bytes()


def test_second_update_switches_slots_atomically(site: Site) -> None:
    first = site.updater.apply(site.release(b"v1", 1), now=1)
    site.updater.confirm(first.components)
    second = site.updater.apply(site.release(b"v2", 2), now=2)
    assert second.slots[0] != first.slots[0]
    site.updater.confirm(second.components)
    assert (site.device.model(COMPONENT)[0] / "model.safetensors").read_bytes() == b"v2"


def test_rollback_refused(site: Site) -> None:
    old = site.release(b"v1", 1, name="old.tenv")
    new = site.updater.apply(site.release(b"v2", 2), now=1)
    site.updater.confirm(new.components)
    with pytest.raises(RollbackError):
        site.updater.apply(old, now=2)
    assert (site.device.model(COMPONENT)[0] / "model.safetensors").read_bytes() == b"v2"


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda p: flip(p, p.stat().st_size - 20), ChunkAuthenticationError),
        (lambda p: p.write_bytes(p.read_bytes()[:-5]), TruncationError),
        (lambda p: p.write_bytes(p.read_bytes() + b"x"), VerificationError),
    ],
    ids=["flipped-chunk", "truncated", "trailing"],
)
def test_damaged_payload_leaves_nothing(site: Site, damage: object, error: type) -> None:
    env = site.release(bytes(50_000), 1)
    damage(site.payloads / "m.tenv")  # type: ignore[operator]
    with pytest.raises(error):
        site.updater.apply(env, now=1)
    assert site.leftovers() == []
    assert not (site.device.root / "6d6f64656c-6c6c6d" / "slot1").exists()
    assert not site.updater.store.load().has_pending


def test_payload_for_another_device_or_plaintext_refused(site: Site, tmp_path: Path) -> None:
    env = site.release(b"weights", 1)
    other = Site(tmp_path / "other")
    (other.payloads / "m.tenv").write_bytes((site.payloads / "m.tenv").read_bytes())
    with pytest.raises(KeyNotFoundError):
        other.updater.apply(env, now=1)
    # the pack in the clear (same digest) is refused: the component must arrive encrypted
    header = pack_header(make_model(tmp_path / "clear", b"weights"), b"signature bytes")
    plain = b"".join(iter_pack(tmp_path / "clear", header))
    (site.payloads / "m.tenv").write_bytes(plain)
    with pytest.raises(MalformedInputError):
        site.updater.apply(env, now=1)
    assert site.leftovers() == []


def test_envelope_for_another_component_refused(site: Site, tmp_path: Path) -> None:
    env = site.release(b"weights", 1)
    model = make_model(tmp_path / "m2", b"weights")
    header = pack_header(model, b"signature bytes")
    sealed = envelope.seal(
        b"".join(iter_pack(model, header)),
        [site.identity.recipient],
        context={"trustedge.ota.component": "00"},
    )
    (site.payloads / "m.tenv").write_bytes(sealed)
    with pytest.raises(ContextMismatchError):
        site.updater.apply(env, now=1)


def test_substituted_model_encrypted_by_anyone_fails_the_binding(
    site: Site, tmp_path: Path
) -> None:
    # HPKE lets anyone encrypt to the device: the signed manifest names the envelope
    # (trustedge-envelope-binding), so not one chunk of another envelope is decrypted
    env = site.release(b"good weights", 1)
    model = make_model(tmp_path / "evil", b"evil weights")
    with open(site.payloads / "m.tenv", "wb") as out:
        build_model_release(
            model,
            b"signature bytes",
            [site.identity.recipient],
            out,
            sequence_number=1,
            vendor_id=VENDOR,
            class_id=CLASS,
            keys=[ed25519.Ed25519PrivateKey.generate()],
            component=COMPONENT,
        )
    with pytest.raises(VerificationError, match="not the envelope the manifest names"):
        site.updater.apply(env, now=1)
    assert site.leftovers() == []


def test_every_encrypted_component_is_bound_and_rewrapping_keeps_the_binding(
    site: Site, tmp_path: Path
) -> None:
    from trustedge.ota.model import envelope_binding, envelope_context
    from trustedge.ota.release import create_envelope, sign_envelope

    env = site.release(b"weights", 1)
    # the same payload under a manifest that does not name its envelope: refused
    header = pack_header(make_model(tmp_path / "plain", b"weights"), b"signature bytes")
    pack = b"".join(iter_pack(tmp_path / "plain", header))
    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": 2,
        "components": [
            {
                "install-id": [p.hex() for p in COMPONENT],
                "vendor-id": VENDOR,
                "class-id": CLASS,
                "install-digest": {
                    "algorithm-id": "sha256",
                    "digest-bytes": hashlib.sha256(pack).hexdigest(),
                },
                "install-size": len(pack),
                "uri": "m.tenv",
            }
        ],
    }
    unbound = sign_envelope(create_envelope(spec), [RELEASE_KEY])
    with pytest.raises(VerificationError, match="names no envelope"):
        site.updater.apply(unbound, now=1)
    # adding a device to the release rewrites only the slot list: the binding still holds
    other = Site(tmp_path / "other")
    payload = site.payloads / "m.tenv"
    before = payload.read_bytes()
    envelope.rewrap_file(payload, [site.identity], add=[other.identity.recipient])
    (other.payloads / "m.tenv").write_bytes(payload.read_bytes())
    assert other.updater.apply(env, now=1).sequence_number == 1
    assert site.updater.apply(env, now=1).sequence_number == 1
    # the binding covers the envelope's header, salt and commitment, never its slot list
    after = payload.read_bytes()

    def prefix(data: bytes) -> bytes:
        reader = envelope.Reader(io.BytesIO(data), [site.identity], context=context)
        return data[: reader.prefix.body_offset + 56]

    context = envelope_context(COMPONENT)
    assert len(prefix(after)) > len(prefix(before))  # one more slot
    assert envelope_binding(prefix(after)) == envelope_binding(prefix(before))
    edited = bytearray(prefix(before))
    edited[-1] ^= 1  # the key commitment
    assert envelope_binding(bytes(edited)) != envelope_binding(prefix(before))
    for bad in (b"", prefix(before)[:-1], prefix(before) + b"x"):
        with pytest.raises(MalformedInputError):
            envelope_binding(bad)


@pytest.mark.parametrize(
    "files",
    [
        (("a", 1), ("a/b", 1)),
        (("b", 1), ("a", 1)),
        (("a", 1), ("a", 1)),
        (("../x", 1),),
        (("/abs", 1),),
        (("a", -1),),
    ],
)
def test_pack_header_rules(files: tuple[tuple[str, int], ...]) -> None:
    with pytest.raises(MalformedInputError):
        PackHeader(files)


def test_pack_writer_rejects_hostile_streams(tmp_path: Path) -> None:
    good = PackHeader((("a", 3),)).encode()
    for stream, error in [
        (b"XXXX\x01" + bytes(4), MalformedInputError),
        (PACK_MAGIC + (1 << 30).to_bytes(4, "big"), LimitExceededError),
        (good + b"abcd", MalformedInputError),
    ]:
        writer = PackWriter(tmp_path / "slot0")
        with pytest.raises(error):
            writer.write(stream)
        writer.discard()
    writer = PackWriter(tmp_path / "slot0")
    writer.write(good + b"ab")
    with pytest.raises(MalformedInputError):
        writer.commit()  # the last file is incomplete
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_pack_round_trip_in_small_pieces(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", bytes(range(256)) * 40)
    header = pack_header(model, None)
    data = b"".join(iter_pack(model, header))
    assert len(data) == header.size
    writer = PackWriter(tmp_path / "slot0")
    for i in range(0, len(data), 13):
        writer.write(data[i : i + 13])
    writer.commit()
    assert (tmp_path / "slot0" / "model" / "model.safetensors").read_bytes() == (
        model / "model.safetensors"
    ).read_bytes()
    assert io.BytesIO(data).read(5) == PACK_MAGIC


def test_model_keys_gate_the_install(site: Site, tmp_path: Path) -> None:
    from trustedge.models import sign_model

    vendor = ed25519.Ed25519PrivateKey.generate()
    gated = ModelDevice(
        tmp_path / "gated",
        vendor_id=uuid.UUID(VENDOR).bytes,
        class_id=uuid.UUID(CLASS).bytes,
        model_components=[COMPONENT],
        fetcher=site.fetch,
        model_keys=[vendor.public_key()],
    )
    updater = Updater(
        KeySet.of([RELEASE_KEY.public_key()]),
        FileStateStore(tmp_path / "gated-state"),
        gated,
        decrypt={COMPONENT: [site.identity]},
    )

    def release(model: Path, bundle: bytes | None, seq: int) -> bytes:
        with open(site.payloads / f"g{seq}.tenv", "wb") as out:
            return build_model_release(
                model,
                bundle,
                [site.identity.recipient],
                out,
                sequence_number=seq,
                vendor_id=VENDOR,
                class_id=CLASS,
                keys=[RELEASE_KEY],
                component=COMPONENT,
                uri=f"g{seq}.tenv",
            ).envelope

    model = make_model(tmp_path / "llm", b"weights")
    stranger = sign_model(model, ed25519.Ed25519PrivateKey.generate())
    good = sign_model(model, vendor)
    other = make_model(tmp_path / "other", b"other weights")
    # release-signed but not vendor-signed, unsigned, or a bundle of another model: refused
    for seq, (directory, bundle, error) in enumerate(
        [
            (model, stranger, SignatureError),
            (model, None, SignatureError),
            (other, good, VerificationError),
            (model, b"not a bundle", MalformedInputError),
        ],
        start=1,
    ):
        with pytest.raises(error):
            updater.apply(release(directory, bundle, seq), now=seq)
        assert not any(".tmp-" in p.name for p in gated.root.rglob("*"))
        assert not updater.store.load().has_pending
    result = updater.apply(release(model, good, 9), now=9)
    updater.confirm(result.components)
    assert gated.model(COMPONENT)[1] == good


def test_slot_files_are_read_bounded(site: Site) -> None:
    from trustedge.models import MAX_BUNDLE_BYTES

    result = site.updater.apply(site.release(b"weights", 1), now=1)
    site.updater.confirm(result.components)
    directory, _ = site.device.model(COMPONENT)
    with open(directory.parent / "model.sig", "r+b") as fh:  # a storage adversary's sparse file
        fh.truncate(MAX_BUNDLE_BYTES + 1)
    with pytest.raises(LimitExceededError):
        site.device.model(COMPONENT)
    with open(directory.parent / "pack-header", "r+b") as fh:
        fh.truncate(64 << 20)
    with pytest.raises(LimitExceededError):
        site.device.read(COMPONENT, result.slots[0])
