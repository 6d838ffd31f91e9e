"""Linux IMA measurement lists: parse (ASCII and binary), replay into PCR10, verify.

Templates ``ima``, ``ima-ng``, ``ima-sig``, ``ima-buf`` and ``ima-modsig`` are
understood; other templates parse (their template data is kept) but have no
decoded fields. Replay extends ``PCR = H(PCR || H_bank(template_data))`` for
SHA-256 and other banks (kernels >= 5.8) and ``PCR = SHA1(PCR || template_hash)``
for SHA-1; a violation (all-zero template hash) extends all-ones.

Verification (:func:`verify_ima_log`) matches the running PCR10 value after
every entry against the quoted PCR10 (the list keeps growing after the quote,
so any prefix may be the quoted one) and can start from a saved
:class:`ImaState` so long-running devices send only new entries.
"""

from __future__ import annotations

import hmac
import struct
from binascii import unhexlify
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError, ReplayMismatchError
from trustedge.hashing import sha256_chain, sha256_each
from trustedge.measuredboot.events import BANK_SIZES, bank_hasher

__all__ = [
    "BootAggregateOutcome",
    "BootAggregateResult",
    "ImaEntry",
    "ImaFields",
    "ImaLimits",
    "ImaLog",
    "ImaState",
    "VerifiedImaLog",
    "boot_aggregate_candidates",
    "boot_aggregate_result",
    "check_boot_aggregate",
    "parse_ima_log",
    "verify_ima_log",
]

_U32: Final = struct.Struct("<I")
_pack: Final = _U32.pack
_TEMPLATE_NAMES: Final = {b"ima-ng": "ima-ng", b"ima-sig": "ima-sig", b"ima": "ima"}
_ALGO_NAMES: Final = {
    b"sha1": "sha1",
    b"sha256": "sha256",
    b"sha384": "sha384",
    b"sha512": "sha512",
}
_SHA1_ZERO: Final = bytes(20)
_KNOWN_TEMPLATES: Final = ("ima", "ima-ng", "ima-sig", "ima-buf", "ima-modsig")
_NG_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "ima-ng": ("d-ng", "n-ng"),
    "ima-sig": ("d-ng", "n-ng", "sig"),
    "ima-buf": ("d-ng", "n-ng", "buf"),
    "ima-modsig": ("d-ng", "n-ng", "sig", "d-modsig", "modsig"),
}


@dataclass(frozen=True)
class ImaLimits:
    """Caps applied while parsing an IMA list."""

    max_list_size: int = 512 * 1024 * 1024
    max_entries: int = 10_000_000
    max_template_data: int = 1024 * 1024
    max_name: int = 255


class ImaFields(NamedTuple):
    """Decoded template fields of one entry (unverified).

    ``digest_algorithm`` is the hash name of the file digest (``"sha1"`` for
    the legacy ``ima`` template); ``path`` the file name (or buffer name for
    ``ima-buf``); ``signature`` the ``security.ima`` value (empty if none);
    ``buffer`` the measured buffer of ``ima-buf`` entries.
    """

    digest_algorithm: str
    digest: bytes
    path: str
    signature: bytes = b""
    buffer: bytes = b""


class ImaEntry(NamedTuple):
    """One measurement list entry, as logged (unverified).

    ``offset`` is the byte offset of the record (binary) or of the line (ASCII);
    ``template_hash`` the logged SHA-1 (or bank-sized) template hash;
    ``template_data`` the template fields, each ``u32 length || bytes`` (the
    legacy ``ima`` template: 20-byte digest and the name NUL-padded to 256).
    """

    number: int
    offset: int
    pcr: int
    template_hash: bytes
    template_name: str
    template_data: bytes
    # Fields decoded while parsing an ASCII list (kept inline, not as a nested
    # tuple: one object per entry keeps the garbage collector out of large lists).
    # ``decoded_path is None`` means "decode template_data on demand".
    decoded_algorithm: str = ""
    decoded_digest: bytes = b""
    decoded_path: str | None = None
    decoded_signature: bytes = b""
    decoded_buffer: bytes = b""

    @property
    def is_violation(self) -> bool:
        """True for a ToMToU/open-writers violation (all-zero template hash)."""
        return not any(self.template_hash)

    def fields(self) -> ImaFields:
        """Decode the template data (raises MalformedInputError if it does not decode)."""
        if self.decoded_path is None:
            return _decode_fields(self)
        return ImaFields(
            self.decoded_algorithm,
            self.decoded_digest,
            self.decoded_path,
            self.decoded_signature,
            self.decoded_buffer,
        )


