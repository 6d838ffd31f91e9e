"""Signing and verifying ML models as OpenSSF Model Signing (OMS) v1.0 bundles.

A bundle is a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``)
holding a DSSE envelope over an in-toto statement with the model-signing
predicate: one resource per file (``files``) or per byte range of a file
(``shards``, named ``path:start:end``), and one subject whose SHA-256 digest
covers all resource digests -- :attr:`VerifiedModel.digest`, "the signed
digest of the model". Bundles interoperate with sigstore's ``model_signing``
(``model_signing verify key`` accepts what :func:`sign_model` writes, and the
reverse).

* :func:`sign_model` hashes a model directory (in parallel, C path for
  SHA-256) and signs it with an ECDSA (P-256/384/521) or Ed25519 key,
  optionally with a certificate chain; fully offline.
* :func:`verify_bundle` checks a bundle's signature only (no I/O) and gives a
  :class:`VerifiedStatement`; :func:`verify_model` also hashes the directory
  and gives a :class:`VerifiedModel`.
* :func:`open_verified` opens one file of a verified model for reading so
  that only bytes whose shard (or leaf) was just checked against the signed
  digest are ever returned.

Every parse of untrusted bytes goes through :mod:`trustedge.models._bundle`;
failures raise :mod:`trustedge.errors` exceptions.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import hashing
from trustedge.errors import (
    KeyNotFoundError,
    MalformedInputError,
    SignatureError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from trustedge.models._bundle import (
    BUNDLE_MEDIA_TYPE,
    HASH_TYPES,
    MAX_BUNDLE_BYTES,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    CertificateChainMaterial,
    PublicKeyMaterial,
    Resource,
    Serialization,
    SigstoreMaterial,
    UnverifiedBundle,
    UnverifiedStatement,
    build_bundle,
    build_statement,
    dsse_pae,
    parse_bundle,
    parse_statement,
    shard_algorithm,
)
from trustedge.models._hash import FileDigests, HashCache, hash_model_files, shard_bounds
from trustedge.models._reader import VerifiedReader, open_verified
from trustedge.models._walk import DEFAULT_IGNORE_PATHS, ModelFileEntry, list_model_files

if TYPE_CHECKING:
    # cryptography.x509 costs ~80 ms to import: loaded only for certificates.
    from cryptography import x509

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "DEFAULT_IGNORE_PATHS",
    "HASH_TYPES",
    "MAX_BUNDLE_BYTES",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "HashCache",
    "Serialization",
    "SignerInfo",
    "UnverifiedBundle",
    "UnverifiedStatement",
    "VerifiedFile",
    "VerifiedModel",
    "VerifiedReader",
    "VerifiedStatement",
    "default_signature_path",
    "dsse_pae",
    "key_hint",
    "open_verified",
    "parse_bundle",
    "parse_statement",
    "sign_model",
    "verify_bundle",
    "verify_model",
]

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_EC_CURVES: Final = ("secp256r1", "secp384r1", "secp521r1")


def _ec_hash(curve: str) -> hashes.HashAlgorithm:
    # The hash that goes with each curve (sigstore's key details; model_signing).
    if curve == "secp256r1":
        return hashes.SHA256()
    if curve == "secp384r1":
        return hashes.SHA384()
    return hashes.SHA512()


def key_hint(public_key: VerifyingKey) -> str:
    """The OMS key hint: lowercase hex SHA-256 of the key's PEM
    SubjectPublicKeyInfo (what ``model_signing`` writes and checks)."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _fingerprint(public_key: VerifyingKey) -> bytes:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def _check_key(key: object) -> None:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in _EC_CURVES:
            raise UnsupportedAlgorithmError(f"curve {key.curve.name} is not supported by OMS")
        return
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return
    raise UnsupportedAlgorithmError(
        f"{type(key).__name__} keys are not supported (ECDSA P-256/384/521 or Ed25519)"
    )


def _sign(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_ec_hash(key.curve.name)))
    return key.sign(data)


