"""The evidence the attestation benchmarks send: one copy, shared by ``fleet.py`` and
``appraisal.py``.

* :func:`firmware_log` -- the 60-event firmware log (CRTM version, Secure Boot enabled, 50
  firmware blobs, 8 separators; SHA-1 and SHA-256 banks), replayed and Secure-Boot checked
  at every appraisal;
* :class:`MemoryTPM` -- a SoftwareTPM without persistence (generating evidence fast matters
  here, its state file does not);
* :func:`ima_entry`, :func:`boot_aggregate_entry`, :func:`ima_ascii`,
  :func:`template_digests` -- IMA entries (binary ``ima-ng``, SHA-256), the same entries as
  the kernel's ASCII list shows them (what Keylime reads), and what each extends PCR 10 by;
* :func:`quote_message` / :func:`sign_quote` -- a quote built and signed as a TPM would
  (the TPMS_ATTEST with the verifier's nonce, a clock and the PCR digest, signed with the
  AK's private key): legitimate for a load generator because the verifier checks every
  byte of it as it would for a real TPM.

``appraisal.py --against REV`` imports this module over an older trustedge tree: it uses
only names that tree has at module level (the fleet-only quote builders import lazily).
"""

from __future__ import annotations

import hashlib
from typing import Any

from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.measuredboot import EventType, parse_ima_log
from trustedge.measuredboot.build import LogEvent, build_event_log, build_ima_entry

__all__ = [
    "FIRMWARE_EVENTS",
    "MemoryTPM",
    "boot_aggregate_entry",
    "firmware_log",
    "ima_ascii",
    "ima_entry",
    "quote_message",
    "sign_quote",
    "template_digests",
]

FIRMWARE_EVENTS = 60


class MemoryTPM(SoftwareTPM):
    """SoftwareTPM that keeps its state in memory only (100k PCR extends stay fast)."""

    def _save(self) -> None:
        pass


def firmware_log() -> bytes:
    """60 events: CRTM version, Secure Boot enabled, 50 firmware blobs, 8 separators."""
    secure_boot_on = (
        bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")
        + (10).to_bytes(8, "little") + (1).to_bytes(8, "little")
        + "SecureBoot".encode("utf-16-le") + b"\x01"
    )  # fmt: skip
    events = [LogEvent(0, EventType.EV_S_CRTM_VERSION, "1.0".encode("utf-16-le"))]
    events.append(LogEvent(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, secure_boot_on))
    for i in range(50):
        events.append(LogEvent(i % 4, EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB, bytes([i]) * 16))
    for pcr in range(8):
        events.append(LogEvent(pcr, EventType.EV_SEPARATOR, bytes(4)))
    assert len(events) == FIRMWARE_EVENTS
    return build_event_log(events, banks=("sha1", "sha256"))


def ima_entry(path: str, digest: bytes) -> bytes:
    """One binary ``ima-ng`` entry (SHA-256 file digest) for PCR 10."""
    return build_ima_entry(path, digest, algo="sha256")


def boot_aggregate_entry(aggregate: bytes) -> bytes:
    """Entry 0 of a boot's IMA list."""
    return build_ima_entry("boot_aggregate", aggregate, algo="sha256")


def ima_ascii(chunk: bytes) -> bytes:
    """The same entries as the kernel's ``ascii_runtime_measurements`` shows them."""
    lines = []
    for e in parse_ima_log(chunk).unverified_entries:
        f = e.fields()
        fields = (e.template_hash.hex(), e.template_name, f.digest.hex(), f.path)
        lines.append(b"%d %s %s sha256:%s %s\n" % (e.pcr, *(x.encode() for x in fields)))
    return b"".join(lines)


def template_digests(chunk: bytes) -> list[bytes]:
    """What each entry of a binary list extends PCR 10 by (SHA-256 of its template data)."""
    return [
        hashlib.sha256(e.template_data).digest() for e in parse_ima_log(chunk).unverified_entries
    ]


def quote_message(
    qualified_signer: bytes, nonce: bytes, clock: int, selection: Any, pcr_digest: bytes
) -> bytes:
    """The TPMS_ATTEST of a TPM2_Quote (what a TPM would sign)."""
    from trustedge.attestation.backends.software import SOFTWARE_FIRMWARE_VERSION
    from trustedge.hazmat.tpm2 import TPM_GENERATED_VALUE, TPMST, Attest, ClockInfo, QuoteInfo

    return Attest(
        magic=TPM_GENERATED_VALUE, type=int(TPMST.ATTEST_QUOTE),
        qualified_signer=qualified_signer, extra_data=nonce,
        clock_info=ClockInfo(clock, 1, 0, True), firmware_version=SOFTWARE_FIRMWARE_VERSION,
        attested=QuoteInfo(selection, pcr_digest),
    ).marshal()  # fmt: skip


def sign_quote(key: Any, message: bytes) -> bytes:
    """The TPMT_SIGNATURE (ECDSA P-256, SHA-256) of ``message`` by the AK's private key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from trustedge.hazmat.tpm2 import Signature, TPMAlg

    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return Signature(
        int(TPMAlg.ECDSA), int(TPMAlg.SHA256), r=r.to_bytes(32, "big"), s=s.to_bytes(32, "big")
    ).marshal()