class ImaState(NamedTuple):
    """Where incremental verification resumes: entries and bytes consumed, PCR value.

    Store it with the device's record after a successful verification and pass
    it back together with the bytes that follow ``byte_offset``.
    """

    entries: int
    byte_offset: int
    pcr_value: bytes
    bank: str = "sha1"


class ImaLog:
    """A parsed, **unverified** IMA measurement list."""

    __slots__ = ("base_offset", "consumed", "format", "trailing_bytes", "unverified_entries")

    def __init__(
        self,
        entries: Sequence[ImaEntry],
        *,
        fmt: str,
        consumed: int,
        trailing: int,
        base_offset: int = 0,
    ) -> None:
        #: The entries in list order (claims until :func:`verify_ima_log`).
        self.unverified_entries = tuple(entries)
        #: ``"ascii"`` or ``"binary"``.
        self.format = fmt
        #: Bytes of complete entries (where the next read would resume).
        self.consumed = consumed
        #: Bytes of an incomplete final record (only with ``allow_partial_tail``).
        self.trailing_bytes = trailing
        #: Stream offset of the first byte (non-zero for continuations).
        self.base_offset = base_offset

    @property
    def end_offset(self) -> int:
        """Stream offset just after the last complete entry."""
        return self.base_offset + self.consumed

    def replay(self, bank: str = "sha1", *, pcr: int = 10, start: bytes | None = None) -> bytes:
        """The value of ``pcr`` in ``bank`` after every entry for that PCR."""
        initial = start if start is not None else bytes(BANK_SIZES[bank])
        running = _running(self.unverified_entries, bank, pcr, initial)
        return running[-1] if running else initial


def parse_ima_log(
    data: bytes,
    *,
    limits: ImaLimits | None = None,
    allow_partial_tail: bool = False,
    base_offset: int = 0,
    first_number: int = 0,
    template_hash_size: int = 20,
) -> ImaLog:
    """Parse an IMA list: ``ascii_runtime_measurements`` or ``binary_runtime_measurements``.

    The format is detected from the first bytes (ASCII lines start with a
    decimal PCR index and a space). Binary lists are little-endian.
    ``allow_partial_tail`` accepts an incomplete final record (a list read
    while the kernel appends; the bytes are reported in ``trailing_bytes``);
    without it that raises :class:`~trustedge.errors.MalformedInputError`
    with the offset. ``base_offset``/``first_number`` number entries of a
    continuation (incremental verification). ``template_hash_size`` is the
    width of the binary template-hash column: 20 for the classic lists, the
    bank's digest size for per-bank lists (``binary_runtime_measurements_sha256``);
    ASCII lists carry any of 20/32/48/64.
    """
    lim = limits if limits is not None else ImaLimits()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("IMA list must be bytes")
    data = bytes(data)
    if len(data) > lim.max_list_size:
        raise LimitExceededError(f"IMA list of {len(data)} bytes", offset=base_offset)
    parse = _parse_ascii if _looks_ascii(data) else _parse_binary
    if template_hash_size not in (20, 32, 48, 64):
        raise ValueError("template_hash_size must be 20, 32, 48 or 64")
    log = parse(data, lim, allow_partial_tail, base_offset, first_number, template_hash_size)
    log.base_offset = base_offset
    return log


def _looks_ascii(data: bytes) -> bool:
    head = data[:4]
    return len(head) >= 2 and head[:1].isdigit() and b" " in data[:4]


