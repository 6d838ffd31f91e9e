"""TPM key derivation (TPM 2.0 Part 1 §11.4.10): KDFa and KDFe; PCR composite digests.

.. warning:: hazmat.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from trustedge.hazmat.tpm2.constants import hash_alg_by_id

__all__ = ["kdfa", "kdfe", "pcr_composite_digest"]


def _label(label: bytes) -> bytes:
    # The spec's labels are NUL-terminated strings; add the terminator when missing.
    return label if label.endswith(b"\x00") else label + b"\x00"


def _truncate(out: bytes, bits: int) -> bytes:
    size = (bits + 7) // 8
    buf = bytearray(out[:size])
    if bits % 8:
        buf[0] &= (1 << (bits % 8)) - 1
    return bytes(buf)


def kdfa(
    hash_alg: int, key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int
) -> bytes:
    """SP 800-108 counter-mode KDF with HMAC, as the TPM defines it:
    ``HMAC(key, [i]32 || label || 0 || contextU || contextV || [bits]32)``."""
    if bits <= 0:
        raise ValueError("bits must be positive")
    h = hash_alg_by_id(hash_alg)
    tail = _label(label) + context_u + context_v + bits.to_bytes(4, "big")
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += hmac.new(key, counter.to_bytes(4, "big") + tail, h.hashlib_name).digest()
    return _truncate(out, bits)


def kdfe(hash_alg: int, z: bytes, label: bytes, party_u: bytes, party_v: bytes, bits: int) -> bytes:
    """SP 800-56A concatenation KDF, as the TPM defines it:
    ``H([i]32 || Z || label || 0 || partyUInfo || partyVInfo)``."""
    if bits <= 0:
        raise ValueError("bits must be positive")
    h = hash_alg_by_id(hash_alg)
    tail = z + _label(label) + party_u + party_v
    out = b""
    counter = 0
    while len(out) * 8 < bits:
        counter += 1
        out += h.digest(counter.to_bytes(4, "big") + tail)
    return _truncate(out, bits)


def pcr_composite_digest(hash_alg: int, values: Iterable[bytes]) -> bytes:
    """H(PCR values concatenated in selection order): a quote's ``pcrDigest``."""
    return hash_alg_by_id(hash_alg).digest(b"".join(values))
