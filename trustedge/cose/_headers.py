"""Header-bucket rules shared by every COSE structure of trustedge.

* the protected bucket is a byte string holding either nothing (``h''``) or
  the CBOR of a non-empty map; its exact bytes are what gets signed;
* ``alg`` (label 1) is taken only from the protected bucket: an ``alg`` in
  the unprotected bucket is rejected (an attacker could change it freely);
* a label may not appear in both buckets (RFC 9052 §3);
* ``crit`` (label 2) lists labels the recipient must understand; trustedge
  understands none beyond the ones it reads, so any ``crit`` is rejected.
"""

from __future__ import annotations

from typing import Any, Final

from trustedge import _cbor
from trustedge.errors import MalformedInputError

__all__ = ["ALG", "CRIT", "KID", "LIMITS", "decode_protected", "check_buckets"]

ALG: Final = 1
CRIT: Final = 2
KID: Final = 4
LIMITS: Final = _cbor.DecodeLimits(max_size=1 << 20, max_depth=8, max_items=4096)


def decode_protected(raw: object) -> dict[Any, Any]:
    """Decode a protected-header bucket (bstr) into its map."""
    if not isinstance(raw, bytes):
        raise MalformedInputError("protected header must be a byte string")
    if raw == b"":
        return {}
    value = _cbor.decode(raw, limits=LIMITS)
    if not isinstance(value, dict):
        raise MalformedInputError("protected header must encode a map")
    return value


def check_buckets(protected: dict[Any, Any], unprotected: object) -> dict[Any, Any]:
    """Apply the bucket rules; return the unprotected map."""
    if not isinstance(unprotected, dict):
        raise MalformedInputError("unprotected header must be a map")
    if ALG in unprotected:
        raise MalformedInputError("alg must be in the protected header, not the unprotected one")
    if set(protected) & set(unprotected):
        raise MalformedInputError("a header label appears in both buckets")
    if CRIT in protected or CRIT in unprotected:
        raise MalformedInputError("critical headers are not supported")
    if ALG in protected and (
        not isinstance(protected[ALG], (int, str)) or isinstance(protected[ALG], bool)
    ):
        raise MalformedInputError("alg must be an integer or text string")
    return unprotected
