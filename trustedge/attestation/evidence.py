"""The evidence bundle a device sends to its verifier.

One deterministic-CBOR map (RFC 8949 §4.2.1) holding everything one
appraisal needs: the TPM quote (TPMS_ATTEST bytes) and its signature
(TPMT_SIGNATURE), the AK public area (TPM2B_PUBLIC) with an optional AK
certificate or enrollment reference, the PCR values per bank, the firmware
event log, the IMA entries appended since ``ima_offset``, the device's
identity and the verifier's nonce.

**Nothing in an :class:`UnverifiedEvidence` is verified** (the name says so;
``Evidence`` is the same class under its earlier name). Decoding only checks the
shape: types, sizes, PCR digest lengths per bank, no unknown keys, and that
the bytes are the deterministic encoding (so every bundle has exactly one
encoding and re-encodes to the same bytes). The appraisal verifies the
content.

CDDL (also in ``docs/attest-fleet.md``)::

    evidence = {
      0 => 1,                          ; format version
      1 => tstr .size (1..256),        ; device-id
      2 => bstr .size (16..64),        ; nonce (the quote's extraData)
      3 => bstr .size (1..4096),       ; quote: TPMS_ATTEST
      4 => bstr .size (1..4096),       ; signature: TPMT_SIGNATURE
      5 => bstr .size (1..4096),       ; ak-public: TPM2B_PUBLIC
      ? 6 => bstr .size (1..65536),    ; ak-certificate (DER)
      ? 7 => tstr .size (1..256),      ; enrollment-ref
      8 => { + tpm-alg-id => { + pcr-index => bstr } },  ; PCR values
      ? 9 => bstr,                     ; firmware event log (binary_bios_measurements)
      ? 10 => bstr,                    ; IMA entries since ima-offset (binary or ASCII list)
      11 => uint,                      ; ima-offset: entries the verifier has already seen
      ? 12 => bstr,                    ; model-load log (trustedge.attestation.modellog)
      ? 13 => bstr .size (1..4096),    ; model-certify: TPMS_ATTEST of TPM2_NV_Certify
      ? 14 => bstr .size (1..4096),    ; model-certify-signature: TPMT_SIGNATURE
    }
    tpm-alg-id = 4 / 11 / 12 / 13 / 18    ; sha1, sha256, sha384, sha512, sm3_256
    pcr-index = 0..23
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from trustedge._cbor import DecodeLimits, decode, encode
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.hazmat.tpm2.constants import HASH_ALGS

__all__ = [
    "BANK_ALGORITHMS",
    "EVIDENCE_MEDIA_TYPE",
    "EVIDENCE_VERSION",
    "MAX_LOG_BYTES",
    "Evidence",
    "UnverifiedEvidence",
]

EVIDENCE_VERSION: Final = 1
EVIDENCE_MEDIA_TYPE: Final = "application/vnd.trustedge.evidence+cbor"

#: TPM_ALG_ID -> (bank name, digest size).
BANK_ALGORITHMS: Final = MappingProxyType({h.alg.value: (h.name, h.digest_size) for h in HASH_ALGS})
_BANK_IDS: Final = {name: alg for alg, (name, _) in BANK_ALGORITHMS.items()}

MAX_LOG_BYTES: Final = 16 * 1024 * 1024
MAX_TPM_BLOB: Final = 4096
MAX_CERT: Final = 65536
MAX_ID: Final = 256
_LIMITS: Final = DecodeLimits(max_size=3 * MAX_LOG_BYTES + 1024 * 1024, max_depth=4, max_items=1024)

_VERSION, _DEVICE, _NONCE, _QUOTE, _SIG, _AK = 0, 1, 2, 3, 4, 5
_AK_CERT, _ENROLL_REF, _PCRS, _EVENT_LOG, _IMA_LOG, _IMA_OFFSET = 6, 7, 8, 9, 10, 11
_MODEL_LOG, _MODEL_CERTIFY, _MODEL_CERTIFY_SIG = 12, 13, 14
_KNOWN: Final = frozenset(range(15))


def _blob(value: object, what: str, low: int, high: int) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise MalformedInputError(f"{what} must be a byte string")
    if not low <= len(value) <= high:
        if len(value) > high:
            raise LimitExceededError(f"{what} of {len(value)} bytes exceeds {high}")
        raise MalformedInputError(f"{what} must be at least {low} bytes")
    return bytes(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedInputError(f"{what} must be text")
    if not value or len(value.encode("utf-8", "surrogatepass")) > MAX_ID:
        raise MalformedInputError(f"{what} must be 1 to {MAX_ID} bytes")
    if not value.isprintable():
        raise MalformedInputError(f"{what} must be printable")
    return value


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise MalformedInputError(f"{what} must be an unsigned 32-bit integer")
    return value


def _pcrs(value: object) -> dict[int, Mapping[int, bytes]]:
    if not isinstance(value, Mapping) or not value:
        raise MalformedInputError("pcrs must be a non-empty map of banks")
    banks: dict[int, Mapping[int, bytes]] = {}
    for alg, values in value.items():
        if isinstance(alg, bool) or alg not in BANK_ALGORITHMS:
            raise MalformedInputError(f"unknown PCR bank algorithm {alg!r}")
        name, size = BANK_ALGORITHMS[alg]
        if not isinstance(values, Mapping) or not values:
            raise MalformedInputError(f"PCR bank {name} must be a non-empty map")
        bank: dict[int, bytes] = {}
        for index, digest in values.items():
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 23:
                raise MalformedInputError(f"PCR index {index!r} out of range in bank {name}")
            if not isinstance(digest, bytes) or len(digest) != size:
                raise MalformedInputError(f"PCR {name}:{index} must be a {size}-byte digest")
            bank[index] = digest
        banks[alg] = MappingProxyType(dict(sorted(bank.items())))
    return dict(sorted(banks.items()))


@dataclass(frozen=True)
class UnverifiedEvidence:
    """An *unverified* evidence bundle (see the module docstring for the format).

    Parsed or built, never appraised: only :func:`trustedge.attestation.appraise`
    (and the recipes over it) turn it into a decision.

    ``pcrs`` maps a TPM_ALG_ID (``0x000B`` for SHA-256) to ``{index: value}``;
    :meth:`bank` looks a bank up by name. Construction checks the same shape
    rules as decoding and raises ``MalformedInputError`` /
    ``LimitExceededError`` when they fail.
    """

    device_id: str
    nonce: bytes
    quote: bytes
    signature: bytes
    ak_public: bytes
    pcrs: Mapping[int, Mapping[int, bytes]]
    ak_certificate: bytes | None = None
    enrollment_ref: str | None = None
    event_log: bytes | None = None
    ima_log: bytes | None = None
    ima_offset: int = 0
    model_log: bytes | None = None
    model_certify: bytes | None = None
    model_certify_signature: bytes | None = None

    def __post_init__(self) -> None:
        _text(self.device_id, "device-id")
        _blob(self.nonce, "nonce", 16, 64)
        _blob(self.quote, "quote", 1, MAX_TPM_BLOB)
        _blob(self.signature, "signature", 1, MAX_TPM_BLOB)
        _blob(self.ak_public, "ak-public", 1, MAX_TPM_BLOB)
        if self.ak_certificate is not None:
            _blob(self.ak_certificate, "ak-certificate", 1, MAX_CERT)
        if self.enrollment_ref is not None:
            _text(self.enrollment_ref, "enrollment-ref")
        if self.event_log is not None:
            _blob(self.event_log, "event log", 0, MAX_LOG_BYTES)
        if self.ima_log is not None:
            _blob(self.ima_log, "IMA log", 0, MAX_LOG_BYTES)
        _uint(self.ima_offset, "ima-offset")
        if self.model_log is not None:
            _blob(self.model_log, "model log", 0, MAX_LOG_BYTES)
        for value, what in (
            (self.model_certify, "model-certify"),
            (self.model_certify_signature, "model-certify-signature"),
        ):
            if value is not None:
                _blob(value, what, 1, MAX_TPM_BLOB)
        object.__setattr__(self, "pcrs", MappingProxyType(_pcrs(dict(self.pcrs))))

    def bank(self, name: str) -> Mapping[int, bytes]:
        """PCR values of the bank called ``name`` (``"sha256"``); ``KeyError`` if absent."""
        return self.pcrs[_BANK_IDS[name]]

    def encode(self) -> bytes:
        """The deterministic-CBOR encoding (the only valid one)."""
        obj: dict[int, Any] = {
            _VERSION: EVIDENCE_VERSION,
            _DEVICE: self.device_id,
            _NONCE: self.nonce,
            _QUOTE: self.quote,
            _SIG: self.signature,
            _AK: self.ak_public,
            _PCRS: {alg: dict(values) for alg, values in self.pcrs.items()},
            _IMA_OFFSET: self.ima_offset,
        }
        for key, value in (
            (_AK_CERT, self.ak_certificate),
            (_ENROLL_REF, self.enrollment_ref),
            (_EVENT_LOG, self.event_log),
            (_IMA_LOG, self.ima_log),
            (_MODEL_LOG, self.model_log),
            (_MODEL_CERTIFY, self.model_certify),
            (_MODEL_CERTIFY_SIG, self.model_certify_signature),
        ):
            if value is not None:
                obj[key] = value
        return encode(obj)

    @classmethod
    def decode(cls, data: bytes) -> UnverifiedEvidence:
        """Parse an evidence bundle from untrusted bytes.

        Rejects (``MalformedInputError``; ``LimitExceededError`` for sizes)
        anything but the deterministic encoding of a version-1 map with only
        the known keys and well-formed values. Verifies nothing else.
        """
        obj = decode(data, limits=_LIMITS, canonical=True)
        if not isinstance(obj, dict):
            raise MalformedInputError("evidence must be a CBOR map")
        unknown = [k for k in obj if k not in _KNOWN or isinstance(k, bool)]
        if unknown:
            raise MalformedInputError(f"unknown evidence field(s) {unknown!r}")
        missing = [
            k
            for k in (_VERSION, _DEVICE, _NONCE, _QUOTE, _SIG, _AK, _PCRS, _IMA_OFFSET)
            if k not in obj
        ]
        if missing:
            raise MalformedInputError(f"evidence lacks field(s) {missing!r}")
        version = obj[_VERSION]
        if version != EVIDENCE_VERSION or isinstance(version, bool):
            raise MalformedInputError(f"unsupported evidence version {version!r}")
        return cls(
            device_id=_text(obj[_DEVICE], "device-id"),
            nonce=_blob(obj[_NONCE], "nonce", 16, 64),
            quote=_blob(obj[_QUOTE], "quote", 1, MAX_TPM_BLOB),
            signature=_blob(obj[_SIG], "signature", 1, MAX_TPM_BLOB),
            ak_public=_blob(obj[_AK], "ak-public", 1, MAX_TPM_BLOB),
            pcrs=_pcrs(obj[_PCRS]),
            ak_certificate=obj.get(_AK_CERT),
            enrollment_ref=obj.get(_ENROLL_REF),
            event_log=obj.get(_EVENT_LOG),
            ima_log=obj.get(_IMA_LOG),
            ima_offset=_uint(obj[_IMA_OFFSET], "ima-offset"),
            model_log=obj.get(_MODEL_LOG),
            model_certify=obj.get(_MODEL_CERTIFY),
            model_certify_signature=obj.get(_MODEL_CERTIFY_SIG),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON view for people and logs: hex for TPM structures and digests,
        base64 for certificates and logs, bank names instead of algorithm ids."""

        def b64(data: bytes | None) -> str | None:
            return None if data is None else base64.b64encode(data).decode("ascii")

        return {
            "version": EVIDENCE_VERSION,
            "device_id": self.device_id,
            "nonce": self.nonce.hex(),
            "quote": self.quote.hex(),
            "signature": self.signature.hex(),
            "ak_public": self.ak_public.hex(),
            "ak_certificate": b64(self.ak_certificate),
            "enrollment_ref": self.enrollment_ref,
            "pcrs": {
                BANK_ALGORITHMS[alg][0]: {str(i): v.hex() for i, v in values.items()}
                for alg, values in self.pcrs.items()
            },
            "event_log": b64(self.event_log),
            "ima_log": b64(self.ima_log),
            "ima_offset": self.ima_offset,
            "model_log": b64(self.model_log),
            "model_certify": None if self.model_certify is None else self.model_certify.hex(),
            "model_certify_signature": None
            if self.model_certify_signature is None
            else self.model_certify_signature.hex(),
        }


#: The earlier name of :class:`UnverifiedEvidence` (the same class).
Evidence = UnverifiedEvidence
