"""CLI commands of the policy group: reference values generated, not hand-written.

``policy from-eventlog LOG...``, ``policy from-tree DIR``, ``policy from-packages DEB...``
and ``policy merge POLICY...``. Thin: every decision is made by
:mod:`trustedge.measuredboot.reference` and :mod:`trustedge.measuredboot.runtime_reference`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trustedge._cli._common import EXIT_OK, CommandError, add_json_flag, read_input
from trustedge._cli.measuredboot import _add_workaround_flag, _workarounds

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``policy`` command group."""
    pol = sub.add_parser("policy", help="generate reference-value policies (boot and IMA)")
    psub = pol.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    ev = psub.add_parser(
        "from-eventlog",
        help="a measured-boot policy from golden event logs (binary_bios_measurements)",
    )
    ev.add_argument("logs", nargs="+", metavar="LOG", help="golden event log (- for stdin)")
    ev.add_argument(
        "--bank", choices=("sha256", "sha384", "sha512", "sha1"), default="sha256",
        help="digest bank the policy pins (default sha256)",
    )  # fmt: skip
    ev.add_argument(
        "--pcr-indices", default="0-9", metavar="LIST",
        help="PCRs to cover, e.g. 0-7,9 (default 0-9)",
    )  # fmt: skip
    _add_workaround_flag(ev)
    _add_output(ev)
    ev.set_defaults(handler=_cmd_from_eventlog)

    tree = psub.add_parser("from-tree", help="an IMA runtime policy from a root filesystem tree")
    tree.add_argument("directory", metavar="DIR")
    _add_runtime_options(tree)
    tree.set_defaults(handler=_cmd_from_tree)

    debs = psub.add_parser(
        "from-packages", help="an IMA runtime policy from Debian packages (.deb, not installed)"
    )
    debs.add_argument("packages", nargs="+", metavar="DEB")
    _add_runtime_options(debs)
    debs.set_defaults(handler=_cmd_from_packages)

    kl = psub.add_parser(
        "import-keylime",
        help="convert Keylime policies: mb_refstate, allowlist + excludelist, runtime policy",
    )
    kl.add_argument(
        "policy", metavar="FILE",
        help="mb_refstate JSON, legacy allowlist, runtime policy, or a DSSE-signed one",
    )  # fmt: skip
    kl.add_argument("--excludelist", metavar="FILE", help="Keylime excludelist (regex lines)")
    kl.add_argument(
        "--key", action="append", default=[], metavar="PUB",
        help="ECDSA public key a DSSE-signed policy must verify with (repeatable)",
    )  # fmt: skip
    _add_output(kl)
    kl.set_defaults(handler=_cmd_import_keylime)

    merge = psub.add_parser(
        "merge", help="the union of IMA runtime policies (an upgrade window: old and new pass)"
    )
    merge.add_argument("policies", nargs="+", metavar="POLICY", help="runtime policy JSON")
    _add_output(merge)
    merge.set_defaults(handler=_cmd_merge)


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", default="-", metavar="FILE",
        help="write the policy here (default - : standard output)",
    )  # fmt: skip
    add_json_flag(parser)


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix", default="/", help="where the tree or packages are mounted (default /)"
    )
    parser.add_argument(
        "--algorithm", choices=("sha256", "sha384", "sha512", "sha1"), default="sha256",
        help="IMA file digest algorithm (default sha256)",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="REGEX",
        help="path regex the policy excludes (repeatable)",
    )  # fmt: skip
    _add_output(parser)


def _pcr_list(text: str) -> list[int]:
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi or lo)
            if not 0 <= first <= last <= 23:
                raise ValueError
            out.update(range(first, last + 1))
    except ValueError:
        raise CommandError(f"--pcr-indices {text!r}: use indices 0-23 like 0-7,9") from None
    return sorted(out)