# -- binary -------------------------------------------------------------------
#: Template names the record fast path takes (the legacy ``ima`` template has
#: another layout, other names are rare: both go field by field).
_FAST_TEMPLATES: Final = {name.encode(): name for name in _NG_FIELDS}
_FAST_SPLIT: Final = {name.encode(): len(fields) for name, fields in _NG_FIELDS.items()}
#: The decoded-field columns of an entry whose template data does not split
#: (``fields()`` decodes again, and raises).
_NO_FIELDS: Final[tuple[str, bytes, str | None, bytes, bytes]] = ("", b"", None, b"", b"")


def _parse_binary(
    data: bytes, lim: ImaLimits, partial: bool, base: int, first: int, hash_size: int
) -> ImaLog:
    r = Reader(data, max_size=lim.max_list_size, base_offset=base)
    head_size = 4 + hash_size
    entries: list[ImaEntry] = []
    append = entries.append
    new_tuple = tuple.__new__
    unpack = _U32.unpack_from
    number = first
    max_data = lim.max_template_data
    end = base + len(data)
    while True:
        # Runs of well-formed ima-ng/ima-sig/... records in one bounded call.
        run = r.u32le_pair_records(
            head_size,
            lim.max_name,
            max_data,
            max_count=lim.max_entries - (number - first),
            split_second=_FAST_SPLIT,
        )
        for offset, head, raw_name, template_data, parts in run:
            template = _FAST_TEMPLATES[raw_name]
            fields = _NO_FIELDS if parts is None else _ng_fields(_NG_FIELDS[template], parts)
            append(
                new_tuple(
                    ImaEntry,
                    (number, offset, unpack(head)[0], head[4:], template, template_data, *fields),
                )
            )
            number += 1
        start = r.offset
        if start >= end:
            break
        # One record field by field: the legacy template, another name, an
        # error (with its offset) or an incomplete tail.
        try:
            entry = _binary_record(r, number, start, lim, head_size)
        except MalformedInputError as exc:
            if partial and not isinstance(exc, LimitExceededError):
                return ImaLog(entries, fmt="binary", consumed=start - base, trailing=end - start)
            exc.args = (f"IMA entry {number}: {exc}",)
            raise
        if number - first >= lim.max_entries:
            raise LimitExceededError(f"more than {lim.max_entries} entries", offset=start)
        append(entry)
        number += 1
    return ImaLog(entries, fmt="binary", consumed=len(data), trailing=0)


def _binary_record(r: Reader, number: int, start: int, lim: ImaLimits, head_size: int) -> ImaEntry:
    head = r.read(head_size, "IMA record header")
    pcr = _U32.unpack_from(head)[0]
    template_hash = head[4:head_size]
    name = r.bytes_u32le("template name", max_len=lim.max_name)
    try:
        template = name.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedInputError("template name is not ASCII", offset=r.offset) from None
    if template == "ima":
        digest = r.read(20, "ima digest")
        fname = r.bytes_u32le("ima file name", max_len=lim.max_name)
        template_data = digest + fname.ljust(256, b"\x00")
    else:
        size = r.u32le("template data length")
        if size > lim.max_template_data:
            raise LimitExceededError(f"template data of {size} bytes", offset=r.offset - 4)
        template_data = r.read(size, "template data")
    return ImaEntry(number, start, pcr, template_hash, template, template_data)


