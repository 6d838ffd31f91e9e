"""Mutated SUIT envelopes (the draft's examples, libcsuit files) raise only
MalformedInputError or a VerificationError -- through decoding,
authentication and processing -- and never authenticate altered signed bytes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.vectors import third_party_dir
from trustedge import _cbor
from trustedge.errors import MalformedInputError, VerificationError
from trustedge.keys import load_public_key
from trustedge.ota import FileSystemDevice
from trustedge.ota.suit import KeySet, authenticate, decode_envelope
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.processor import Processor

ROOT = third_party_dir()
FILES = sorted((ROOT / "suit").glob("*/*.suit")) + sorted((ROOT / "suit").glob("*/*.cbor"))
SEEDS = [f.read_bytes() for f in FILES]
KEY = KeySet.of([load_public_key((ROOT / "suit/keys/suit-draft-es256-pub.pem").read_bytes())])


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes]:
    seed = draw(st.sampled_from(SEEDS)) if SEEDS else b"\xd8\x6b\xa0"
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
    return seed, bytes(data)


def _signed_parts(data: bytes) -> tuple[bytes, bytes]:
    env = decode_envelope(data, legacy_install=True)
    return env.manifest_raw, env.digest_raw


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(), legacy=st.booleans())
def test_mutated_envelopes_fail_cleanly(
    case: tuple[bytes, bytes], legacy: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    seed, data = case
    try:
        env = decode_envelope(data, legacy_install=legacy)
        auth = authenticate(env, KEY)
    except (MalformedInputError, VerificationError):
        return
    # authenticated: the signed bytes must be exactly those of the original
    assert (auth.envelope.manifest_raw, auth.envelope.digest_raw) == _signed_parts(seed)
    device = FileSystemDevice(
        tmp_path_factory.mktemp("dev"), vendor_id=uuid.uuid4().bytes, class_id=uuid.uuid4().bytes
    )
    for key in (n.VALIDATE, n.INSTALL, n.INVOKE):
        try:
            Processor(auth, device, now=0).run(key)
        except (MalformedInputError, VerificationError):
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    try:
        authenticate(decode_envelope(data), KEY)
    except (MalformedInputError, VerificationError):
        pass


def test_added_unprotected_header_keeps_signature_valid(third_party: Path) -> None:
    data = (third_party / "suit/ietf-suit-manifest-37/example0.signed.suit").read_bytes()
    env = _cbor.decode(data)
    wrapper = _cbor.decode(env.value[2])
    block = _cbor.decode(wrapper[1])
    block.value[1] = {4: b"some kid"}
    wrapper[1] = _cbor.encode(block)
    env.value[2] = _cbor.encode(wrapper)
    authenticate(decode_envelope(_cbor.encode(env)), KEY)
