"""Envelope encryption for data at rest and in transit.

An envelope is a small authenticated header, a rewritable list of key slots
and a c2sp.org/chunked-encryption (Cobblestone) body: committed, chunked
AEAD with random access. Seal for any mix of recipients (software KEK,
TPM-sealed KEK, HPKE X25519/P-256 public keys, libsodium sealed boxes, KMS
plug-ins); open with any matching identity; rotate keys with :func:`rewrap`
without touching the body.

>>> from trustedge import envelope
>>> kek = envelope.KEK.generate()
>>> box = envelope.seal(b"sensor buffer", [kek], context={"device": "gw-7"})
>>> envelope.open(box, [kek], context={"device": "gw-7"})
b'sensor buffer'
"""

from trustedge.envelope._api import (
    UnverifiedEnvelopeInfo,
    atomic_output,
    inspect,
    open,
    open_file,
    rewrap,
    rewrap_file,
    seal,
    seal_file,
)
from trustedge.envelope._format import (
    SUITE_CHACHA20_POLY1305,
    SUITE_COBBLESTONE_256,
    Header,
    Slot,
)
from trustedge.envelope.kms import KeyProvider, LocalKeyFileProvider
from trustedge.envelope.slots import (
    KEK,
    HPKEIdentity,
    HPKERecipient,
    Identity,
    KMSSlot,
    Recipient,
    SealedBoxIdentity,
    SealedBoxRecipient,
    TPMSealedKEK,
)
from trustedge.envelope.stream import Reader, Writer

__all__ = [
    "KEK",
    "SUITE_CHACHA20_POLY1305",
    "SUITE_COBBLESTONE_256",
    "HPKEIdentity",
    "HPKERecipient",
    "Header",
    "Identity",
    "KMSSlot",
    "KeyProvider",
    "LocalKeyFileProvider",
    "Reader",
    "Recipient",
    "SealedBoxIdentity",
    "SealedBoxRecipient",
    "Slot",
    "TPMSealedKEK",
    "UnverifiedEnvelopeInfo",
    "Writer",
    "atomic_output",
    "inspect",
    "open",
    "open_file",
    "rewrap",
    "rewrap_file",
    "seal",
    "seal_file",
]
