"""Key slots: who can open an envelope.

Every envelope has one random 32-byte *file key*; each slot wraps it for one
holder. A *recipient* makes a slot when sealing; an *identity* opens matching
slots. Every slot's wrapping is bound (as AEAD associated data, HPKE ``info``
or an embedded digest) to :func:`trustedge.envelope._format.slot_aad`: the
format version and the slot's own type, key id and parameters, so an edited
slot does not unwrap. A slot copied from another envelope unwraps to that
envelope's key, which fails this envelope's commitment.
Whatever a slot unwraps to is then checked against the body's key commitment
before any chunk is decrypted, so a slot that yields a *different* key (an
"invisible salamander" recipient) is rejected with ``CommitmentError``.

=====  ===============  ==============================================================
type   class            wrapping
=====  ===============  ==============================================================
1      ``KEK``          HKDF-SHA-256(KEK, salt) -> one-time AES-256-GCM key, zero nonce
2      ``TPMSealedKEK`` same, with the KEK sealed by a TPM (``TPMBackend.seal``)
3      ``HPKERecipient`` RFC 9180 base mode, DHKEM(X25519 or P-256), AES-256-GCM
4      ``SealedBoxRecipient`` libsodium ``crypto_box_seal`` (file key || SHA-256(aad))
5      ``KMSSlot``      a :class:`~trustedge.envelope.kms.KeyProvider`
=====  ===============  ==============================================================
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from trustedge.envelope import _hpke
from trustedge.envelope._format import Slot, slot_aad
from trustedge.envelope.kms import KeyProvider
from trustedge.errors import (
    AccessDeniedError,
    KeyProviderError,
    MalformedInputError,
    UnsupportedAlgorithmError,
    VerificationError,
)

if TYPE_CHECKING:
    import nacl.public

    from trustedge.hazmat.tpmbackend import PCRSelection, TPMBackend

# pynacl and cryptography's serialization package are imported where used:
# both are slow to import and most processes need neither. The TPM backend
# protocol is needed only for type checking (1.8 ms of every start-up).

__all__ = [
    "FILE_KEY_SIZE",
    "KEK",
    "SLOT_HPKE",
    "SLOT_KEK",
    "SLOT_KMS",
    "SLOT_SEALED_BOX",
    "SLOT_TPM_KEK",
    "HPKEIdentity",
    "HPKERecipient",
    "Identity",
    "KMSSlot",
    "RandomSource",
    "Recipient",
    "SealedBoxIdentity",
    "SealedBoxRecipient",
    "TPMSealedKEK",
]

SLOT_KEK: Final = 1
SLOT_TPM_KEK: Final = 2
SLOT_HPKE: Final = 3
SLOT_SEALED_BOX: Final = 4
SLOT_KMS: Final = 5
FILE_KEY_SIZE: Final = 32

#: Randomness is passed in: ``rng(n)`` returns ``n`` random bytes.
RandomSource = Callable[[int], bytes]

_KEK_WRAP_INFO: Final = b"trustedge/kek-wrap/v1"
_HPKE_INFO: Final = b"trustedge/hpke/v1\x00"


@runtime_checkable
class Recipient(Protocol):
    """Makes a slot for a file key when sealing."""

    @property
    def kek_id(self) -> str: ...

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot: ...


@runtime_checkable
class Identity(Protocol):
    """Opens slots: ``matches`` picks slots by type and key id (no trial
    decryption); ``unwrap`` returns the file key or raises
    ``VerificationError`` (does not authenticate), ``MalformedInputError``
    (bad slot parameters), ``AccessDeniedError`` (the TPM's PCR policy or auth
    check refused) or ``KeyProviderError`` (TPM/KMS unavailable or failed)."""

    def matches(self, slot: Slot) -> bool: ...

    def unwrap(self, slot: Slot, binding: bytes) -> bytes: ...


# Key ids are public (``inspect`` shows them), so slots are matched with a
# plain comparison; secrets and digests are compared with hmac.compare_digest.


def _fingerprint(label: bytes, material: bytes) -> str:
    return hashlib.sha256(label + b"\x00" + material).hexdigest()[:16]


# -- symmetric KEKs ------------------------------------------------------------------


def _kek_wrap(
    kek: bytes, slot_type: int, kek_id: str, file_key: bytes, binding: bytes, rng: RandomSource
) -> Slot:
    params: dict[str, Any] = {"salt": rng(32)}
    aad = slot_aad(binding, slot_type, kek_id, params)
    wrap_key = HKDF(hashes.SHA256(), 32, params["salt"], _KEK_WRAP_INFO).derive(kek)
    # The wrap key is derived fresh for this slot (random salt), so the fixed
    # nonce is used once per key: no nonce budget or counter state needed.
    wrapped = AESGCM(wrap_key).encrypt(bytes(12), file_key, aad)
    return Slot(slot_type, kek_id, params, wrapped)


def _kek_unwrap(kek: bytes, slot: Slot, binding: bytes) -> bytes:
    salt = slot.params.get("salt")
    if not isinstance(salt, bytes) or len(salt) != 32 or set(slot.params) != {"salt"}:
        raise MalformedInputError(f"slot {slot.kek_id!r}: params must be {{salt: 32 bytes}}")
    aad = slot_aad(binding, slot.type, slot.kek_id, slot.params)
    wrap_key = HKDF(hashes.SHA256(), 32, salt, _KEK_WRAP_INFO).derive(kek)
    try:
        return AESGCM(wrap_key).decrypt(bytes(12), slot.wrapped, aad)
    except InvalidTag:
        raise VerificationError(f"slot {slot.kek_id!r} does not unwrap with this KEK") from None


class KEK:
    """A software key-encryption key (32 bytes): recipient and identity at once.

    ``kek_id`` is a fingerprint of the key (``kek:`` + 16 hex digits).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a KEK is 32 bytes")
        self._key = key
        self.kek_id = "kek:" + _fingerprint(b"trustedge/kek-id/v1", key)

    @classmethod
    def generate(cls, rng: RandomSource = os.urandom) -> KEK:
        return cls(rng(32))

    @classmethod
    def from_file(cls, path: str | Path) -> KEK:
        """Read a KEK file (exactly 32 raw bytes)."""
        data = Path(path).read_bytes()
        if len(data) != 32:
            raise MalformedInputError(f"{path}: a KEK file holds exactly 32 bytes")
        return cls(data)

    def key_bytes(self) -> bytes:
        return self._key

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot:
        return _kek_wrap(self._key, SLOT_KEK, self.kek_id, file_key, binding, rng)

    def matches(self, slot: Slot) -> bool:
        return slot.type == SLOT_KEK and slot.kek_id == self.kek_id  # not secret: public key id

    def unwrap(self, slot: Slot, binding: bytes) -> bytes:
        return _kek_unwrap(self._key, slot, binding)


