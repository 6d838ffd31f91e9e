"""Measured boot: TCG PC Client event logs and Linux IMA measurement lists.

Parse a firmware event log (:func:`parse_event_log`), replay it per hash bank
(:meth:`EventLog.replay`) and verify it against PCR values taken from a
verified quote (:meth:`EventLog.verify`). Only the :class:`VerifiedEventLog`
that verification returns should feed policy decisions: event types and data
are not covered by PCR digests, so an unverified log proves nothing.
"""

from trustedge.measuredboot._decode import DecodedEvent, decode_event
from trustedge.measuredboot._parse import EventLogLimits, parse_event_log
from trustedge.measuredboot._workarounds import WORKAROUNDS, Workaround, WorkaroundInfo
from trustedge.measuredboot.classify import (
    ClassifiedEvent,
    ClassifiedLog,
    EventKind,
    classify,
)
from trustedge.measuredboot.consistency import (
    DataCheck,
    DataCheckResult,
    check_event_data,
    check_events,
)
from trustedge.measuredboot.diff import (
    Divergence,
    DivergenceKind,
    diff_event_logs,
    explain_mismatch,
)
from trustedge.measuredboot.events import (
    BANK_BY_ALG_ID,
    BANK_SIZES,
    BANKS,
    Event,
    EventType,
    SpecIdEvent,
    event_type_name,
)
from trustedge.measuredboot.ima import (
    BootAggregateOutcome,
    BootAggregateResult,
    ImaEntries,
    ImaEntry,
    ImaFields,
    ImaLimits,
    ImaLog,
    ImaState,
    VerifiedImaLog,
    boot_aggregate_candidates,
    boot_aggregate_result,
    check_boot_aggregate,
    parse_ima_log,
    verify_ima_log,
)
from trustedge.measuredboot.imasig import ImaKeyring, verify_ima_signature
from trustedge.measuredboot.policy import (
    IMA_MODIFIED_KINDS,
    AllOf,
    AnyOf,
    BootApplications,
    BootFacts,
    EventDigests,
    EventLogPolicy,
    ImaRuntimePolicy,
    ImaViolation,
    ImaViolationKind,
    KernelCmdline,
    Measurements,
    RequireSecureBoot,
    SignatureDatabase,
    UnsafeNoPolicy,
    boot_facts,
    load_ima_policy,
    load_policy,
)
from trustedge.measuredboot.replay import (
    EventLog,
    PCRValues,
    VerifiedEventLog,
    initial_pcr_value,
    register_name,
)
from trustedge.measuredboot.secureboot import BootApplication, SecureBootState, secure_boot_state
from trustedge.measuredboot.tpm2yaml import to_tpm2_eventlog_yaml

__all__ = [
    "Divergence",
    "DivergenceKind",
    "diff_event_logs",
    "explain_mismatch",
    "AllOf",
    "AnyOf",
    "BootApplication",
    "BootApplications",
    "BootFacts",
    "ClassifiedEvent",
    "ClassifiedLog",
    "EventDigests",
    "EventKind",
    "EventLogPolicy",
    "IMA_MODIFIED_KINDS",
    "ImaRuntimePolicy",
    "ImaViolation",
    "ImaViolationKind",
    "KernelCmdline",
    "Measurements",
    "RequireSecureBoot",
    "SecureBootState",
    "SignatureDatabase",
    "UnsafeNoPolicy",
    "boot_facts",
    "classify",
    "load_ima_policy",
    "load_policy",
    "secure_boot_state",
    "to_tpm2_eventlog_yaml",
    "BANKS",
    "BANK_BY_ALG_ID",
    "BANK_SIZES",
    "BootAggregateOutcome",
    "BootAggregateResult",
    "DataCheck",
    "DataCheckResult",
    "ImaEntries",
    "ImaEntry",
    "ImaFields",
    "ImaKeyring",
    "ImaLimits",
    "ImaLog",
    "ImaState",
    "VerifiedImaLog",
    "boot_aggregate_candidates",
    "boot_aggregate_result",
    "check_boot_aggregate",
    "check_event_data",
    "check_events",
    "parse_ima_log",
    "verify_ima_log",
    "verify_ima_signature",
    "DecodedEvent",
    "WORKAROUNDS",
    "Event",
    "EventLog",
    "EventLogLimits",
    "EventType",
    "PCRValues",
    "SpecIdEvent",
    "VerifiedEventLog",
    "Workaround",
    "WorkaroundInfo",
    "decode_event",
    "event_type_name",
    "initial_pcr_value",
    "register_name",
    "parse_event_log",
]