# -- ASCII --------------------------------------------------------------------
def _parse_ascii(
    data: bytes, lim: ImaLimits, partial: bool, base: int, first: int, hash_size: int
) -> ImaLog:
    entries: list[ImaEntry] = []
    number = first
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or an incomplete line
    if len(lines) > lim.max_entries:
        raise LimitExceededError(f"more than {lim.max_entries} entries", offset=base)
    pos = 0
    append = entries.append
    new_tuple = tuple.__new__
    max_data = lim.max_template_data
    for line in lines:
        try:
            pcr_text, hash_text, template, rest = line.split(b" ", 3)
            pcr = 10 if pcr_text == b"10" else int(pcr_text)
            template_hash = unhexlify(hash_text)
            name = _TEMPLATE_NAMES.get(template) or template.decode("ascii")
            if name == "ima-ng":
                # The common case, inlined: "algo:hex path".
                digest_part, path = rest.split(b" ", 1)
                algo, sep, digest_hex = digest_part.partition(b":")
                if not sep:
                    raise ValueError("digest without algorithm")
                digest = unhexlify(digest_hex)
                d_ng = algo + b":\x00" + digest
                n_ng = path + b"\x00"
                template_data = b"".join((_pack(len(d_ng)), d_ng, _pack(len(n_ng)), n_ng))
                algo_name = _ALGO_NAMES.get(algo) or algo.decode("ascii")
                fields = (algo_name, digest, path.decode("utf-8", "surrogateescape"), b"", b"")
            elif name in _NG_FIELDS:
                template_data, fields = _ascii_ng(rest, _NG_FIELDS[name])
            elif name == "ima":
                digest_hex, path = rest.split(b" ", 1)
                digest = unhexlify(digest_hex)
                if len(digest) != 20 or len(path) > 255:
                    raise ValueError("ima entry digest/name size")
                template_data = digest + path.ljust(256, b"\x00")
                fields = ("sha1", digest, _text(path), b"", b"")
            else:
                raise ValueError(f"template {name!r} cannot be rebuilt from ASCII")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedInputError(
                f"IMA entry {number}: {exc}", offset=base + pos, expected="an IMA ASCII line"
            ) from None
        if len(template_hash) not in (20, 32, 48, 64) or pcr > 23:
            raise MalformedInputError(
                f"IMA entry {number}: bad PCR/template hash", offset=base + pos
            )
        if len(template_data) > max_data:
            raise LimitExceededError(
                f"IMA entry {number}: template data too large", offset=base + pos
            )
        append(
            new_tuple(
                ImaEntry, (number, base + pos, pcr, template_hash, name, template_data, *fields)
            )
        )
        number += 1
        pos += len(line) + 1
    if tail:
        if partial:
            return ImaLog(entries, fmt="ascii", consumed=pos, trailing=len(tail))
        raise MalformedInputError(f"IMA entry {number}: line without newline", offset=base + pos)
    return ImaLog(entries, fmt="ascii", consumed=len(data), trailing=0)


def _digest_field(text: bytes) -> bytes:
    """A d-ng style field from its ASCII form ``algo:hex`` (empty stays empty)."""
    if not text:
        return b""
    algo, sep, digest_hex = text.partition(b":")
    if not sep:
        raise ValueError("digest without algorithm")
    return algo + b":\x00" + unhexlify(digest_hex)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _ascii_ng(
    rest: bytes, names: tuple[str, ...]
) -> tuple[bytes, tuple[str, bytes, str, bytes, bytes]]:
    # d-ng and n-ng are space-separated; sig/buf are hex and may be empty (the
    # line then ends with a space). The path is the text between them.
    extra = len(names) - 2
    digest_part, tail = rest.split(b" ", 1)
    parts = tail.rsplit(b" ", extra)
    if len(parts) != extra + 1:
        raise ValueError("missing template fields")
    path, hex_fields = parts[0], parts[1:]
    algo, sep, digest_hex = digest_part.partition(b":")
    if not sep:
        raise ValueError("digest without algorithm")
    digest = unhexlify(digest_hex)
    d_ng = algo + b":\x00" + digest
    n_ng = path + b"\x00"
    out = [_pack(len(d_ng)), d_ng, _pack(len(n_ng)), n_ng]
    values = [
        _digest_field(text) if names[2 + i] == "d-modsig" else unhexlify(text)
        for i, text in enumerate(hex_fields)
    ]
    for value in values:
        out += (_pack(len(value)), value)
    sig = values[0] if names[2] == "sig" else b""
    buf = values[0] if names[2] == "buf" else b""
    return b"".join(out), (algo.decode("ascii"), digest, _text(path), sig, buf)


