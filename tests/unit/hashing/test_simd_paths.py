"""Every SIMD path against NIST SHA-256 vectors (FIPS 180-2 appendix B and
SHAVS-style short and long messages), through the multi-buffer lanes."""

from __future__ import annotations

import hashlib
from types import ModuleType

import pytest

# FIPS 180-2 / NIST CSRC "SHA256.pdf" example messages.
NIST = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
        b"jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    ),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]


def simd_paths(module: ModuleType) -> tuple[str, ...]:
    paths: tuple[str, ...] = module.SIMD_PATHS
    return paths


def test_nist_examples_in_every_lane(implementation: ModuleType) -> None:
    for simd in simd_paths(implementation):
        for message, expected in NIST:
            # 16 copies fill every lane of the widest kernel (and 2 batches of 8).
            got = implementation.sha256_many([message] * 16, simd)
            assert [d.hex() for d in got] == [expected] * 16, (simd, len(message))


def test_short_messages_all_lengths(implementation: ModuleType) -> None:
    # SHAVS "short messages": every length from 0 to 2 blocks and a bit more.
    messages = [hashlib.shake_128(bytes([n])).digest(n) for n in range(0, 200)]
    expected = [hashlib.sha256(m).digest() for m in messages]
    for simd in simd_paths(implementation):
        assert implementation.sha256_many(messages, simd) == expected, simd


def test_long_messages_mixed_lengths(implementation: ModuleType) -> None:
    # SHAVS "long messages": lanes of different lengths run in lock-step, then finish alone.
    messages = [hashlib.shake_128(bytes([n])).digest(1000 + 641 * n) for n in range(19)]
    expected = [hashlib.sha256(m).digest() for m in messages]
    for simd in simd_paths(implementation):
        assert implementation.sha256_many(messages, simd) == expected, simd


def test_extend_chain_on_every_path(implementation: ModuleType) -> None:
    # PCR extends: value = SHA-256(value || digest), one 64-byte message per step.
    digests = [hashlib.sha256(bytes([n])).digest() for n in range(40)]
    expected, value = [], bytes(32)
    for d in digests:
        value = hashlib.sha256(value + d).digest()
        expected.append(value)
    for simd in simd_paths(implementation):
        assert implementation.sha256_chain(bytes(32), digests, simd) == expected, simd


def test_unknown_path_is_refused(implementation: ModuleType) -> None:
    with pytest.raises(ValueError):
        implementation.sha256_many([b"x"], "sse9")
    with pytest.raises(ValueError):
        implementation.sha256_chain(bytes(32), [], "sse9")


def test_speedups_reports_paths_in_preference_order() -> None:
    from tests.unit.hashing.conftest import load_implementation

    speedups = load_implementation("speedups")
    assert speedups.SIMD_PATHS[-1] == "portable"
    assert set(speedups.SIMD_PATHS) <= {"avx512", "shani", "avx2", "portable"}
