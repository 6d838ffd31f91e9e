"""Envelope properties: round trips for any size and write pattern; hostile
bytes (random or mutated envelopes) raise only trustedge errors."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from trustedge import envelope
from trustedge.envelope import _cobblestone as cb
from trustedge.errors import TrustedgeError

KEK = envelope.KEK(b"\x33" * 32)
SEALED = envelope.seal(b"p" * (cb.CHUNK_SIZE + 50), [KEK], context={"a": "b"})


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=3 * cb.CHUNK_SIZE + 5),
    st.lists(st.integers(min_value=1, max_value=40_000), min_size=1, max_size=8),
    st.sampled_from([envelope.SUITE_COBBLESTONE_256, envelope.SUITE_CHACHA20_POLY1305]),
)
def test_writer_round_trip(size: int, pieces: list[int], suite: int) -> None:
    msg = bytes(i & 0xFF for i in range(size))
    out = io.BytesIO()
    with envelope.Writer(out, [KEK], suite=suite) as w:
        pos, i = 0, 0
        while pos < size:
            n = pieces[i % len(pieces)]
            w.write(msg[pos : pos + n])
            pos += n
            i += 1
    assert envelope.open(out.getvalue(), [KEK]) == msg


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2 * cb.CHUNK_SIZE), st.integers(0, 4 * cb.CHUNK_SIZE))
def test_pread_matches_slice(offset: int, n: int) -> None:
    msg = bytes((i * 13) & 0xFF for i in range(2 * cb.CHUNK_SIZE + 99))
    reader = envelope.Reader(io.BytesIO(envelope.seal(msg, [KEK])), [KEK])
    assert reader.pread(offset, n) == msg[offset : offset + n]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_trustedge_errors(data: bytes) -> None:
    for candidate in (data, b"TEnv\x01" + data):
        try:
            envelope.open(candidate, [KEK])
        except TrustedgeError:
            pass
        try:
            envelope.inspect(candidate)
        except TrustedgeError:
            pass


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(SEALED) - 1),
    st.integers(1, 255),
    st.integers(min_value=0, max_value=len(SEALED)),
)
def test_mutated_envelope_fails_closed(pos: int, xor: int, cut: int) -> None:
    bad = bytearray(SEALED)
    bad[pos] ^= xor
    for candidate in (bytes(bad), SEALED[:cut] if cut < len(SEALED) else SEALED + b"x"):
        try:
            envelope.open(candidate, [KEK])
        except TrustedgeError:
            continue
        raise AssertionError("modified envelope opened")


def test_fuzz_entry_point_runs() -> None:
    from tests.fuzz.fuzz_envelope_open import _SEED, TestOneInput

    for data in (b"", b"TEnv", _SEED[:100], _SEED + b"x", bytes(range(256))):
        TestOneInput(data)


_IDENTITIES = [
    KEK,
    envelope.HPKEIdentity.generate(),
    envelope.SealedBoxIdentity.generate(),
    envelope.KMSSlot(envelope.LocalKeyFileProvider(b"\x01" * 32)),
]
_PARAM_VALUES = st.one_of(
    st.integers(-(2**64), 2**64 - 1), st.binary(max_size=40), st.text(max_size=8), st.none()
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 8),
            st.text(max_size=24) | st.sampled_from([i.kek_id for i in _IDENTITIES]),
            st.dictionaries(
                st.sampled_from(["salt", "kem", "kdf", "aead", "provider", "x"]),
                _PARAM_VALUES,
                max_size=4,
            ),
            st.binary(max_size=120),
        ),
        max_size=5,
    )
)
def test_hostile_slots_raise_only_trustedge_errors(slots: list[tuple]) -> None:  # type: ignore[type-arg]
    from trustedge.envelope._format import Slot, encode_prefix, read_prefix

    p = read_prefix(io.BytesIO(SEALED).read)
    forged = encode_prefix(p.header_bytes, [Slot(*s) for s in slots]) + SEALED[p.body_offset :]
    try:
        envelope.open(forged, _IDENTITIES)
    except TrustedgeError:
        return
    raise AssertionError("hostile slots opened the envelope")
