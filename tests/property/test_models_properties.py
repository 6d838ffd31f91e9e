"""Properties of model hashing and signing: ``sha256_ranges`` equals hashlib
on every SIMD path for any set of ranges; any model round-trips through
sign/verify, and any single-byte change or rename is refused."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustedge import hashing, models
from trustedge.errors import VerificationError

_KEY = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=0, max_size=300_000),
    cuts=st.lists(st.tuples(st.integers(0, 300_000), st.integers(0, 300_000)), max_size=40),
    equal=st.integers(0, 20),
    threads=st.integers(1, 3),
)
def test_sha256_ranges_is_hashlib(
    data: bytes, cuts: list[tuple[int, int]], equal: int, threads: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "blob"
        p.write_bytes(data)
        n = len(data)
        ranges = [(p, min(a, b) % (n + 1), max(a, b) % (n + 1)) for a, b in cuts]
        ranges = [(q, s, max(s, e)) for q, s, e in ranges]
        # A run of equal-length ranges, as a model's shards are.
        width = n // max(equal, 1)
        ranges += [(p, i * width, (i + 1) * width) for i in range(equal) if width]
        want = [hashlib.sha256(data[s:e]).digest() for _, s, e in ranges]
        for simd in hashing.available_simd_paths():
            assert hashing.sha256_ranges(ranges, threads=threads, simd=simd) == want


_names = st.lists(
    st.text(alphabet="abcdefghij_-.0123", min_size=1, max_size=8).filter(
        lambda s: s not in (".", "..") and not s.startswith(".git")
    ),
    min_size=1,
    max_size=5,
    unique=True,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=_names,
    sizes=st.lists(st.integers(0, 5000), min_size=5, max_size=5),
    shard=st.one_of(st.none(), st.integers(1, 3000)),
    victim=st.integers(0, 4),
    data=st.data(),
)
def test_sign_verify_and_any_change_is_refused(
    names: list[str], sizes: list[int], shard: int | None, victim: int, data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "model"
        root.mkdir()
        for i, name in enumerate(names):
            (root / name).write_bytes(bytes((i + j) & 0xFF for j in range(sizes[i])))
        bundle = models.sign_model(root, _KEY, shard_size=shard)
        models.verify_model(root, bundle, public_key=_KEY.public_key())
        target = root / names[victim % len(names)]
        content = target.read_bytes()
        if content:
            at = data.draw(st.integers(0, len(content) - 1))
            target.write_bytes(content[:at] + bytes([content[at] ^ 1]) + content[at + 1 :])
        else:
            target.write_bytes(b"\x00")
        try:
            models.verify_model(root, bundle, public_key=_KEY.public_key())
        except VerificationError:
            pass
        else:
            raise AssertionError("a changed byte was accepted")
        target.write_bytes(content)
        target.rename(root / (target.name + "x"))
        try:
            models.verify_model(root, bundle, public_key=_KEY.public_key())
        except VerificationError:
            pass
        else:
            raise AssertionError("a rename was accepted")
