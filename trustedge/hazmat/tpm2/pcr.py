"""The one PCR reset rule (TCG PC Client Platform TPM Profile, PCR attributes).

.. warning:: hazmat. These say what a PCR holds after ``TPM2_Startup(CLEAR)`` and which
   locality may reset or extend it; they verify nothing. Replay
   (:mod:`trustedge.measuredboot`) and the software TPM both take them from here.
"""

from __future__ import annotations

from trustedge.hazmat.tpm2.constants import hash_alg_by_name

__all__ = ["pcr_extendable", "pcr_reset_value", "pcr_resettable"]

_DRTM = range(17, 23)  # PCRs 17-22: all-ones until a dynamic launch resets them


def pcr_reset_value(bank: str, index: int, *, locality: int = 0) -> bytes:
    """The value of PCR ``index`` in ``bank`` after startup: 17-22 all-ones (DRTM), PCR 0 ends
    in the startup ``locality`` byte (3, or 4 after an H-CRTM event), every other PCR zero."""
    size = hash_alg_by_name(bank).digest_size
    if index in _DRTM:
        return b"\xff" * size
    if index == 0 and locality:
        return bytes(size - 1) + bytes((locality,))
    return bytes(size)


def pcr_resettable(index: int, locality: int) -> bool:
    """``TPM2_PCR_Reset`` permission: 16 (debug) and 23 (application) from any locality,
    17-20 from locality 4, 21-22 from locality 2; 0-15 never."""
    if index in (16, 23):
        return True
    if 17 <= index <= 20:
        return locality == 4
    if index in (21, 22):
        return locality == 2
    return False


def pcr_extendable(index: int, locality: int) -> bool:
    """``TPM2_PCR_Extend`` permission: 0-16 and 23 from any locality, 17-22 (DRTM) only from
    locality 2 and up."""
    return index not in _DRTM or locality >= 2
