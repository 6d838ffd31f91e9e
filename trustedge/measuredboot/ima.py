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
import io
import struct
from array import array
from binascii import unhexlify
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple, overload

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError, ReplayMismatchError
from trustedge.hashing import sha256_chain, sha256_each
from trustedge.measuredboot.events import BANK_SIZES, bank_hasher

__all__ = [
    "BootAggregateOutcome",
    "BootAggregateResult",
    "ImaEntries",
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


class ImaEntries(Sequence[ImaEntry]):
    """The entries of an IMA list, stored by column: a read-only sequence of :class:`ImaEntry`.

    A list of 200,000 entries as 200,000 tuples of bytes and strings costs about 500 bytes an
    entry; here an entry is a few array slots (offsets into one buffer holding every template
    hash and template data) and an :class:`ImaEntry` is built, with its fields decoded, each
    time one is read (``entries[i]``, iteration). Two reads of one entry are equal, not
    identical. For binary lists the buffer is the input itself; for ASCII lists it holds the
    binary template data rebuilt from the lines. Slices are views of the same columns.
    """

    __slots__ = ("_c", "_sel")

    def __init__(self, columns: _Columns, sel: range | array[int] | None = None) -> None:
        self._c = columns
        self._sel: range | array[int] = range(len(columns.pcr)) if sel is None else sel

    @classmethod
    def from_entries(cls, entries: Iterable[ImaEntry]) -> ImaEntries:
        """Columns of ``entries`` (their decoded fields are decoded again from
        ``template_data`` when read)."""
        if isinstance(entries, ImaEntries):
            return entries
        cols = _Columns(0)
        buf = bytearray()
        numbers: list[int] = []
        for e in entries:
            cols.add_hash(buf, e.template_hash)
            cols.add_data(buf, e.template_data)
            cols.add_entry(e.offset, e.pcr, e.template_name)
            numbers.append(e.number)
        cols.buf = bytes(buf)
        if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            cols.number = array("q", numbers)
        elif numbers:
            cols.first = numbers[0]
        return cls(cols)

    def __len__(self) -> int:
        return len(self._sel)

    def _entry(self, j: int) -> ImaEntry:
        c = self._c
        buf = c.buf
        data = buf[c.data_start[j] : c.data_end[j]]
        name = c.names[c.name[j]]
        number = c.first + j if c.number is None else c.number[j]
        head = (number, c.offset[j], c.pcr[j], buf[c.hash_start[j] : c.hash_end[j]], name, data)
        return tuple.__new__(ImaEntry, (*head, *_quick_fields(name, data)))

    @overload
    def __getitem__(self, index: int) -> ImaEntry: ...

    @overload
    def __getitem__(self, index: slice) -> ImaEntries: ...

    def __getitem__(self, index: int | slice) -> ImaEntry | ImaEntries:
        if isinstance(index, slice):
            return ImaEntries(self._c, self._sel[index])
        return self._entry(self._sel[index])

    def __iter__(self) -> Iterator[ImaEntry]:
        entry = self._entry
        for j in self._sel:
            yield entry(j)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"<ImaEntries: {len(self)} entries>"

    def allow_list_rows(self) -> Iterator[tuple[int, str | None, bytes]]:
        """``(i, path, digest)`` for each entry ``i`` of this sequence, read straight from the
        columns without building the :class:`ImaEntry` (a policy's common case: a measured
        ``ima-ng`` file whose digest is on the allow-list).

        ``path`` and ``digest`` are what :meth:`ImaEntry.fields` gives; ``path`` is None for
        any other entry (another template, a violation, template data that does not split
        into exactly two fields): read ``self[i]`` for those.
        """
        c = self._c
        buf, hs, he, ds, de = c.buf, c.hash_start, c.hash_end, c.data_start, c.data_end
        ng = c.name_ids.get("ima-ng")
        names = c.name
        unpack = _U32.unpack_from
        for i, j in enumerate(self._sel):
            a, b = ds[j], de[j]
            if names[j] != ng or b - a < 8 or buf.count(0, hs[j], he[j]) == he[j] - hs[j]:
                yield i, None, b""
                continue
            mid = a + 4 + unpack(buf, a)[0]
            if mid + 4 > b or mid + 4 + unpack(buf, mid)[0] != b:
                yield i, None, b""
                continue
            algo, sep, digest = buf[a + 4 : mid].partition(b":\x00")
            if not sep:
                digest = algo  # a SHA-1/MD5 digest without "algo:" (as _ng_fields)
            yield i, buf[mid + 4 : b].rstrip(b"\x00").decode("utf-8", "surrogateescape"), digest


class _Columns:
    """The columns an :class:`ImaEntries` is built from (filled by the parsers)."""

    __slots__ = ("buf", "data_end", "data_start", "first", "hash_end", "hash_start", "name",
                 "name_ids", "names", "number", "offset", "pcr")  # fmt: skip

    def __init__(self, first: int) -> None:
        self.buf: bytes = b""
        self.hash_start = array("Q")
        self.hash_end = array("Q")
        self.data_start = array("Q")
        self.data_end = array("Q")
        self.pcr = array("L")
        self.offset = array("q")
        self.name = array("L")
        self.names: list[str] = []
        self.name_ids: dict[str, int] = {}
        self.number: array[int] | None = None
        self.first = first

    def add_hash(self, buf: bytearray, value: bytes) -> None:
        self.hash_start.append(len(buf))
        buf += value
        self.hash_end.append(len(buf))

    def add_data(self, buf: bytearray, value: bytes) -> None:
        self.data_start.append(len(buf))
        buf += value
        self.data_end.append(len(buf))

    def add_entry(self, offset: int, pcr: int, name: str) -> None:
        self.offset.append(offset)
        self.pcr.append(pcr)
        self.name.append(self.name_id(name))

    def name_id(self, name: str) -> int:
        i = self.name_ids.get(name)
        if i is None:
            i = self.name_ids[name] = len(self.names)
            self.names.append(name)
        return i


def _quick_fields(name: str, data: bytes) -> tuple[str, bytes, str | None, bytes, bytes]:
    """The decoded-field columns of an entry: as :meth:`ImaEntry.fields` would decode
    ``data``, or :data:`_NO_FIELDS` when it does not decode (``fields()`` then raises)."""
    names = _NG_FIELDS.get(name)
    if names is None:
        if name == "ima" and len(data) >= 20:
            return ("sha1", data[:20], _text(data[20:].split(b"\x00", 1)[0]), b"", b"")
        return _NO_FIELDS
    unpack = _U32.unpack_from
    size = len(data)
    pos = 0
    values = []
    for _ in names:
        if pos + 4 > size:
            return _NO_FIELDS
        n = unpack(data, pos)[0]
        pos += 4
        if pos + n > size:
            return _NO_FIELDS
        values.append(data[pos : pos + n])
        pos += n
    if pos != size:
        return _NO_FIELDS
    return _ng_fields(names, values)


class ImaLog:
    """A parsed, **unverified** IMA measurement list."""

    __slots__ = ("base_offset", "consumed", "format", "trailing_bytes", "unverified_entries")

    def __init__(
        self,
        entries: Iterable[ImaEntry],
        *,
        fmt: str,
        consumed: int,
        trailing: int,
        base_offset: int = 0,
    ) -> None:
        #: The entries in list order (claims until :func:`verify_ima_log`), stored by
        #: column (:class:`ImaEntries`, a sequence of :class:`ImaEntry`).
        self.unverified_entries = ImaEntries.from_entries(entries)
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


#: Records per call of the fast path: bounds the transient tuples it returns.
_RUN: Final = 4096


def _parse_binary(
    data: bytes, lim: ImaLimits, partial: bool, base: int, first: int, hash_size: int
) -> ImaLog:
    r = Reader(data, max_size=lim.max_list_size, base_offset=base)
    head_size = 4 + hash_size
    cols = _Columns(first)
    # Template hash and data of the fast path's records stay in ``data`` (offsets only);
    # records read field by field (legacy ``ima`` layout, other names) go to ``extra``.
    extra = bytearray()
    extra_rows: list[int] = []
    name_of = {raw: cols.name_id(name) for raw, name in _FAST_TEMPLATES.items()}
    hs_add, he_add = cols.hash_start.append, cols.hash_end.append
    ds_add, de_add = cols.data_start.append, cols.data_end.append
    pcr_add, off_add, name_add = cols.pcr.append, cols.offset.append, cols.name.append
    unpack = _U32.unpack_from
    number = first
    max_data = lim.max_template_data
    end = base + len(data)
    while True:
        # Runs of well-formed ima-ng/ima-sig/... records in one bounded call.
        want = min(_RUN, lim.max_entries - (number - first))
        run = r.u32le_pair_records(
            head_size, lim.max_name, max_data, max_count=want, split_second=_FAST_SPLIT
        )
        for offset, head, raw_name, template_data, _parts in run:
            p = offset - base
            hs_add(p + 4)
            he_add(p + head_size)
            ds = p + head_size + 8 + len(raw_name)
            ds_add(ds)
            de_add(ds + len(template_data))
            pcr_add(unpack(head)[0])
            off_add(offset)
            name_add(name_of[raw_name])
        number += len(run)
        if run and len(run) == want and want == _RUN:
            continue
        start = r.offset
        if start >= end:
            break
        # One record field by field: the legacy template, another name, an
        # error (with its offset) or an incomplete tail.
        try:
            entry = _binary_record(r, number, start, lim, head_size)
        except MalformedInputError as exc:
            if partial and not isinstance(exc, LimitExceededError):
                cols.buf = _joined(data, extra, cols, extra_rows)
                return ImaLog(
                    ImaEntries(cols), fmt="binary", consumed=start - base, trailing=end - start
                )
            exc.args = (f"IMA entry {number}: {exc}",)
            raise
        if number - first >= lim.max_entries:
            raise LimitExceededError(f"more than {lim.max_entries} entries", offset=start)
        # Offsets into ``extra`` are shifted past ``data`` by _joined.
        cols.add_hash(extra, entry.template_hash)
        cols.add_data(extra, entry.template_data)
        cols.add_entry(entry.offset, entry.pcr, entry.template_name)
        extra_rows.append(len(cols.pcr) - 1)
        number += 1
    cols.buf = _joined(data, extra, cols, extra_rows)
    return ImaLog(ImaEntries(cols), fmt="binary", consumed=len(data), trailing=0)


def _joined(data: bytes, extra: bytearray, cols: _Columns, rows: list[int]) -> bytes:
    """The one buffer of a binary list: ``data``, then (only when some records were read
    field by field) their rebuilt hash and data, whose offsets are shifted past ``data``."""
    if not extra:
        return data
    shift = len(data)
    columns = (cols.hash_start, cols.hash_end, cols.data_start, cols.data_end)
    for j in rows:
        for column in columns:
            column[j] += shift
    return data + bytes(extra)


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
    cols = _Columns(first)
    # Template hashes and the binary template data rebuilt from each line, back to back.
    # (BytesIO: getvalue() hands over its buffer, where bytes(bytearray) would copy it.)
    out = io.BytesIO()
    write = out.write
    size = 0
    number = first
    if data.count(b"\n") > lim.max_entries:
        raise LimitExceededError(f"more than {lim.max_entries} entries", offset=base)
    pos = 0
    find = data.find
    hs_add, he_add = cols.hash_start.append, cols.hash_end.append
    ds_add, de_add = cols.data_start.append, cols.data_end.append
    pcr_add, off_add, name_add = cols.pcr.append, cols.offset.append, cols.name.append
    name_id = cols.name_id
    ng = name_id("ima-ng")
    max_data = lim.max_template_data
    # Line by line, without a list of every line (it would cost more than the columns).
    while (stop := find(b"\n", pos)) >= 0:
        line = data[pos:stop]
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
                if algo not in _ALGO_NAMES:
                    algo.decode("ascii")  # the algorithm name must be text
                d_ng = algo + b":\x00" + unhexlify(digest_hex)
                n_ng = path + b"\x00"
                template_data = b"".join((_pack(len(d_ng)), d_ng, _pack(len(n_ng)), n_ng))
            elif name in _NG_FIELDS:
                template_data, _ = _ascii_ng(rest, _NG_FIELDS[name])
            elif name == "ima":
                digest_hex, path = rest.split(b" ", 1)
                digest = unhexlify(digest_hex)
                if len(digest) != 20 or len(path) > 255:
                    raise ValueError("ima entry digest/name size")
                template_data = digest + path.ljust(256, b"\x00")
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
        hs_add(size)
        size += len(template_hash)
        he_add(size)
        ds_add(size)
        size += len(template_data)
        de_add(size)
        write(template_hash)
        write(template_data)
        pcr_add(pcr)
        off_add(base + pos)
        name_add(ng if name == "ima-ng" else name_id(name))
        number += 1
        pos = stop + 1
    cols.buf = out.getvalue()
    del out, write
    tail = len(data) - pos  # after the last newline: empty, or an incomplete line
    if tail:
        if partial:
            return ImaLog(ImaEntries(cols), fmt="ascii", consumed=pos, trailing=tail)
        raise MalformedInputError(f"IMA entry {number}: line without newline", offset=base + pos)
    return ImaLog(ImaEntries(cols), fmt="ascii", consumed=len(data), trailing=0)


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
def _data_digests(entries: ImaEntries, bank: str) -> list[bytes]:
    """H_bank(template data) of every entry (SHA-256 in SIMD lanes, in C), in order."""
    c = entries._c
    buf, ds, de = c.buf, c.data_start, c.data_end
    sel = entries._sel
    if bank == "sha256":
        out: list[bytes] = []
        for k in range(0, len(sel), _RUN):  # a bounded batch of template data at a time
            out += sha256_each([buf[ds[j] : de[j]] for j in sel[k : k + _RUN]])
        return out
    h = bank_hasher(bank)
    return [h(buf[ds[j] : de[j]]).digest() for j in sel]


def _running(
    entries: ImaEntries,
    bank: str,
    pcr: int,
    value: bytes,
    digests: Sequence[bytes] | None = None,
) -> list[bytes]:
    """The PCR value after each entry (entries of other PCRs repeat the value).

    ``digests`` are the entries' ``_data_digests`` when the caller has them.
    """
    if bank != "sha256":
        return list(_running_iter(entries, bank, pcr, value, digests))
    if digests is None:
        digests = _data_digests(entries, bank)
    c, sel = entries._c, entries._sel
    buf, hs, he, pcrs = c.buf, c.hash_start, c.hash_end, c.pcr
    ff = b"\xff" * BANK_SIZES[bank]
    steps = [
        ff if buf.count(0, hs[j], he[j]) == he[j] - hs[j] else digests[i]
        for i, j in enumerate(sel)
        if pcrs[j] == pcr
    ]
    values = sha256_chain(value, steps)  # in C
    if len(values) == len(sel):
        return values
    out: list[bytes] = []  # some entries are for other PCRs: they repeat the value
    it = iter(values)
    for j in sel:
        if pcrs[j] == pcr:
            value = next(it)
        out.append(value)
    return out


def _running_iter(
    entries: ImaEntries,
    bank: str,
    pcr: int,
    value: bytes,
    digests: Sequence[bytes] | None = None,
) -> Iterator[bytes]:
    """The PCR value after each entry, one at a time (a verifier stops at the match)."""
    ff = b"\xff" * BANK_SIZES[bank]
    sha1 = bank == "sha1"
    h = bank_hasher(bank)
    c, sel = entries._c, entries._sel
    buf, hs, he, ds, de, pcrs = c.buf, c.hash_start, c.hash_end, c.data_start, c.data_end, c.pcr
    for i, j in enumerate(sel):
        if pcrs[j] == pcr:
            a, b = hs[j], he[j]
            if buf.count(0, a, b) == b - a:  # a violation (all-zero hash) extends all-ones
                step = ff
            elif sha1 and b - a == 20:
                step = buf[a:b]
            elif digests is not None:
                step = digests[i]
            else:
                step = h(buf[ds[j] : de[j]]).digest()
            value = h(value + step).digest()
        yield value


@dataclass(frozen=True)
class VerifiedImaLog:
    """Entries of a list whose running PCR value matched the quoted value.

    ``entries`` are the verified entries for the PCR (up to and including the
    matching one), a view of the parsed list's columns (:class:`ImaEntries`); entries
    after the match are not included. ``state`` is where
    the next incremental verification resumes.
    """

    entries: ImaEntries
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
        return VerifiedImaLog(
            entries[0:0], ImaState(base_entries, log.base_offset, start, bank), pcr
        )
    running: Iterable[bytes] = (
        _running(entries, bank, pcr, start, digests)
        if bank == "sha256"
        else _running_iter(entries, bank, pcr, start, digests)
    )
    cmp = hmac.compare_digest
    c, sel = entries._c, entries._sel
    pcrs = c.pcr
    for i, value in enumerate(running):
        if cmp(value, quoted) and pcrs[sel[i]] == pcr:
            verified = _only_pcr(entries[: i + 1], pcr)
            after = c.offset[sel[i + 1]] if i + 1 < len(sel) else log.end_offset
            new_state = ImaState(base_entries + i + 1, after, value, bank)
            return VerifiedImaLog(verified, new_state, pcr)
    raise ReplayMismatchError(
        f"no prefix of the IMA list replays to the quoted {bank} PCR{pcr}",
        mismatches=[(bank, pcr)],
    )


def _only_pcr(entries: ImaEntries, pcr: int) -> ImaEntries:
    """The entries of ``entries`` for ``pcr`` (the same view when all are)."""
    c, sel = entries._c, entries._sel
    pcrs = c.pcr
    if (
        isinstance(sel, range)
        and sel.step == 1
        and pcrs[sel.start : sel.stop].count(pcr) == len(sel)
    ):
        return entries
    return ImaEntries(c, array("q", (j for j in sel if pcrs[j] == pcr)))


def _check_template_hashes(entries: ImaEntries, bank: str, digests: Sequence[bytes] | None) -> None:
    """Template hashes must hash the template data: SHA-1 for 20-byte columns, the
    bank's hash (``digests``, from ``_data_digests``) for a bank-sized column
    (per-bank lists)."""
    sha1 = bank_hasher("sha1")
    other_size = BANK_SIZES[bank]
    cmp = hmac.compare_digest
    c, sel = entries._c, entries._sel
    buf, hs, he, ds, de = c.buf, c.hash_start, c.hash_end, c.data_start, c.data_end
    for i, j in enumerate(sel):
        a, b = hs[j], he[j]
        if buf.count(0, a, b) == b - a:  # a violation: nothing to check
            continue
        th = buf[a:b]
        if b - a == 20:
            ok = cmp(sha1(buf[ds[j] : de[j]]).digest(), th)
        elif len(th) == other_size and digests is not None:
            ok = cmp(digests[i], th)
        else:
            e = entries[i]
            raise ReplayMismatchError(
                f"IMA entry {e.number}: {len(th)}-byte template hash cannot be checked in {bank}",
                mismatches=[(bank, e.pcr)],
            )
        if not ok:
            e = entries[i]
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