def _write(args: argparse.Namespace, document: dict[str, Any], report: dict[str, Any]) -> int:
    """Write the policy to ``--output``; with ``--json`` print one document with the report."""
    from trustedge._fs import atomic_write

    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    to_stdout = args.output == "-"
    if not to_stdout:
        atomic_write(args.output, text.encode(), mode=0o644)
    if args.json:
        out: dict[str, Any] = {"ok": True, "report": report}
        out["policy" if to_stdout else "output"] = document if to_stdout else args.output
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return EXIT_OK
    if to_stdout:
        sys.stdout.write(text)
    for line in report.get("notes", []):
        print(f"note: {line}", file=sys.stderr)
    return EXIT_OK


def _cmd_from_eventlog(args: argparse.Namespace) -> int:
    from trustedge.measuredboot import parse_event_log
    from trustedge.measuredboot.reference import policy_from_event_logs, self_verified

    if sum(1 for p in args.logs if p == "-") > 1:
        raise CommandError("only one LOG can be - (standard input)")
    workarounds = _workarounds(args)
    logs = []
    for path in args.logs:
        log = parse_event_log(read_input(path, limit=64 << 20), workarounds=workarounds)
        logs.append(self_verified(log, bank=args.bank, workarounds=workarounds))
    generated = policy_from_event_logs(
        logs, bank=args.bank, pcrs=_pcr_list(args.pcr_indices), workarounds=workarounds
    )
    return _write(args, generated.document, generated.report())


def _runtime_report(doc: dict[str, Any]) -> dict[str, Any]:
    return {"files": len(doc["digests"]), "excludes": len(doc.get("excludes", []))}


def _cmd_from_tree(args: argparse.Namespace) -> int:
    from trustedge.measuredboot.runtime_reference import runtime_policy_from_tree

    doc = runtime_policy_from_tree(
        args.directory, prefix=args.prefix, algorithm=args.algorithm, excludes=args.exclude
    )
    return _write(args, doc, _runtime_report(doc))


def _cmd_from_packages(args: argparse.Namespace) -> int:
    from trustedge.measuredboot.runtime_reference import runtime_policy_from_debs

    doc = runtime_policy_from_debs(
        args.packages, prefix=args.prefix, algorithm=args.algorithm, excludes=args.exclude
    )
    return _write(args, doc, _runtime_report(doc))


def _cmd_merge(args: argparse.Namespace) -> int:
    from trustedge.errors import MalformedInputError
    from trustedge.measuredboot.runtime_reference import merge_runtime_policies

    docs = []
    for path in args.policies:
        try:
            doc = json.loads(read_input(path, limit=256 << 20))
        except (ValueError, RecursionError) as exc:
            raise MalformedInputError(f"{path}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise MalformedInputError(f"{path}: a runtime policy is a JSON object")
        docs.append(doc)
    merged = merge_runtime_policies(*docs)
    return _write(args, merged, _runtime_report(merged))


def _cmd_import_keylime(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge.attestation.keylime import (
        boot_policy_from_refstate,
        runtime_policy_from_allowlist,
        runtime_policy_from_keylime,
        verify_keylime_dsse,
    )
    from trustedge.errors import MalformedInputError, SignatureError
    from trustedge.keys import load_public_key

    data = read_input(args.policy, limit=256 << 20)
    excludes = read_input(args.excludelist) if args.excludelist else None
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):
        doc = None  # a flat allowlist
    signed = isinstance(doc, dict) and "payloadType" in doc and "signatures" in doc
    if signed:
        keys = []
        for path in args.key:
            key = load_public_key(read_input(path, limit=1 << 20))
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise MalformedInputError(f"{path}: Keylime signs policies with ECDSA keys")
            keys.append(key)
        if not keys:
            raise SignatureError("a DSSE-signed policy needs --key to verify it with")
        _, payload = verify_keylime_dsse(data, keys)
        data = payload
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):
            doc = None
    elif args.key:
        raise SignatureError("--key given but the policy is not DSSE-signed")
    if isinstance(doc, dict) and ("kernels" in doc or "scrtm_and_bios" in doc):
        conversion = boot_policy_from_refstate(doc)
    elif isinstance(doc, dict) and "digests" in doc:
        conversion = runtime_policy_from_keylime(doc, excludes)
    else:
        conversion = runtime_policy_from_allowlist(data, excludes)
    report = {**conversion.to_json(), "signed": signed, "notes": list(conversion.unconverted)}
    return _write(args, conversion.document, report)
