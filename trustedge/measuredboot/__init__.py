"""Measured boot: TCG PC Client event logs and Linux IMA measurement lists.

Parse a firmware event log (:func:`parse_event_log`), replay it per hash bank
(:meth:`EventLog.replay`) and verify it against PCR values taken from a
verified quote (:meth:`EventLog.verify`). Only the :class:`VerifiedEventLog`
that verification returns should feed policy decisions: event types and data
are not covered by PCR digests, so an unverified log proves nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustedge._lazy import load_export, shield_exports

if TYPE_CHECKING:
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
    from trustedge.measuredboot.secureboot import (
        BootApplication,
        SecureBootState,
        secure_boot_state,
    )
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

#: Public name -> the submodule defining it, imported on first use (PEP 562, trustedge._lazy):
#: importing the package is cheap and a command loads only the modules it runs.
_LAZY: dict[str, str] = {
    "ClassifiedEvent": "trustedge.measuredboot.classify",
    "ClassifiedLog": "trustedge.measuredboot.classify",
    "EventKind": "trustedge.measuredboot.classify",
    "classify": "trustedge.measuredboot.classify",
    "DecodedEvent": "trustedge.measuredboot._decode",
    "decode_event": "trustedge.measuredboot._decode",
    "EventLogLimits": "trustedge.measuredboot._parse",
    "parse_event_log": "trustedge.measuredboot._parse",
    "WORKAROUNDS": "trustedge.measuredboot._workarounds",
    "Workaround": "trustedge.measuredboot._workarounds",
    "WorkaroundInfo": "trustedge.measuredboot._workarounds",
    "DataCheck": "trustedge.measuredboot.consistency",
    "DataCheckResult": "trustedge.measuredboot.consistency",
    "check_event_data": "trustedge.measuredboot.consistency",
    "check_events": "trustedge.measuredboot.consistency",
    "Divergence": "trustedge.measuredboot.diff",
    "DivergenceKind": "trustedge.measuredboot.diff",
    "diff_event_logs": "trustedge.measuredboot.diff",
    "explain_mismatch": "trustedge.measuredboot.diff",
    "BANK_BY_ALG_ID": "trustedge.measuredboot.events",
    "BANK_SIZES": "trustedge.measuredboot.events",
    "BANKS": "trustedge.measuredboot.events",
    "Event": "trustedge.measuredboot.events",
    "EventType": "trustedge.measuredboot.events",
    "SpecIdEvent": "trustedge.measuredboot.events",
    "event_type_name": "trustedge.measuredboot.events",
    "BootAggregateOutcome": "trustedge.measuredboot.ima",
    "BootAggregateResult": "trustedge.measuredboot.ima",
    "ImaEntries": "trustedge.measuredboot.ima",
    "ImaEntry": "trustedge.measuredboot.ima",
    "ImaFields": "trustedge.measuredboot.ima",
    "ImaLimits": "trustedge.measuredboot.ima",
    "ImaLog": "trustedge.measuredboot.ima",
    "ImaState": "trustedge.measuredboot.ima",
    "VerifiedImaLog": "trustedge.measuredboot.ima",
    "boot_aggregate_candidates": "trustedge.measuredboot.ima",
    "boot_aggregate_result": "trustedge.measuredboot.ima",
    "check_boot_aggregate": "trustedge.measuredboot.ima",
    "parse_ima_log": "trustedge.measuredboot.ima",
    "verify_ima_log": "trustedge.measuredboot.ima",
    "ImaKeyring": "trustedge.measuredboot.imasig",
    "verify_ima_signature": "trustedge.measuredboot.imasig",
    "IMA_MODIFIED_KINDS": "trustedge.measuredboot.policy",
    "AllOf": "trustedge.measuredboot.policy",
    "AnyOf": "trustedge.measuredboot.policy",
    "BootApplications": "trustedge.measuredboot.policy",
    "BootFacts": "trustedge.measuredboot.policy",
    "EventDigests": "trustedge.measuredboot.policy",
    "EventLogPolicy": "trustedge.measuredboot.policy",
    "ImaRuntimePolicy": "trustedge.measuredboot.policy",
    "ImaViolation": "trustedge.measuredboot.policy",
    "ImaViolationKind": "trustedge.measuredboot.policy",
    "KernelCmdline": "trustedge.measuredboot.policy",
    "Measurements": "trustedge.measuredboot.policy",
    "RequireSecureBoot": "trustedge.measuredboot.policy",
    "SignatureDatabase": "trustedge.measuredboot.policy",
    "UnsafeNoPolicy": "trustedge.measuredboot.policy",
    "boot_facts": "trustedge.measuredboot.policy",
    "load_ima_policy": "trustedge.measuredboot.policy",
    "load_policy": "trustedge.measuredboot.policy",
    "EventLog": "trustedge.measuredboot.replay",
    "PCRValues": "trustedge.measuredboot.replay",
    "VerifiedEventLog": "trustedge.measuredboot.replay",
    "initial_pcr_value": "trustedge.measuredboot.replay",
    "register_name": "trustedge.measuredboot.replay",
    "BootApplication": "trustedge.measuredboot.secureboot",
    "SecureBootState": "trustedge.measuredboot.secureboot",
    "secure_boot_state": "trustedge.measuredboot.secureboot",
    "to_tpm2_eventlog_yaml": "trustedge.measuredboot.tpm2yaml",
}

# ``classify`` is also the name of the submodule defining it: importing that submodule must
# not turn ``trustedge.measuredboot.classify`` into the module.
shield_exports(__name__, frozenset({"classify"}))


def __getattr__(name: str) -> object:
    return load_export(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