# -- fields -------------------------------------------------------------------
def _decode_fields(entry: ImaEntry) -> ImaFields:
    data = entry.template_data
    if entry.template_name == "ima":
        r = Reader(data)
        digest = r.read(20, "ima digest")
        path = r.rest().split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        return ImaFields("sha1", digest, path)
    names = _NG_FIELDS.get(entry.template_name)
    if names is None:
        raise MalformedInputError(f"template {entry.template_name!r} has no known fields")
    r = Reader(data, base_offset=entry.offset)
    values = [r.bytes_u32le(name) for name in names]
    r.expect_end("end of template data")
    return ImaFields(*_ng_fields(names, values))


def _ng_fields(
    names: tuple[str, ...], values: Sequence[bytes]
) -> tuple[str, bytes, str, bytes, bytes]:
    """(algorithm, digest, path, signature, buffer) from split ``ima-*`` fields."""
    algo, sep, digest = values[0].partition(b":\x00")
    if not sep:
        # ima-ng with a SHA-1/MD5 digest may omit the "algo:" prefix.
        algo, digest = b"sha1" if len(values[0]) == 20 else b"md5", values[0]
    path = values[1].rstrip(b"\x00").decode("utf-8", "surrogateescape")
    extra = names[2] if len(names) > 2 else ""
    sig = values[2] if extra == "sig" else b""
    buf = values[2] if extra == "buf" else b""
    algo_name = _ALGO_NAMES.get(algo) or algo.decode("ascii", "replace")
    return algo_name, digest, path, sig, buf


# -- replay / verification ------------------------------------------------------
def _data_digests(entries: Sequence[ImaEntry], bank: str) -> list[bytes]:
    """H_bank(template data) of every entry (SHA-256 in SIMD lanes, in C)."""
    if bank == "sha256":
        return sha256_each([e.template_data for e in entries])
    h = bank_hasher(bank)
    return [h(e.template_data).digest() for e in entries]


def _running(
    entries: Sequence[ImaEntry],
    bank: str,
    pcr: int,
    value: bytes,
    digests: Sequence[bytes] | None = None,
) -> list[bytes]:
    """The PCR value after each entry (entries of other PCRs repeat the value).

    ``digests`` are the entries' ``_data_digests`` when the caller has them.
    """
    ff = b"\xff" * BANK_SIZES[bank]
    sha1 = bank == "sha1"
    if digests is None and not sha1:
        digests = _data_digests(entries, bank)
    h = bank_hasher(bank)
    steps: list[bytes] = []
    append = steps.append
    for i, e in enumerate(entries):
        if e.pcr != pcr:
            continue
        th = e.template_hash
        if not any(th):  # a violation extends all-ones
            append(ff)
        elif sha1 and len(th) == 20:
            append(th)
        elif digests is not None:
            append(digests[i])
        else:
            append(h(e.template_data).digest())
    values = _extend_all(bank, value, steps)
    if len(values) == len(entries):
        return values
    out: list[bytes] = []  # some entries are for other PCRs: they repeat the value
    it = iter(values)
    for e in entries:
        if e.pcr == pcr:
            value = next(it)
        out.append(value)
    return out


def _extend_all(bank: str, value: bytes, steps: Sequence[bytes]) -> list[bytes]:
    if bank == "sha256":
        return sha256_chain(value, steps)
    h = bank_hasher(bank)
    out: list[bytes] = []
    for step in steps:
        value = h(value + step).digest()
        out.append(value)
    return out


@dataclass(frozen=True)
class VerifiedImaLog:
    """Entries of a list whose running PCR value matched the quoted value.

    ``entries`` are the verified entries for the PCR (up to and including the
    matching one); entries after the match are not included. ``state`` is where
    the next incremental verification resumes.
    """

    entries: tuple[ImaEntry, ...]
    state: ImaState
    pcr: int = 10


