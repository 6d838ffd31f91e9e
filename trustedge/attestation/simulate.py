"""Make a (software or test) device *look booted*: for demos and tests only.

A real device's firmware and kernel extend its PCRs while it boots; a
``SoftwareTPM`` or a fresh swtpm has nobody doing that. These helpers play
that part: :func:`boot_from_event_log` extends every measured event of a
firmware event log into the TPM (the PCRs then match the log, as on a real
machine), and :func:`measure_file` appends an IMA ``ima-ng`` entry to an IMA
list file and extends PCR 10 like the kernel does. Nothing here verifies
anything; never use it on a production device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.measuredboot import EventType, parse_event_log, parse_ima_log
from trustedge.measuredboot.build import LogEvent, build_event_log, build_ima_entry

__all__ = [
    "append_boot_application",
    "boot_from_event_log",
    "measure_boot_aggregate",
    "measure_file",
]

#: PCRs software may extend at locality 0 (17-22 belong to DRTM, 0's start
#: value depends on the startup locality the log records).
_EXTENDABLE = frozenset(range(0, 17)) | {23}


def boot_from_event_log(
    backend: TPMBackend, log: bytes, *, banks: Iterable[str] | None = None
) -> int:
    """Extend each measured event of ``log`` into ``backend``; return how many.

    ``EV_NO_ACTION`` records and PCRs software cannot extend are skipped.
    ``banks`` defaults to the backend's allocated banks.
    """
    wanted = set(banks if banks is not None else backend.info().banks)
    count = 0
    for event in parse_event_log(log).unverified_events:
        if event.event_type == EventType.EV_NO_ACTION or event.pcr not in _EXTENDABLE:
            continue
        digests = {b: d for b, d in event.digests.items() if b in wanted}
        if digests:
            backend.pcr_extend(event.pcr, digests)
            count += 1
    return count


def _image_load_event(path: str) -> bytes:
    """UEFI_IMAGE_LOAD_EVENT for a file-path device path (media node 4/4)."""
    name = path.encode("utf-16-le") + b"\x00\x00"
    node = b"\x04\x04" + (4 + len(name)).to_bytes(2, "little") + name
    device_path = node + b"\x7f\xff\x04\x00"
    header = (0x7E000000).to_bytes(8, "little") + (0x20000).to_bytes(8, "little")
    return header + bytes(8) + len(device_path).to_bytes(8, "little") + device_path


def append_boot_application(backend: TPMBackend, log: bytes, path: str, image: bytes) -> bytes:
    """Load one more EFI application: extend PCR4 with its digest and return
    the event log with its ``EV_EFI_BOOT_SERVICES_APPLICATION`` record appended."""
    parsed = parse_event_log(log)
    banks = parsed.banks
    # Keep every record but the Spec ID header (rebuilt): StartupLocality sets
    # where PCR0 replays from.
    events = [
        LogEvent(e.pcr, e.event_type, e.data, dict(e.digests))
        for e in parsed.unverified_events
        if not (e.number == 0 and e.event_type == EventType.EV_NO_ACTION)
    ]
    digests = {b: hashlib.new(b, image).digest() for b in banks}
    events.append(
        LogEvent(4, EventType.EV_EFI_BOOT_SERVICES_APPLICATION, _image_load_event(path), digests)
    )
    have = set(backend.info().banks)
    backend.pcr_extend(4, {b: d for b, d in digests.items() if b in have})
    return build_event_log(events, banks=banks)


def measure_file(backend: TPMBackend, ima_path: Path, path: str, file_digest: bytes) -> None:
    """Append an ``ima-ng`` (sha256) entry for ``path`` to ``ima_path`` and extend PCR 10.

    The SHA-1 bank gets the template hash, every other bank
    ``H_bank(template_data)``, as kernels since 5.8 do.
    """
    _append_ima(backend, ima_path, build_ima_entry(path, file_digest, algo="sha256"))


def _append_ima(backend: TPMBackend, ima_path: Path, record: bytes) -> None:
    entry = parse_ima_log(record).unverified_entries[0]
    digests = {
        b: entry.template_hash if b == "sha1" else hashlib.new(b, entry.template_data).digest()
        for b in backend.info().banks
    }
    with open(ima_path, "ab") as out:
        out.write(record)
    backend.pcr_extend(10, digests)


def measure_boot_aggregate(backend: TPMBackend, ima_path: Path, *, bank: str = "sha256") -> bytes:
    """Start the IMA list like the kernel: entry 0 ``boot_aggregate`` = H(PCR0..9)
    of ``bank`` (kernels >= 5.8, non-SHA-1 banks), read from ``backend`` now.

    Call it after the firmware events are extended. Returns the aggregate.
    """
    values = backend.pcr_read({bank: tuple(range(10))})[bank]
    aggregate = hashlib.new(bank, b"".join(values[i] for i in range(10))).digest()
    _append_ima(backend, ima_path, build_ima_entry("boot_aggregate", aggregate, algo=bank))
    return aggregate
