from __future__ import annotations

import math

import cbor2
import pytest

from trustedge import _cbor
from trustedge._cbor import CBORTag, DecodeLimits
from trustedge.errors import LimitExceededError, MalformedInputError

# RFC 8949 Appendix A examples (value, encoding) that are deterministic.
RFC_EXAMPLES = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"),
    (1000, "1903e8"), (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"), (-1, "20"), (-10, "29"), (-100, "3863"),
    (-1000, "3903e7"), (-18446744073709551616, "3bffffffffffffffff"),
    (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"), (65504.0, "f97bff"), (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"), (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"), (math.inf, "f97c00"), (-math.inf, "f9fc00"),
    (False, "f4"), (True, "f5"), (None, "f6"),
    (CBORTag(1, 1363896240), "c11a514b67b0"), (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"), ([], "80"), ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"), ({}, "a0"), ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"), (["a", {"b": "c"}], "826161a161626163"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "hexenc"), RFC_EXAMPLES, ids=[h for _, h in RFC_EXAMPLES])
def test_rfc8949_examples_encode_and_decode_canonically(value: object, hexenc: str) -> None:
    encoded = bytes.fromhex(hexenc)
    assert _cbor.encode(value) == encoded
    decoded = _cbor.decode(encoded, canonical=True)
    if isinstance(value, float):
        assert math.copysign(1, decoded) == math.copysign(1, value)
    assert decoded == value


def test_nan_is_canonical_half() -> None:
    assert _cbor.encode(math.nan) == bytes.fromhex("f97e00")
    assert math.isnan(_cbor.decode(bytes.fromhex("f97e00"), canonical=True))


def test_map_keys_sorted_bytewise_not_length_first() -> None:
    # RFC 8949 §4.2.1 bytewise order: 0x01 < 0x1818 < 0x20 (RFC 7049 would put -1 first).
    assert _cbor.encode({-1: 0, 24: 0, 1: 0}) == bytes.fromhex("a301001818002000")


def test_agrees_with_cbor2_on_plain_data() -> None:
    value = {"k": [1, -2, b"x", "y", None, True, {"n": 2**40}]}
    assert cbor2.loads(_cbor.encode(value)) == value


@pytest.mark.parametrize(
    ("hexenc", "fragment"),
    [
        ("a201010102", "duplicate map key"),
        ("a2616101616102", "duplicate map key"),
        ("5f4101ff", "indefinite-length string"),
        ("9f01ff", "indefinite-length array"),
        ("bf0101ff", "indefinite-length map"),
        ("1c", "reserved additional information"),
        ("ff", "unexpected break"),
        ("f820", "unsupported simple value"),
        ("f7", "unsupported simple value"),
        ("62c3", "need 2 bytes"),
        ("9a7fffffff", "exceeds the remaining input"),
        ("bb7fffffffffffffff", "exceeds the remaining input"),
        ("a1800102", "map key must be"),
        ("a1f501", "map key must be"),
        ("61ff", "not valid UTF-8"),
        ("0000", "trailing bytes"),
        ("", "unexpected end of input"),
    ],
)
def test_malformed_inputs(hexenc: str, fragment: str) -> None:
    with pytest.raises(MalformedInputError, match=fragment):
        _cbor.decode(bytes.fromhex(hexenc))


@pytest.mark.parametrize(
    "hexenc",
    [
        "1817",  # 23 in two bytes
        "190017",  # non-shortest
        "a202000100",  # keys out of order (2 before 0)
        "fa3fc00000",  # 1.5 as float32
        "fb3ff8000000000000",  # 1.5 as float64
        "c1fa3fc00000",  # inside a tag
    ],
)
def test_non_canonical_rejected_only_when_asked(hexenc: str) -> None:
    data = bytes.fromhex(hexenc)
    _cbor.decode(data)
    with pytest.raises(MalformedInputError, match="not deterministically encoded"):
        _cbor.decode(data, canonical=True)


def test_indefinite_allowed_when_asked() -> None:
    assert _cbor.decode(bytes.fromhex("9f01820203ff"), allow_indefinite=True) == [1, [2, 3]]
    assert _cbor.decode(bytes.fromhex("5f41014102ff"), allow_indefinite=True) == b"\x01\x02"
    assert _cbor.decode(bytes.fromhex("bf6161f5ff"), allow_indefinite=True) == {"a": True}
    with pytest.raises(MalformedInputError):
        _cbor.decode(bytes.fromhex("9f01"), allow_indefinite=True)


def test_limits() -> None:
    deep = b"\x81" * 40 + b"\x00"
    with pytest.raises(LimitExceededError, match="nesting"):
        _cbor.decode(deep)
    assert _cbor.decode(deep, limits=DecodeLimits(max_depth=64)) is not None
    with pytest.raises(LimitExceededError, match="data items"):
        _cbor.decode(_cbor.encode(list(range(100))), limits=DecodeLimits(max_items=50))
    with pytest.raises(LimitExceededError, match="exceeds the limit"):
        _cbor.decode(b"\x40" * 2, limits=DecodeLimits(max_size=1))
    # A deep chain of tags is nesting too.
    with pytest.raises(LimitExceededError):
        _cbor.decode(b"\xc1" * 100 + b"\x00")


def test_tags_are_not_interpreted() -> None:
    bignum = bytes.fromhex("c249010000000000000000")
    value = _cbor.decode(bignum)
    assert isinstance(value, CBORTag) and value.tag == 2


def test_decode_prefix_returns_length() -> None:
    assert _cbor.decode_prefix(b"\x01\x02") == (1, 1)


def test_encode_rejects_unsupported_types() -> None:
    with pytest.raises(TypeError):
        _cbor.encode({1, 2})
    with pytest.raises(ValueError):
        _cbor.encode(2**64)
