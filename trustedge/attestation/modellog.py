"""Which model a device runs: the model-load log, its NV extend index, and its appraisal.

Model identity is the OpenSSF Model Signing (OMS v1.0) bundle of
:mod:`trustedge.models`, the one model-signature format of trustedge: the
*signed model digest* is the bundle's in-toto subject digest (SHA-256 over
every resource digest, :attr:`trustedge.models.VerifiedStatement.digest`).

Device side (:class:`ModelAgent`): loading a model verifies its bundle with
a trusted key and every file against it (:func:`trustedge.models.check_model`),
appends a *model-load event* to the log, and extends the model's signed
digest into a TPM ``TPM_NT_EXTEND`` NV index -- a register no command resets
while the TPM runs (only a TPM Reset clears it, like a PCR, unlike the
resettable PCR 16/23). For evidence, the agent adds the log and a
``TPM2_NV_Certify`` of the index by the AK over the verifier's nonce
(:meth:`ModelAgent.attach`).

Verifier side (:func:`appraise_models`): the NV certification is checked
first (signature by the enrolled AK, TPM-generated, type ATTEST_NV, the
verifier's nonce, the expected index name, the same boot as the quote); only
the certified value is trusted. The log's entries are claims until their
replay (``v = SHA-256(v || digest)`` from 32 zero bytes) equals that value;
then each entry must be allowed by the :class:`ModelPolicy`: its digest is
listed, or it carries an OMS bundle that verifies with an allowed signer
(a public key, or a certificate chain to an allowed root) *and* whose subject
digest is exactly the measured digest. Names in the log are never verified
(they are reported as claims). docs/adr/0007-model-delivery-and-measurement.md
records the choices.

Log format (CBOR, deterministic; CDDL in ``docs/deliver-a-model.md``)::

    model-log = [* model-load-event]
    model-load-event = {
      0 => uint,                       ; recnum: 0, 1, 2, ... in order
      1 => uint,                       ; nv-index the digest was extended into
      2 => [[11, bstr .size 32]],      ; digests: TPM_ALG_SHA256 and the signed model digest
      3 => "trustedge.model-load/v1",  ; content-type
      4 => {                           ; content (claims, not extended)
        0 => tstr .size (1..256),      ;   name
        ? 1 => tstr,                   ;   signature format: the OMS bundle media type
        ? 2 => bstr,                   ;   the OMS bundle (the verifier re-checks it)
      },
    }
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import _cbor
from trustedge._fs import atomic_write
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.findings import Finding
from trustedge.attestation.quote import AttestationKey, QuotePolicy, QuoteState, _check_signature
from trustedge.cose import PublicKey
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    ReplayMismatchError,
    SignatureError,
    TrustedgeError,
    VerificationError,
)
from trustedge.hazmat.tpm2 import TPM_GENERATED_VALUE, TPMST, Attest, NVCertifyInfo, TPMAlg
from trustedge.hazmat.tpm2.nv import NVPublic
from trustedge.hazmat.tpmbackend import AKHandle, TPMBackend
from trustedge.keys import load_public_key
from trustedge.models import (
    BUNDLE_MEDIA_TYPE,
    VerifiedModel,
    VerifiedStatement,
    check_model,
    verify_bundle,
)

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_NV_INDEX",
    "MAX_EVENTS",
    "MAX_SIGNATURE",
    "MODEL_SUBMOD",
    "SIGNATURE_FORMAT",
    "LoadedModel",
    "ModelAgent",
    "ModelLoadEvent",
    "ModelPolicy",
    "UnverifiedModelLog",
    "VerifiedModelLog",
    "appraise_models",
    "load_model_policy",
    "parse_model_log",
    "replay",
    "verify_model_log",
    "verify_nv_certification",
    "verify_signed_model",
]

#: The EAR submod the model appraisal is reported under.
MODEL_SUBMOD: Final = "model"
#: Owner-range NV index (TCG handle registry 0x01000000-0x013FFFFF) of the model log.
DEFAULT_NV_INDEX: Final = 0x013E0D01
CONTENT_TYPE: Final = "trustedge.model-load/v1"
#: The signature format a model-load event records: an OMS v1.0 Sigstore bundle.
SIGNATURE_FORMAT: Final = BUNDLE_MEDIA_TYPE
#: Largest OMS bundle a model-load event carries (and the agent accepts).
MAX_SIGNATURE: Final = 4 * 1024 * 1024
MAX_EVENTS: Final = 1024
MAX_LOG_BYTES: Final = 16 * 1024 * 1024
_MAX_NAME: Final = 256
#: A signed event is 20 CBOR data items (map keys included): room for MAX_EVENTS of them.
_LIMITS: Final = _cbor.DecodeLimits(max_size=MAX_LOG_BYTES, max_depth=6, max_items=24 * MAX_EVENTS)
_SHA256: Final = int(TPMAlg.SHA256)


@dataclass(frozen=True)
class ModelLoadEvent:
    """One model-load event (unverified until its log replays to a certified value)."""

    recnum: int
    nv_index: int
    digest: bytes
    name: str
    signature: bytes | None = None
    signature_format: str | None = None

    def __post_init__(self) -> None:
        if len(self.digest) != 32:
            raise MalformedInputError("a model-load digest is 32 bytes (SHA-256)")
        if not self.name or len(self.name.encode("utf-8", "surrogatepass")) > _MAX_NAME:
            raise MalformedInputError(f"a model name has 1 to {_MAX_NAME} bytes")
        if not self.name.isprintable():
            raise MalformedInputError("a model name must be printable")
        if self.signature is not None and len(self.signature) > MAX_SIGNATURE:
            raise LimitExceededError("model signature too large")
        if (self.signature is None) != (self.signature_format is None):
            raise MalformedInputError("signature and its format come together")

    def to_item(self) -> dict[int, Any]:
        content: dict[int, Any] = {0: self.name}
        if self.signature is not None:
            content[1] = self.signature_format
            content[2] = self.signature
        return {
            0: self.recnum,
            1: self.nv_index,
            2: [[_SHA256, self.digest]],
            3: CONTENT_TYPE,
            4: content,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "recnum": self.recnum,
            "nv_index": f"0x{self.nv_index:08x}",
            "digest": self.digest.hex(),
            "name": self.name,
            "signed": self.signature is not None,
        }


@dataclass(frozen=True)
class UnverifiedModelLog:
    """A parsed model-load log: claims only (see :func:`verify_model_log`)."""

    unverified_events: tuple[ModelLoadEvent, ...]

    def encode(self) -> bytes:
        return encode_events(self.unverified_events)


@dataclass(frozen=True)
class VerifiedModelLog:
    """A log whose replay equals the certified NV value: its events happened, in order."""

    events: tuple[ModelLoadEvent, ...]
    value: bytes


def encode_events(events: Sequence[ModelLoadEvent]) -> bytes:
    """The log's deterministic CBOR."""
    return _cbor.encode([e.to_item() for e in events])