def verify_ima_log(
    log: ImaLog,
    quoted_pcr: bytes,
    *,
    bank: str = "sha1",
    pcr: int = 10,
    state: ImaState | None = None,
) -> VerifiedImaLog:
    """Verify ``log`` against the quoted value of ``pcr`` in ``bank``.

    Each entry's template hash must equal SHA-1 of its template data (violations
    excepted), otherwise the entry's fields are not bound to the PCR and
    :class:`~trustedge.errors.ReplayMismatchError` is raised. The running
    value after each entry is compared (constant time) with ``quoted_pcr``;
    the first prefix that matches is verified. With ``state``, replay starts
    from ``state.pcr_value`` and ``log`` must hold the bytes after
    ``state.byte_offset`` (parse them with ``base_offset``/``first_number``).

    Raises ReplayMismatchError when no prefix matches.
    """
    size = BANK_SIZES.get(bank)
    if size is None or len(quoted_pcr) != size:
        raise ValueError(f"quoted PCR must be a {bank} value")
    if state is not None and state.bank != bank:
        raise ValueError("state is for another bank")
    start = state.pcr_value if state is not None else bytes(size)
    base_entries = state.entries if state is not None else 0
    if state is not None and log.base_offset != state.byte_offset:
        raise ValueError("the list does not continue where the state stopped")
    entries = log.unverified_entries
    digests = None if bank == "sha1" else _data_digests(entries, bank)
    _check_template_hashes(entries, bank, digests)
    quoted = bytes(quoted_pcr)
    if hmac.compare_digest(start, quoted):
        return VerifiedImaLog((), ImaState(base_entries, log.base_offset, start, bank), pcr)
    running = _running(entries, bank, pcr, start, digests)
    cmp = hmac.compare_digest
    for i, value in enumerate(running):
        if cmp(value, quoted) and entries[i].pcr == pcr:
            verified = tuple(e for e in entries[: i + 1] if e.pcr == pcr)
            after = entries[i + 1].offset if i + 1 < len(entries) else log.end_offset
            new_state = ImaState(base_entries + i + 1, after, value, bank)
            return VerifiedImaLog(verified, new_state, pcr)
    raise ReplayMismatchError(
        f"no prefix of the IMA list replays to the quoted {bank} PCR{pcr}",
        mismatches=[(bank, pcr)],
    )


def _check_template_hashes(
    entries: Sequence[ImaEntry], bank: str, digests: Sequence[bytes] | None
) -> None:
    """Template hashes must hash the template data: SHA-1 for 20-byte columns, the
    bank's hash (``digests``, from ``_data_digests``) for a bank-sized column
    (per-bank lists)."""
    sha1 = bank_hasher("sha1")
    other_size = BANK_SIZES[bank]
    cmp = hmac.compare_digest
    for i, e in enumerate(entries):
        th = e.template_hash
        if not any(th):
            continue
        if len(th) == 20:
            ok = cmp(sha1(e.template_data).digest(), th)
        elif len(th) == other_size and digests is not None:
            ok = cmp(digests[i], th)
        else:
            raise ReplayMismatchError(
                f"IMA entry {e.number}: {len(th)}-byte template hash cannot be checked in {bank}",
                mismatches=[(bank, e.pcr)],
            )
        if not ok:
            raise ReplayMismatchError(
                f"IMA entry {e.number} (offset {e.offset}): template hash does not match "
                "its template data",
                mismatches=[(bank, e.pcr)],
            )


def boot_aggregate_candidates(pcrs: Mapping[int, bytes], bank: str) -> tuple[bytes, bytes]:
    """H(PCR0..7) and H(PCR0..9) in ``bank`` (older kernels / SHA-1, newer kernels).

    PCRs missing from ``pcrs`` count as all-zero.
    """
    h = bank_hasher(bank)
    size = BANK_SIZES[bank]
    values = [pcrs.get(i, bytes(size)) for i in range(10)]
    return h(b"".join(values[:8])).digest(), h(b"".join(values)).digest()


_IMA_ALGO_TO_BANK: Final = {
    "sha1": "sha1",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sm3": "sm3_256",
    "sm3_256": "sm3_256",
}


