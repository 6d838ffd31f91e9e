"""The Tpm2Backend blob parsers take hostile bytes: only MalformedInputError (or its
LimitExceededError) comes out, and valid blobs round-trip. Pure Python, no TPM."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge import _cbor
from trustedge.attestation.backends._tpm2_blobs import (
    AKBlob,
    SealedBlob,
    decode_ak_blob,
    decode_sealed_blob,
    encode_ak_blob,
    encode_sealed_blob,
    normalize_selection,
    read_tpm2b,
)
from trustedge.errors import MalformedInputError

AK = AKBlob("rsa2048", "ecc-p256-ecdsa", b"\x00\x02pp", private=b"\x00\x02kk")
PERSISTED = AKBlob("ecc-p384", "rsa2048-rsapss", b"\x00\x02pp", handle=0x81000001)
SEALED = SealedBlob(b"\x00\x02pp", b"\x00\x02kk", {"sha256": (0, 16), "sha1": (7,)}, True)


def test_round_trips() -> None:
    assert decode_ak_blob(encode_ak_blob(AK)) == AK
    assert decode_ak_blob(encode_ak_blob(PERSISTED)) == PERSISTED
    assert decode_sealed_blob(encode_sealed_blob(SEALED)) == SEALED


def _ak(**changes: object) -> bytes:
    item: dict[str, object] = {"v": 1, "kind": "ak", "ek": "rsa2048", "alg": "ecc-p256-ecdsa",
                               "public": b"pp", "private": b"kk"}  # fmt: skip
    item.update(changes)
    return _cbor.encode({k: v for k, v in item.items() if v is not None})


@pytest.mark.parametrize(
    "blob",
    [
        _ak(v=2),
        _ak(kind="sealed"),
        _ak(ek="rsa1024"),
        _ak(alg="hmac"),
        _ak(public=b""),
        _ak(public="text"),
        _ak(private=None),
        _ak(handle=0x81000001),  # both private and handle
        _ak(private=None, handle=0x01000001),  # not a persistent handle
        _ak(private=None, handle=True),
        _ak(extra=1),
        _ak(public=bytes(5000)),
        _cbor.encode([1, 2]),
        _ak()[:-1],
        _ak() + b"\x00",
    ],
)
def test_bad_ak_blobs(blob: bytes) -> None:
    with pytest.raises(MalformedInputError):
        decode_ak_blob(blob)


@pytest.mark.parametrize(
    "pcrs",
    [{"md5": [0]}, {"sha256": [24]}, {"sha256": [-1]}, {"sha256": []}, {"sha256": [1, 1]},
     {"sha256": [True]}, {"sha256": "0"}, {1: [0]}],
)  # fmt: skip
def test_bad_sealed_selections(pcrs: object) -> None:
    blob = _cbor.encode(
        {"v": 1, "kind": "sealed", "public": b"p", "private": b"k", "pcrs": pcrs, "auth": False}
    )
    with pytest.raises(MalformedInputError):
        decode_sealed_blob(blob)


def test_non_canonical_cbor_is_rejected() -> None:
    # The same map with a non-shortest integer encoding for "v".
    canonical = _ak()
    assert b"av\x01" in canonical
    with pytest.raises(MalformedInputError):
        decode_ak_blob(canonical.replace(b"av\x01", b"av\x18\x01"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_malformed(data: bytes) -> None:
    for parse in (decode_ak_blob, decode_sealed_blob, lambda d: read_tpm2b(d, "x")):
        try:
            parse(data)
        except MalformedInputError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_mutated_blobs_raise_only_malformed(noise: bytes) -> None:
    for good, parse in ((encode_ak_blob(AK), decode_ak_blob),
                        (encode_sealed_blob(SEALED), decode_sealed_blob)):  # fmt: skip
        mutated = bytearray(good)
        for i, b in enumerate(noise):
            mutated[(i * 7) % len(mutated)] ^= b
        try:
            parse(bytes(mutated))
        except MalformedInputError:
            pass


def test_read_tpm2b() -> None:
    assert read_tpm2b(b"\x00\x02ab", "x") == b"ab"
    for bad in (b"", b"\x00", b"\x00\x03ab", b"\x00\x01ab", b"\x10\x01" + bytes(0x1001)):
        with pytest.raises(MalformedInputError):
            read_tpm2b(bad, "x")


def test_normalize_selection_sorts_and_keeps_bank_order() -> None:
    assert list(normalize_selection({"sha1": [7, 0], "sha256": [16]}).items()) == [
        ("sha1", (0, 7)),
        ("sha256", (16,)),
    ]


def test_ek_certificate_nv_padding_is_cut_at_the_der_length() -> None:
    from trustedge.attestation.backends._tpm2_esapi import _der_length

    assert _der_length(b"\x30\x03abc" + bytes(10)) == 5
    assert _der_length(b"\x30\x82\x00\x02ab\xff\xff") == 6
    for bad in (
        b"",
        b"\x31\x00",
        b"\x30",
        b"\x30\x05abc",
        b"\x30\x84\x00\x00\x00\x01a",
        b"\x30\x80",
    ):
        with pytest.raises(MalformedInputError):
            _der_length(bad)
