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

from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from trustedge._binary import Reader, Writer
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError
from trustedge.hazmat.tpm2.constants import hash_alg_by_name
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


def read_pcr_file(data: bytes) -> tuple[PCRSelectionList, dict[str, dict[int, bytes]]]:
    """Parse a ``tpm2_quote -o`` / ``tpm2_pcrread -o`` file (serialized format).

    Returns the selection and ``{bank: {index: value}}``. The number of digests
    must equal the number of selected PCRs and each must have its bank's size.
    """
    r = Reader(data, max_size=PCR_FILE_SIZE_MAX)
    count = r.count(r.u32le("TPML_PCR_SELECTION.count"), _SEL_SLOTS, "PCR banks")
    selections = []
    seen: set[int] = set()
    for i in range(_SEL_SLOTS):
        slot = r.sub(_SEL_SLOT_SIZE, "TPMS_PCR_SELECTION")
        if i >= count:
            continue
        alg = slot.u16le("hash")
        size = slot.u8("sizeofSelect")
        if size > _SELECT_MAX:
            raise MalformedInputError(f"sizeofSelect {size}", offset=slot.offset - 1,
                                      expected=f"at most {_SELECT_MAX}")  # fmt: skip
        if alg in seen:
            raise MalformedInputError(f"bank 0x{alg:04x} twice", offset=slot.offset - 3)
        seen.add(alg)
        selections.append(PCRSelection(alg, slot.read(size, "pcrSelect")))
    selection = PCRSelectionList(tuple(selections))
    lists = r.count(r.u32le("digest list count"), _MAX_DIGEST_LISTS, "digest lists")
    digests: list[bytes] = []
    for _ in range(lists):
        lst = r.sub(_TPML_DIGEST_SIZE, "TPML_DIGEST")
        n = lst.count(lst.u32le("TPML_DIGEST.count"), _DIGEST_SLOTS, "digests")
        for _ in range(n):
            slot = lst.sub(_DIGEST_SLOT_SIZE, "TPM2B_DIGEST")
            size = slot.u16le("size")
            if size > _DIGEST_SLOT_SIZE - 2:
                raise MalformedInputError(f"digest size {size}", offset=slot.offset - 2)
            digests.append(slot.read(size, "digest"))
    r.expect_end("end of PCR file")
    try:
        order = selection.pcr_order()
    except UnsupportedAlgorithmError as exc:
        raise MalformedInputError(f"PCR file selects an unknown bank: {exc}") from exc
    if len(order) != len(digests):
        raise MalformedInputError(
            f"PCR file selects {len(order)} PCRs but holds {len(digests)} values"
        )
    values: dict[str, dict[int, bytes]] = {}
    for (bank, index), value in zip(order, digests, strict=True):
        if len(value) != _bank_size(bank):
            raise MalformedInputError(f"{bank} PCR {index} value has {len(value)} bytes")
        values.setdefault(bank, {})[index] = value
    return selection, values


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
