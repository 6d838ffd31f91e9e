"""Parser of TCG PC Client event logs (SHA-1 legacy and crypto-agile).

All reads go through :class:`trustedge._binary.Reader`; every length is checked
against :class:`EventLogLimits` before anything is allocated; errors carry the
byte offset and the index of the record being read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.measuredboot._workarounds import Workaround
from trustedge.measuredboot.events import BANK_BY_ALG_ID, BANK_SIZES, Event, SpecIdEvent
from trustedge.measuredboot.replay import EventLog

__all__ = ["EventLogLimits", "parse_event_log"]

_EV_NO_ACTION = 0x00000003
_SPEC_ID_03 = b"Spec ID Event03\x00"
_SHA1_ZERO = bytes(20)
_PAD_FF = 0xFFFFFFFF
_HEADER = struct.Struct("<III")
_U32 = struct.Struct("<I")
_PCR_TYPE = struct.Struct("<II")
#: The fixed start of the Spec ID event, and its fields' sizes and names.
_SPEC_HEAD = struct.Struct("<16sIBBBBI")
_SPEC_HEAD_FIELDS = (
    (16, "Spec ID signature"),
    (4, "platformClass"),
    (1, "specVersionMinor"),
    (1, "specVersionMajor"),
    (1, "specErrata"),
    (1, "uintnSize"),
    (4, "numberOfAlgorithms"),
)


@dataclass(frozen=True)
class EventLogLimits:
    """Caps applied while parsing (defaults fit every real log seen so far)."""

    #: Largest accepted log in bytes (CCEL buffers are 256 KiB, big Windows logs ~1 MiB).
    max_log_size: int = 16 * 1024 * 1024
    #: Largest EventSize of one record (pcr-oracle uses 1 MiB as well).
    max_event_size: int = 1024 * 1024
    #: Most records in one log.
    max_events: int = 200_000
    #: Most digests in one TCG_PCR_EVENT2 and algorithms in the Spec ID event.
    max_digests: int = 16


def parse_event_log(
    data: bytes,
    *,
    limits: EventLogLimits | None = None,
    workarounds: Collection[Workaround] = (),
) -> EventLog:
    """Parse a firmware event log (``binary_bios_measurements``) without verifying it.

    Accepts SHA-1 format logs (TCG_PCR_EVENT only) and crypto-agile logs (a
    ``Spec ID Event03`` record followed by TCG_PCR_EVENT2 records), stops at
    trailing 0xFF or zero padding, and keeps records with PCR index
    0xFFFFFFFF (only EV_NO_ACTION may use it).

    Nothing is verified: the result is an :class:`EventLog` whose events are
    claims until :meth:`EventLog.verify` matched them against PCR values.

    Raises :class:`~trustedge.errors.MalformedInputError` (with ``offset``)
    for anything that does not parse, including an empty input, truncated
    records, digests of algorithms the Spec ID event did not declare and
    trailing bytes that are not padding; :class:`~trustedge.errors.LimitExceededError`
    when ``limits`` are exceeded.
    """
    lim = limits if limits is not None else EventLogLimits()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("event log must be bytes")
    r = Reader(data, max_size=lim.max_log_size)
    if r.at_end():
        raise MalformedInputError("empty event log", offset=0, expected="a TCG_PCR_EVENT record")
    first = _read_sha1_record(r, 0, lim)
    spec = None
    # Confidential-computing logs (TDX CCEL) put the Spec ID record on MR index 1.
    if first.pcr in (0, 1) and first.event_type == _EV_NO_ACTION and first.data[:16] == _SPEC_ID_03:
        # With the vendor-info workaround the bytes after the record belong to
        # the Spec ID event; ``first.data`` stays what EventSize covers.
        spec, _extra = _parse_spec_id(first, lim, r, workarounds)
        if first.digests["sha1"] != _SHA1_ZERO:
            raise MalformedInputError(
                "Spec ID record with a non-zero digest", offset=first.offset, expected="zero digest"
            )
        events = [Event(0, first.offset, first.pcr, first.event_type, {}, first.data)]
        _read_agile_records(r, events, spec, lim)
    else:
        events = [first]
        index = 1
        while not r.at_end():
            if _at_padding(r):
                break
            if index >= lim.max_events:
                raise LimitExceededError(f"more than {lim.max_events} records", offset=r.offset)
            events.append(_read_sha1_record(r, index, lim))
            index += 1
    return EventLog(events, spec_id=spec)


def _with_index(exc: MalformedInputError, index: int) -> MalformedInputError:
    """The same error (class, offset, expected) with the record number in front."""
    exc.args = (f"record {index}: {exc}",)
    return exc


def _read_sha1_record(r: Reader, index: int, lim: EventLogLimits) -> Event:
    start = r.offset
    try:
        # One bounded 32-byte read; the fields sit at fixed positions in it.
        header = r.read(32, "TCG_PCR_EVENT header")
        pcr, etype = _PCR_TYPE.unpack_from(header)
        digest = header[8:28]
        size = _U32.unpack_from(header, 28)[0]
        if size > lim.max_event_size:
            raise LimitExceededError(
                f"EventSize {size} exceeds the limit of {lim.max_event_size}",
                offset=r.offset - 4,
                expected="EventSize",
            )
        payload = r.read(size, "event data")
    except MalformedInputError as exc:
        raise _with_index(exc, index) from None
    _check_pcr(pcr, etype, start, index)
    return Event(index, start, pcr, etype, {"sha1": digest}, payload)


def _check_pcr(pcr: int, etype: int, offset: int, index: int) -> None:
    # Windows appends EV_NO_ACTION records with PCR 0xFFFFFFFF; every other
    # record must name a real PCR (never index arrays with an unchecked value).
    if pcr > 23 and not (etype == _EV_NO_ACTION and pcr == _PAD_FF):
        raise MalformedInputError(
            f"record {index}: PCR index {pcr} out of range", offset=offset, expected="PCR 0-23"
        )


def _parse_spec_id(
    first: Event, lim: EventLogLimits, outer: Reader, workarounds: Collection[Workaround]
) -> tuple[SpecIdEvent, bytes]:
    base = first.offset + 32
    r = Reader(first.data, max_size=lim.max_event_size, base_offset=base)
    try:
        if r.remaining < _SPEC_HEAD.size:
            # Too short: read field by field so the error names the cut one.
            for size, what in _SPEC_HEAD_FIELDS:
                r.skip(size, what)
        signature, platform_class, minor, major, errata, uintn, n = r.read_struct(_SPEC_HEAD)
        r.count(n, lim.max_digests, "numberOfAlgorithms")
        algs: dict[str, int] = {}
        sizes: dict[int, int] = {}
        for _ in range(n):
            at = r.offset
            alg = r.u16le("algorithmId")
            size = r.u16le("digestSize")
            if alg in sizes:
                raise MalformedInputError(f"algorithm 0x{alg:04x} listed twice", offset=at)
            bank = BANK_BY_ALG_ID.get(alg)
            if bank is not None and BANK_SIZES[bank] != size:
                raise MalformedInputError(
                    f"digest size {size} for {bank}", offset=at, expected=str(BANK_SIZES[bank])
                )
            if size == 0 or size > 64:
                raise MalformedInputError(f"digest size {size}", offset=at, expected="1-64")
            sizes[alg] = size
            if bank is not None:
                algs[bank] = size
        vendor_size = r.u8("vendorInfoSize")
        extra = b""
        if (
            vendor_size > r.remaining
            and r.remaining == 0
            and Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT in workarounds
        ):
            extra = outer.read(vendor_size, "vendorInfo after the Spec ID record")
            vendor = extra
        else:
            vendor = r.read(vendor_size, "vendorInfo")
            r.expect_end("end of the Spec ID event")
    except MalformedInputError as exc:
        raise _with_index(exc, 0) from None
    if (major, minor) != (2, 0):
        raise MalformedInputError(
            f"Spec ID version {major}.{minor}", offset=base + 20, expected="2.0"
        )
    if uintn not in (1, 2):
        raise MalformedInputError(f"uintnSize {uintn}", offset=base + 23, expected="1 or 2")
    if not sizes:
        raise MalformedInputError("Spec ID event lists no algorithms", offset=base + 24)
    return SpecIdEvent(
        signature=signature.rstrip(b"\x00").decode("ascii"),
        platform_class=platform_class,
        spec_version_major=major,
        spec_version_minor=minor,
        spec_errata=errata,
        uintn_size=uintn,
        algorithms=algs,
        vendor_info=vendor,
        digest_sizes=sizes,
    ), extra


def _at_padding(r: Reader) -> bool:
    """True when everything left is 0xFF or 0x00 fill (CCEL buffers, firmware tables)."""
    n = r.remaining
    head = r.peek(1, "record")[0]
    if head not in (0x00, 0xFF):
        return False
    if n >= 8 and r.peek(8).count(head) != 8:
        return False
    return r.peek(n).count(head) == n


class _Layout(NamedTuple):
    """The fixed record layout of one Spec ID algorithm list (see :func:`_layout`)."""

    #: pcr, type, count, (algorithm id, digest) per declared algorithm, EventSize.
    head: struct.Struct
    expected_ids: tuple[int, ...]
    #: algorithm id -> bank name (None for algorithms trustedge does not know).
    names: Mapping[int, str | None]
    #: (bank name, field index) of the digests of known banks, in Spec ID order.
    known: tuple[tuple[str, int], ...]
    known_names: tuple[str, ...]
    #: known[i][1] for every i, plus two dummies: always returns a tuple.
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]


@lru_cache(maxsize=64)
def _layout(algs: tuple[tuple[int, int], ...]) -> _Layout:
    """Layout of a record with one digest per ``(alg, size)``, in that order.

    Cached: logs of a fleet share a handful of algorithm lists, and building
    this costs more than parsing a short log's records.
    """
    head = struct.Struct("<III" + "".join(f"H{size}s" for _, size in algs) + "I")
    names = {alg: BANK_BY_ALG_ID.get(alg) for alg, _ in algs}
    known = tuple((name, 4 + 2 * i) for i, name in enumerate(names.values()) if name is not None)
    pick = itemgetter(*[i for _, i in known], 0, 0)
    known_names = tuple(name for name, _ in known)
    return _Layout(head, tuple(names), MappingProxyType(names), known, known_names, pick)


def _read_agile_records(
    r: Reader, events: list[Event], spec: SpecIdEvent, lim: EventLogLimits
) -> None:
    sizes = spec.digest_sizes
    # Almost every event lists one digest per declared algorithm in the Spec ID
    # order. Then header, digests and EventSize have one fixed layout, unpacked
    # by one struct in one bounded read: (pcr, type, count, id, digest, ...,
    # EventSize); ``fields[ids]`` are the algorithm ids.
    layout, expected_ids, names, known, known_names, pick = _layout(tuple(sizes.items()))
    record_head = layout.size
    ids = slice(3, -1, 2)
    n_spec = len(sizes)
    n_known = len(known)
    # Dict displays of 1-3 digests cost a quarter of dict(zip(...)); the
    # padding entries are never used (n_known picks the branch).
    (k0, i0), (k1, i1), (k2, i2) = (*known, ("", 0), ("", 0), ("", 0))[:3]
    max_event = lim.max_event_size
    max_events = lim.max_events
    # Bound methods in locals: this loop runs once per event.
    peek_struct = r.peek_struct
    read = r.read
    append = events.append
    new_tuple = tuple.__new__
    index = len(events)
    # ``start`` is always ``r.offset`` (the fast path tracks it by arithmetic).
    start = r.offset
    end = start + r.remaining
    while start < end:
        avail = end - start
        # Fast path: full-layout records on PCR 0-23 that fit the limits and
        # the input. Anything else (padding, limits, errors, other digest
        # lists, PCR 0xFFFFFFFF) goes to the general code below, record by
        # record, which keeps the checks and messages in their order.
        while avail >= record_head and index < max_events:
            fields = peek_struct(layout, "TCG_PCR_EVENT2 header")
            pcr = fields[0]
            size = fields[-1]
            if (
                fields[2] != n_spec
                or fields[ids] != expected_ids  # not secret: public algorithm ids
                or pcr > 23
                or size > max_event
                or size > avail - record_head
            ):
                break
            if n_known == 2:
                digests = {k0: fields[i0], k1: fields[i1]}
            elif n_known == 1:
                digests = {k0: fields[i0]}
            elif n_known == 3:
                digests = {k0: fields[i0], k1: fields[i1], k2: fields[i2]}
            else:
                digests = dict(zip(known_names, pick(fields)))  # noqa: B905 - dummies
            total = record_head + size
            # Header, digests and data in one bounded read; tuple.__new__
            # skips NamedTuple's Python-level __new__.
            payload = read(total, "event data")[record_head:]
            append(new_tuple(Event, (index, start, pcr, fields[1], digests, payload)))
            index += 1
            start += total
            avail -= total
        if not avail:
            return
        if avail < 16 and _at_padding(r):
            return
        try:
            if avail >= record_head:
                fields = peek_struct(layout, "TCG_PCR_EVENT2 header")
                pcr, etype, count = fields[:3]
                fast = count == n_spec and fields[ids] == expected_ids  # not secret: alg ids
            else:
                pcr, etype, count = peek_struct(_HEADER, "TCG_PCR_EVENT2 header")
                fast = False
            if pcr == etype == count and pcr in (0, _PAD_FF) and _rest_is_fill(r, pcr & 0xFF):
                return
            if index >= max_events:
                raise LimitExceededError(f"more than {max_events} records", offset=start)
            if fast:
                digests = dict(zip(known_names, pick(fields)))  # noqa: B905 - dummies
                size = fields[-1]
                if size > max_event:
                    raise LimitExceededError(
                        f"EventSize {size} exceeds the limit of {max_event}",
                        offset=start + record_head - 4,
                        expected="EventSize",
                    )
                payload = read(record_head + size, "event data")[record_head:]
            else:
                r.skip(12)
                digests = _read_digests(r, count, sizes, names, start)
                size = r.u32le("EventSize")
                if size > max_event:
                    raise LimitExceededError(
                        f"EventSize {size} exceeds the limit of {max_event}",
                        offset=r.offset - 4,
                        expected="EventSize",
                    )
                payload = read(size, "event data")
        except MalformedInputError as exc:
            raise _with_index(exc, index) from None
        if pcr > 23:
            _check_pcr(pcr, etype, start, index)
        append(Event(index, start, pcr, etype, digests, payload))
        index += 1
        start = r.offset


def _read_digests(
    r: Reader, count: int, sizes: dict[int, int], names: Mapping[int, str | None], start: int
) -> dict[str, bytes]:
    """The general TPML_DIGEST_VALUES reader (any order, fewer digests than declared)."""
    if count > len(sizes):
        raise MalformedInputError(
            f"DigestCount {count} exceeds the {len(sizes)} declared algorithms",
            offset=start + 8,
            expected="DigestCount",
        )
    digests: dict[str, bytes] = {}
    seen: set[int] = set()
    for _ in range(count):
        alg = r.u16le("AlgorithmId")
        size = sizes.get(alg)
        if size is None or alg in seen:
            raise MalformedInputError(
                f"digest algorithm 0x{alg:04x} undeclared or repeated",
                offset=r.offset - 2,
                expected="a declared AlgorithmId",
            )
        seen.add(alg)
        value = r.read(size, "digest")
        name = names[alg]
        if name is not None:
            digests[name] = value
    return digests


def _rest_is_fill(r: Reader, fill: int) -> bool:
    """At a record that starts with fill bytes: is everything left fill?"""
    n = r.remaining
    return n == 0 or r.peek(n).count(fill) == n
