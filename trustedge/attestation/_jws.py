"""Compact JWS (RFC 7515) for signed attestation results (JWT).

Signing writes ``{"alg": ..., "typ": "JWT"}`` (plus ``kid`` when given).
Verification parses hostile text with bounds: total length, strict
base64url (no padding, canonical), JSON objects without duplicate names or
runaway nesting; the algorithm comes from the key and must equal the
header's, ``crit`` is refused. Only trustedge errors come out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Final

from trustedge.attestation import _signing
from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError

__all__ = ["load_json", "sign_jws", "verify_jws"]

MAX_TOKEN: Final = 1 << 20
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedInputError(f"{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedInputError(f"{what} is not base64url") from None
    if b64url(raw) != text:  # non-zero padding bits: not the canonical form
        raise MalformedInputError(f"{what} is not canonical base64url")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedInputError(f"duplicate JSON member {key!r}")
        out[key] = value
    return out


def load_json(raw: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object from untrusted bytes (UTF-8, no duplicate names)."""
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except MalformedInputError:
        raise
    except RecursionError:
        raise LimitExceededError(f"{what} nests too deeply") from None
    except (UnicodeDecodeError, ValueError):
        # ValueError covers JSONDecodeError and over-long integer literals.
        raise MalformedInputError(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise MalformedInputError(f"{what} must be a JSON object")
    return obj


def sign_jws(payload: bytes, key: _signing.PrivateKey, *, kid: str | None = None) -> str:
    """Compact JWS over ``payload`` signed with ``key`` (ES256 or EdDSA)."""
    header: dict[str, str] = {"alg": _signing.algorithm_for(key), "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
        + "."
        + b64url(payload)
    )
    _, signature = _signing.sign(key, signing_input.encode("ascii"))
    return signing_input + "." + b64url(signature)


def verify_jws(token: str, key: _signing.PublicKey) -> bytes:
    """Verify a compact JWS with ``key``; return the payload bytes.

    Raises :class:`~trustedge.errors.MalformedInputError` /
    :class:`~trustedge.errors.LimitExceededError` for malformed tokens,
    :class:`~trustedge.errors.UnsupportedAlgorithmError` for ``crit``, and
    :class:`~trustedge.errors.SignatureError` on an algorithm mismatch or a
    bad signature.
    """
    if len(token) > MAX_TOKEN:
        raise LimitExceededError(f"token longer than {MAX_TOKEN} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedInputError("a compact JWS has three dot-separated parts")
    header = load_json(unb64url(parts[0], "JWS header"), "JWS header")
    if "crit" in header:
        raise UnsupportedAlgorithmError("critical JWS header parameters are not supported")
    payload = unb64url(parts[1], "JWS payload")
    signature = unb64url(parts[2], "JWS signature")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    _signing.verify(key, header.get("alg"), signing_input, signature)
    return payload
