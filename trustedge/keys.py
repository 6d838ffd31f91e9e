"""The one key loader of trustedge: key files as users have them, into ``cryptography`` keys.

Accepted encodings, sniffed from the bytes (never from a file name):

* PEM: SubjectPublicKeyInfo, PKCS#8 (also encrypted), SEC1 ``EC PRIVATE KEY``, and the
  public key of an X.509 ``CERTIFICATE`` (the certificate itself is not validated);
* DER of the same;
* OpenSSH: ``ssh-ed25519 AAAA...`` / ``ecdsa-sha2-nistp256 AAAA...`` public keys (an
  ``authorized_keys`` line) and ``-----BEGIN OPENSSH PRIVATE KEY-----`` files;
* COSE_Key (RFC 9052 §7, a CBOR map), public or private;
* raw keys as libsodium users keep them: 32 bytes (Ed25519 public key or seed, X25519 key),
  a 64-byte ``crypto_sign`` secret key (seed || public key), as binary, hex or base64.

Two purposes: *signature* keys (ECDSA P-256/P-384/P-521, Ed25519, Ed448) for
:func:`load_public_key` / :func:`load_private_key`, and *agreement* keys (X25519, P-256)
for envelope encryption, :func:`load_agreement_public_key` /
:func:`load_agreement_private_key`. Raw 32-byte sealed-box keys: :func:`load_raw_key`.

Hostile bytes raise only :class:`MalformedInputError` (not a key, wrong passphrase) or
:class:`UnsupportedAlgorithmError` (RSA, DSA, SM2, an unknown curve, ...): every exception
``cryptography`` may raise while parsing is translated, never passed on. An encrypted key
needs ``password``: bytes, or a callable asked only when the key turns out to be encrypted
(so a CLI prompts only when it must). Nothing here reads files, the environment or a TTY.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, Final, Protocol, runtime_checkable

from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.public import Public

__all__ = [
    "AgreementPrivateKey",
    "AgreementPublicKey",
    "Password",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "Verifier",
    "load_agreement_private_key",
    "load_agreement_public_key",
    "load_private_key",
    "load_public_key",
    "load_raw_key",
    "load_tpm_public",
    "private_key_to_pem",
    "public_key_to_pem",
]

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
AgreementPublicKey = x25519.X25519PublicKey | ec.EllipticCurvePublicKey
AgreementPrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
#: A passphrase, or a callable returning one (called only for an encrypted key).
Password = bytes | Callable[[], bytes] | None

_SIGNATURE_CURVES: Final = ("secp256r1", "secp384r1", "secp521r1")
_AGREEMENT_CURVES: Final = ("secp256r1",)
_MAX_KEY: Final = 1 << 16
#: Everything ``cryptography`` raises on bytes it cannot or will not parse.
_PARSE_ERRORS: Final = (
    ValueError,
    TypeError,
    IndexError,
    OverflowError,
    NotImplementedError,  # "Need uncompressed point" from a mutated OpenSSH ECDSA key
    UnsupportedAlgorithm,
    InternalError,
)
_HEX: Final = re.compile(rb"[0-9A-Fa-f]+")
_B64: Final = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")
_OPENSSH_PUBLIC: Final = (b"ssh-", b"ecdsa-sha2-", b"sk-")
_FORMATS: Final = "PEM, DER, OpenSSH, COSE_Key or a raw 32-byte key (hex/base64)"


@runtime_checkable
class Signer(Protocol):
    """Anything that signs bytes (a software key, an HSM, a TPM key)."""

    def sign(self, data: bytes) -> bytes: ...


@runtime_checkable
class Verifier(Protocol):
    """Anything that checks a signature and raises on failure."""

    def verify(self, signature: bytes, data: bytes) -> None: ...


# -- public API -----------------------------------------------------------------------------


def load_public_key(data: bytes) -> PublicKey:
    """A signature-verification key (ECDSA P-256/384/521, Ed25519, Ed448) in any encoding
    of the module docstring. A private key yields its public half; raw 32 bytes are an
    Ed25519 public key."""
    return _signature_public(_any_public(data, raw=_raw_ed25519_public))


def load_private_key(data: bytes, *, password: Password = None) -> PrivateKey:
    """A signing key (ECDSA P-256/384/521, Ed25519, Ed448); raw input is an Ed25519 seed
    (32 bytes) or libsodium secret key (64 bytes)."""
    key = _any_private(data, password, raw=_raw_ed25519_private)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _signature_public(key.public_key())
        return key
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return key
    raise UnsupportedAlgorithmError(f"{_kind(key)} keys cannot sign here ({_SIGNATURE_KINDS})")


def load_agreement_public_key(data: bytes) -> AgreementPublicKey:
    """A key-agreement public key (X25519 or P-256, envelope HPKE recipients); raw 32
    bytes are an X25519 key."""
    key = _any_public(data, raw=_raw_x25519_public)
    if isinstance(key, x25519.X25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _AGREEMENT_CURVES:
        return key
    raise UnsupportedAlgorithmError(f"{_kind(key)} keys cannot encrypt here (X25519 or P-256)")


def load_agreement_private_key(data: bytes, *, password: Password = None) -> AgreementPrivateKey:
    """A key-agreement private key (X25519 or P-256); raw 32 bytes are an X25519 key."""
    key = _any_private(data, password, raw=_raw_x25519_private)
    if isinstance(key, x25519.X25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _AGREEMENT_CURVES:
        return key
    raise UnsupportedAlgorithmError(f"{_kind(key)} keys cannot decrypt here (X25519 or P-256)")


def load_raw_key(data: bytes, size: int = 32) -> bytes:
    """Exactly ``size`` key bytes, given raw, as hex or as base64 (libsodium's habits)."""
    raw = _raw_bytes(data, (size,))
    if raw is None:
        raise MalformedInputError(f"expected a {size}-byte key (raw, hex or base64)")
    return raw


#: A TPM key as ``cryptography`` holds it (the RSA and ECC keys a TPM makes).
TPMPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
_TPM_FORMATS: Final = (
    "TPM2B_PUBLIC (tpm2_readpublic -o), TPMT_PUBLIC (-f tpmt), or PEM/DER "
    "SubjectPublicKeyInfo (-f pem, -f der)"
)


def load_tpm_public(data: bytes) -> Public | TPMPublicKey:
    """A TPM key (AK, EK) as tpm2-tools write it: a ``TPM2B_PUBLIC`` or ``TPMT_PUBLIC`` gives
    the :class:`~trustedge.hazmat.tpm2.Public` (scheme, attributes and TPM name known); PEM
    or DER SubjectPublicKeyInfo (also an X.509 certificate's key) gives the bare RSA/ECC key,
    which has no TPM name. Raises MalformedInputError (none of these formats) or
    UnsupportedAlgorithmError (a key type a TPM does not make)."""
    data = _check_size(data)
    if _pem_label(data) is not None or data[:1] == b"\x30":
        key = _any_public(data, raw=lambda _: None)
        if isinstance(key, rsa.RSAPublicKey):
            return key
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _SIGNATURE_CURVES:
            return key
        raise UnsupportedAlgorithmError(f"{_kind(key)} is not a TPM key (RSA or ECC P-256/384/521)")
    try:
        return Public.unmarshal_any(data)
    except MalformedInputError as exc:
        raise MalformedInputError(f"not a TPM public key ({_TPM_FORMATS}): {exc}") from None


def public_key_to_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of ``key`` (keep it offline)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- sniffing -------------------------------------------------------------------------------

_SIGNATURE_KINDS: Final = "ECDSA P-256/P-384/P-521, Ed25519 or Ed448"


def _kind(key: object) -> str:
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return f"EC {key.curve.name}"
    return type(key).__name__.removeprefix("_").replace("PublicKey", "").replace("PrivateKey", "")


def _signature_public(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _SIGNATURE_CURVES:
            raise UnsupportedAlgorithmError(f"curve {key.curve.name} is not supported")
        return key
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return key
    raise UnsupportedAlgorithmError(f"{_kind(key)} keys are not supported ({_SIGNATURE_KINDS})")


def _pem_label(data: bytes) -> bytes | None:
    match = re.match(rb"\s*-----BEGIN ([A-Z0-9 ]+)-----", data)
    return match.group(1) if match else None


def _translate(exc: BaseException, what: str) -> Exception:
    """The trustedge error for an exception ``cryptography`` raised while parsing."""
    if isinstance(exc, (MalformedInputError, UnsupportedAlgorithmError)):
        return exc
    if isinstance(exc, UnsupportedAlgorithm):
        return UnsupportedAlgorithmError(f"{what}: {exc}")
    text = str(exc)
    if "Incorrect password" in text or "Bad decrypt" in text or "bad password" in text.lower():
        return MalformedInputError(f"{what}: wrong passphrase (or a corrupt key)")
    return MalformedInputError(f"{what}: {text}")


def _check_size(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("key data must be bytes")
    data = bytes(data)
    if len(data) > _MAX_KEY:
        raise MalformedInputError(f"a key file of {len(data)} bytes is too large")
    if not data.strip():
        raise MalformedInputError(f"empty key file (expected {_FORMATS})")
    return data


def _openssh_public(line: bytes) -> Any:
    kind = line.split()[0].decode("ascii", "replace")
    if line.startswith(b"sk-"):
        raise UnsupportedAlgorithmError(
            f"OpenSSH key: {kind} (security-key) keys are not supported"
        )
    try:
        return serialization.load_ssh_public_key(line.split(b"\n")[0].strip())
    except _PARSE_ERRORS as exc:
        if isinstance(exc, UnsupportedAlgorithm) or "not supported" in str(exc).lower():
            raise UnsupportedAlgorithmError(f"OpenSSH key: {kind} is not supported") from None
        raise MalformedInputError(f"OpenSSH key: not a valid {kind} public key: {exc}") from None


def _any_public(data: bytes, *, raw: Callable[[bytes], Any]) -> Any:
    data = _check_size(data)
    stripped = data.strip()
    label = _pem_label(data)
    try:
        # Raw keys first: no PEM, DER, OpenSSH or COSE key is 32 or 64 bytes long, nor text
        # of hex or base64 digits only, so this never shadows another encoding.
        key = raw(data)
        if key is not None:
            return key
        if label is not None:
            if b"PRIVATE KEY" in label:
                # A private key file where a public key is taken: use its public half;
                # never ask for a passphrase for that (the caller gave a public-key option).
                return _any_private(data, None, raw=raw).public_key()
            if label == b"CERTIFICATE":
                from cryptography import x509

                return x509.load_pem_x509_certificate(data).public_key()
            return serialization.load_pem_public_key(data)
        if stripped.startswith(_OPENSSH_PUBLIC):
            return _openssh_public(stripped)
        if data[:1] == b"\x30":
            try:
                return serialization.load_der_public_key(data)
            except _PARSE_ERRORS as first:
                try:
                    return _any_private(data, None, raw=raw).public_key()
                except MalformedInputError:
                    raise first from None
        if 0xA0 <= data[0] <= 0xBF:
            from trustedge.cose import decode_key  # COSE only when the key is one: 25 ms

            cose_key = decode_key(data)
            if isinstance(cose_key, bytes):
                raise MalformedInputError("COSE_Key: a symmetric key is not a public key")
            if isinstance(
                cose_key,
                (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
            ):
                return cose_key.public_key()
            return cose_key
    except _PARSE_ERRORS as exc:
        raise _translate(exc, "not a public key") from None
    raise MalformedInputError(f"not a public key (expected {_FORMATS})")


def _any_private(data: bytes, password: Password, *, raw: Callable[[bytes], Any]) -> Any:
    data = _check_size(data)
    stripped = data.strip()
    label = _pem_label(data)
    if stripped.startswith(_OPENSSH_PUBLIC):
        kind = stripped.split()[0].decode("ascii", "replace")
        raise MalformedInputError(
            f"OpenSSH key: this is a {kind} public key; give the private key file "
            "(the one without .pub)"
        )
    if label is not None and b"PRIVATE KEY" not in label:
        raise MalformedInputError(
            f"PEM {label.decode('ascii')}: this is not a private key (expected PRIVATE KEY)"
        )
    try:
        key = raw(data)
        if key is not None:
            return key
        if label == b"OPENSSH PRIVATE KEY":
            return _with_password(
                lambda pw: serialization.load_ssh_private_key(data, password=pw), password
            )
        if label is not None:
            return _with_password(
                lambda pw: serialization.load_pem_private_key(data, password=pw), password
            )
        if data[:1] == b"\x30":
            return _with_password(
                lambda pw: serialization.load_der_private_key(data, password=pw), password
            )
        if 0xA0 <= data[0] <= 0xBF:
            from trustedge.cose import decode_key

            key = decode_key(data)
            if not hasattr(key, "private_bytes"):
                raise MalformedInputError("COSE_Key: no private part (d)")
            return key
    except _PARSE_ERRORS as exc:
        raise _translate(exc, "not a private key") from None
    raise MalformedInputError(f"not a private key (expected {_FORMATS})")


def _is_encrypted_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, TypeError) and "encrypted" in text and "password" in text


def _with_password(load: Callable[[bytes | None], Any], password: Password) -> Any:
    """``load(None)``; when the key turns out to be encrypted, ``load(passphrase)``."""
    try:
        return load(None)
    except TypeError as exc:
        if not _is_encrypted_error(exc):
            raise
    pw = password() if callable(password) else password
    if pw is None:
        raise MalformedInputError("the key is encrypted and no passphrase was given")
    return load(bytes(pw))


# -- raw keys -------------------------------------------------------------------------------


def _raw_bytes(data: bytes, sizes: tuple[int, ...]) -> bytes | None:
    """``data`` as raw key bytes of one of ``sizes``: binary, hex or base64 text."""
    # Text first: a 64-byte binary key made only of hex digits is vanishingly unlikely,
    # a 64-character hex key (32 bytes) with or without a newline is common.
    text = data.strip()
    if _HEX.fullmatch(text) and len(text) % 2 == 0 and len(text) // 2 in sizes:
        return bytes.fromhex(text.decode("ascii"))
    if _B64.fullmatch(text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                out = decode(text + b"=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                continue
            if len(out) in sizes:
                return out
    if len(data) in sizes:
        return data
    return None


def _raw_ed25519_public(data: bytes) -> ed25519.Ed25519PublicKey | None:
    raw = _raw_bytes(data, (32,))
    return None if raw is None else ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _raw_ed25519_private(data: bytes) -> ed25519.Ed25519PrivateKey | None:
    raw = _raw_bytes(data, (32, 64))
    if raw is None:
        return None
    key = ed25519.Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64:
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if public != raw[32:]:
            raise MalformedInputError("libsodium secret key: the public half does not match")
    return key


def _raw_x25519_public(data: bytes) -> x25519.X25519PublicKey | None:
    raw = _raw_bytes(data, (32,))
    return None if raw is None else x25519.X25519PublicKey.from_public_bytes(raw)


def _raw_x25519_private(data: bytes) -> x25519.X25519PrivateKey | None:
    raw = _raw_bytes(data, (32,))
    return None if raw is None else x25519.X25519PrivateKey.from_private_bytes(raw)
