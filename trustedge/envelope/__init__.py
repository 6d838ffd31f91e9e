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

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export

if TYPE_CHECKING:
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

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "UnverifiedEnvelopeInfo": "trustedge.envelope._api",
    "atomic_output": "trustedge.envelope._api",
    "inspect": "trustedge.envelope._api",
    "open": "trustedge.envelope._api",
    "open_file": "trustedge.envelope._api",
    "rewrap": "trustedge.envelope._api",
    "rewrap_file": "trustedge.envelope._api",
    "seal": "trustedge.envelope._api",
    "seal_file": "trustedge.envelope._api",
    "SUITE_CHACHA20_POLY1305": "trustedge.envelope._format",
    "SUITE_COBBLESTONE_256": "trustedge.envelope._format",
    "Header": "trustedge.envelope._format",
    "Slot": "trustedge.envelope._format",
    "KeyProvider": "trustedge.envelope.kms",
    "LocalKeyFileProvider": "trustedge.envelope.kms",
    "KEK": "trustedge.envelope.slots",
    "HPKEIdentity": "trustedge.envelope.slots",
    "HPKERecipient": "trustedge.envelope.slots",
    "Identity": "trustedge.envelope.slots",
    "KMSSlot": "trustedge.envelope.slots",
    "Recipient": "trustedge.envelope.slots",
    "SealedBoxIdentity": "trustedge.envelope.slots",
    "SealedBoxRecipient": "trustedge.envelope.slots",
    "TPMSealedKEK": "trustedge.envelope.slots",
    "Reader": "trustedge.envelope.stream",
    "Writer": "trustedge.envelope.stream",
}


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
