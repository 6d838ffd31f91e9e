"""Random and mutated input raises only MalformedInputError from the bounded
reader and the CBOR codec; encode/decode round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge import _cbor
from trustedge._binary import Reader
from trustedge.errors import MalformedInputError

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=64)
    | st.text(max_size=32)
    | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.integers(min_value=-1000, max_value=1000)
            | st.text(max_size=8)
            | st.binary(max_size=8),
            children,
            max_size=6,
        )
        | st.builds(_cbor.CBORTag, st.integers(min_value=0, max_value=2**32), children)
    ),
    max_leaves=30,
)


@given(cbor_values)
def test_cbor_round_trip_is_canonical(value: object) -> None:
    encoded = _cbor.encode(value)
    decoded = _cbor.decode(encoded, canonical=True)
    assert _cbor.encode(decoded) == encoded


@settings(max_examples=500)
@given(st.binary(max_size=256))
def test_cbor_random_bytes_raise_only_malformed(data: bytes) -> None:
    for canonical in (False, True):
        try:
            _cbor.decode(data, canonical=canonical, allow_indefinite=not canonical)
        except MalformedInputError:
            pass


@settings(max_examples=500)
@given(cbor_values, st.data())
def test_cbor_mutations_raise_only_malformed(value: object, data: st.DataObject) -> None:
    encoded = bytearray(_cbor.encode(value))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and encoded:
            i = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
            encoded[i] ^= data.draw(st.integers(min_value=1, max_value=255))
        elif op == "cut" and encoded:
            del encoded[data.draw(st.integers(min_value=0, max_value=len(encoded) - 1)) :]
        else:
            i = data.draw(st.integers(min_value=0, max_value=len(encoded)))
            encoded[i:i] = data.draw(st.binary(min_size=1, max_size=9))
    try:
        _cbor.decode(bytes(encoded), canonical=data.draw(st.booleans()))
    except MalformedInputError:
        pass


@settings(max_examples=500)
@given(st.binary(max_size=64), st.lists(st.sampled_from(range(14)), max_size=20))
def test_reader_random_programs_raise_only_malformed(data: bytes, program: list[int]) -> None:
    r = Reader(data)
    ops = [
        r.u8, r.u16le, r.u32le, r.u64le, r.u16be, r.u32be, r.u64be, r.i32le,
        r.bytes_u8, r.bytes_u16be, r.bytes_u16le, r.bytes_u32le, r.bytes_u32be, r.expect_end,
    ]  # fmt: skip
    try:
        for op in program:
            ops[op]()
    except MalformedInputError:
        pass