class TPMSealedKEK:
    """A KEK that exists in the clear only inside a TPM-sealed blob.

    Works with any :class:`~trustedge.hazmat.tpmbackend.TPMBackend`
    (``SoftwareTPM``, ``Tpm2Backend``): :meth:`create` seals 32 random bytes to
    an optional PCR selection and/or auth value; the blob is stored by the
    caller (it is useless without that TPM). The KEK is unsealed once, on first
    use, and kept in this object. A refused unseal (PCR policy, auth) raises
    :class:`AccessDeniedError` (a verification failure, never a tampering error);
    a TPM that fails raises :class:`KeyProviderError`.
    """

    def __init__(
        self,
        backend: TPMBackend,
        sealed: bytes,
        *,
        auth: bytes | None = None,
        authority: bytes | None = None,
        policies: Sequence[bytes] = (),
    ) -> None:
        self._backend = backend
        self.sealed = sealed
        self._auth = auth
        self._authority = authority
        self.policies = tuple(policies)
        self._kek: bytes | None = None
        self.kek_id = "tpm:" + _fingerprint(b"trustedge/tpm-kek-id/v1", sealed)

    @classmethod
    def create(
        cls,
        backend: TPMBackend,
        *,
        pcrs: PCRSelection | None = None,
        auth: bytes | None = None,
        rng: RandomSource = os.urandom,
    ) -> TPMSealedKEK:
        kek = rng(32)
        obj = cls(backend, backend.seal(kek, pcrs=pcrs, auth=auth), auth=auth)
        obj._kek = kek
        return obj

    @classmethod
    def create_authorized(
        cls,
        backend: TPMBackend,
        *,
        authority: bytes,
        policy_ref: bytes = b"",
        policies: Sequence[bytes] = (),
        rng: RandomSource = os.urandom,
    ) -> TPMSealedKEK:
        """Seal a new KEK to TPM2_PolicyAuthorize: any PCR policy that the key
        ``authority`` (its ``TPM2B_PUBLIC``, see
        ``trustedge.hazmat.tpm2.policy.authority_public``) signed unseals it, so a
        signed update brings the policy for its own boot chain along, and an NV
        counter revokes older ones (docs/sealed-updates.md)."""
        kek = rng(32)
        sealed = backend.seal_authorized(kek, authority=authority, policy_ref=policy_ref)
        obj = cls(backend, sealed, authority=authority, policies=policies)
        obj._kek = kek
        return obj

    def _unseal(self) -> bytes:
        if self._authority is None:
            return self._backend.unseal(self.sealed, auth=self._auth)
        from trustedge.hazmat.tpmbackend import unseal_with_policies  # start-up cost

        # the current and, while an update is pending, the new chain's policy
        return unseal_with_policies(
            self._backend, self.sealed, self.policies, authority=self._authority
        )

    def _key(self) -> bytes:
        if self._kek is None:
            try:
                kek = self._unseal()
            except VerificationError as exc:
                raise AccessDeniedError(f"TPM refused to unseal the KEK: {exc}") from exc
            if len(kek) != 32:
                raise KeyProviderError("the sealed object does not hold a 32-byte KEK")
            self._kek = kek
        return self._kek

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot:
        return _kek_wrap(self._key(), SLOT_TPM_KEK, self.kek_id, file_key, binding, rng)

    def matches(self, slot: Slot) -> bool:
        return slot.type == SLOT_TPM_KEK and slot.kek_id == self.kek_id  # not secret: public key id

    def unwrap(self, slot: Slot, binding: bytes) -> bytes:
        return _kek_unwrap(self._key(), slot, binding)


