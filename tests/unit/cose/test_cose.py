"""trustedge.cose: create/verify, header rules, algorithms per key, COSE_Key,
and an independent cross-check against pycose (test-only dependency)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519

from trustedge import _cbor, cose
from trustedge.cose import algorithms
from trustedge.errors import MalformedInputError, SignatureError, UnsupportedAlgorithmError

KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_sign1_round_trip(name: str) -> None:
    key = KEYS[name]()
    msg = cose.decode_sign1(cose.create_sign1(b"payload", key, external_aad=b"aad"))
    assert cose.verify_sign1(msg, key.public_key(), external_aad=b"aad") == b"payload"
    with pytest.raises(SignatureError):
        cose.verify_sign1(msg, key.public_key())
    with pytest.raises(SignatureError):
        cose.verify_sign1(msg, KEYS[name]().public_key())


@pytest.mark.parametrize(
    ("alg", "name"),
    [
        (algorithms.ESP256, "p256"),
        (algorithms.ES256, "p256"),
        (algorithms.ESP384, "p384"),
        (algorithms.ED25519, "ed25519"),
        (algorithms.EDDSA, "ed25519"),
        (algorithms.ED448, "ed448"),
    ],
)
def test_both_algorithm_numbers(alg: int, name: str) -> None:
    key = KEYS[name]()
    msg = cose.decode_sign1(cose.create_sign1(b"x", key, alg=alg))
    assert msg.alg == alg
    cose.verify_sign1(msg, key.public_key())


@pytest.mark.parametrize(
    ("alg", "name"),
    [
        (algorithms.ESP256, "p384"),
        (algorithms.ED25519, "ed448"),
        (algorithms.ES256, "ed25519"),
        (algorithms.EDDSA, "p256"),
        (-999, "p256"),
        (5, "p256"),
    ],
)
def test_algorithm_not_allowed_for_key(alg: int, name: str) -> None:
    key = KEYS[name]()
    tbs = _cbor.encode(["Signature1", _cbor.encode({1: alg}), b"", b"x"])
    with pytest.raises(SignatureError, match="not allowed"):
        algorithms.verify(alg, key.public_key(), tbs, b"\x00" * 64)
    with pytest.raises(ValueError):
        cose.create_sign1(b"x", key, alg=alg)


def test_detached_payload() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    msg = cose.decode_sign1(cose.create_sign1(b"d", key, detached=True))
    assert msg.payload is None
    assert cose.verify_sign1(msg, key.public_key(), detached_payload=b"d") == b"d"
    with pytest.raises(MalformedInputError):
        cose.verify_sign1(msg, key.public_key())
    attached = cose.decode_sign1(cose.create_sign1(b"d", key))
    with pytest.raises(MalformedInputError):
        cose.verify_sign1(attached, key.public_key(), detached_payload=b"d")


def _sign1(prot: bytes, unprot: object, tag: int = 18) -> bytes:
    return _cbor.encode(_cbor.CBORTag(tag, [prot, unprot, b"x", b"s" * 64]))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_sign1(b"", {1: -7}), "protected header"),
        (_sign1(_cbor.encode({1: -7}), {1: -7}), "protected"),
        (_sign1(_cbor.encode({1: -7, 2: [1]}), {}), "critical"),
        (_sign1(_cbor.encode({1: -7, 4: b"k"}), {4: b"k"}), "both buckets"),
        (_sign1(_cbor.encode({1: -7}), {}, tag=98), "tag 18"),
        (_sign1(_cbor.encode([1]), {}), "map"),
        (_cbor.encode([b"", {}, b"x", b"s"]), "tagged"),
        (_cbor.encode(_cbor.CBORTag(18, [b"", {}, b"x"])), "4 elements"),
        (_sign1(_cbor.encode({1: True}), {}), "alg"),
    ],
)
def test_header_rules(data: bytes, match: str) -> None:
    with pytest.raises(MalformedInputError, match=match):
        cose.decode_sign1(data)


def test_empty_protected_map_is_not_empty_bstr() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = _cbor.decode(cose.create_sign1(b"x", key))
    # re-sign over h'' but ship h'A0' (cose-wg issue #107): must not verify
    tbs = _cbor.encode(["Signature1", b"", b"", b"x"])
    sig = algorithms.sign(algorithms.ES256, key, tbs)
    forged = _cbor.CBORTag(18, [b"\xa0", {}, b"x", sig])
    msg = cose.decode_sign1(_cbor.encode(forged))
    with pytest.raises(SignatureError):
        cose.verify_sign1(msg, key.public_key())
    assert signed.tag == 18


def test_cose_sign_multiple_signers() -> None:
    keys = [KEYS[n]() for n in ("p256", "ed25519", "p384")]
    msg = cose.decode_sign(cose.create_sign(b"doc", keys))
    for sig, key in zip(msg.signatures, keys, strict=True):
        assert cose.verify_sign(msg, sig, key.public_key()) == b"doc"
    with pytest.raises(SignatureError):
        cose.verify_sign(msg, msg.signatures[0], keys[2].public_key())


def test_mac0() -> None:
    key = b"k" * 32
    msg = cose.decode_mac0(cose.create_mac0(b"m", key))
    assert cose.verify_mac(msg, key) == b"m"
    with pytest.raises(SignatureError):
        cose.verify_mac(msg, b"x" * 32)


@pytest.mark.parametrize("name", sorted(KEYS))
def test_cose_key_round_trip_and_key_id(name: str) -> None:
    key = KEYS[name]()
    pub = cose.decode_key(cose.encode_key(key.public_key()))
    assert cose.key_id(pub) == cose.key_id(key) == cose.key_id(key.public_key())  # type: ignore[arg-type]
    priv = cose.decode_key(cose.encode_key(key, include_private=True))
    assert cose.key_id(priv) == cose.key_id(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "m",
    [
        {1: 2, -1: 1, -2: b"\x00" * 31, -3: b"\x00" * 32},
        {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x01" * 32},
        {1: 1, -1: 6, -2: 5},
        [],
        {1: 2, -1: 1, -2: b"\x00" * 32, -3: True},
    ],
)
def test_bad_cose_keys(m: object) -> None:
    with pytest.raises(MalformedInputError):
        cose.key_from_map(m)


def test_unsupported_cose_keys() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        cose.key_from_map({1: 3, -1: b"n", -2: b"e"})
    with pytest.raises(UnsupportedAlgorithmError):
        cose.key_from_map({1: 1, -1: 4, -2: b"\x00" * 32})


def test_cross_check_with_pycose() -> None:
    import cbor2
    from pycose.algorithms import EdDSA, Es256
    from pycose.headers import Algorithm
    from pycose.keys import CoseKey
    from pycose.messages import Sign1Message

    for key, alg in (
        (ec.generate_private_key(ec.SECP256R1()), Es256),
        (ed25519.Ed25519PrivateKey.generate(), EdDSA),
    ):
        ck = CoseKey.decode(cose.encode_key(key, include_private=True))
        # trustedge -> pycose
        # (pycose's decode() trips over cbor2 returning tuples; feed it a list)
        item = cbor2.loads(cose.create_sign1(b"cross", key))
        assert item.tag == 18
        prot, unprot, payload, sig = item.value
        ours = Sign1Message.from_cose_obj([prot, dict(unprot), payload, sig], True)
        ours.key = ck
        assert ours.verify_signature()
        # pycose -> trustedge
        theirs = Sign1Message(phdr={Algorithm: alg}, payload=b"cross")
        theirs.key = ck
        msg = cose.decode_sign1(theirs.encode())
        assert cose.verify_sign1(msg, key.public_key()) == b"cross"


def test_ed25519_rfc8032_vector_and_small_order_keys() -> None:
    """Ed25519 verification (libsodium, ADR 0016): RFC 8032 §7.1 TEST 2 verifies, a flipped
    bit or a short signature fails; a small-order public key with the trivial signature --
    which OpenSSL's Ed25519 accepts for any message -- is refused."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustedge.cose import algorithms
    from trustedge.errors import SignatureError

    pub = ed25519.Ed25519PublicKey.from_public_bytes(
        bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    )
    sig = bytes.fromhex(
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    algorithms.verify(algorithms.EDDSA, pub, b"\x72", sig)
    algorithms.verify(algorithms.ED25519, pub, b"\x72", sig)
    for bad_msg, bad_sig in ((b"\x73", sig), (b"\x72", sig[:-1] + b"\x01"), (b"\x72", sig[:63])):
        with pytest.raises(SignatureError):
            algorithms.verify(algorithms.EDDSA, pub, bad_msg, bad_sig)
    identity = ed25519.Ed25519PublicKey.from_public_bytes(b"\x01" + bytes(31))
    trivial = b"\x01" + bytes(31) + bytes(32)
    identity.verify(trivial, b"any message")  # OpenSSL: valid
    with pytest.raises(SignatureError):
        algorithms.verify(algorithms.EDDSA, identity, b"any message", trivial)
