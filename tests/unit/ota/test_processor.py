"""The SUIT processor on the draft's examples and libcsuit's integrated payload."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.unit.ota.conftest import CLASS, VENDOR
from trustedge import _cbor
from trustedge.errors import MalformedInputError, PolicyError, VerificationError
from trustedge.keys import load_public_key
from trustedge.ota import FileSystemDevice
from trustedge.ota.suit import KeySet, authenticate, decode_envelope
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.processor import Processor


def _auth(shared: Path, name: str, *, legacy: bool = False, data: bytes | None = None):  # type: ignore[no-untyped-def]
    raw = data if data is not None else (shared / "suit" / name).read_bytes()
    key = load_public_key((shared / "suit/keys/suit-draft-es256-pub.pem").read_bytes())
    return authenticate(decode_envelope(raw, legacy_install=legacy), KeySet.of([key]))


def _device(tmp: Path, vendor: str = VENDOR, klass: str = CLASS) -> FileSystemDevice:
    return FileSystemDevice(tmp, vendor_id=uuid.UUID(vendor).bytes, class_id=uuid.UUID(klass).bytes)


def test_severed_install_needs_member(third_party: Path, tmp_path: Path) -> None:
    auth = _auth(third_party, "ietf-suit-manifest-37/example2.severed-signed.suit")
    with pytest.raises(MalformedInputError, match="severed"):
        Processor(auth, _device(tmp_path)).run(n.INSTALL)
    full = _auth(third_party, "ietf-suit-manifest-37/example2.signed.suit")
    assert n.INSTALL in full.manifest.sequences and full.manifest.text


def test_severed_member_digest_checked(third_party: Path) -> None:
    data = (third_party / "suit/ietf-suit-manifest-37/example2.signed.suit").read_bytes()
    env = _cbor.decode(data)
    env.value[n.INSTALL] = env.value[n.INSTALL][:-1] + b"\x0e"
    with pytest.raises(MalformedInputError, match="digest"):
        _auth(third_party, "", data=_cbor.encode(env))


def test_secure_boot_example_checks_identity_then_image(third_party: Path, tmp_path: Path) -> None:
    auth = _auth(third_party, "ietf-suit-manifest-37/example0.signed.suit")
    with pytest.raises(VerificationError, match="no image"):
        Processor(auth, _device(tmp_path), mode="boot").run(n.VALIDATE)
    other = _device(tmp_path / "o", klass="00000000-0000-5000-8000-000000000000")
    with pytest.raises(PolicyError, match="class"):
        Processor(auth, other, mode="boot").run(n.VALIDATE)


def test_ab_try_each_selects_slot(third_party: Path, tmp_path: Path) -> None:
    auth = _auth(third_party, "ietf-suit-manifest-37/example3.signed.suit")
    device = _device(tmp_path)
    fetched: list[str] = []

    def fetch(uri: str):  # type: ignore[no-untyped-def]
        fetched.append(uri)
        yield b"not the sample image"

    device._fetcher = fetch
    with pytest.raises(VerificationError):
        Processor(auth, device).run(n.INSTALL)
    # active slot 0 -> the install targets slot 1 -> file2.bin
    assert fetched == ["http://example.com/file2.bin"]
    assert device.read((b"\x00",), 1) is None


def test_integrated_payload_image_match(third_party: Path, tmp_path: Path) -> None:
    name = "libcsuit-2023/suit_manifest_expI.cbor"
    auth = _auth(third_party, name, legacy=True)
    vendor, klass = "c0ddd5f1-5243-5660-87db-4f5b0aa26c2f", "db42f709-3d8c-55ba-a8c5-265fc5820f4e"
    proc = Processor(auth, _device(tmp_path / "a", vendor, klass))
    proc.run(n.INSTALL)
    comp = auth.manifest.components[0]
    fh = proc.device.read(comp, proc.written[0])
    assert fh is not None
    with fh:
        assert fh.read() == b"Hello, Secure World!"
    # a flipped or longer integrated payload is refused and nothing is stored
    env = _cbor.decode((third_party / "suit" / name).read_bytes())
    for bad in (b"Hello, Secure World?", b"Hello, Secure World!!"):
        env.value["#tc"] = bad
        auth = _auth(third_party, "", legacy=True, data=_cbor.encode(env))
        proc = Processor(auth, _device(tmp_path / bad.hex(), vendor, klass))
        with pytest.raises(VerificationError):
            proc.run(n.INSTALL)
        assert not proc.written


def test_inspect_deeply_nested_bstr_is_bounded() -> None:
    from trustedge.ota.suit.inspect import diagnostic

    item: object = [1]
    for _ in range(2000):
        item = [_cbor.encode(item)]
    assert diagnostic(item).count("<<") <= 24


def test_device_refuses_unknown_slot(tmp_path: Path) -> None:
    device = _device(tmp_path)
    with pytest.raises(PolicyError):
        device.open_writer((b"\x00",), 7)


def test_fetch_then_copy_between_components(tmp_path: Path) -> None:
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustedge.ota.release import sign_envelope
    from trustedge.ota.suit.codec import Command, Digest, Manifest, encode_envelope, encode_manifest

    data = b"staged image" * 10
    img = {
        n.P_IMAGE_DIGEST: Digest(n.SHA256, hashlib.sha256(data).digest()),
        n.P_IMAGE_SIZE: len(data),
    }
    ident = {n.P_VENDOR_ID: uuid.UUID(VENDOR).bytes, n.P_CLASS_ID: uuid.UUID(CLASS).bytes}
    shared = (
        Command(n.DIR_SET_COMPONENT_INDEX, True),
        Command(n.DIR_OVERRIDE_PARAMETERS, {**ident, **img}),
        Command(n.COND_VENDOR_ID, 15),
        Command(n.COND_CLASS_ID, 15),
    )
    install = (
        Command(n.DIR_SET_COMPONENT_INDEX, 1),
        Command(n.DIR_OVERRIDE_PARAMETERS, {n.P_URI: "#img"}),
        Command(n.DIR_FETCH, 2),
        Command(n.COND_IMAGE_MATCH, 15),
        Command(n.DIR_SET_COMPONENT_INDEX, 0),
        Command(n.DIR_OVERRIDE_PARAMETERS, {n.P_SOURCE_COMPONENT: 1}),
        Command(n.DIR_COPY, 2),
        Command(n.COND_IMAGE_MATCH, 15),
    )
    m = Manifest(1, 9, ((b"\x00",), (b"\x01",)), shared, {n.INSTALL: install})
    raw, _ = encode_manifest(m)
    key = ed25519.Ed25519PrivateKey.generate()
    env = sign_envelope(encode_envelope(raw, payloads={"#img": data}), [key])
    auth = authenticate(decode_envelope(env), KeySet.of([key.public_key()]))
    proc = Processor(auth, _device(tmp_path))
    proc.run(n.INSTALL)
    assert proc.written == {1: 1, 0: 1}
    fh = proc.device.read((b"\x00",), 1)
    assert fh is not None
    with fh:
        assert fh.read() == data
