"""CLI commands of the measuredboot group: ``eventlog show|replay|verify|diff`` and
``ima show|verify``. Thin: every decision is made by ``trustedge.measuredboot``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from trustedge._cli._batch import batched
from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_VERIFICATION,
    CommandError,
    Handler,
    add_json_flag,
    add_workaround_flag,
    emit,
    failure_line,
    lazy_choices,
    read_input,
    workarounds_of,
)
from trustedge.errors import MalformedInputError, ReplayMismatchError

if TYPE_CHECKING:
    from trustedge.measuredboot import EventLog, ImaKeyring, ImaLog, PCRValues

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
    show.add_argument(
        "--eventlog-version",
        type=int,
        choices=(1, 2),
        default=2,
        help="YAML layout of tpm2_eventlog --eventlog-version (default 2)",
    )
    add_workaround_flag(show)
    show.set_defaults(handler=_cmd_show)

    replay = evsub.add_parser(
        "replay",
        help="replay the log into PCR values per bank",
        description="Replay event logs into PCR values per bank. Several logs: one line (--json: "
        "one JSON document per line) per log.",
    )
    replay.add_argument("log", nargs="+", help="event log file(s) (- for stdin)")
    add_json_flag(replay)
    add_workaround_flag(replay)
    replay.set_defaults(handler=batched(_cmd_replay, "log", line=_replay_line))

    verify = evsub.add_parser(
        "verify",
        help="verify the log against PCR values",
        description="Verify event logs against PCR values. Several logs: --pcrs once for all or "
        "once per log; one line (--json: one JSON document per line) per log, exit status the "
        "worst.",
    )
    verify.add_argument("log", nargs="+", help="event log file(s) (- for stdin)")
    verify.add_argument(
        "--pcrs",
        action="append",
        required=True,
        help="PCR values: JSON {bank: {index: hex}} or tpm2_pcrread YAML output",
    )
    verify.add_argument("--policy", help="reference policy document (JSON)")
    add_json_flag(verify)
    add_workaround_flag(verify)
    verify.set_defaults(handler=batched(_cmd_verify, "log", each=("pcrs",)))

    diff = evsub.add_parser(
        "diff", help="say which PCR and which event first differ between two logs (unverified)"
    )
    diff.add_argument("log", help="event log file (- for stdin)")
    diff.add_argument("reference", help="reference event log, e.g. a known-good boot")
    add_json_flag(diff)
    diff.set_defaults(handler=_cmd_diff)

    authenticode = evsub.add_parser(
        "authenticode", help="Authenticode digest of PE/COFF images (what firmware puts in PCR4)"
    )
    authenticode.add_argument("files", nargs="+", metavar="FILE", help="EFI/PE image (- for stdin)")
    bank = authenticode.add_argument("--bank", default="sha256", help="hash (default sha256)")
    lazy_choices(bank, _authenticode_banks)
    add_json_flag(authenticode)
    authenticode.set_defaults(handler=_cmd_authenticode)

    _register_ima(sub)


def _authenticode_banks() -> tuple[str, ...]:
    from trustedge.measuredboot.authenticode import AUTHENTICODE_BANKS

    return AUTHENTICODE_BANKS


def _pcr_banks() -> list[str]:
    from trustedge.measuredboot import BANK_SIZES

    return list(BANK_SIZES)


def _load(args: argparse.Namespace) -> EventLog:
    from trustedge.measuredboot import parse_event_log

    return parse_event_log(read_input(args.log, limit=64 << 20), workarounds=workarounds_of(args))


def replay_json(log: EventLog) -> dict[str, dict[str, str]]:
    """bank -> {PCR index as decimal string -> lowercase hex}, banks without PCRs left out."""
    return {
        bank: {str(pcr): value.hex() for pcr, value in values.items()}
        for bank, values in log.replay().items()
        if values
    }


def _replay_line(data: dict[str, dict[str, str]]) -> str:
    """One batch-mode line: ``bank:PCR=hex ...``."""
    values = [f"{bank}:{pcr}={value}" for bank, pcrs in data.items() for pcr, value in pcrs.items()]
    return " ".join(values) or "(no measured events)"


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
    from trustedge.measuredboot import decode_event

    uintn = log.spec_id.uintn_size if log.spec_id is not None else 2
    ccel = log.ccel
    out = []
    for ev in log.unverified_events:
        decoded = decode_event(ev, uintn_size=uintn, ccel=ccel)
        out.append(
            {
                "number": ev.number,
                "offset": ev.offset,
                "pcr": ev.pcr,
                "register": log.register_name(ev.pcr) if ev.pcr <= 23 else f"0x{ev.pcr:x}",
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
    from trustedge.measuredboot.tpm2yaml import to_tpm2_eventlog_yaml

    log = _load(args)
    if args.yaml:
        sys.stdout.write(to_tpm2_eventlog_yaml(log, version=args.eventlog_version))
        return EXIT_OK
    events = event_json(log)

    def text() -> str:
        kind = "CCEL (TDX RTMRs); " if log.ccel else ""
        lines = [
            f"format: {kind}{log.format}; banks: {', '.join(log.banks)}; events: {len(events)}"
        ]
        for ev in events:
            lines.extend(event_text(ev))
        return "\n".join(lines)

    emit(args, {"format": log.format, "banks": list(log.banks), "events": events}, text)
    return EXIT_OK


_INDENT = "      "
_HEX_LINE = 64  # hex digits per line of a raw dump


def event_text(ev: dict[str, Any]) -> list[str]:
    """The text lines of one event of :func:`event_json` (what its JSON carries)."""
    register = ev["register"]
    label = f"PCR {ev['pcr']:<3}" if register.startswith("PCR") else f"{register:<7}"
    lines = [f"#{ev['number']:<4} {label} {ev['type']}"]
    lines.extend(f"{_INDENT}{bank}: {digest}" for bank, digest in ev["digests"].items())
    decoded = ev["decoded"]
    summary = decoded.get("summary")
    if summary:
        lines.append(f"{_INDENT}{summary}")
    if decoded["kind"] == "uefi_variable":
        lines.extend(_variable_text(decoded["variable"]))
    elif decoded["kind"] == "image_load" and decoded.get("trailing"):
        lines.append(f"{_INDENT}trailing bytes: {decoded['trailing']}")
    elif decoded["kind"] == "raw":
        if decoded.get("error"):
            lines.append(f"{_INDENT}not decoded: {decoded['error']}")
        lines.extend(_hex_lines(ev["data"]))
    return lines


def _hex_lines(hexdata: str, indent: str = _INDENT) -> list[str]:
    if not hexdata:
        return [f"{indent}(no data)"]
    return [f"{indent}{hexdata[i : i + _HEX_LINE]}" for i in range(0, len(hexdata), _HEX_LINE)]


def _variable_text(var: dict[str, Any]) -> list[str]:
    pad = _INDENT + "  "
    value = var.get("decoded")
    out: list[str] = []
    if isinstance(value, dict) and set(value) == {"enabled"}:
        state = "enabled" if value["enabled"] else "disabled"
        out.append(f"{pad}{var['name']} = {var['data'] or '(empty)'} ({state})")
    elif var["name"] == "BootOrder" and isinstance(value, list):
        out.append(f"{pad}BootOrder = {', '.join(f'{v:04X}' for v in value) or '(empty)'}")
    elif isinstance(value, list):  # EFI_SIGNATURE_LISTs
        entries = sum(len(sl["signatures"]) for sl in value)
        out.append(f"{pad}{len(value)} signature lists, {entries} entries")
        for sl in value:
            out.append(f"{pad}  {sl['type_name']}: {len(sl['signatures'])}")
            out.extend(f"{pad}    {sig['subject']}" for sig in sl["signatures"] if "subject" in sig)
    elif isinstance(value, dict) and "description" in value:  # Boot####
        out.append(f"{pad}description: {value['description']}")
        paths = value.get("device_paths") or [value["device_path"]]
        out.extend(f"{pad}path: {path}" for path in paths)
        if value.get("optional_data"):
            out.append(f"{pad}optional data: {value['optional_data']}")
    elif isinstance(value, dict) and ("subject" in value or "certificate" in value):
        if "owner" in value:
            out.append(f"{pad}owner: {value['owner']}")
        out.append(f"{pad}subject: {value.get('subject', '(not X.509)')}")
        out.append(f"{pad}issuer: {value.get('issuer', '(not X.509)')}")
        if value.get("trailing"):
            out.append(f"{pad}trailing bytes: {value['trailing']}")
    elif isinstance(value, str):
        out.append(f"{pad}{var['name']} = {value.strip()!r}")
    elif var["data"]:
        out.append(f"{pad}data ({len(var['data']) // 2} bytes):")
        out.extend(_hex_lines(var["data"], pad + "  "))
    else:
        out.append(f"{pad}data: (empty)")
    if var.get("trailing"):
        out.append(f"{pad}bytes after VariableData: {var['trailing']}")
    return out


def parse_pcr_values(text: str) -> PCRValues:
    """PCR values from JSON (``{bank: {index: hex}}``) or ``tpm2_pcrread`` YAML output.

    Raises :class:`CommandError` (exit 3) when neither form parses.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            raw = json.loads(stripped)
            parsed: PCRValues = {
                str(bank): {
                    int(k): bytes.fromhex(str(v).removeprefix("0x")) for k, v in vals.items()
                }
                for bank, vals in raw.items()
            }
        except (ValueError, AttributeError, TypeError) as exc:
            raise CommandError(f"bad PCR JSON: {exc}", exit_code=EXIT_MALFORMED) from None
        return _sized(parsed)
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
    return _sized(out)


