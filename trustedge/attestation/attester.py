"""The device side of remote attestation: enrollment material and evidence.

An :class:`Attester` wraps a TPM backend (``SoftwareTPM`` or ``Tpm2Backend``),
the device's attestation key and the paths of its measurement logs. It
answers the verifier's two requests:

* :meth:`Attester.enrollment_request` -> EK public area, EK certificate and
  AK public area; :meth:`Attester.activate` recovers the credential secret
  the verifier sealed to the EK (``TPM2_ActivateCredential``).
* :meth:`Attester.evidence` -> an :class:`~trustedge.attestation.evidence.UnverifiedEvidence`
  bundle: a quote over the requested PCRs with the verifier's nonce, the
  firmware event log and the IMA entries the verifier has not seen yet.

The quote is taken *before* the logs are read, so the logs can only have
grown since: the verifier replays them and accepts the prefix that matches
the quoted PCRs. Nothing here is trusted by the verifier; the device parses
its own IMA list only to find where entry ``ima_offset`` starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trustedge.attestation.evidence import BANK_ALGORITHMS, UnverifiedEvidence
from trustedge.hazmat.tpm2 import Credential
from trustedge.hazmat.tpmbackend import AKHandle, TPMBackend
from trustedge.measuredboot import parse_ima_log

__all__ = ["Attester", "EnrollmentRequest", "ima_tail"]

_BANK_IDS = {name: alg for alg, (name, _) in BANK_ALGORITHMS.items()}
#: PCRs quoted by default: firmware and boot loader (0-9) and IMA (10).
DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


@dataclass(frozen=True)
class EnrollmentRequest:
    """What a device sends to be enrolled.

    ``ek_public`` and ``ak_public`` are ``TPM2B_PUBLIC`` bytes;
    ``ek_certificate`` the DER EK certificate from the TPM's NV (``None``
    when the TPM has none).
    """

    device_id: str
    ek_public: bytes
    ak_public: bytes
    ek_certificate: bytes | None


def ima_tail(data: bytes, offset: int) -> tuple[bytes, int]:
    """The bytes of the IMA list ``data`` from entry number ``offset`` on.

    Returns ``(tail, offset)``. When the list holds fewer than ``offset``
    entries (the device rebooted and its list started again) the whole list
    is returned with offset 0. Raises ``MalformedInputError`` when the list
    does not parse (a partial final record, as while the kernel appends, is
    left out).
    """
    if offset < 0:
        raise ValueError("offset must not be negative")
    if not data:
        return b"", 0
    log = parse_ima_log(data, allow_partial_tail=True)
    entries = log.unverified_entries
    end = log.end_offset
    if offset > len(entries):
        return data[:end], 0
    start = entries[offset].offset if offset < len(entries) else end
    return data[start:end], offset


class Attester:
    """Produces evidence for one device.

    ``backend`` is the device's TPM, ``ak`` its attestation key (from
    ``backend.create_ak()`` / ``load_ak()``), ``device_id`` the name the
    verifier knows it by. ``eventlog_path`` / ``ima_path`` are the firmware
    event log (``/sys/kernel/security/tpm0/binary_bios_measurements``) and
    the IMA list (``.../ima/binary_runtime_measurements``); either may be
    ``None`` when the device has no such log. ``bank`` is the PCR bank quoted.
    """

    def __init__(
        self,
        backend: TPMBackend,
        *,
        ak: AKHandle,
        device_id: str,
        eventlog_path: Path | str | None = None,
        ima_path: Path | str | None = None,
        bank: str = "sha256",
    ) -> None:
        if bank not in _BANK_IDS:
            raise ValueError(f"unknown PCR bank {bank!r}")
        self.backend = backend
        self.ak = ak
        self.device_id = device_id
        self.eventlog_path = None if eventlog_path is None else Path(eventlog_path)
        self.ima_path = None if ima_path is None else Path(ima_path)
        self.bank = bank

    def enrollment_request(self) -> EnrollmentRequest:
        """EK and AK public areas (and the EK certificate) of the AK's EK."""
        kind = self.ak.ek_kind
        return EnrollmentRequest(
            device_id=self.device_id,
            ek_public=self.backend.ek_public(kind),
            ak_public=self.ak.public,
            ek_certificate=self.backend.ek_certificate(kind),
        )

    def activate(self, credential: Credential) -> bytes:
        """Recover the verifier's credential secret (TPM2_ActivateCredential).

        Succeeds only when the EK and the AK named in the credential live in
        this TPM; raises ``BackendError`` otherwise.
        """
        return self.backend.activate_credential(
            self.ak, credential.credential_blob, credential.encrypted_secret
        )

    def evidence(
        self,
        nonce: bytes,
        *,
        pcrs: Sequence[int] = DEFAULT_PCRS,
        ima_offset: int = 0,
        enrollment_ref: str | None = None,
    ) -> UnverifiedEvidence:
        """Quote ``pcrs`` with ``nonce`` and bundle the logs.

        ``ima_offset`` is the number of IMA entries the verifier has already
        verified (from its challenge); only later entries are sent. Raises
        ``BackendError`` when the TPM fails, ``OSError`` when a log cannot be
        read, ``MalformedInputError`` when the device's own IMA list does not
        parse.
        """
        selection: Mapping[str, Sequence[int]] = {self.bank: sorted(set(pcrs))}
        quote = self.backend.quote(self.ak, nonce, selection)
        event_log = self.eventlog_path.read_bytes() if self.eventlog_path is not None else None
        ima_log: bytes | None = None
        if self.ima_path is not None:
            ima_log, ima_offset = ima_tail(self.ima_path.read_bytes(), ima_offset)
        values = quote.pcrs.get(self.bank, {})
        return UnverifiedEvidence(
            device_id=self.device_id,
            nonce=nonce,
            quote=quote.message,
            signature=quote.signature,
            ak_public=self.ak.public,
            pcrs={_BANK_IDS[self.bank]: dict(values)},
            enrollment_ref=enrollment_ref,
            event_log=event_log,
            ima_log=ima_log,
            ima_offset=ima_offset if ima_log is not None else 0,
        )
