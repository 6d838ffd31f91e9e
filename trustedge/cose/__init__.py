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

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export

if TYPE_CHECKING:
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

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "ED25519": "trustedge.cose.algorithms",
    "EDDSA": "trustedge.cose.algorithms",
    "ES256": "trustedge.cose.algorithms",
    "ES384": "trustedge.cose.algorithms",
    "ESP256": "trustedge.cose.algorithms",
    "PrivateKey": "trustedge.cose.algorithms",
    "PublicKey": "trustedge.cose.algorithms",
    "algorithm_for_key": "trustedge.cose.algorithms",
    "decode_key": "trustedge.cose.key",
    "encode_key": "trustedge.cose.key",
    "key_from_map": "trustedge.cose.key",
    "key_id": "trustedge.cose.key",
    "key_to_map": "trustedge.cose.key",
    "MacMessage": "trustedge.cose.mac",
    "create_mac0": "trustedge.cose.mac",
    "decode_mac": "trustedge.cose.mac",
    "decode_mac0": "trustedge.cose.mac",
    "verify_mac": "trustedge.cose.mac",
    "Sign1Message": "trustedge.cose.sign",
    "Signature": "trustedge.cose.sign",
    "SignMessage": "trustedge.cose.sign",
    "create_sign": "trustedge.cose.sign",
    "create_sign1": "trustedge.cose.sign",
    "decode_sign": "trustedge.cose.sign",
    "decode_sign1": "trustedge.cose.sign",
    "sign1_from_item": "trustedge.cose.sign",
    "verify_sign": "trustedge.cose.sign",
    "verify_sign1": "trustedge.cose.sign",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