class BootAggregateOutcome(Enum):
    """How the ``boot_aggregate`` entry compares with the quoted PCRs."""

    MATCH = "match"
    MISMATCH = "mismatch"
    #: No entries, or entry 0 is not ``boot_aggregate``.
    MISSING = "missing"
    #: The PCRs it hashes (0-7, or 0-9) are not all quoted in its bank.
    UNCHECKABLE = "uncheckable"


class BootAggregateResult(NamedTuple):
    outcome: BootAggregateOutcome
    detail: str


def boot_aggregate_result(
    entries: Sequence[ImaEntry], pcrs: Mapping[str, Mapping[int, bytes]]
) -> BootAggregateResult:
    """Compare entry 0 (``boot_aggregate``) with quoted PCR values (pure, never raises
    for bad entries).

    ``pcrs`` are bank -> PCR -> value from a verified quote. The candidates
    are H(PCR0..7) and H(PCR0..9) in the bank of the entry's digest
    (ima-evm-utils, Keylime); a candidate is computed only when every PCR it
    hashes is in ``pcrs`` -- an unquoted PCR is never assumed to be zero. An
    all-zero digest (IMA found no TPM) never matches.
    """
    if not entries:
        return BootAggregateResult(BootAggregateOutcome.MISSING, "no IMA entries")
    try:
        fields = entries[0].fields()
    except MalformedInputError as exc:
        return BootAggregateResult(BootAggregateOutcome.MISSING, f"entry 0 undecodable: {exc}")
    if fields.path != "boot_aggregate" or entries[0].template_name == "ima-buf":
        return BootAggregateResult(
            BootAggregateOutcome.MISSING, "the first IMA entry is not boot_aggregate"
        )
    digest = fields.digest
    if not any(digest):
        return BootAggregateResult(
            BootAggregateOutcome.MISMATCH, "boot_aggregate is all zero (IMA saw no TPM)"
        )
    bank = _IMA_ALGO_TO_BANK.get(fields.digest_algorithm)
    values = pcrs.get(bank, {}) if bank is not None else {}
    size = BANK_SIZES.get(bank or "", 0)
    if bank is None or len(digest) != size:
        return BootAggregateResult(
            BootAggregateOutcome.MISMATCH,
            f"boot_aggregate digest ({fields.digest_algorithm}, {len(digest)} bytes) is not "
            "a PCR bank digest",
        )
    h = bank_hasher(bank)
    candidates = [
        h(b"".join(values[i] for i in range(n))).digest()
        for n in (8, 10)
        if all(i in values for i in range(n))
    ]
    if not candidates:
        missing = [i for i in range(8) if i not in values]
        return BootAggregateResult(
            BootAggregateOutcome.UNCHECKABLE,
            f"boot_aggregate not checked: {bank} PCR(s) {', '.join(map(str, missing))} not quoted",
        )
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        return BootAggregateResult(
            BootAggregateOutcome.MISMATCH,
            f"boot_aggregate {digest.hex()[:16]}... is neither H(PCR0..7) nor H(PCR0..9) "
            f"of the quoted {bank} PCRs",
        )
    return BootAggregateResult(BootAggregateOutcome.MATCH, "boot_aggregate matches")


def check_boot_aggregate(
    entries: Sequence[ImaEntry], pcrs: Mapping[str, Mapping[int, bytes]]
) -> None:
    """Cross-check the ``boot_aggregate`` entry against firmware PCR values.

    ``entries`` should be verified IMA entries and ``pcrs`` verified firmware
    PCRs (bank -> PCR -> value, e.g. from a quote). The first entry must be
    named ``boot_aggregate`` and its digest must equal H(PCR0..7) or
    H(PCR0..9) in its digest's bank (see :func:`boot_aggregate_result`).

    Raises :class:`~trustedge.errors.ReplayMismatchError` on a mismatch or
    when the entry or the PCRs it hashes are missing.
    """
    result = boot_aggregate_result(entries, pcrs)
    if result.outcome is not BootAggregateOutcome.MATCH:
        raise ReplayMismatchError(result.detail)
