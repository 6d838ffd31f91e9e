"""RFC 9180 base-mode vectors (DHKEM X25519 and P-256) against trustedge's HPKE,
plus cross-checks with cryptography's own single-shot HPKE."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke as chpke
from cryptography.hazmat.primitives.asymmetric import x25519

from tests.vectors import third_party_dir
from trustedge.envelope import _hpke as hpke


def _cases() -> list[dict[str, Any]]:
    base = third_party_dir()
    data = json.loads((base / "hpke" / "test-vectors.json").read_text())
    return [v for v in data if v["mode"] == 0 and v["kem_id"] in (0x10, 0x20)]


CASES = _cases()


def _id(v: dict[str, Any]) -> str:
    return f"kem{v['kem_id']:#x}-kdf{v['kdf_id']}-aead{v['aead_id']:#x}"


def test_vector_count() -> None:
    assert len(CASES) == 16  # 8 X25519 + 8 P-256 base-mode suites


@pytest.mark.parametrize("v", CASES, ids=[_id(v) for v in CASES])
def test_rfc9180_base(v: dict[str, Any]) -> None:
    h = bytes.fromhex
    suite = hpke.Suite(v["kem_id"], v["kdf_id"], v["aead_id"])
    assert hpke.derive_key_pair(suite, h(v["ikmE"])) == (h(v["skEm"]), h(v["pkEm"]))
    assert hpke.derive_key_pair(suite, h(v["ikmR"])) == (h(v["skRm"]), h(v["pkRm"]))
    enc, sender = hpke.setup_base_s(suite, h(v["pkRm"]), h(v["info"]), h(v["ikmE"]))
    assert enc == h(v["enc"])
    receiver = hpke.setup_base_r(suite, enc, h(v["skRm"]), h(v["info"]))
    assert sender.key == receiver.key == h(v["key"])
    assert sender.base_nonce == h(v["base_nonce"])
    for e in v["encryptions"]:
        assert sender.seal(h(e["aad"]), h(e["pt"])) == h(e["ct"])
        assert receiver.open(h(e["aad"]), h(e["ct"])) == h(e["pt"])
    for x in v["exports"]:
        assert receiver.export(h(x["exporter_context"]), x["L"]) == h(x["exported_value"])


def test_vectors_count_encryptions() -> None:
    total = sum(len(v["encryptions"]) + len(v["exports"]) for v in CASES)
    assert total > 1000


@pytest.mark.parametrize("aead", [1, 2, 3])
def test_interop_with_cryptography_hpke(aead: int) -> None:
    c_aead = {1: chpke.AEAD.AES_128_GCM, 2: chpke.AEAD.AES_256_GCM, 3: chpke.AEAD.CHACHA20_POLY1305}
    csuite = chpke.Suite(chpke.KEM.X25519, chpke.KDF.HKDF_SHA256, c_aead[aead])
    suite = hpke.Suite(hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, aead)
    sk = x25519.X25519PrivateKey.generate()
    pk = sk.public_key().public_bytes_raw()
    info = b"trustedge interop"
    ours = hpke.seal_base(suite, pk, info, b"", b"file key", bytes(range(32)))
    assert csuite.decrypt(ours, sk, info) == b"file key"
    theirs = csuite.encrypt(b"other key", sk.public_key(), info)
    assert hpke.open_base(suite, sk.private_bytes_raw(), info, b"", theirs) == b"other key"


def test_low_order_point_is_malformed() -> None:
    from trustedge.errors import MalformedInputError

    suite = hpke.Suite()
    with pytest.raises(MalformedInputError):
        hpke.seal_base(suite, bytes(32), b"", b"", b"k", bytes(32))
    with pytest.raises(MalformedInputError):
        hpke.open_base(suite, bytes(range(32)), b"", b"", bytes(40))
