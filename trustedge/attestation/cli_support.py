"""Plumbing for the ``trustedge attest`` commands, kept out of the CLI layer.

The CLI (``trustedge/_cli/attestation.py``) reads files and prints; these
functions turn bytes into verified objects and objects into views, using
public API only. Nothing here prints or reads files.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import keys
from trustedge.attestation import _signing
from trustedge.attestation.ear import AttestationResult, VerifiedResult, verify_result
from trustedge.attestation.evidence import UnverifiedEvidence
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError

__all__ = [
    "load_private_key",
    "load_public_key",
    "render_result",
    "result_view",
    "show_evidence",
    "token_from_bytes",
    "verify_result_bytes",
]


def _check(key: object) -> Any:
    if not isinstance(
        key,
        (
            ec.EllipticCurvePrivateKey,
            ec.EllipticCurvePublicKey,
            ed25519.Ed25519PrivateKey,
            ed25519.Ed25519PublicKey,
        ),
    ):
        raise UnsupportedAlgorithmError("result keys must be P-256 or Ed25519")
    _signing.algorithm_for(key)
    return key


def load_public_key(data: bytes) -> _signing.PublicKey:
    """A result-verification key (P-256 or Ed25519) in any encoding :mod:`trustedge.keys`
    reads (the one key loader: PEM, DER, OpenSSH, COSE_Key, raw)."""
    return _check(keys.load_public_key(data))  # type: ignore[no-any-return]


def load_private_key(data: bytes, *, password: keys.Password = None) -> _signing.PrivateKey:
    """A result-signing key (P-256 or Ed25519) through :mod:`trustedge.keys` (also encrypted
    PEM with ``password``)."""
    return _check(keys.load_private_key(data, password=password))  # type: ignore[no-any-return]


def token_from_bytes(data: bytes) -> str | bytes:
    """A JWT (text starting ``eyJ``, surrounding whitespace ignored) or CWT bytes."""
    stripped = data.strip()
    if stripped[:3] == b"eyJ":
        try:
            return stripped.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedInputError("JWT is not ASCII") from None
    return data


def verify_result_bytes(
    token: bytes,
    key: bytes,
    *,
    now: int | None = None,
    max_age: int | None = None,
    expected_nonce: bytes | None = None,
) -> VerifiedResult:
    """``verify_result`` on file contents (token file, key file)."""
    return verify_result(
        token_from_bytes(token),
        load_public_key(key),
        now=now,
        max_age=max_age,
        expected_nonce=expected_nonce,
    )


def result_view(result: AttestationResult | VerifiedResult) -> dict[str, Any]:
    """The JSON output of ``attest result verify``: status first, then the JWT claims."""
    return {"status": result.status.value, "claims": result.to_json_claims()}


def render_result(result: AttestationResult | VerifiedResult) -> str:
    """Readable text: one block per device with status, non-zero claims and reasons."""
    lines = [f"attestation result: {result.status.value.upper()} (issued at {result.issued_at})"]
    for name, appraisal in sorted(result.submods.items()):
        lines.append(f"  {name}: {appraisal.status.value}")
        for _, claim, value in appraisal.trust_vector.items():
            lines.append(f"    {claim:<18} {value}")
        lines.extend(f"    - {reason}" for reason in appraisal.reasons)
    return "\n".join(lines)


def show_evidence(data: bytes) -> dict[str, Any]:
    """Decode an evidence bundle (unverified) into its JSON view."""
    return UnverifiedEvidence.decode(data).to_json()