def _uint(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise MalformedInputError(f"{what} must be an unsigned 32-bit integer")
    return value


def _event(item: object, expected_recnum: int) -> ModelLoadEvent:
    if not isinstance(item, dict) or set(item) != {0, 1, 2, 3, 4}:
        raise MalformedInputError("a model-load event is a map with keys 0-4")
    recnum = _uint(item[0], "recnum")
    if recnum != expected_recnum:  # not secret: a record counter of the log
        raise MalformedInputError(f"recnum {recnum} where {expected_recnum} was expected")
    digests = item[2]
    if (
        not isinstance(digests, list)
        or len(digests) != 1
        or not isinstance(digests[0], list)
        or len(digests[0]) != 2
        or digests[0][0] != _SHA256
        or isinstance(digests[0][0], bool)
        or not isinstance(digests[0][1], bytes)
    ):
        raise MalformedInputError("digests must be [[11, sha256-digest]]")
    if item[3] != CONTENT_TYPE:
        raise MalformedInputError(f"unknown content type {item[3]!r}")
    content = item[4]
    if not isinstance(content, dict) or not set(content) <= {0, 1, 2} or 0 not in content:
        raise MalformedInputError("model-load content is a map with keys 0 (name), 1, 2")
    name, fmt, sig = content[0], content.get(1), content.get(2)
    if not isinstance(name, str) or (fmt is not None and not isinstance(fmt, str)):
        raise MalformedInputError("name and signature format must be text")
    if sig is not None and not isinstance(sig, bytes):
        raise MalformedInputError("the signature must be a byte string")
    return ModelLoadEvent(recnum, _uint(item[1], "nv-index"), digests[0][1], name, sig, fmt)


def parse_model_log(data: bytes) -> UnverifiedModelLog:
    """Parse a model-load log from untrusted bytes (deterministic CBOR only).

    Raises ``MalformedInputError`` / ``LimitExceededError``; verifies nothing.
    """
    if len(data) > MAX_LOG_BYTES:
        raise LimitExceededError(f"model log of {len(data)} bytes exceeds {MAX_LOG_BYTES}")
    items = _cbor.decode(data, limits=_LIMITS, canonical=True)
    if not isinstance(items, list):
        raise MalformedInputError("a model log is a CBOR array")
    if len(items) > MAX_EVENTS:
        raise LimitExceededError(f"more than {MAX_EVENTS} model-load events")
    return UnverifiedModelLog(tuple(_event(item, i) for i, item in enumerate(items)))


def replay(events: Sequence[ModelLoadEvent]) -> bytes | None:
    """The NV value the events produce (None for no event: the index stays unwritten)."""
    if not events:
        return None
    value = bytes(32)
    for e in events:
        value = hashlib.sha256(value + e.digest).digest()
    return value


def verify_model_log(
    log: UnverifiedModelLog, certified: bytes, *, nv_index: int
) -> VerifiedModelLog:
    """Replay ``log`` and compare with the ``certified`` NV value (constant time).

    Raises ``ReplayMismatchError`` when the value differs or an event names
    another NV index.
    """
    events = log.unverified_events
    for e in events:
        if e.nv_index != nv_index:
            raise ReplayMismatchError(f"event {e.recnum} names NV index 0x{e.nv_index:08x}")
    value = replay(events)
    if value is None or not hmac.compare_digest(value, certified):
        raise ReplayMismatchError(
            f"the model log ({len(events)} events) does not replay to the certified NV value"
        )
    return VerifiedModelLog(events, certified)


@dataclass(frozen=True)
class CertifiedNV:
    """An NV_Certify that verified: the index value and the TPM clock it was read at."""

    value: bytes
    state: QuoteState


def verify_nv_certification(
    message: bytes,
    signature: bytes,
    ak: AttestationKey,
    *,
    nonce: bytes,
    nv_index: int,
    policy: QuotePolicy | None = None,
) -> CertifiedNV:
    """Verify a TPM2_NV_Certify of the model-log index.

    Checks: the signature with the AK (scheme, hash policy), magic
    TPM_GENERATED_VALUE, type ATTEST_NV, extraData == ``nonce`` (constant
    time), the index name of a written :data:`~trustedge.hazmat.tpm2.nv.EXTEND_ATTRIBUTES`
    index at ``nv_index``, offset 0 and 32 bytes of contents. Raises
    ``VerificationError`` subclasses (``SignatureError`` for the signature).
    """
    _check_signature(message, signature, ak, policy if policy is not None else QuotePolicy())
    attest = Attest.unmarshal(message)
    if attest.magic != TPM_GENERATED_VALUE:
        raise VerificationError("NV certification is not TPM-generated")
    if attest.type != TPMST.ATTEST_NV or not isinstance(attest.attested, NVCertifyInfo):
        raise VerificationError(f"attestation type 0x{attest.type:04x} is not ATTEST_NV")
    if not hmac.compare_digest(attest.extra_data, nonce):
        raise VerificationError("NV certification is not over the verifier's nonce")
    info = attest.attested
    expected = NVPublic.extend_index(nv_index).expected_name()
    if not hmac.compare_digest(info.index_name, expected):
        raise VerificationError(
            f"certified index is not the model-log extend index 0x{nv_index:08x}"
        )
    if info.offset != 0 or len(info.nv_contents) != 32:
        raise VerificationError("NV certification must cover the whole 32-byte value")
    return CertifiedNV(info.nv_contents, QuoteState.of(attest.clock_info))


# -- appraisal --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPolicy:
    """Which models a device may run.

    A loaded model is allowed when its signed digest is in ``allowed_digests``
    or its log entry carries an OMS bundle over exactly that digest, signed by
    one of ``allowed_signers`` (public keys, OMS key method) or by a
    certificate chaining to one of ``allowed_roots`` (OMS certificate method,
    checked at the appraisal time). A digest in ``revoked_digests`` is never
    allowed, whoever signed it: a signer's older models stay validly signed
    forever, and a storage adversary can put one back on the device, where
    the agent loads it (its signature verifies), so withdrawing a model is the
    verifier's job. ``nv_index`` is the model-log index; with
    ``require_model`` (the default) evidence without a certified model log is
    not affirming.
    """

    allowed_digests: frozenset[bytes] = frozenset()
    allowed_signers: tuple[PublicKey, ...] = ()
    allowed_roots: tuple[x509.Certificate, ...] = ()
    nv_index: int = DEFAULT_NV_INDEX
    require_model: bool = True
    revoked_digests: frozenset[bytes] = frozenset()


Finds = list[Finding | tuple[Finding, str]]

_POLICY_FIELDS: Final = {
    "allowed_digests",
    "allowed_signers",
    "allowed_roots",
    "nv_index",
    "require_model",
    "revoked_digests",
}


def _text_list(doc: Mapping[str, Any], name: str) -> list[str]:
    items = doc.get(name, [])
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise MalformedInputError(f"model policy '{name}' must be a list of strings")
    if len(items) > MAX_EVENTS:
        raise LimitExceededError(f"model policy '{name}' lists more than {MAX_EVENTS} items")
    return items


def _digests(doc: Mapping[str, Any], name: str) -> frozenset[bytes]:
    out = set()
    for text in _text_list(doc, name):
        hexdigits = text.removeprefix("sha256:")
        try:
            digest = bytes.fromhex(hexdigits)
        except ValueError:
            digest = b""
        if len(digest) != 32 or len(hexdigits) != 64:
            raise MalformedInputError(f"{name}: {text[:80]!r} is not 64 hex digits")
        out.add(digest)
    return frozenset(out)


def load_model_policy(doc: Mapping[str, Any]) -> ModelPolicy:
    """A :class:`ModelPolicy` from the ``models`` object of an appraisal policy::

        {"allowed_digests": ["<64 hex: a signed model digest>", ...],
         "allowed_signers": ["<PEM public key (ECDSA or Ed25519)>", ...],
         "allowed_roots": ["<PEM CA certificate>", ...],
         "revoked_digests": ["<64 hex: a withdrawn model>", ...],
         "nv_index": "0x013e0d01", "require_model": true}

    Raises ``MalformedInputError`` for documents that do not follow it.
    """
    if not isinstance(doc, Mapping):
        raise MalformedInputError("'models' must be a JSON object")
    unknown = set(doc) - _POLICY_FIELDS
    if unknown:
        raise MalformedInputError(f"unknown model policy field(s) {sorted(unknown)}")
    digests, revoked = _digests(doc, "allowed_digests"), _digests(doc, "revoked_digests")
    signers: list[PublicKey] = []
    for pem in _text_list(doc, "allowed_signers"):
        key = load_public_key(pem.encode())
        if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            raise MalformedInputError("model signers are ECDSA or Ed25519 keys (OMS)")
        signers.append(key)
    roots = []
    for pem in _text_list(doc, "allowed_roots"):
        try:
            roots.append(x509.load_pem_x509_certificate(pem.encode()))
        except ValueError as exc:
            raise MalformedInputError(f"allowed root is not a PEM certificate: {exc}") from None
    index = doc.get("nv_index", DEFAULT_NV_INDEX)
    if isinstance(index, str):
        try:
            index = int(index, 0)
        except ValueError:
            raise MalformedInputError(f"nv_index {index[:20]!r} is not a number") from None
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0x01000000 <= index <= 0x01FFFFFF
    ):
        raise MalformedInputError("nv_index must be an NV index handle (0x01000000-0x01ffffff)")
    require = doc.get("require_model", True)
    if not isinstance(require, bool):
        raise MalformedInputError("'require_model' must be a boolean")
    return ModelPolicy(digests, tuple(signers), tuple(roots), index, require, revoked)