def _sized(values: PCRValues) -> PCRValues:
    """Every PCR value must have its bank's digest size (a value is never re-split)."""
    from trustedge.measuredboot import BANK_SIZES

    for bank_name, bank_values in values.items():
        size = BANK_SIZES.get(bank_name)
        if size is None:
            raise CommandError(f"unknown PCR bank {bank_name!r}", exit_code=EXIT_MALFORMED)
        for pcr, value in bank_values.items():
            if not 0 <= pcr <= 23 or len(value) != size:
                raise CommandError(
                    f"{bank_name} PCR {pcr}: {len(value)} bytes, not {size}",
                    exit_code=EXIT_MALFORMED,
                )
    return values


def _cmd_verify(args: argparse.Namespace) -> int:
    from trustedge.measuredboot import explain_mismatch
    from trustedge.measuredboot.policy import load_policy

    log = _load(args)
    pcrs = parse_pcr_values(read_input(args.pcrs, limit=1 << 20).decode("utf-8", "replace"))
    try:
        verified = log.verify(pcrs, workarounds=workarounds_of(args))
    except ReplayMismatchError as exc:
        # say which PCR and which event first diverges, not only "PCR4"
        why = explain_mismatch(log, pcrs)
        if args.json:
            doc = {"verified": False, "error": exc.label, "message": str(exc),
                   "divergences": [d.to_json() for d in why]}  # fmt: skip
            failure_line(exc.diagnostics())
            emit(args, doc, "")
            return EXIT_VERIFICATION
        raise ReplayMismatchError(
            "; ".join([str(exc), *(str(d) for d in why)]), mismatches=exc.mismatches
        ) from None
    result: dict[str, Any] = {
        "verified": True,
        "verified_pcrs": {str(p): banks for p, banks in sorted(verified.verified_banks.items())},
        "events": len(verified.events),
        "synthetic_events": len(verified.synthetic_events),
    }
    if args.policy:
        policy = load_policy(read_input(args.policy, limit=16 << 20))
        policy.check(verified)
        result["policy"] = "passed"

    def text() -> str:
        pcr_list = ", ".join(str(p) for p in sorted(verified.verified_pcrs))
        extra = " and the policy" if args.policy else ""
        return f"verified: PCRs {pcr_list} match the log{extra}"

    emit(args, result, text)
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    """Exit 0 when both logs measure the same, 1 when they differ, 3 when one is malformed."""
    from trustedge.measuredboot import diff_event_logs, parse_event_log

    try:
        log = parse_event_log(read_input(args.log, limit=64 << 20))
        reference = parse_event_log(read_input(args.reference, limit=64 << 20))
        found = diff_event_logs(log, reference)
    except (MalformedInputError, ValueError) as exc:
        if not args.json:
            if isinstance(exc, MalformedInputError):
                raise
            raise CommandError(str(exc), exit_code=EXIT_MALFORMED) from None
        failure_line(f"malformed input: {exc}")
        emit(args, {"ok": False, "same": None, "error": "malformed input", "message": str(exc),
                    "exit_code": EXIT_MALFORMED}, "")  # fmt: skip
        return EXIT_MALFORMED
    result = {
        "same": not found,
        "bank": found[0].bank if found else None,
        "divergences": [d.to_json() for d in found],
    }

    def text() -> str:
        return "\n".join(str(d) for d in found) or "same: every PCR measures the same events"

    emit(args, result, text)
    if found:
        failure_line(f"the logs differ: {len(found)} divergence(s)")
        return EXIT_VERIFICATION
    return EXIT_OK