def _verify_sig(key: VerifyingKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_ec_hash(key.curve.name)))
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """``DIR.sig`` beside the model directory (or file)."""
    p = Path(os.path.abspath(model))
    return p.with_name(p.name + ".sig")


def _relative_inside(model: Path, path: str | os.PathLike[str] | None) -> list[str]:
    if path is None:
        return []
    try:
        rel = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(model)))
    except ValueError:
        return []
    return [rel.as_posix()] if rel.parts else []


# --------------------------------------------------------------------------- signing


def _resources(serialization: Serialization, digests: Sequence[FileDigests]) -> list[Resource]:
    out = []
    for f in digests:
        for start, end, digest in f.units:
            if serialization.method == "files":
                out.append(Resource(f.name, None, None, serialization.hash_type, digest))
            else:
                assert serialization.shard_size is not None
                algorithm = shard_algorithm(serialization.hash_type, serialization.shard_size)
                out.append(Resource(f.name, start, end, algorithm, digest))
    return out


def sign_model(
    model: str | os.PathLike[str],
    private_key: SigningKey,
    *,
    certificate_chain: Sequence[x509.Certificate] = (),
    ignore_paths: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    threads: int | None = None,
    progress: hashing.ProgressCallback | None = None,
    cancel: hashing.CancelFlag | None = None,
    cache: HashCache | None = None,
) -> bytes:
    """Hash ``model`` (a directory or one file) and sign it; returns the OMS
    bundle (JSON bytes) to store as ``DIR.sig``.

    ``private_key`` is an ECDSA (P-256/384/521) or Ed25519 key; with
    ``certificate_chain`` (the signing certificate first, then intermediates)
    the bundle uses the OMS certificate method, else the key method (a hint
    of the public key). ``ignore_paths`` are model-relative paths left out
    (``.git`` and friends always are, and ``signature_path`` when it lies
    inside the model); they are recorded in the statement. ``shard_size``
    selects the ``shards`` serialization (needed for fine-grained
    :func:`open_verified`), else ``files``. ``cache`` (a :class:`HashCache`)
    skips unchanged files. Raises :class:`UnsupportedAlgorithmError` for an
    unsupported key or hash, :class:`MalformedInputError` for a model with a
    symlink, special file or no file, ``OSError`` if a file cannot be read.
    """
    _check_key(private_key)
    if hash_type not in HASH_TYPES:
        raise UnsupportedAlgorithmError(f"hash type {hash_type!r} is not supported")
    if shard_size is not None and (type(shard_size) is not int or shard_size < 1):
        raise ValueError("shard_size must be a positive integer")
    root = Path(model)
    ignored = sorted({*ignore_paths, *_relative_inside(root, signature_path)})
    entries = list_model_files(root, ignored)
    digests = hash_model_files(
        entries,
        hash_type=hash_type,
        shard_size=shard_size,
        threads=threads,
        progress=progress,
        cancel=cancel,
        cache=cache,
    )
    if cache is not None:
        cache.save()
    ser = Serialization(
        method="files" if shard_size is None else "shards",
        hash_type=hash_type,
        shard_size=shard_size,
        allow_symlinks=False,
        ignore_paths=tuple(sorted({*DEFAULT_IGNORE_PATHS, *ignored})),
    )
    name = Path(os.path.abspath(root)).name or "model"
    payload = build_statement(name, ser, _resources(ser, digests))
    signature = _sign(private_key, dsse_pae(PAYLOAD_TYPE, payload))
    if certificate_chain:
        leaf_key = certificate_chain[0].public_key()
        if _fingerprint(leaf_key) != _fingerprint(private_key.public_key()):  # type: ignore[arg-type]
            raise ValueError("the signing certificate is not for this private key")
        return build_bundle(
            payload,
            signature,
            certificates=[c.public_bytes(serialization.Encoding.DER) for c in certificate_chain],
        )
    return build_bundle(payload, signature, key_hint=key_hint(private_key.public_key()))


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class SignerInfo:
    """Who signed: the OMS method, the SHA-256 fingerprint of the signing
    key's DER SubjectPublicKeyInfo and, for certificates, the verified chain
    (DER, leaf first)."""

    method: str
    key_fingerprint: bytes
    chain: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"method": self.method, "key_sha256": self.key_fingerprint.hex()}
        if self.chain:
            from cryptography import x509

            leaf = x509.load_der_x509_certificate(self.chain[0])
            out["subject"] = leaf.subject.rfc4514_string()
            out["issuer"] = leaf.issuer.rfc4514_string()
        return out