def verify_signed_model(
    bundle: bytes,
    keys: Sequence[PublicKey] = (),
    *,
    roots: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
) -> VerifiedStatement:
    """Check an OMS ``bundle``'s signature with any of the trusted ``keys`` (key
    method) or ``roots`` (certificate method, at ``now``, which is then required);
    no file is read.

    Returns the verified statement (``.digest`` is the signed model digest) or
    raises ``SignatureError`` (no trusted signer verifies it) /
    ``MalformedInputError`` (not an OMS bundle) /
    ``UnsupportedAlgorithmError``.
    """
    if roots and now is None:
        raise ValueError("certificate chains are checked at a time the caller passes (now=)")
    if len(bundle) > MAX_SIGNATURE:
        raise LimitExceededError(f"model signature larger than {MAX_SIGNATURE} bytes")
    last: VerificationError | None = None
    for key in keys:
        if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            continue  # OMS signs with ECDSA or Ed25519 only
        try:
            return verify_bundle(bundle, public_key=key)
        except VerificationError as exc:  # another key's bundle, or a bad signature
            last = exc
    if roots:
        try:
            return verify_bundle(bundle, trusted_certificates=roots, now=now)
        except VerificationError as exc:
            last = exc
    raise SignatureError(
        "the model signature does not verify with any trusted signer"
        + (f" ({last})" if last is not None else "")
    )


