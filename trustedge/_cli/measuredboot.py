"""CLI commands of the measuredboot group: ``eventlog show|replay|verify`` and
``ima show|verify``. Thin: every decision is made by ``trustedge.measuredboot``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    CommandError,
    add_json_flag,
    emit,
    read_input,
)
from trustedge.measuredboot import (
    BANK_SIZES,
    WORKAROUNDS,
    EventLog,
    PCRValues,
    Workaround,
    decode_event,
    parse_event_log,
)

__all__ = ["parse_pcr_values", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the top-level parser."""
    ev = sub.add_parser("eventlog", help="TCG firmware event logs (binary_bios_measurements)")
    evsub = ev.add_subparsers(dest="eventlog_command", metavar="ACTION", required=True)

    show = evsub.add_parser("show", help="print every event, decoded (unverified)")
    show.add_argument("log", help="event log file (- for stdin)")
    fmt = show.add_mutually_exclusive_group()
    add_json_flag(fmt)  # type: ignore[arg-type]
    fmt.add_argument("--yaml", action="store_true", help="tpm2_eventlog-style YAML")
    _add_workaround_flag(show)
    show.set_defaults(handler=_cmd_show)

    replay = evsub.add_parser("replay", help="replay the log into PCR values per bank")
    replay.add_argument("log", help="event log file (- for stdin)")
    add_json_flag(replay)
    _add_workaround_flag(replay)
    replay.set_defaults(handler=_cmd_replay)

    verify = evsub.add_parser("verify", help="verify the log against PCR values")
    verify.add_argument("log", help="event log file (- for stdin)")
    verify.add_argument(
        "--pcrs",
        required=True,
        help="PCR values: JSON {bank: {index: hex}} or tpm2_pcrread YAML output",
    )
    verify.add_argument("--policy", help="reference policy document (JSON)")
    add_json_flag(verify)
    _add_workaround_flag(verify)
    verify.set_defaults(handler=_cmd_verify)


def _add_workaround_flag(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(w.value for w in WORKAROUNDS)
    parser.add_argument(
        "--workaround",
        action="append",
        default=[],
        metavar="NAME",
        help=f"enable a named firmware-bug workaround ({names})",
    )


def _workarounds(args: argparse.Namespace) -> set[Workaround]:
    out = set()
    for name in args.workaround:
        try:
            out.add(Workaround(name))
        except ValueError:
            raise CommandError(f"unknown workaround {name!r}") from None
    return out


def _load(args: argparse.Namespace) -> EventLog:
    return parse_event_log(read_input(args.log, limit=64 << 20), workarounds=_workarounds(args))


def replay_json(log: EventLog) -> dict[str, dict[str, str]]:
    """bank -> {PCR index as decimal string -> lowercase hex}, banks without PCRs left out."""
    return {
        bank: {str(pcr): value.hex() for pcr, value in values.items()}
        for bank, values in log.replay().items()
        if values
    }


def _cmd_replay(args: argparse.Namespace) -> int:
    log = _load(args)
    data = replay_json(log)

    def text() -> str:
        lines = []
        for bank, values in data.items():
            lines.append(f"{bank}:")
            lines.extend(f"  {pcr:>2}: {value}" for pcr, value in values.items())
        return "\n".join(lines) or "(no measured events)"

    emit(args, data, text)
    return EXIT_OK


def event_json(log: EventLog) -> list[dict[str, Any]]:
    """Every event as a JSON-ready dict (decoded data under ``decoded``)."""
    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    out = []
    for ev in log.unverified_events:
        decoded = decode_event(ev, uintn_size=uintn)
        out.append(
            {
                "number": ev.number,
                "offset": ev.offset,
                "pcr": ev.pcr,
                "type": ev.type_name,
                "type_value": ev.event_type,
                "digests": {bank: d.hex() for bank, d in ev.digests.items()},
                "size": len(ev.data),
                "decoded": decoded.to_json(),
                "data": ev.data.hex(),
            }
        )
    return out


def _cmd_show(args: argparse.Namespace) -> int:
    log = _load(args)
    if args.yaml:
        from trustedge.measuredboot.tpm2yaml import to_tpm2_eventlog_yaml

        sys.stdout.write(to_tpm2_eventlog_yaml(log))
        return EXIT_OK
    events = event_json(log)

    def text() -> str:
        lines = [f"format: {log.format}; banks: {', '.join(log.banks)}; events: {len(events)}"]
        for ev in events:
            lines.append(f"#{ev['number']:<4} PCR {ev['pcr']:<3} {ev['type']}")
            for bank, digest in ev["digests"].items():
                lines.append(f"      {bank}: {digest}")
            summary = ev["decoded"].get("summary")
            if summary:
                lines.append(f"      {summary}")
        return "\n".join(lines)

    emit(args, {"format": log.format, "banks": list(log.banks), "events": events}, text)
    return EXIT_OK


def parse_pcr_values(text: str) -> PCRValues:
    """PCR values from JSON (``{bank: {index: hex}}``) or ``tpm2_pcrread`` YAML output.

    Raises :class:`CommandError` (exit 3) when neither form parses.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            raw = json.loads(stripped)
            return {
                str(bank): {
                    int(k): bytes.fromhex(str(v).removeprefix("0x")) for k, v in vals.items()
                }
                for bank, vals in raw.items()
            }
        except (ValueError, AttributeError, TypeError) as exc:
            raise CommandError(f"bad PCR JSON: {exc}", exit_code=EXIT_MALFORMED) from None
    out: PCRValues = {}
    bank: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        head = re.fullmatch(r"\s*(sha1|sha256|sha384|sha512|sm3_256)\s*:\s*", line)
        if head:
            bank = head.group(1)
            out.setdefault(bank, {})
            continue
        item = re.fullmatch(r"\s*(\d+)\s*:\s*(?:0x)?([0-9A-Fa-f]+)\s*", line)
        if item and bank is not None:
            out[bank][int(item.group(1))] = bytes.fromhex(item.group(2))
            continue
        raise CommandError(f"cannot read PCR line {line.strip()!r}", exit_code=EXIT_MALFORMED)
    if not out:
        raise CommandError("no PCR values found", exit_code=EXIT_MALFORMED)
    for bank_name, values in out.items():
        for pcr, value in values.items():
            if len(value) != BANK_SIZES[bank_name]:
                raise CommandError(
                    f"{bank_name} PCR {pcr} has {len(value)} bytes", exit_code=EXIT_MALFORMED
                )
    return out


def _cmd_verify(args: argparse.Namespace) -> int:
    log = _load(args)
    pcrs = parse_pcr_values(read_input(args.pcrs, limit=1 << 20).decode("utf-8", "replace"))
    verified = log.verify(pcrs, workarounds=_workarounds(args))
    result: dict[str, Any] = {
        "verified": True,
        "verified_pcrs": {str(p): banks for p, banks in sorted(verified.verified_banks.items())},
        "events": len(verified.events),
        "synthetic_events": len(verified.synthetic_events),
    }
    if args.policy:
        from trustedge.measuredboot.policy import load_policy

        policy = load_policy(read_input(args.policy, limit=16 << 20))
        policy.check(verified)
        result["policy"] = "passed"

    def text() -> str:
        pcr_list = ", ".join(str(p) for p in sorted(verified.verified_pcrs))
        extra = " and the policy" if args.policy else ""
        return f"verified: PCRs {pcr_list} match the log{extra}"

    emit(args, result, text)
    return EXIT_OK