@dataclass(frozen=True)
class VerifiedStatement:
    """An OMS statement whose bundle signature verified (the model's bytes
    are not checked yet: see :func:`verify_model`).

    ``digest`` is the subject's SHA-256 root digest over all resources: the
    signed digest of the model. ``payload`` are the exact signed bytes.
    """

    name: str
    digest: bytes
    serialization: Serialization
    resources: tuple[Resource, ...]
    signer: SignerInfo
    payload: bytes

    def expected_files(self) -> dict[str, list[tuple[int, int, bytes]]]:
        """Resource digests grouped per file path, units sorted by offset
        (``files``: one unit ``(0, -1, digest)`` whose end is not known)."""
        out: dict[str, list[tuple[int, int, bytes]]] = {}
        for r in self.resources:
            unit = (0, -1, r.digest) if r.start is None else (r.start, r.end or 0, r.digest)
            out.setdefault(r.path, []).append(unit)
        for units in out.values():
            units.sort()
        return out


def _verify_chain(
    material: CertificateChainMaterial,
    trusted: Sequence[x509.Certificate],
    now: datetime.datetime,
) -> tuple[VerifyingKey, tuple[bytes, ...]]:
    from cryptography import x509
    from cryptography.x509 import verification as x509_verification
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        certs = [x509.load_der_x509_certificate(c) for c in material.certificates]
    except ValueError as exc:
        raise MalformedInputError(f"bundle certificate is not DER X.509: {exc}") from None
    leaf = certs[0]
    builder = (
        x509_verification.PolicyBuilder()
        .store(x509_verification.Store(list(trusted)))
        .time(now)
        .extension_policies(
            ca_policy=x509_verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=x509_verification.ExtensionPolicy.permit_all(),
        )
    )
    try:
        verified = builder.build_client_verifier().verify(leaf, certs[1:])
    except x509_verification.VerificationError as exc:
        raise SignatureError(f"certificate chain does not verify: {exc}") from None
    # Like model_signing: the leaf must allow digital signatures (KeyUsage)
    # or code signing (ExtendedKeyUsage); an EKU without code signing refuses.
    try:
        ku: x509.KeyUsage | None = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    try:
        eku: x509.ExtendedKeyUsage | None = leaf.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage
        ).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SignatureError("the signing certificate's extended key usage excludes code signing")
    if (ku is None or not ku.digital_signature) and eku is None:
        raise SignatureError("the signing certificate does not allow digital signatures")
    key = leaf.public_key()
    _check_key(key)
    chain = tuple(c.public_bytes(serialization.Encoding.DER) for c in verified.chain)
    return key, chain  # type: ignore[return-value]