def _allowed(event: ModelLoadEvent, policy: ModelPolicy, now: int | None) -> str | None:
    """None when allowed, else why not."""
    if any(hmac.compare_digest(event.digest, d) for d in policy.revoked_digests):
        return f"{event.name!r} (digest {event.digest.hex()[:16]}...) is revoked"
    if any(hmac.compare_digest(event.digest, d) for d in policy.allowed_digests):
        return None
    if event.signature is None:
        return f"{event.name!r} (unsigned, digest {event.digest.hex()[:16]}...) is not allowed"
    if event.signature_format != SIGNATURE_FORMAT:
        return f"{event.name!r}: unknown signature format {event.signature_format!r}"
    when = None if now is None else datetime.datetime.fromtimestamp(now, datetime.UTC)
    roots = policy.allowed_roots if when is not None else ()  # no time: no chain is checked
    try:
        signed = verify_signed_model(event.signature, policy.allowed_signers, roots=roots, now=when)
    except TrustedgeError as exc:
        return f"{event.name!r}: signature not by an allowed signer ({exc})"
    if not hmac.compare_digest(signed.digest, event.digest):
        return f"{event.name!r}: the signature is for another model than the one measured"
    return None


def appraise_models(
    evidence: Evidence,
    policy: ModelPolicy,
    ak: AttestationKey,
    *,
    quote_state: QuoteState,
    quote_policy: QuotePolicy | None = None,
    now: int | None = None,
) -> Finds:
    """Findings of the ``model`` submod for evidence whose quote already verified
    (``quote_state`` is that quote's clock: the certification must be of the same boot;
    ``now``, unix seconds, is when certificate chains are checked).
    Never raises for bad evidence."""
    findings: Finds = []
    if evidence.model_certify is None or evidence.model_certify_signature is None:
        try:
            claimed = parse_model_log(evidence.model_log or _cbor.encode([])).unverified_events
        except MalformedInputError as exc:
            findings.append((Finding.MODEL_LOG_MISMATCH, str(exc)))
            return findings
        if claimed:
            findings.append((Finding.MODEL_LOG_MISMATCH, "a model log without an NV certification"))
        elif policy.require_model:
            findings.append(
                (Finding.MODEL_LOG_MISSING, "no certified model measurement: no model loaded")
            )
        return findings
    try:
        certified = verify_nv_certification(
            evidence.model_certify,
            evidence.model_certify_signature,
            ak,
            nonce=evidence.nonce,
            nv_index=policy.nv_index,
            policy=quote_policy,
        )
    except (VerificationError, MalformedInputError) as exc:
        findings.append((Finding.MODEL_CERTIFY_INVALID, str(exc)))
        return findings
    if (certified.state.reset_count, certified.state.restart_count) != (
        quote_state.reset_count,
        quote_state.restart_count,
    ):
        findings.append(
            (
                Finding.MODEL_CERTIFY_INVALID,
                "the NV certification is from another boot than the quote",
            )
        )
        return findings
    findings.append(Finding.MODEL_LOG_CERTIFIED)
    try:
        log = parse_model_log(evidence.model_log or _cbor.encode([]))
        verified = verify_model_log(log, certified.value, nv_index=policy.nv_index)
    except (VerificationError, MalformedInputError) as exc:
        findings.append((Finding.MODEL_LOG_MISMATCH, str(exc)))
        return findings
    problems = [p for e in verified.events if (p := _allowed(e, policy, now)) is not None]
    if problems:
        findings.append((Finding.MODEL_UNAPPROVED, "; ".join(problems[:5])))
    else:
        names = ", ".join(repr(e.name) for e in verified.events[-5:])
        findings.append((Finding.MODEL_APPROVED, f"{len(verified.events)} model load(s): {names}"))
    return findings


