"""COSE (RFC 9052/9053) for trustedge: COSE_Sign1, COSE_Sign, COSE_Mac0/COSE_Mac, COSE_Key.

Built on the one CBOR codec (:mod:`trustedge._cbor`). Decoding returns
unverified message objects; ``verify_*`` functions check tag, header buckets,
algorithm-for-key and signature/MAC, and raise on failure:

>>> from cryptography.hazmat.primitives.asymmetric import ed25519
>>> key = ed25519.Ed25519PrivateKey.generate()
>>> msg = decode_sign1(create_sign1(b"hello", key))
>>> verify_sign1(msg, key.public_key())
b'hello'
"""

from trustedge.cose.algorithms import (
    ED25519,
    EDDSA,
    ES256,
    ES384,
    ESP256,
    PrivateKey,
    PublicKey,
    algorithm_for_key,
)
from trustedge.cose.key import decode_key, encode_key, key_from_map, key_id, key_to_map
from trustedge.cose.mac import MacMessage, create_mac0, decode_mac, decode_mac0, verify_mac
from trustedge.cose.sign import (
    Sign1Message,
    Signature,
    SignMessage,
    create_sign,
    create_sign1,
    decode_sign,
    decode_sign1,
    sign1_from_item,
    verify_sign,
    verify_sign1,
)

__all__ = [
    "ED25519",
    "EDDSA",
    "ES256",
    "ES384",
    "ESP256",
    "MacMessage",
    "PrivateKey",
    "PublicKey",
    "Sign1Message",
    "SignMessage",
    "Signature",
    "algorithm_for_key",
    "create_mac0",
    "create_sign",
    "create_sign1",
    "decode_key",
    "decode_mac",
    "decode_mac0",
    "decode_sign",
    "decode_sign1",
    "encode_key",
    "key_from_map",
    "key_id",
    "key_to_map",
    "sign1_from_item",
    "verify_mac",
    "verify_sign",
    "verify_sign1",
]
