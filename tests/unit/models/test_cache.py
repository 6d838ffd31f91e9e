"""HashCache: re-signing re-hashes only what changed; the cache is keyed on
size, mtime, ctime, inode and device, and a verifier never reads it."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import models
from trustedge.errors import VerificationError


def _sign(
    model: Path, key: ec.EllipticCurvePrivateKey, cache_path: Path, **kw: object
) -> tuple[bytes, models.HashCache]:
    cache = models.HashCache(cache_path)
    bundle = models.sign_model(model, key, cache=cache, **kw)  # type: ignore[arg-type]
    return bundle, cache


def test_only_changed_files_are_rehashed(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    cache_path = tmp_path / "cache.json"
    _, cache = _sign(model, p256, cache_path)
    assert (cache.hits, cache.misses) == (0, 4)
    _, cache = _sign(model, p256, cache_path)
    assert (cache.hits, cache.misses) == (4, 0)
    with open(model / "model.safetensors", "r+b") as fh:
        fh.write(b"\x01")
    bundle, cache = _sign(model, p256, cache_path)
    assert (cache.hits, cache.misses) == (3, 1)
    models.verify_model(model, bundle, public_key=p256.public_key())


def test_same_size_and_restored_mtime_still_misses(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    """An edit that keeps the size and puts the mtime back is still seen: the
    ctime (which no user can set) and the rest of the stat are in the key."""
    cache_path = tmp_path / "cache.json"
    _sign(model, p256, cache_path)
    target = model / "config.json"
    st = target.stat()
    data = target.read_bytes()
    target.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_mtime_ns == st.st_mtime_ns
    bundle, cache = _sign(model, p256, cache_path)
    assert cache.misses == 1
    models.verify_model(model, bundle, public_key=p256.public_key())


def test_replaced_file_misses(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    cache_path = tmp_path / "cache.json"
    _sign(model, p256, cache_path)
    target = model / "tokenizer" / "vocab.txt"
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data)  # new inode, same bytes
    _, cache = _sign(model, p256, cache_path)
    assert cache.misses >= 1


def test_poisoned_cache_is_never_trusted_by_the_verifier(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    """A cache whose stamps match but whose digests are wrong makes the signer
    sign wrong digests (it is the signer's own state); verification hashes
    the bytes itself and refuses the result. verify_model takes no cache."""
    cache_path = tmp_path / "cache.json"
    _sign(model, p256, cache_path)
    doc = json.loads(cache_path.read_text())
    for entry in doc["entries"].values():
        entry[1] = [[s, e, "00" * 32] for s, e, _ in entry[1]]
    cache_path.write_text(json.dumps(doc))
    bundle, cache = _sign(model, p256, cache_path)
    assert cache.hits == 4
    with pytest.raises(VerificationError, match="digest differs"):
        models.verify_model(model, bundle, public_key=p256.public_key())
    for fn in (models.verify_model, models.verify_bundle):
        assert "cache" not in inspect.signature(fn).parameters


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"v": 99, "entries": {}}'])
def test_unreadable_cache_is_empty(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path, content: bytes
) -> None:
    cache_path = tmp_path / "cache.json"
    cache_path.write_bytes(content)
    bundle, cache = _sign(model, p256, cache_path)
    assert cache.hits == 0
    models.verify_model(model, bundle, public_key=p256.public_key())
    assert json.loads(cache_path.read_text())["v"] == 1  # rewritten atomically


def test_configurations_do_not_mix(
    model: Path, p256: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    cache_path = tmp_path / "cache.json"
    _sign(model, p256, cache_path)
    bundle, cache = _sign(model, p256, cache_path, shard_size=65536)
    assert cache.hits == 0
    models.verify_model(model, bundle, public_key=p256.public_key())
    _, cache = _sign(model, p256, cache_path, hash_type="blake2b")
    assert cache.hits == 0