def _cmd_authenticode(args: argparse.Namespace) -> int:
    from trustedge.measuredboot.authenticode import MAX_IMAGE_SIZE, authenticode_digest

    results = []
    for name in args.files:
        digest = authenticode_digest(read_input(name, limit=MAX_IMAGE_SIZE), args.bank)
        results.append({"file": name, "bank": args.bank, "digest": digest.hex()})

    def text() -> str:
        return "\n".join(f"{r['digest']}  {r['file']}" for r in results)

    emit(args, {"images": results}, text)
    return EXIT_OK


def _register_ima(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ima = sub.add_parser("ima", help="Linux IMA measurement lists (ASCII or binary)")
    imasub = ima.add_subparsers(dest="ima_command", metavar="ACTION", required=True)
    handler: Handler
    for name, helptext, handler in (
        ("show", "print the entries (unverified)", _cmd_ima_show),
        ("verify", "replay into PCR10, match the quoted value, apply a policy", _cmd_ima_verify),
    ):
        if name == "show":
            cmd = imasub.add_parser(name, help=helptext)
            cmd.add_argument("list", help="IMA list file (- for stdin)")
        else:
            cmd = imasub.add_parser(
                name,
                help=helptext,
                description="Verify IMA lists. Several lists: --pcr10 and --start-pcr once for "
                "all or once per list; one line (--json: one JSON document per line) per list, "
                "exit status the worst.",
            )
            cmd.add_argument("list", nargs="+", help="IMA list file(s) (- for stdin)")
        if name == "verify":
            # Only verify checks anything: show refuses these flags (argparse: exit 2) rather
            # than ignoring them and printing an unverified list as if it had been checked.
            cmd.add_argument("--pcr10", action="append",
                             help="quoted PCR10 value (hex) to match a prefix against")  # fmt: skip
            lazy_choices(cmd.add_argument("--bank", default="sha1", help="PCR bank"), _pcr_banks)
            cmd.add_argument("--policy", help="runtime policy (Keylime JSON layout)")
            cmd.add_argument("--keyring", help="directory of PEM/DER keys or certificates")
            cmd.add_argument(
                "--start-pcr",
                action="append",
                help="PCR10 value (hex) reached at --from-offset (default zero)",
            )
        cmd.add_argument(
            "--from-offset", type=int, default=0, help="resume at this byte offset of the list"
        )
        cmd.add_argument(
            "--start-entries", type=int, default=0, help="entries verified before --from-offset"
        )
        cmd.add_argument(
            "--partial-tail", action="store_true", help="ignore an incomplete final record"
        )
        add_json_flag(cmd)
        if name == "verify":
            handler = batched(handler, "list", each=("pcr10", "start_pcr"))
        cmd.set_defaults(handler=handler)


def _load_ima(args: argparse.Namespace) -> ImaLog:
    from trustedge.measuredboot import parse_ima_log

    data = read_input(args.list, limit=1 << 30)
    offset = args.from_offset
    if offset < 0 or offset > len(data):
        raise CommandError(f"--from-offset {offset} is outside the list")
    return parse_ima_log(
        data[offset:],
        allow_partial_tail=args.partial_tail,
        base_offset=offset,
        first_number=args.start_entries,
    )


def _hex_arg(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise CommandError(f"{what} is not hex") from None


def _ima_entry_json(entry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": entry.number,
        "offset": entry.offset,
        "pcr": entry.pcr,
        "template_hash": entry.template_hash.hex(),
        "template": entry.template_name,
    }
    try:
        fields = entry.fields()
    except MalformedInputError as exc:
        out["error"] = str(exc)
        return out
    out.update(
        {
            "digest": f"{fields.digest_algorithm}:{fields.digest.hex()}",
            "path": fields.path,
            "signature": fields.signature.hex(),
        }
    )
    if fields.buffer:
        out["buffer"] = fields.buffer.hex()
    return out


def _cmd_ima_show(args: argparse.Namespace) -> int:
    log = _load_ima(args)
    entries = [_ima_entry_json(e) for e in log.unverified_entries]

    def text() -> str:
        lines = [f"{log.format} IMA list, {len(entries)} entries (unverified)"]
        lines.extend(
            f"#{e['number']:<6} PCR{e['pcr']} {e['template']:<10} {e.get('digest', '?')} "
            f"{e.get('path', e.get('error', ''))}"
            for e in entries
        )
        return "\n".join(lines)

    emit(
        args,
        {"format": log.format, "entries": entries, "trailing_bytes": log.trailing_bytes},
        text,
    )
    return EXIT_OK


def _keyring(path: str | None) -> ImaKeyring | None:
    from trustedge.measuredboot import ImaKeyring

    if path is None:
        return None
    from pathlib import Path

    folder = Path(path)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else [folder]
    return ImaKeyring.from_pem(p.read_bytes() for p in files)


def _cmd_ima_verify(args: argparse.Namespace) -> int:
    from trustedge.measuredboot import BANK_SIZES, ImaState, verify_ima_log
    from trustedge.measuredboot.policy import load_ima_policy

    log = _load_ima(args)
    size = BANK_SIZES[args.bank]
    start = _hex_arg(args.start_pcr, "--start-pcr") if args.start_pcr else bytes(size)
    state = ImaState(args.start_entries, args.from_offset, start, args.bank)
    if args.pcr10:
        quoted = _hex_arg(args.pcr10, "--pcr10")
        if len(quoted) != size:
            raise CommandError(f"--pcr10 must be {size} bytes for {args.bank}")
        bound = True
    else:
        # Without a quoted value only the list's internal consistency is checked.
        quoted = log.replay(args.bank, start=start)
        bound = False
    verified = verify_ima_log(log, quoted, bank=args.bank, state=state)
    result: dict[str, Any] = {
        "verified": True,
        "bound_to_quote": bound,
        "entries": len(verified.entries),
        "state": {
            "entries": verified.state.entries,
            "byte_offset": verified.state.byte_offset,
            "pcr": verified.state.pcr_value.hex(),
            "bank": verified.state.bank,
        },
    }
    if args.policy:
        policy = load_ima_policy(
            read_input(args.policy, limit=64 << 20), keyring=_keyring(args.keyring)
        )
        policy.check(verified)
        result["policy"] = "passed"

    def text() -> str:
        how = "matches the quoted PCR" if bound else "is self-consistent (no --pcr10 given)"
        extra = "; policy passed" if args.policy else ""
        return (
            f"verified: {len(verified.entries)} entries; the list {how}{extra}; "
            f"resume at offset {verified.state.byte_offset}"
        )

    emit(args, result, text)
    return EXIT_OK