def verify_bundle(
    bundle: bytes,
    *,
    public_key: VerifyingKey | None = None,
    trusted_certificates: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
) -> VerifiedStatement:
    """Check an OMS bundle's signature and return its statement (no I/O).

    Give ``public_key`` for the key method, or ``trusted_certificates`` (root
    CA certificates) for the certificate method, verified at ``now`` (default:
    the current time). A bundle of the Sigstore keyless method (Fulcio
    certificate plus Rekor entries) is refused here with
    :class:`UnsupportedAlgorithmError`: it needs a Sigstore trusted root.
    Raises :class:`MalformedInputError` for a bundle or statement that does
    not parse, :class:`KeyNotFoundError` when the bundle names another key,
    :class:`SignatureError` when no signature verifies,
    :class:`UnsupportedAlgorithmError` for an unknown predicate or algorithm.
    """
    parsed = parse_bundle(bundle)
    pae = dsse_pae(parsed.payload_type, parsed.payload)
    material = parsed.material
    chain: tuple[bytes, ...] = ()
    if isinstance(material, PublicKeyMaterial):
        if public_key is None:
            raise KeyNotFoundError("a key-method bundle needs the signer's public key")
        _check_key(public_key)
        # Compared as bytes: compare_digest refuses non-ASCII str (fuzz finding).
        if material.hint is not None and not hmac.compare_digest(
            material.hint.encode("utf-8", "surrogatepass"), key_hint(public_key).encode()
        ):
            raise KeyNotFoundError("the bundle was signed by another key (key hint differs)")
        if material.raw_bytes is not None and not hmac.compare_digest(
            hashlib.sha256(material.raw_bytes).digest(), _fingerprint(public_key)
        ):
            raise KeyNotFoundError("the bundle was signed by another key (rawBytes differ)")
        key: VerifyingKey = public_key
    elif isinstance(material, CertificateChainMaterial):
        if not trusted_certificates:
            raise KeyNotFoundError("a certificate-method bundle needs trusted root certificates")
        when = now if now is not None else datetime.datetime.now(datetime.UTC)
        key, chain = _verify_chain(material, trusted_certificates, when)
    else:
        assert isinstance(material, SigstoreMaterial)
        raise UnsupportedAlgorithmError(
            "a Sigstore keyless bundle (Fulcio certificate + Rekor entries) needs a "
            "Sigstore trusted root; use trustedge.models.sigstore"
        )
    if not any(_verify_sig(key, sig, pae) for sig in parsed.signatures):
        raise SignatureError("the bundle's DSSE signature does not verify")
    statement = parse_statement(parsed.payload)
    return VerifiedStatement(
        name=statement.subject_name,
        digest=statement.subject_digest,
        serialization=statement.serialization,
        resources=statement.resources,
        signer=SignerInfo(parsed.method, _fingerprint(key), chain),
        payload=parsed.payload,
    )


@dataclass(frozen=True)
class VerifiedFile:
    """One file of a verified model: its OMS name, size and signed units
    ``(start, end, digest)`` (one unit for ``files``), all checked against the
    bytes on disk by :func:`verify_model`. Pass it to :func:`open_verified`."""

    name: str
    size: int
    hash_type: str
    units: tuple[tuple[int, int, bytes], ...]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "digests": [{"start": s, "end": e, self.hash_type: d.hex()} for s, e, d in self.units],
        }


@dataclass(frozen=True)
class VerifiedModel:
    """A model directory whose every file matched a verified bundle.

    ``digest`` is the signed root digest (OMS subject, SHA-256 over every
    resource digest): what a device records as "the model it loads".
    """

    statement: VerifiedStatement
    files: tuple[VerifiedFile, ...]
    path: Path = field(compare=False)

    @property
    def digest(self) -> bytes:
        return self.statement.digest

    @property
    def name(self) -> str:
        return self.statement.name

    def file(self, name: str) -> VerifiedFile:
        """The entry of ``name``; ``KeyError`` if the model has no such file."""
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    def open(self, name: str) -> VerifiedReader:
        """:func:`open_verified` on file ``name`` of this model."""
        f = self.file(name)
        target = self.path if self.path.is_file() else self.path / name
        return open_verified(target, f)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "digest": {"sha256": self.digest.hex()},
            "serialization": self.statement.serialization.to_json(),
            "signer": self.statement.signer.to_json(),
            "files": [f.to_json() for f in self.files],
        }


