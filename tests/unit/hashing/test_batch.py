"""Batch SHA-256 for short messages and PCR extend chains, on both implementations
(the autouse fixture in conftest.py runs each test against C and the twin)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trustedge.hashing as hashing


def extend_chain(initial: bytes, digests: list[bytes]) -> list[bytes]:
    values, value = [], initial
    for d in digests:
        value = hashlib.sha256(value + d).digest()
        values.append(value)
    return values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_sha256_each_matches_hashlib(messages: list[bytes]) -> None:
    assert hashing.sha256_each(messages) == [hashlib.sha256(m).digest() for m in messages]


def test_sha256_each_every_padding_boundary() -> None:
    # Lengths around one and two blocks (55/56/63/64 change the padding layout).
    messages = [bytes([n]) * n for n in range(0, 200)]
    assert hashing.sha256_each(messages) == [hashlib.sha256(m).digest() for m in messages]


@settings(max_examples=40, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.lists(st.binary(min_size=32, max_size=32), max_size=50),
)
def test_sha256_chain_matches_hashlib(initial: bytes, digests: list[bytes]) -> None:
    assert hashing.sha256_chain(initial, digests) == extend_chain(initial, digests)


def test_sha256_chain_known_pcr_value() -> None:
    # One extend of the all-zero PCR with SHA-256("abc"), computed independently.
    digest = hashlib.sha256(b"abc").digest()
    expected = hashlib.sha256(bytes(32) + digest).digest()
    assert hashing.sha256_chain(bytes(32), [digest]) == [expected]
    assert hashing.sha256_chain(bytes(32), []) == []


@pytest.mark.parametrize(
    ("initial", "digests"),
    [
        (bytes(31), [bytes(32)]),
        (bytes(32), [bytes(31)]),
        (bytes(32), [bytes(33)]),
        (bytes(32), [bytes(32), "x" * 32]),
    ],
)
def test_sha256_chain_rejects_wrong_sizes(initial: bytes, digests: list[object]) -> None:
    with pytest.raises(ValueError):
        hashing.sha256_chain(initial, digests)  # type: ignore[arg-type]
