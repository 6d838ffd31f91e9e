"""OMS v1.0 bundles as bytes: a pure parser and builder, no I/O.

The layers, outside in: a Sigstore bundle (``application/vnd.dev.sigstore.
bundle.v0.3+json``) holds the verification material and a DSSE envelope; the
envelope's payload is an in-toto Statement v1 whose predicate
(``https://model_signing/signature/v1.0``) lists one resource per file or
shard. Everything here parses untrusted JSON: the input is capped, duplicate
keys, non-finite numbers and deep nesting are refused, every field has its
type checked, and unknown fields are refused wherever the OMS schemas say
``additionalProperties: false`` (resource descriptors may carry unknown
fields: the spec says verifiers ignore them). The only exceptions out are
:class:`MalformedInputError` (and its :class:`LimitExceededError`),
:class:`UnsupportedAlgorithmError` for a predicate or algorithm this code does
not do, and :class:`VerificationError` when the statement's root digest does
not match its resources.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    UnsupportedAlgorithmError,
    VerificationError,
)

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "HASH_TYPES",
    "MAX_BUNDLE_BYTES",
    "MAX_RESOURCES",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "CertificateChainMaterial",
    "PublicKeyMaterial",
    "Resource",
    "Serialization",
    "SigstoreMaterial",
    "UnverifiedBundle",
    "UnverifiedStatement",
    "build_bundle",
    "build_statement",
    "dsse_pae",
    "parse_bundle",
    "parse_statement",
    "resource_order",
    "root_digest",
    "shard_algorithm",
]

BUNDLE_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Older Sigstore bundle media types a verifier still meets (v0.1, v0.2).
_OLD_MEDIA_TYPES: Final = frozenset(
    {
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://model_signing/signature/v1.0"

#: Digest sizes of the OMS algorithm registry.
HASH_TYPES: Final = {"sha256": 32, "blake2b": 64, "blake3": 32}

#: Largest bundle accepted (a 100 GB model with 4 MiB leaves is about 2 MiB).
MAX_BUNDLE_BYTES: Final = 64 << 20
#: Most resources (files or shards) one statement may list.
MAX_RESOURCES: Final = 1_000_000
_MAX_SIGNATURES: Final = 16
_MAX_CERTS: Final = 10
_MAX_TLOG_ENTRIES: Final = 16
_MAX_NAME_BYTES: Final = 4096
_MAX_IGNORE: Final = 10_000
_SHARD_SUFFIX: Final = re.compile(r":(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,18})\Z")
_HEX: Final = re.compile(r"[0-9a-f]+\Z")


# --------------------------------------------------------------------------- JSON


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedInputError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _bad_constant(name: str) -> Any:
    raise MalformedInputError(f"JSON constant {name} is not allowed")


def _loads(data: bytes, what: str, limit: int) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes")
    if len(data) > limit:
        raise LimitExceededError(f"{what} is larger than {limit} bytes")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"{what} is not UTF-8", offset=exc.start) from None
    if text.startswith("\ufeff"):
        raise MalformedInputError(f"{what} starts with a byte-order mark")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant)
    except MalformedInputError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"{what} is not valid JSON: {exc}") from None


def _obj(
    value: Any, what: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedInputError(f"{what} must be a JSON object")
    missing = [k for k in required if k not in value]
    if missing:
        raise MalformedInputError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise MalformedInputError(f"{what} has unknown field(s) {', '.join(unknown)}")
    return value


def _str(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise MalformedInputError(f"{what} must be a {'' if allow_empty else 'non-empty '}string")
    return value


def _b64(value: Any, what: str, *, limit: int = MAX_BUNDLE_BYTES) -> bytes:
    text = _str(value, what)
    if len(text) > limit * 4 // 3 + 4:
        raise LimitExceededError(f"{what} is too long")
    try:
        # Sigstore clients emit standard base64; tolerate the URL-safe alphabet
        # (DSSE allows either) but nothing else.
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedInputError(f"{what} is not base64") from None


def _hexdigest(value: Any, what: str, size: int) -> bytes:
    text = _str(value, what)
    if len(text) != 2 * size or not _HEX.match(text):
        raise MalformedInputError(f"{what} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(text)


def _uint(value: Any, what: str) -> int:
    # protobuf's JSON mapping writes 64-bit integers as strings and
    # google.protobuf.Struct numbers as floats (model_signing writes
    # "shard_size": 1048576.0): accept an integral float below 2**53.
    if isinstance(value, bool):
        raise MalformedInputError(f"{what} must be an integer")
    if isinstance(value, float) and value.is_integer() and 0 <= value < 2**53:
        return int(value)
    if isinstance(value, str) and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, int) and 0 <= value < 2**63:
        return value
    raise MalformedInputError(f"{what} must be a non-negative integer")


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class PublicKeyMaterial:
    """``verificationMaterial.publicKey``: a key named by hint (the hex
    SHA-256 of its PEM SubjectPublicKeyInfo) or, in pre-v1.1 bundles, given
    as ``rawBytes`` (DER SubjectPublicKeyInfo). Neither is trusted: the
    verifier brings its own key."""

    hint: str | None
    raw_bytes: bytes | None


@dataclass(frozen=True)
class CertificateChainMaterial:
    """``verificationMaterial.x509CertificateChain``: DER certificates, the
    signing (leaf) certificate first."""

    certificates: tuple[bytes, ...]


@dataclass(frozen=True)
class SigstoreMaterial:
    """``verificationMaterial.certificate`` (one Fulcio certificate, DER) plus
    ``tlogEntries``: the keyless Sigstore method."""

    certificate: bytes


Material = PublicKeyMaterial | CertificateChainMaterial | SigstoreMaterial


@dataclass(frozen=True)
class UnverifiedBundle:
    """A parsed OMS bundle whose signature has NOT been checked.

    ``payload`` is the raw DSSE payload (the statement's JSON bytes);
    ``raw`` the bundle bytes as given (for a Sigstore library).
    """

    media_type: str
    material: Material
    tlog_entries: int
    has_timestamps: bool
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]
    raw: bytes

    @property
    def method(self) -> str:
        """``"key"``, ``"certificate"`` or ``"sigstore"`` (OMS §4.1)."""
        if isinstance(self.material, PublicKeyMaterial):
            return "key"
        if isinstance(self.material, CertificateChainMaterial):
            return "certificate"
        return "sigstore"


def parse_bundle(data: bytes) -> UnverifiedBundle:
    """Parse an OMS bundle (JSON bytes, at most :data:`MAX_BUNDLE_BYTES`).

    Checks structure only (OMS §8.1): media type, exactly one kind of
    verification material, a DSSE envelope with the in-toto payload type and
    1 to 16 signatures, at least one transparency-log entry for the Sigstore
    method. Raises :class:`MalformedInputError` otherwise.
    """
    doc = _obj(
        _loads(data, "bundle", MAX_BUNDLE_BYTES),
        "bundle",
        ("mediaType", "verificationMaterial", "dsseEnvelope"),
    )
    media_type = _str(doc["mediaType"], "bundle.mediaType")
    if media_type != BUNDLE_MEDIA_TYPE and media_type not in _OLD_MEDIA_TYPES:
        raise MalformedInputError(f"bundle mediaType {media_type!r} is not a Sigstore bundle")
    vm = _obj(
        doc["verificationMaterial"],
        "verificationMaterial",
        (),
        (
            "publicKey",
            "x509CertificateChain",
            "certificate",
            "tlogEntries",
            "timestampVerificationData",
        ),
    )
    kinds = [k for k in ("publicKey", "x509CertificateChain", "certificate") if k in vm]
    if len(kinds) != 1:
        raise MalformedInputError(
            "verificationMaterial must hold exactly one of publicKey, "
            "x509CertificateChain, certificate"
        )
    tlog = vm.get("tlogEntries", [])
    if not isinstance(tlog, list) or len(tlog) > _MAX_TLOG_ENTRIES:
        raise MalformedInputError(f"tlogEntries must be a list of at most {_MAX_TLOG_ENTRIES}")
    for i, entry in enumerate(tlog):
        _obj(
            entry,
            f"tlogEntries[{i}]",
            ("logIndex", "logId", "kindVersion", "integratedTime"),
            ("inclusionPromise", "inclusionProof", "canonicalizedBody"),
        )
    timestamps = vm.get("timestampVerificationData")
    if timestamps is not None and not isinstance(timestamps, dict):
        raise MalformedInputError("timestampVerificationData must be an object")
    material: Material
    if kinds[0] == "publicKey":
        pk = _obj(vm["publicKey"], "publicKey", (), ("hint", "rawBytes", "keyDetails"))
        hint = pk.get("hint")
        raw = pk.get("rawBytes")
        if hint is None and raw is None:
            raise MalformedInputError("publicKey needs a hint or rawBytes")
        if hint is not None:
            _str(hint, "publicKey.hint")
            if len(hint) > 256:
                raise LimitExceededError("publicKey.hint is too long")
        material = PublicKeyMaterial(
            hint, None if raw is None else _b64(raw, "publicKey.rawBytes", limit=16384)
        )
    elif kinds[0] == "x509CertificateChain":
        chain = _obj(vm["x509CertificateChain"], "x509CertificateChain", ("certificates",))
        certs = chain["certificates"]
        if not isinstance(certs, list) or not 1 <= len(certs) <= _MAX_CERTS:
            raise MalformedInputError(f"x509CertificateChain needs 1 to {_MAX_CERTS} certificates")
        material = CertificateChainMaterial(
            tuple(
                _b64(_obj(c, "certificate", ("rawBytes",))["rawBytes"], "rawBytes", limit=65536)
                for c in certs
            )
        )
    else:
        cert = _obj(vm["certificate"], "certificate", ("rawBytes",))
        material = SigstoreMaterial(_b64(cert["rawBytes"], "certificate.rawBytes", limit=65536))
        if not tlog:
            raise MalformedInputError("a Sigstore (certificate) bundle needs tlogEntries")
    env = _obj(doc["dsseEnvelope"], "dsseEnvelope", ("payload", "payloadType", "signatures"))
    payload_type = _str(env["payloadType"], "dsseEnvelope.payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise MalformedInputError(f"DSSE payloadType {payload_type!r} is not {PAYLOAD_TYPE}")
    payload = _b64(env["payload"], "dsseEnvelope.payload")
    sigs = env["signatures"]
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= _MAX_SIGNATURES:
        raise MalformedInputError(f"dsseEnvelope needs 1 to {_MAX_SIGNATURES} signatures")
    signatures = []
    for i, s in enumerate(sigs):
        s = _obj(s, f"signatures[{i}]", ("sig",), ("keyid",))
        if s.get("keyid") is not None and not isinstance(s["keyid"], str):
            raise MalformedInputError("signature keyid must be a string or null")
        signatures.append(_b64(s["sig"], f"signatures[{i}].sig", limit=1024))
    return UnverifiedBundle(
        media_type=media_type,
        material=material,
        tlog_entries=len(tlog),
        has_timestamps=timestamps is not None,
        payload_type=payload_type,
        payload=payload,
        signatures=tuple(signatures),
        raw=bytes(data),
    )


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes that are signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64s(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_bundle(
    payload: bytes,
    signature: bytes,
    *,
    key_hint: str | None = None,
    certificates: Sequence[bytes] = (),
) -> bytes:
    """Assemble a bundle (JSON bytes) for the key method (``key_hint``) or
    the certificate method (``certificates``, DER, leaf first)."""
    if (key_hint is None) == (not certificates):
        raise ValueError("give exactly one of key_hint or certificates")
    material: dict[str, Any]
    if key_hint is not None:
        material = {"publicKey": {"hint": key_hint}, "tlogEntries": []}
    else:
        material = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": _b64s(c)} for c in certificates]
            },
            "tlogEntries": [],
        }
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _b64s(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": _b64s(signature), "keyid": ""}],
        },
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- statement


@dataclass(frozen=True)
class Serialization:
    """``predicate.serialization``: how the model was cut and hashed."""

    method: str  # "files" or "shards"
    hash_type: str  # "sha256", "blake2b" or "blake3"
    shard_size: int | None
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "hash_type": self.hash_type}
        if self.shard_size is not None:
            out["shard_size"] = self.shard_size
        out["allow_symlinks"] = self.allow_symlinks
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out


@dataclass(frozen=True)
class Resource:
    """One ``predicate.resources`` entry: a file (``files``) or a byte range
    ``[start, end)`` of one (``shards``), with its digest."""

    path: str
    start: int | None
    end: int | None
    algorithm: str
    digest: bytes

    @property
    def name(self) -> str:
        """The OMS resource name: the path, or ``path:start:end`` for a shard."""
        if self.start is None:
            return self.path
        return f"{self.path}:{self.start}:{self.end}"


@dataclass(frozen=True)
class UnverifiedStatement:
    """A parsed OMS statement; trust it only once the bundle's signature
    over these bytes verified (see :mod:`trustedge.models`)."""

    subject_name: str
    subject_digest: bytes
    serialization: Serialization
    resources: tuple[Resource, ...]


def check_path(path: Any, what: str = "resource name") -> str:
    """A relative POSIX path as OMS §6.1.2 canonicalises it: no empty, ``.``
    or ``..`` component, no leading or trailing ``/``, no NUL, valid UTF-8,
    at most 4096 bytes. Raises :class:`MalformedInputError`."""
    if not isinstance(path, str) or not path:
        raise MalformedInputError(f"{what} must be a non-empty string")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise MalformedInputError(f"{what} is not valid UTF-8") from None
    if size > _MAX_NAME_BYTES:
        raise LimitExceededError(f"{what} is longer than {_MAX_NAME_BYTES} bytes")
    if "\x00" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise MalformedInputError(f"{what} {path!r} is not a normalised relative path")
    return path


def parse_statement(payload: bytes) -> UnverifiedStatement:
    """Parse and check an OMS v1.0 in-toto statement (OMS §5, §8.3).

    Raises :class:`UnsupportedAlgorithmError` for another predicate type,
    method or hash; :class:`MalformedInputError` for a statement that breaks
    the schema (exactly one subject, at least one resource, unique names,
    well-formed shard suffixes and digest sizes); :class:`VerificationError`
    when the subject's root digest is not the SHA-256 of the listed digests.
    """
    st = _obj(
        _loads(payload, "statement", MAX_BUNDLE_BYTES),
        "statement",
        ("_type", "subject", "predicateType", "predicate"),
    )
    if st["_type"] != STATEMENT_TYPE:
        raise MalformedInputError(f"statement _type must be {STATEMENT_TYPE}")
    ptype = _str(st["predicateType"], "predicateType")
    if ptype != PREDICATE_TYPE:
        raise UnsupportedAlgorithmError(
            f"predicateType {ptype[:200]!r} is not the OMS v1.0 predicate {PREDICATE_TYPE}"
        )
    subjects = st["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise MalformedInputError("statement must have exactly one subject")
    subject = _obj(subjects[0], "subject", ("name", "digest"), ("uri", "annotations"))
    name = _str(subject["name"], "subject.name")
    sdig = _obj(subject["digest"], "subject.digest", ("sha256",))
    subject_digest = _hexdigest(sdig["sha256"], "subject.digest.sha256", 32)
    pred = _obj(st["predicate"], "predicate", ("resources", "serialization"))
    ser = _obj(
        pred["serialization"],
        "serialization",
        ("method", "hash_type", "allow_symlinks"),
        ("shard_size", "ignore_paths"),
    )
    method = _str(ser["method"], "serialization.method")
    hash_type = _str(ser["hash_type"], "serialization.hash_type")
    if method not in ("files", "shards"):
        raise UnsupportedAlgorithmError(f"serialization method {method[:64]!r} is not supported")
    if hash_type not in HASH_TYPES:
        raise UnsupportedAlgorithmError(f"hash_type {hash_type[:64]!r} is not supported")
    if not isinstance(ser["allow_symlinks"], bool):
        raise MalformedInputError("serialization.allow_symlinks must be a boolean")
    shard_size: int | None = None
    if method == "shards":
        if "shard_size" not in ser:
            raise MalformedInputError("shards serialization needs shard_size")
        shard_size = _uint(ser["shard_size"], "serialization.shard_size")
        if shard_size < 1:
            raise MalformedInputError("serialization.shard_size must be positive")
    elif "shard_size" in ser:
        raise MalformedInputError("files serialization must not have shard_size")
    ignore = ser.get("ignore_paths", [])
    if not isinstance(ignore, list) or len(ignore) > _MAX_IGNORE:
        raise MalformedInputError("serialization.ignore_paths must be a list of strings")
    ignore_paths = tuple(_str(p, "ignore path") for p in ignore)
    serialization = Serialization(
        method, hash_type, shard_size, ser["allow_symlinks"], ignore_paths
    )

    items = pred["resources"]
    if not isinstance(items, list) or not items:
        raise MalformedInputError("predicate.resources must be a non-empty list")
    if len(items) > MAX_RESOURCES:
        raise LimitExceededError(f"more than {MAX_RESOURCES} resources")
    size = HASH_TYPES[hash_type]
    accepted = {hash_type}
    if shard_size is not None:
        # model_signing names shard digests "<hash>-sharded-<shard_size>".
        accepted.add(shard_algorithm(hash_type, shard_size))
    resources = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedInputError(f"resources[{i}] must be an object")
        for key in ("name", "algorithm", "digest"):
            if key not in item:
                raise MalformedInputError(f"resources[{i}] lacks {key}")
        rname = _str(item["name"], f"resources[{i}].name")
        algorithm = _str(item["algorithm"], f"resources[{i}].algorithm")
        if algorithm not in accepted:
            raise MalformedInputError(
                f"resources[{i}].algorithm {algorithm[:64]!r} does not match hash_type"
            )
        digest = _hexdigest(item["digest"], f"resources[{i}].digest", size)
        if rname in seen:
            raise MalformedInputError(f"resource {rname[:200]!r} is listed twice")
        seen.add(rname)
        start = end = None
        path = rname
        if method == "shards":
            m = _SHARD_SUFFIX.search(rname)
            if m is None:
                raise MalformedInputError(f"shard name {rname[:200]!r} lacks :start:end")
            path = rname[: m.start()]
            start, end = int(m.group(1)), int(m.group(2))
            assert shard_size is not None
            if start >= end or start % shard_size or end - start > shard_size:
                raise MalformedInputError(f"shard {rname[:200]!r} is not a shard of its size")
        check_path(path, f"resources[{i}].name")
        resources.append(Resource(path, start, end, algorithm, digest))
    if not hmac.compare_digest(root_digest(r.digest for r in resources), subject_digest):
        raise VerificationError(
            "statement is inconsistent: the subject digest is not the SHA-256 of the "
            "resource digests"
        )
    return UnverifiedStatement(name, subject_digest, serialization, tuple(resources))


def resource_order(resource: Resource) -> tuple[list[str], int, int]:
    """Sort key of a resource: its path's components, then start and end
    (how ``model_signing`` orders ``pathlib.PurePosixPath`` keys and shards)."""
    return resource.path.split("/"), resource.start or 0, resource.end or 0


def shard_algorithm(hash_type: str, shard_size: int) -> str:
    """The algorithm string ``model_signing`` 1.x writes and requires for a
    shard digest: ``"<hash_type>-sharded-<shard_size>"`` (the OMS v1.0 schema
    lists the bare hash name; :func:`parse_statement` accepts both)."""
    return f"{hash_type}-sharded-{shard_size}"


def root_digest(digests: Iterable[bytes]) -> bytes:
    """OMS §6.5.1: SHA-256 over the resource digests, concatenated in order."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.digest()


def build_statement(
    name: str,
    serialization: Serialization,
    resources: Sequence[Resource],
) -> bytes:
    """The statement's JSON bytes (the DSSE payload). ``resources`` are
    written in ``model_signing``'s order (path components compared one by one
    in code-point order, then shards by offset), so both tools give the same
    root digest for the same model; a verifier takes the listed order as is."""
    ordered = sorted(resources, key=resource_order)
    items = []
    for r in ordered:
        item: dict[str, Any] = {"name": r.name, "algorithm": r.algorithm, "digest": r.digest.hex()}
        items.append(item)
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": root_digest(r.digest for r in ordered).hex()}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"resources": items, "serialization": serialization.to_json()},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