# -- device side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A model the agent verified and measured: the verified model (read its
    files through :meth:`VerifiedModel.open`, which re-checks every byte it
    returns), its bundle and its log event."""

    directory: Path
    verified: VerifiedModel
    signature: bytes
    event: ModelLoadEvent

    @property
    def digest(self) -> bytes:
        """The signed model digest that was extended."""
        return self.verified.digest


def _display_name(signed: str, path: Path) -> str:
    """The log's name for a model: its OMS subject name when that is a usable
    log name, else the directory's (a claim either way)."""
    for candidate in (signed, path.name):
        size = len(candidate.encode("utf-8", "surrogatepass"))
        if candidate.isprintable() and 0 < size <= _MAX_NAME:
            return candidate
    return "model"


class ModelAgent:
    """Loads models with verification and measures each load (see the module docstring).

    ``backend`` holds the NV index ``nv_index`` (defined on first use);
    ``log_path`` is the model-load log, rewritten atomically on every load;
    ``trusted_keys`` (public keys) and ``trusted_roots`` (CA certificates,
    checked at the ``now`` given to :meth:`load`) are the model signers this
    device accepts.
    """

    def __init__(
        self,
        backend: TPMBackend,
        log_path: str | os.PathLike[str],
        trusted_keys: Sequence[PublicKey],
        *,
        trusted_roots: Sequence[x509.Certificate] = (),
        nv_index: int = DEFAULT_NV_INDEX,
    ) -> None:
        self.backend = backend
        self.log_path = Path(log_path)
        self.trusted_keys = tuple(trusted_keys)
        self.trusted_roots = tuple(trusted_roots)
        self.nv_index = nv_index
        self._defined = False

    def _define(self) -> None:
        if not self._defined:
            self.backend.nv_extend_define(self.nv_index)
            self._defined = True

    def events(self) -> tuple[ModelLoadEvent, ...]:
        """The log as this agent wrote it, consistent with the TPM (see :meth:`recover`)."""
        return self.recover()

    def _read(self) -> tuple[ModelLoadEvent, ...]:
        try:
            with open(self.log_path, "rb") as fh:
                data = fh.read(MAX_LOG_BYTES + 1)  # parse_model_log refuses more
        except FileNotFoundError:
            return ()
        return parse_model_log(data).unverified_events

    def _write(self, events: Sequence[ModelLoadEvent]) -> None:
        atomic_write(self.log_path, encode_events(events))

    def recover(self) -> tuple[ModelLoadEvent, ...]:
        """Bring the log file in line with the TPM after a crash or a reboot.

        The agent writes the event first and extends second, and hands out a
        model only after both; so an event the TPM never saw (crash between the
        two) is dropped, and after a TPM Reset (index unwritten) the log starts
        again. Anything else that does not replay is left as it is: it is
        evidence of an extend outside the agent, for the verifier to see.
        """
        self._define()
        events = self._read()
        value = self.backend.nv_extend_read(self.nv_index)
        if value is None:
            if events:
                self._write(())
            return ()
        if events and (replay(events[:-1]) or b"") == value:
            events = events[:-1]
            self._write(events)
        return events

    def load(
        self,
        directory: str | os.PathLike[str],
        signature: bytes,
        *,
        name: str | None = None,
        now: datetime.datetime | None = None,
    ) -> LoadedModel:
        """Verify ``directory`` against its OMS bundle ``signature`` (a trusted
        signer, then every file: same file set, every digest), then log and
        measure the load; returns the model only after both.

        Raises ``SignatureError`` / ``VerificationError`` when the model does not
        verify (nothing is logged or extended), ``MalformedInputError`` for a
        bundle that does not parse, ``LimitExceededError`` when the log already
        holds :data:`MAX_EVENTS` loads or would outgrow its size cap (reboot),
        ``BackendError`` from the TPM.
        """
        path = Path(directory)
        statement = verify_signed_model(
            signature, self.trusted_keys, roots=self.trusted_roots, now=now
        )
        try:
            verified = check_model(path, statement)
        except OSError as exc:
            raise VerificationError(f"model directory unreadable: {exc}") from exc
        events = self.recover()
        if len(events) >= MAX_EVENTS:  # one more would make the log unreadable: refuse
            raise LimitExceededError(
                f"the model-load log holds {MAX_EVENTS} loads since the TPM was reset; "
                "reboot to start a new one"
            )
        event = ModelLoadEvent(
            recnum=len(events),
            nv_index=self.nv_index,
            digest=verified.digest,
            name=name or _display_name(verified.name, path),
            signature=signature,
            signature_format=SIGNATURE_FORMAT,
        )
        data = encode_events((*events, event))
        if len(data) > MAX_LOG_BYTES:  # the verifier could not read it: refuse
            raise LimitExceededError(
                f"the model-load log would exceed {MAX_LOG_BYTES} bytes; reboot to start a new one"
            )
        atomic_write(self.log_path, data)
        self.backend.nv_extend(self.nv_index, verified.digest)
        return LoadedModel(path, verified, signature, event)

    def attach(self, evidence: Evidence, ak: AKHandle) -> Evidence:
        """``evidence`` with the model log and an NV certification over its nonce.

        While the index is unwritten (nothing loaded since the TPM Reset) the
        evidence gets only the empty log: there is nothing the TPM could
        certify. Otherwise the index is certified whatever the log says, so an
        extend outside the agent shows up as a replay mismatch.
        """
        events = self.recover()
        log = encode_events(events)
        if self.backend.nv_extend_read(self.nv_index) is None:
            return replace(evidence, model_log=log)
        message, signature = self.backend.nv_certify(ak, self.nv_index, evidence.nonce, size=32)
        return replace(
            evidence, model_log=log, model_certify=message, model_certify_signature=signature
        )
