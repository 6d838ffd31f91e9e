"""Opaque blobs of :class:`~trustedge.attestation.backends.tpm2.Tpm2Backend`.

Pure Python (no libtss2): an AK blob (``AKHandle.blob``) and a sealed-secret
blob are deterministic CBOR maps with a version, parsed here from untrusted
bytes with size caps. Only :class:`~trustedge.errors.MalformedInputError`
(or its subclass ``LimitExceededError``) leaves a parser.

AK blob::

    {"v": 1, "kind": "ak", "ek": EKKind, "alg": AKAlgorithm,
     "public": TPM2B_PUBLIC, "private": TPM2B_PRIVATE}     # a key loaded under the EK
    {"v": 1, "kind": "ak", "ek": EKKind, "alg": AKAlgorithm,
     "public": TPM2B_PUBLIC, "handle": 0x81xxxxxx}          # a persisted key

Sealed blob::

    {"v": 1, "kind": "sealed", "public": TPM2B_PUBLIC, "private": TPM2B_PRIVATE,
     "pcrs": {bank: [index, ...]}, "auth": bool}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, get_args

from trustedge import _cbor
from trustedge._binary import Reader
from trustedge.errors import MalformedInputError
from trustedge.hazmat.tpm2.constants import HASH_ALGS
from trustedge.hazmat.tpmbackend import AKAlgorithm, EKKind

__all__ = [
    "AKBlob",
    "BANKS",
    "SealedBlob",
    "decode_ak_blob",
    "decode_sealed_blob",
    "encode_ak_blob",
    "encode_sealed_blob",
    "normalize_selection",
    "read_tpm2b",
]

_VERSION: Final = 1
_LIMITS: Final = _cbor.DecodeLimits(max_size=16 * 1024, max_depth=4, max_items=256)
#: TPM2B_PUBLIC / TPM2B_PRIVATE never come near this; it bounds hostile input.
_MAX_TPM2B: Final = 4096
#: Persistent object handles (TPM_HT_PERSISTENT).
PERSISTENT_FIRST: Final = 0x81000000
PERSISTENT_LAST: Final = 0x81FFFFFF

#: Bank names trustedge knows (``tpmbackend`` module docstring).
BANKS: Final = tuple(h.name for h in HASH_ALGS)
_EK_KINDS: Final = frozenset(get_args(EKKind))
_AK_ALGORITHMS: Final = frozenset(get_args(AKAlgorithm))
_PCR_COUNT: Final = 24


@dataclass(frozen=True)
class AKBlob:
    """A decoded AK blob: either ``private`` (load under the EK) or ``handle`` (persisted)."""

    ek_kind: EKKind
    algorithm: AKAlgorithm
    public: bytes
    private: bytes | None = None
    handle: int | None = None


@dataclass(frozen=True)
class SealedBlob:
    """A decoded sealed-secret blob."""

    public: bytes
    private: bytes
    pcrs: dict[str, tuple[int, ...]]
    auth: bool


def normalize_selection(selection: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """Check a PCR selection (known bank names, indices 0..23) and sort each bank's indices.

    Bank order is kept (it is the order the TPM quotes in). Raises ``ValueError``
    on misuse: unknown bank, index out of range, duplicate index, empty bank.
    """
    out: dict[str, tuple[int, ...]] = {}
    for bank, indices in selection.items():
        if bank not in BANKS:
            raise ValueError(f"unknown PCR bank {bank!r} (known: {', '.join(BANKS)})")
        idx = tuple(sorted(int(i) for i in indices))
        if not idx:
            raise ValueError(f"empty PCR selection for bank {bank!r}")
        if len(set(idx)) != len(idx):
            raise ValueError(f"duplicate PCR index in bank {bank!r}")
        if idx[0] < 0 or idx[-1] >= _PCR_COUNT:
            raise ValueError(f"PCR index out of range 0..{_PCR_COUNT - 1} in bank {bank!r}")
        out[bank] = idx
    return out


def read_tpm2b(data: bytes, what: str) -> bytes:
    """The body of a size-prefixed TPM2B structure; rejects short or trailing bytes."""
    reader = Reader(data, max_size=_MAX_TPM2B + 2)
    body = reader.bytes_u16be(what, max_len=_MAX_TPM2B)
    reader.expect_end(f"end of {what}")
    return body


def encode_ak_blob(blob: AKBlob) -> bytes:
    """Deterministic CBOR of an AK blob."""
    item: dict[str, Any] = {
        "v": _VERSION,
        "kind": "ak",
        "ek": blob.ek_kind,
        "alg": blob.algorithm,
        "public": blob.public,
    }
    if (blob.private is None) == (blob.handle is None):
        raise ValueError("an AK blob has exactly one of private and handle")
    if blob.private is not None:
        item["private"] = blob.private
    else:
        item["handle"] = blob.handle
    return _cbor.encode(item)


def encode_sealed_blob(blob: SealedBlob) -> bytes:
    """Deterministic CBOR of a sealed blob."""
    return _cbor.encode(
        {
            "v": _VERSION,
            "kind": "sealed",
            "public": blob.public,
            "private": blob.private,
            "pcrs": {bank: list(idx) for bank, idx in blob.pcrs.items()},
            "auth": blob.auth,
        }
    )


def encode_authorized_blob(public: bytes, private: bytes) -> bytes:
    """Deterministic CBOR of an object sealed to PolicyAuthorize."""
    return _cbor.encode(
        {"v": _VERSION, "kind": "sealed-authorized", "public": public, "private": private}
    )


def decode_authorized_blob(data: bytes) -> tuple[bytes, bytes]:
    """``(TPM2B_PUBLIC, TPM2B_PRIVATE)`` of an authorized-sealed blob (untrusted bytes)."""
    item = _map(data, "sealed-authorized", {"public", "private"})
    return _bytes(item, "public", "sealed"), _bytes(item, "private", "sealed")


def _map(data: bytes, kind: str, keys: set[str]) -> dict[str, Any]:
    item = _cbor.decode(data, limits=_LIMITS, canonical=True)
    if not isinstance(item, dict):
        raise MalformedInputError(f"{kind} blob is not a map")
    if item.get("v") != _VERSION or item.get("kind") != kind:
        raise MalformedInputError(f"not a version-{_VERSION} {kind} blob")
    unknown = set(item) - keys - {"v", "kind"}
    if unknown:
        raise MalformedInputError(f"unknown field(s) in {kind} blob: {sorted(map(str, unknown))}")
    return item


def _bytes(item: Mapping[str, Any], key: str, kind: str) -> bytes:
    value = item.get(key)
    if not isinstance(value, bytes) or not 0 < len(value) <= _MAX_TPM2B + 2:
        raise MalformedInputError(f"{kind} blob: {key!r} must be a non-empty byte string")
    return value


def decode_ak_blob(data: bytes) -> AKBlob:
    """Parse an AK blob from untrusted bytes; raises ``MalformedInputError``."""
    item = _map(data, "ak", {"ek", "alg", "public", "private", "handle"})
    ek: EKKind = item.get("ek")  # type: ignore[assignment]  # checked just below
    alg: AKAlgorithm = item.get("alg")  # type: ignore[assignment]
    if ek not in _EK_KINDS:
        raise MalformedInputError(f"ak blob: unknown EK kind {ek!r}")
    if alg not in _AK_ALGORITHMS:
        raise MalformedInputError(f"ak blob: unknown AK algorithm {alg!r}")
    public = _bytes(item, "public", "ak")
    if ("private" in item) == ("handle" in item):
        raise MalformedInputError("ak blob: needs exactly one of 'private' and 'handle'")
    if "private" in item:
        return AKBlob(ek, alg, public, private=_bytes(item, "private", "ak"))
    handle = item["handle"]
    if isinstance(handle, bool) or not isinstance(handle, int):
        raise MalformedInputError("ak blob: 'handle' must be an integer")
    if not PERSISTENT_FIRST <= handle <= PERSISTENT_LAST:
        raise MalformedInputError(f"ak blob: 0x{handle:x} is not a persistent handle")
    return AKBlob(ek, alg, public, handle=handle)


def decode_sealed_blob(data: bytes) -> SealedBlob:
    """Parse a sealed blob from untrusted bytes; raises ``MalformedInputError``."""
    item = _map(data, "sealed", {"public", "private", "pcrs", "auth"})
    pcrs = item.get("pcrs")
    auth = item.get("auth")
    if not isinstance(pcrs, dict) or not isinstance(auth, bool):
        raise MalformedInputError("sealed blob: 'pcrs' must be a map and 'auth' a boolean")
    checked: dict[str, list[int]] = {}
    for bank, indices in pcrs.items():
        if not isinstance(bank, str) or not isinstance(indices, list):
            raise MalformedInputError("sealed blob: PCR selection must map bank names to lists")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
            raise MalformedInputError("sealed blob: PCR indices must be integers")
        checked[bank] = indices
    try:
        selection = normalize_selection(checked)
    except ValueError as exc:
        raise MalformedInputError(f"sealed blob: {exc}") from exc
    return SealedBlob(
        public=_bytes(item, "public", "sealed"),
        private=_bytes(item, "private", "sealed"),
        pcrs=selection,
        auth=auth,
    )
