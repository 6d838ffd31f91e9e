"""The fast quote parsers accept exactly what the field-by-field parsers accept.

``read_quote_fields`` (one struct read per fixed-size run) must agree with
``Attest.unmarshal`` on every quote, and ``read_pcr_file`` (one struct pass per block)
must keep the old parser's rules: every byte flipped, every truncation and every
extension of real structures is either accepted by both with the same fields, or
rejected by both with MalformedInputError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.hazmat.tpm2 import (
    TPMST,
    Attest,
    PCRSelection,
    PCRSelectionList,
    QuoteInfo,
    pcr_indices,
    read_pcr_file,
    read_quote_fields,
    write_pcr_file,
)

NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def quote_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tpm = SoftwareTPM(tmp_path_factory.mktemp("tpm") / "state")
    ak = tpm.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    return tpm.quote(ak, NONCE, {"sha256": [0, 1, 2, 3, 7, 16], "sha384": [0]}).message


def _slow(data: bytes) -> tuple[object, ...] | str | None:
    try:
        a = Attest.unmarshal(data)
    except MalformedInputError:
        return "malformed"
    if a.type != TPMST.ATTEST_QUOTE:
        return None
    info = a.attested
    assert isinstance(info, QuoteInfo)
    c = a.clock_info
    sels = tuple((s.hash_alg, s.select) for s in info.pcr_select.selections)
    return (a.magic, a.qualified_signer, a.extra_data, c.clock, c.reset_count,
            c.restart_count, c.safe, a.firmware_version, sels, info.pcr_digest)  # fmt: skip


def _fast(data: bytes) -> tuple[object, ...] | str | None:
    try:
        q = read_quote_fields(data)
    except MalformedInputError:
        return "malformed"
    return None if q is None else tuple(q)


def _variants(data: bytes) -> list[bytes]:
    out = [data, data + b"\x00", data[:-1], b"", data[:6]]
    out += [data[:n] for n in range(0, len(data), 3)]
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= flip
            out.append(bytes(bad))
    return out


def test_fast_quote_parser_agrees_with_attest_unmarshal(quote_bytes: bytes) -> None:
    assert _fast(quote_bytes) == _slow(quote_bytes) != "malformed"
    for variant in _variants(quote_bytes):
        fast, slow = _fast(variant), _slow(variant)
        if fast is None:  # not a quote: the caller parses it with Attest.unmarshal
            assert slow in (None, "malformed") and variant[4:6] != quote_bytes[4:6]
        else:
            assert fast == slow, variant.hex()


def test_fast_quote_parser_limits() -> None:
    head = bytes.fromhex("ff544347") + int(TPMST.ATTEST_QUOTE).to_bytes(2, "big")
    with pytest.raises(LimitExceededError):
        read_quote_fields(head + b"\xff\xff")  # qualifiedSigner longer than a TPM name
    with pytest.raises(LimitExceededError):
        read_quote_fields(b"\x00" * 3000)  # larger than any TPMS_ATTEST


def test_pcr_indices() -> None:
    assert pcr_indices(b"\x8f\x00\x01") == (0, 1, 2, 3, 7, 16)
    assert pcr_indices(b"") == ()
    assert PCRSelection.from_indices("sha256", [23, 0]).indices == (0, 23)


def _old_read_pcr_file(data: bytes) -> object:
    """The field-by-field reference (the parser before the struct pass), for comparison."""
    from trustedge._binary import Reader
    from trustedge.hazmat.tpm2 import hash_alg_by_name
    from trustedge.hazmat.tpm2.files import PCR_FILE_SIZE_MAX

    r = Reader(data, max_size=PCR_FILE_SIZE_MAX)
    count = r.count(r.u32le("count"), 16, "PCR banks")
    selections, seen = [], set()
    for i in range(16):
        slot = r.sub(8)
        if i >= count:
            continue
        alg, size = slot.u16le(), slot.u8()
        if size > 4 or alg in seen:
            raise MalformedInputError("bad slot")
        seen.add(alg)
        selections.append(PCRSelection(alg, slot.read(size)))
    digests = []
    for _ in range(r.count(r.u32le(), 32, "lists")):
        lst = r.sub(4 + 8 * 66)
        for _ in range(lst.count(lst.u32le(), 8, "digests")):
            slot = lst.sub(66)
            size = slot.u16le()
            if size > 64:
                raise MalformedInputError("digest size")
            digests.append(slot.read(size))
    r.expect_end()
    selection = PCRSelectionList(tuple(selections))
    try:
        order = selection.pcr_order()
    except Exception as exc:
        raise MalformedInputError("unknown bank") from exc
    if len(order) != len(digests):
        raise MalformedInputError("count")
    values: dict[str, dict[int, bytes]] = {}
    for (bank, index), value in zip(order, digests, strict=True):
        if len(value) != hash_alg_by_name(bank).digest_size:
            raise MalformedInputError("size")
        values.setdefault(bank, {})[index] = value
    return selection, values


def _outcome(parse: object, data: bytes) -> object:
    try:
        return parse(data)  # type: ignore[operator]
    except MalformedInputError:
        return "malformed"


@pytest.mark.parametrize(
    "selection",
    [{"sha256": [0, 1, 2, 3, 7, 16]}, {"sha1": [0, 1], "sha256": list(range(10))}, {}],
    ids=["one-bank", "two-banks-two-lists", "empty"],
)
def test_pcr_file_struct_pass_keeps_the_rules(selection: dict[str, list[int]]) -> None:
    sizes = {"sha1": 20, "sha256": 32}
    values = {b: {i: bytes([i + 1]) * sizes[b] for i in idx} for b, idx in selection.items()}
    raw = write_pcr_file(PCRSelectionList.from_mapping(selection), values)
    assert read_pcr_file(raw) == _old_read_pcr_file(raw)
    for variant in _variants(raw)[: 4 * len(raw)]:
        assert _outcome(read_pcr_file, variant) == _outcome(_old_read_pcr_file, variant)


def test_pcr_file_reads_real_tpm2_tools_layout(tmp_path: Path) -> None:
    del tmp_path
    raw = write_pcr_file(
        PCRSelectionList.from_mapping({"sha256": [16]}), {"sha256": {16: b"\xab" * 32}}
    )
    selection, values = read_pcr_file(raw)
    assert values == {"sha256": {16: b"\xab" * 32}}
    assert selection.pcr_order() == [("sha256", 16)]