def check_model(
    model: str | os.PathLike[str],
    statement: VerifiedStatement,
    *,
    ignore_paths: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
    ignore_unsigned_files: bool = False,
    threads: int | None = None,
    progress: hashing.ProgressCallback | None = None,
    cancel: hashing.CancelFlag | None = None,
) -> VerifiedModel:
    """Hash ``model`` and check it against a verified statement (OMS §8.4):
    the same file set (a file added, removed or renamed fails, unless
    ``ignore_unsigned_files`` lets unlisted files be), the same shard
    boundaries and every digest. Raises :class:`VerificationError` naming
    the first differences (also for a symlink or special file in the
    model)."""
    root = Path(model)
    ser = statement.serialization
    ignored = {*ser.ignore_paths, *ignore_paths, *_relative_inside(root, signature_path)}
    try:
        entries = list_model_files(root, sorted(ignored))
    except MalformedInputError as exc:
        # A symlink, special file or odd name planted in a signed model: the
        # directory does not match what was signed.
        raise VerificationError(f"the model does not match its signature: {exc}") from exc
    expected = statement.expected_files()
    by_name = {e.name: e for e in entries}
    problems: list[str] = []
    missing = sorted(set(expected) - set(by_name))
    if missing:
        problems.append(f"missing file(s): {', '.join(missing[:5])}")
    extra = sorted(set(by_name) - set(expected))
    if ser.method == "shards":
        # OMS §6.3.2 lists no shard for an empty file: an empty file is part
        # of the model with no units (open_verified checks it is still empty).
        for n in extra:
            if by_name[n].st.st_size == 0:
                expected[n] = []
        extra = [n for n in extra if by_name[n].st.st_size > 0]
    if extra and not ignore_unsigned_files:
        problems.append(f"unsigned file(s): {', '.join(extra[:5])}")
    chosen = [by_name[n] for n in sorted(expected) if n in by_name]
    if ser.method == "shards":
        for e in chosen:
            want = [(s, t) for s, t, _ in expected[e.name]]
            if want != shard_bounds(e.st.st_size, ser.shard_size):
                problems.append(f"{e.name}: size or shard boundaries differ from the signature")
    if problems:
        raise VerificationError("; ".join(problems))
    got = hash_model_files(
        chosen,
        hash_type=ser.hash_type,
        shard_size=ser.shard_size,
        threads=threads,
        progress=progress,
        cancel=cancel,
    )
    files = []
    for e, digests in zip(chosen, got, strict=True):
        want_units = expected[e.name]
        if len(want_units) != len(digests.units) or not all(
            hmac.compare_digest(w[2], g[2]) for w, g in zip(want_units, digests.units, strict=True)
        ):
            problems.append(f"{e.name}: digest differs")
        files.append(VerifiedFile(e.name, digests.size, ser.hash_type, digests.units))
    if problems:
        raise VerificationError("; ".join(problems[:5]))
    return VerifiedModel(statement, tuple(files), root)


def verify_model(
    model: str | os.PathLike[str],
    bundle: bytes,
    *,
    public_key: VerifyingKey | None = None,
    trusted_certificates: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
    ignore_paths: Iterable[str] = (),
    signature_path: str | os.PathLike[str] | None = None,
    ignore_unsigned_files: bool = False,
    threads: int | None = None,
    progress: hashing.ProgressCallback | None = None,
    cancel: hashing.CancelFlag | None = None,
) -> VerifiedModel:
    """:func:`verify_bundle`, then :func:`check_model`: the bundle's signature
    and every file of ``model``. Returns the :class:`VerifiedModel` or raises
    (see both)."""
    statement = verify_bundle(
        bundle, public_key=public_key, trusted_certificates=trusted_certificates, now=now
    )
    return check_model(
        model,
        statement,
        ignore_paths=ignore_paths,
        signature_path=signature_path,
        ignore_unsigned_files=ignore_unsigned_files,
        threads=threads,
        progress=progress,
        cancel=cancel,
    )


# Re-exported for type annotations of callers.
_ = (ModelFileEntry, UnverifiedStatement)
