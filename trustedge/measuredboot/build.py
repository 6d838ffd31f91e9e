"""Build event logs and IMA lists (for tests, examples, generated vectors and simulators).

The output is what firmware writes: a crypto-agile log whose digests are the
hashes of each event's data (or a digest you pass), and binary IMA records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from trustedge._binary import Writer
from trustedge.measuredboot.events import BANK_BY_ALG_ID, BANK_SIZES, bank_hash

__all__ = ["LogEvent", "build_event_log", "build_ima_entry", "build_sha1_log"]

_ALG_BY_BANK = {bank: alg for alg, bank in BANK_BY_ALG_ID.items()}


class LogEvent(NamedTuple):
    """An event to write: PCR, type, data, and optional explicit digests per bank."""

    pcr: int
    event_type: int
    data: bytes
    digests: dict[str, bytes] | None = None


def _spec_id(banks: Sequence[str], vendor: bytes = b"") -> bytes:
    w = Writer().write(b"Spec ID Event03\x00").u32le(0).u8(0).u8(2).u8(0).u8(2)
    w.u32le(len(banks))
    for bank in banks:
        w.u16le(_ALG_BY_BANK[bank]).u16le(BANK_SIZES[bank])
    return w.bytes_u8(vendor).getvalue()


def build_event_log(events: Iterable[LogEvent], *, banks: Sequence[str] = ("sha256",)) -> bytes:
    """A crypto-agile event log (Spec ID header + TCG_PCR_EVENT2 records).

    Digests default to ``H_bank(data)``; EV_NO_ACTION events get zero digests.
    """
    spec = _spec_id(banks)
    w = Writer().u32le(0).u32le(3).write(bytes(20)).bytes_u32le(spec)
    for ev in events:
        w.u32le(ev.pcr).u32le(ev.event_type)
        digests = ev.digests
        if digests is None:
            if ev.event_type == 3:
                digests = {bank: bytes(BANK_SIZES[bank]) for bank in banks}
            else:
                digests = {bank: bank_hash(bank, ev.data) for bank in banks}
        w.u32le(len(digests))
        for bank, digest in digests.items():
            w.u16le(_ALG_BY_BANK[bank]).write(digest)
        w.bytes_u32le(ev.data)
    return w.getvalue()


def build_sha1_log(events: Iterable[LogEvent]) -> bytes:
    """A SHA-1 format log (TCG_PCR_EVENT records only)."""
    w = Writer()
    for ev in events:
        digest = (ev.digests or {}).get("sha1", bank_hash("sha1", ev.data))
        w.u32le(ev.pcr).u32le(ev.event_type).write(digest).bytes_u32le(ev.data)
    return w.getvalue()


def build_ima_entry(path: str, file_digest: bytes, *, algo: str = "sha256", pcr: int = 10) -> bytes:
    """One binary ``ima-ng`` record (template hash = SHA-1 of the template data)."""
    d_ng = algo.encode() + b":\x00" + file_digest
    n_ng = path.encode() + b"\x00"
    template = Writer().bytes_u32le(d_ng).bytes_u32le(n_ng).getvalue()
    name = b"ima-ng"
    return (
        Writer()
        .u32le(pcr)
        .write(bank_hash("sha1", template))
        .bytes_u32le(name)
        .bytes_u32le(template)
        .getvalue()
    )