# -- HPKE ----------------------------------------------------------------------------

_HPKEPublic = x25519.X25519PublicKey | ec.EllipticCurvePublicKey
_HPKEPrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


def _hpke_public_bytes(key: _HPKEPublic) -> tuple[int, bytes]:
    if isinstance(key, x25519.X25519PublicKey):
        return _hpke.KEM_X25519_HKDF_SHA256, key.public_bytes_raw()
    if isinstance(key.curve, ec.SECP256R1):
        return _hpke.KEM_P256_HKDF_SHA256, _hpke.uncompressed_point(key)
    raise UnsupportedAlgorithmError(f"HPKE recipient on curve {key.curve.name}")


class HPKERecipient:
    """An HPKE (RFC 9180 base mode) recipient: X25519 (default) or P-256 public key.

    The slot binding goes into HPKE ``info`` (``aad`` stays empty), so a peer
    using ``cryptography.hazmat.primitives.hpke`` can unwrap it too.
    """

    def __init__(self, public_key: _HPKEPublic, *, aead: int = _hpke.AEAD_AES_256_GCM) -> None:
        kem, raw = _hpke_public_bytes(public_key)
        self.suite = _hpke.Suite(kem, _hpke.KDF_HKDF_SHA256, aead)
        self.suite.check()
        self.public_bytes = raw
        self.kek_id = "hpke:" + _fingerprint(b"trustedge/hpke-id/v1", raw)

    @classmethod
    def from_pem(cls, pem: bytes) -> HPKERecipient:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise MalformedInputError(f"not a PEM public key: {exc}") from None
        if not isinstance(key, (x25519.X25519PublicKey, ec.EllipticCurvePublicKey)):
            raise UnsupportedAlgorithmError("HPKE recipients are X25519 or P-256 keys")
        return cls(key)

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot:
        s = self.suite
        params = {"kem": s.kem, "kdf": s.kdf, "aead": s.aead}
        info = _HPKE_INFO + slot_aad(binding, SLOT_HPKE, self.kek_id, params)
        wrapped = _hpke.seal_base(s, self.public_bytes, info, b"", file_key, rng(32))
        return Slot(SLOT_HPKE, self.kek_id, params, wrapped)


