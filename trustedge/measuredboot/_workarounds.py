"""The one table of known firmware/tool bugs that trustedge can work around.

Every workaround is off unless the caller names it: each one widens what is
accepted, so turning one on is a policy decision, not a parser default.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = ["WORKAROUNDS", "Workaround", "WorkaroundInfo"]


class Workaround(Enum):
    """Opt-in workarounds (pass a set of them to the parser or to ``verify``)."""

    #: Firmware extended PCR5 with "Exit Boot Services Invocation" and
    #: "Exit Boot Services Returned with Success" but did not log them.
    MISSING_EXIT_BOOT_SERVICES = "missing-exit-boot-services"
    #: The Spec ID event's EventSize does not include its vendorInfo bytes
    #: (tpm2-tools fixture ``specid-vendordata.bin``); read them after the event.
    SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT = "spec-id-vendor-info-outside-event"
    #: EV_EFI_VARIABLE_DRIVER_CONFIG digests cover only VariableData (GUID and
    #: name unbound); accept them when reading the Secure Boot state.
    VARIABLE_DIGEST_OVER_DATA_ONLY = "variable-digest-over-data-only"


@dataclass(frozen=True)
class WorkaroundInfo:
    """What a workaround does and where the bug was seen."""

    summary: str
    seen_in: str
    stage: str  # "parse" or "verify"


WORKAROUNDS: Final[dict[Workaround, WorkaroundInfo]] = {
    Workaround.MISSING_EXIT_BOOT_SERVICES: WorkaroundInfo(
        summary=(
            "when PCR5 does not replay, retry with the two EV_EFI_ACTION ExitBootServices "
            "events appended (marked synthetic in the verified log)"
        ),
        seen_in="go-attestation ebs_event_missing_eventlog (eventlog_workarounds.go), edk2 #10009",
        stage="verify",
    ),
    Workaround.SPEC_ID_VENDOR_INFO_OUTSIDE_EVENT: WorkaroundInfo(
        summary=(
            "a Spec ID event whose vendorInfoSize runs past EventSize takes the vendorInfo "
            "bytes that follow the record"
        ),
        seen_in="tpm2-tools test fixture specid-vendordata.bin",
        stage="parse",
    ),
    Workaround.VARIABLE_DIGEST_OVER_DATA_ONLY: WorkaroundInfo(
        summary=(
            "PCR7 configuration variables whose digest hashes only VariableData are "
            "accepted by secure_boot_state (the variable's name is then not bound)"
        ),
        seen_in="go-eventlog legacydata/linux_tpm12 (TPM 1.2 firmware)",
        stage="secure-boot",
    ),
}
