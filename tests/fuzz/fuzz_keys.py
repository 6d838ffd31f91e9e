"""atheris entry point: the key loader (``trustedge.keys``).

Every input goes through each of the four loaders (signature and agreement keys, public and
private, with a passphrase for encrypted ones). Seeds are the test keys in
``tests/data/keys`` (PEM, OpenSSH, SM2, encrypted PKCS#8) plus DER, COSE_Key and raw forms
of fixed keys.
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from tests.fuzz._harness import files
from trustedge import keys
from trustedge.cose import encode_key
from trustedge.errors import TrustedgeError

MAX_LEN = 8192
_ED = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_EC = ec.derive_private_key(0x5EED, ec.SECP256R1())
_X = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
_DER = serialization.Encoding.DER
_RAW = serialization.Encoding.Raw


def seeds() -> list[bytes]:
    """The test key files and DER/COSE/raw encodings of fixed keys."""
    out = list(files("tests/data/keys/*"))
    for key in (_ED, _EC, _X):
        out.append(
            key.private_bytes(_DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        out.append(
            key.public_key().public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    out += [encode_key(_ED), encode_key(_EC, include_private=True)]
    raw = _ED.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    out += [raw, raw.hex().encode(), bytes(range(32)) + raw]
    return out


def TestOneInput(data: bytes) -> None:
    loaders = (
        lambda: keys.load_public_key(data),
        lambda: keys.load_private_key(data, password=b"hunter2"),
        lambda: keys.load_agreement_public_key(data),
        lambda: keys.load_agreement_private_key(data, password=lambda: b"hunter2"),
    )
    for load in loaders:
        try:
            load()
        except TrustedgeError:
            continue


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