class HPKEIdentity:
    """The private half of an :class:`HPKERecipient`."""

    def __init__(self, private_key: _HPKEPrivate) -> None:
        self._recipient = HPKERecipient(private_key.public_key())
        if isinstance(private_key, x25519.X25519PrivateKey):
            self._sk = private_key.private_bytes_raw()
        else:
            self._sk = private_key.private_numbers().private_value.to_bytes(32, "big")
        self.kek_id = self._recipient.kek_id

    @property
    def recipient(self) -> HPKERecipient:
        return self._recipient

    @classmethod
    def generate(cls) -> HPKEIdentity:
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> HPKEIdentity:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise MalformedInputError(f"not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, (x25519.X25519PrivateKey, ec.EllipticCurvePrivateKey)):
            raise UnsupportedAlgorithmError("HPKE identities are X25519 or P-256 keys")
        return cls(key)

    def matches(self, slot: Slot) -> bool:
        return slot.type == SLOT_HPKE and slot.kek_id == self.kek_id  # not secret: public key id

    def unwrap(self, slot: Slot, binding: bytes) -> bytes:
        p = slot.params
        ids = [p.get("kem"), p.get("kdf"), p.get("aead")]
        if set(p) != {"kem", "kdf", "aead"} or not all(isinstance(v, int) for v in ids):
            raise MalformedInputError(f"slot {slot.kek_id!r}: bad HPKE parameters")
        suite = _hpke.Suite(*ids)  # type: ignore[arg-type]
        if suite.kem != self._recipient.suite.kem:
            raise MalformedInputError(f"slot {slot.kek_id!r}: KEM does not match this key")
        info = _HPKE_INFO + slot_aad(binding, slot.type, slot.kek_id, p)
        return _hpke.open_base(suite, self._sk, info, b"", slot.wrapped)


# -- libsodium sealed boxes -----------------------------------------------------------


class SealedBoxRecipient:
    """A libsodium ``crypto_box_seal`` recipient (X25519 + XSalsa20-Poly1305).

    Sealed boxes have no associated data, so the box holds
    ``file key || SHA-256(slot aad)`` and the digest is checked on opening. The
    box is built from ``rng`` (ephemeral key) exactly as libsodium builds it,
    so it opens with ``nacl.public.SealedBox`` / ``crypto_box_seal_open``.
    """

    def __init__(self, public_key: bytes | nacl.public.PublicKey) -> None:
        raw = bytes(public_key)
        if len(raw) != 32:
            raise ValueError("a sealed-box public key is 32 bytes")
        self.public_bytes = raw
        self.kek_id = "box:" + _fingerprint(b"trustedge/box-id/v1", raw)

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot:
        import nacl.bindings

        params: dict[str, Any] = {}
        aad = slot_aad(binding, SLOT_SEALED_BOX, self.kek_id, params)
        esk = rng(32)
        epk = nacl.bindings.crypto_scalarmult_base(esk)
        nonce = hashlib.blake2b(epk + self.public_bytes, digest_size=24).digest()
        box = nacl.bindings.crypto_box(
            file_key + hashlib.sha256(aad).digest(), nonce, self.public_bytes, esk
        )
        return Slot(SLOT_SEALED_BOX, self.kek_id, params, epk + box)


class SealedBoxIdentity:
    """The private half of a :class:`SealedBoxRecipient`."""

    def __init__(self, private_key: bytes | nacl.public.PrivateKey) -> None:
        import nacl.public

        self._sk = (
            private_key
            if isinstance(private_key, nacl.public.PrivateKey)
            else nacl.public.PrivateKey(private_key)
        )
        self._recipient = SealedBoxRecipient(self._sk.public_key)
        self.kek_id = self._recipient.kek_id

    @property
    def recipient(self) -> SealedBoxRecipient:
        return self._recipient

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (for storing it)."""
        return bytes(self._sk)

    @classmethod
    def generate(cls) -> SealedBoxIdentity:
        import nacl.public

        return cls(nacl.public.PrivateKey.generate())

    def matches(self, slot: Slot) -> bool:
        # not secret: public key id
        return slot.type == SLOT_SEALED_BOX and slot.kek_id == self.kek_id

    def unwrap(self, slot: Slot, binding: bytes) -> bytes:
        if slot.params:
            raise MalformedInputError(f"slot {slot.kek_id!r}: sealed-box slots take no params")
        import nacl.exceptions
        import nacl.public

        try:
            plain = nacl.public.SealedBox(self._sk).decrypt(slot.wrapped)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise VerificationError(f"slot {slot.kek_id!r} does not open") from None
        aad = slot_aad(binding, slot.type, slot.kek_id, slot.params)
        if len(plain) != FILE_KEY_SIZE + 32 or not hmac.compare_digest(
            plain[FILE_KEY_SIZE:], hashlib.sha256(aad).digest()
        ):
            raise VerificationError(f"slot {slot.kek_id!r} is bound to another envelope")
        return plain[:FILE_KEY_SIZE]


# -- KMS plug-ins -----------------------------------------------------------------------


class KMSSlot:
    """Recipient and identity over a :class:`~trustedge.envelope.kms.KeyProvider`."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self.kek_id = f"{provider.provider_id}:{provider.key_id}"

    def _params(self) -> Mapping[str, Any]:
        return {"provider": self.provider.provider_id}

    def wrap(self, file_key: bytes, binding: bytes, rng: RandomSource) -> Slot:
        params = self._params()
        aad = slot_aad(binding, SLOT_KMS, self.kek_id, params)
        return Slot(SLOT_KMS, self.kek_id, params, self.provider.wrap_key(file_key, aad=aad))

    def matches(self, slot: Slot) -> bool:
        return slot.type == SLOT_KMS and slot.kek_id == self.kek_id  # not secret: public key id

    def unwrap(self, slot: Slot, binding: bytes) -> bytes:
        if dict(slot.params) != dict(self._params()):
            raise MalformedInputError(f"slot {slot.kek_id!r}: provider parameters differ")
        aad = slot_aad(binding, slot.type, slot.kek_id, slot.params)
        return self.provider.unwrap_key(slot.wrapped, aad=aad)
