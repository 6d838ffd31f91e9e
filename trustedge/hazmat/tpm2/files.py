"""tpm2-tools file formats.

.. warning:: hazmat.

* ``tpm2_quote -m``: a raw TPMS_ATTEST (:meth:`Attest.unmarshal`);
* ``tpm2_quote -s``: a TPMT_SIGNATURE (:meth:`Signature.unmarshal`);
* ``tpm2_readpublic -o`` / ``tpm2_createak -u`` (tss format): a TPM2B_PUBLIC;
* ``tpm2_quote -o`` (default ``-F serialized``): a little-endian memory dump of
  ``TPML_PCR_SELECTION`` (16 slots of 8 bytes) followed by a u32 count and that
  many ``TPML_DIGEST`` (8 slots of 66 bytes each) -- read and written here;
* ``tpm2_makecredential -o``: see :class:`~trustedge.hazmat.tpm2.credential.Credential`.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge._binary import Reader, Writer
from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.constants import HASH_ALGS, hash_alg_by_name
from trustedge.hazmat.tpm2.public import Public, PublicKey
from trustedge.hazmat.tpm2.structures import PCRSelection, PCRSelectionList

__all__ = [
    "PCR_FILE_SIZE_MAX",
    "load_public",
    "pcr_values_from_json",
    "read_pcr_file",
    "write_pcr_file",
]

_SEL_SLOTS: Final = 16
_SEL_SLOT_SIZE: Final = 8
_SELECT_MAX: Final = 4
_DIGEST_SLOTS: Final = 8
_DIGEST_SLOT_SIZE: Final = 66
_TPML_DIGEST_SIZE: Final = 4 + _DIGEST_SLOTS * _DIGEST_SLOT_SIZE
_MAX_DIGEST_LISTS: Final = 32
PCR_FILE_SIZE_MAX: Final = (
    4 + _SEL_SLOTS * _SEL_SLOT_SIZE + 4 + _MAX_DIGEST_LISTS * _TPML_DIGEST_SIZE
)


#: The selection block: count, then 16 slots of (hash u16, sizeofSelect u8, pcrSelect[4], pad).
_SELECTION_BLOCK: Final = struct.Struct("<I" + "HB4sx" * _SEL_SLOTS)
#: One TPML_DIGEST: count, then 8 slots of (size u16, buffer[64]).
_DIGEST_BLOCK: Final = struct.Struct("<I" + "H64s" * _DIGEST_SLOTS)
_U32LE: Final = struct.Struct("<I")
_BANK_BY_ID: Final = {h.alg.value: h for h in HASH_ALGS}


def read_pcr_file(data: bytes) -> tuple[PCRSelectionList, dict[str, dict[int, bytes]]]:
    """Parse a ``tpm2_quote -o`` / ``tpm2_pcrread -o`` file (serialized format).

    Returns the selection and ``{bank: {index: value}}``. The number of digests
    must equal the number of selected PCRs and each must have its bank's size.

    The fixed-size blocks are read through the bounded reader one ``struct`` pass
    each (the selection block, then each TPML_DIGEST), not field by field.
    """
    r = Reader(data, max_size=PCR_FILE_SIZE_MAX)
    fields = r.read_struct(_SELECTION_BLOCK, "TPML_PCR_SELECTION")
    count = fields[0]
    if count > _SEL_SLOTS:
        raise LimitExceededError(f"{count} PCR banks exceed the limit of {_SEL_SLOTS}",
                                 offset=4, expected="PCR banks")  # fmt: skip
    selections = []
    seen: set[int] = set()
    for i in range(count):
        alg, size, select = fields[1 + 3 * i : 4 + 3 * i]
        if size > _SELECT_MAX:
            raise MalformedInputError(f"sizeofSelect {size}", offset=4 + 8 * i + 2,
                                      expected=f"at most {_SELECT_MAX}")  # fmt: skip
        if alg in seen:
            raise MalformedInputError(f"bank 0x{alg:04x} twice", offset=4 + 8 * i)
        seen.add(alg)
        selections.append(PCRSelection(alg, select[:size]))
    lists = r.count(r.read_struct(_U32LE, "digest list count")[0], _MAX_DIGEST_LISTS,
                    "digest lists")  # fmt: skip
    digests: list[bytes] = []
    for _ in range(lists):
        at = r.offset
        block = r.read_struct(_DIGEST_BLOCK, "TPML_DIGEST")
        n = block[0]
        if n > _DIGEST_SLOTS:
            raise LimitExceededError(f"{n} digests exceed the limit of {_DIGEST_SLOTS}",
                                     offset=at, expected="digests")  # fmt: skip
        sizes = block[1 : 1 + 2 * n : 2]
        if n and max(sizes) > _DIGEST_SLOT_SIZE - 2:
            j = next(j for j, size in enumerate(sizes) if size > _DIGEST_SLOT_SIZE - 2)
            raise MalformedInputError(f"digest size {sizes[j]}", offset=at + 4 + 66 * j)
        digests += [buf[:size] for size, buf in zip(sizes, block[2 : 2 + 2 * n : 2], strict=True)]
    r.expect_end("end of PCR file")
    selected = 0
    for sel in selections:
        selected += len(sel.indices)
    if selected != len(digests):
        raise MalformedInputError(
            f"PCR file selects {selected} PCRs but holds {len(digests)} values"
        )
    values: dict[str, dict[int, bytes]] = {}
    pos = 0
    for sel in selections:
        indices = sel.indices
        if not indices:
            continue
        bank = _BANK_BY_ID.get(sel.hash_alg)
        if bank is None:
            raise MalformedInputError(
                f"PCR file selects an unknown bank: hash algorithm 0x{sel.hash_alg:04x}"
            )
        size = bank.digest_size
        bank_values = values.setdefault(bank.name, {})
        for index in indices:
            value = digests[pos]
            pos += 1
            if len(value) != size:
                raise MalformedInputError(f"{bank.name} PCR {index} value has {len(value)} bytes")
            bank_values[index] = value
    return PCRSelectionList(tuple(selections)), values


def pcr_values_from_json(doc: object) -> dict[str, dict[int, bytes]]:
    """PCR values from their JSON form ``{bank: {index: hex}}``.

    Every value must have its bank's digest size and every index be 0-23 (the
    quote's pcrDigest covers only the concatenation, so a value re-split
    across PCRs must not get this far). Raises MalformedInputError.
    """
    if not isinstance(doc, dict):
        raise MalformedInputError("PCR JSON must be {bank: {index: hex}}")
    values: dict[str, dict[int, bytes]] = {}
    for bank, items in doc.items():
        name = str(bank).lower()
        try:
            size = _bank_size(name)
        except UnsupportedAlgorithmError as exc:
            raise MalformedInputError(f"unknown PCR bank {bank!r}") from exc
        if not isinstance(items, dict):
            raise MalformedInputError(f"PCR bank {name} must map indexes to hex values")
        for index, text in items.items():
            try:
                pcr = int(index)
                value = bytes.fromhex(str(text))
            except ValueError:
                raise MalformedInputError(f"{name} PCR {index!r}: not an index and hex") from None
            if not 0 <= pcr <= 23 or len(value) != size:
                raise MalformedInputError(f"{name} PCR {pcr}: {len(value)} bytes, not {size}")
            values.setdefault(name, {})[pcr] = value
    return values


def _bank_size(bank: str) -> int:
    return hash_alg_by_name(bank).digest_size


def write_pcr_file(selection: PCRSelectionList, values: dict[str, dict[int, bytes]]) -> bytes:
    """Write the ``tpm2_quote -o`` file for ``selection`` with ``values``
    (``tpm2_checkquote -f`` reads it). Raises ``KeyError`` when a selected
    value is missing."""
    if len(selection.selections) > _SEL_SLOTS:
        raise ValueError("too many banks")
    w = Writer().u32le(len(selection.selections))
    for i in range(_SEL_SLOTS):
        if i < len(selection.selections):
            s = selection.selections[i]
            w.u16le(s.hash_alg).u8(len(s.select)).write(s.select.ljust(_SELECT_MAX, b"\0"))
            w.write(b"\0")
        else:
            w.write(bytes(_SEL_SLOT_SIZE))
    digests = [values[bank][index] for bank, index in selection.pcr_order()]
    chunks = [digests[i : i + _DIGEST_SLOTS] for i in range(0, len(digests), _DIGEST_SLOTS)]
    w.u32le(len(chunks))
    for chunk in chunks:
        w.u32le(len(chunk))
        for j in range(_DIGEST_SLOTS):
            d = chunk[j] if j < len(chunk) else b""
            w.u16le(len(d)).write(d.ljust(_DIGEST_SLOT_SIZE - 2, b"\0"))
    return w.getvalue()


def load_public(data: bytes) -> Public | PublicKey:
    """Load a public key file: a TPM2B_PUBLIC (``tpm2_readpublic -o``) gives a
    :class:`Public` with the key's real scheme and attributes; a PEM or DER
    SubjectPublicKeyInfo gives the bare ``cryptography`` key (it carries no
    TPM scheme or attributes)."""
    stripped = data.lstrip()
    try:
        if not stripped.startswith(b"-----BEGIN") and data[:1] != b"\x30":
            return Public.unmarshal_tpm2b(data)
        # Imported here: ``serialization`` (with its SSH key support) costs more start-up
        # than the rest of a quote verification, and a TPM2B_PUBLIC AK does not need it.
        from cryptography.hazmat.primitives import serialization

        if stripped.startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_public_key(stripped)
        else:
            loaded = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise MalformedInputError(f"not a PEM/DER public key: {exc}") from exc
    if not isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise UnsupportedAlgorithmError(f"unsupported key type {type(loaded).__name__}")
    return loaded
