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

from trustedge._cli._common import (
    EXIT_OK,
    CommandError,
    add_json_flag,
    add_workaround_flag,
    read_input,
    workarounds_of,
)

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
    add_workaround_flag(ev)
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

    diff = psub.add_parser(
        "diff", help="what changed between two policies (exit 1 when they differ)"
    )
    diff.add_argument("old", metavar="A")
    diff.add_argument("new", metavar="B")
    add_json_flag(diff)
    diff.set_defaults(handler=_cmd_diff)

    explain = psub.add_parser(
        "explain", help="why a device's event log passes or fails a boot policy, rule by rule"
    )
    explain.add_argument("policy", metavar="POLICY", help="boot policy or appraisal policy JSON")
    explain.add_argument(
        "log", metavar="LOG|EVIDENCE",
        help="the device's event log, or its evidence (CBOR, attest evidence) with --ak",
    )  # fmt: skip
    explain.add_argument(
        "--ak", metavar="AK",
        help="the device's AK (TPM2B_PUBLIC, as enrolled): appraise EVIDENCE in full",
    )  # fmt: skip
    explain.add_argument(
        "--pcrs", metavar="PCRS",
        help="quoted PCR values (JSON or tpm2_pcrread YAML); default: the log's own replay",
    )  # fmt: skip
    add_workaround_flag(explain)
    add_policy_key_args(explain)
    add_json_flag(explain)
    explain.set_defaults(handler=_cmd_explain)

    sign = psub.add_parser("sign", help="sign a policy (COSE_Sign1 with kind, version, expiry)")
    sign.add_argument("policy", metavar="POLICY")
    sign.add_argument("--key", required=True, metavar="KEY", help="signing key (PEM, DER, OpenSSH)")
    sign.add_argument("--kind", choices=("appraisal", "boot", "runtime"), required=True)
    sign.add_argument("--version", type=int, required=True, dest="policy_version")
    sign.add_argument("--expires", type=int, required=True, metavar="UNIX_TIME")
    _add_output(sign)
    sign.set_defaults(handler=_cmd_sign)

    verify = psub.add_parser("verify", help="verify a signed policy and write its document")
    verify.add_argument("signed", metavar="SIGNED")
    verify.add_argument("--key", action="append", required=True, metavar="PUB")
    verify.add_argument("--kind", choices=("appraisal", "boot", "runtime"))
    verify.add_argument("--min-version", type=int, default=0)
    verify.add_argument("--now", type=int, help="unix time (default: now)")
    _add_output(verify)
    verify.set_defaults(handler=_cmd_verify)

    ex = psub.add_parser("export-corim", help="a boot policy as a CoRIM (signed with --key)")
    ex.add_argument("policy", metavar="POLICY", help="boot policy or appraisal policy JSON")
    ex.add_argument("--corim-id", required=True)
    ex.add_argument("--vendor", required=True, help="target environment vendor (class-map)")
    ex.add_argument("--model", required=True, help="target environment model (class-map)")
    ex.add_argument("--key", metavar="KEY", help="sign the CoRIM (COSE_Sign1) with this key")
    ex.add_argument("--signer-name", default="trustedge")
    ex.add_argument("--not-after", type=int, metavar="UNIX_TIME", help="end of validity")
    _add_output(ex)
    ex.set_defaults(handler=_cmd_export_corim)

    im = psub.add_parser("import-corim", help="reference values of a CoRIM as a boot policy")
    im.add_argument("corim", metavar="CORIM")
    im.add_argument(
        "--key", action="append", default=[], metavar="PUB",
        help="verify the signed CoRIM with this key (repeatable); required for a signed one",
    )  # fmt: skip
    im.add_argument("--now", type=int, help="unix time for the validity check (default: now)")
    im.add_argument(
        "--any-profile", action="store_true",
        help="read integrity registers of other profiles as PCRs too",
    )  # fmt: skip
    im.add_argument(
        "--unsigned", action="store_true", help="accept an unsigned CoRIM (nothing vouches for it)"
    )
    _add_output(im)
    im.set_defaults(handler=_cmd_import_corim)

    up = psub.add_parser(
        "from-update",
        help="the reference values a SUIT update will produce (PCR prediction from the manifest)",
    )
    from trustedge._cli.ota import add_prediction_args

    add_prediction_args(up)
    up.add_argument("--bank", choices=("sha256", "sha384", "sha512"), default="sha256")
    up.add_argument(
        "--window", action="store_true",
        help="allow the current values too (devices that report before and after the reboot)",
    )  # fmt: skip
    _add_output(up)
    up.set_defaults(handler=_cmd_from_update)

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
    workarounds = workarounds_of(args)
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
        doc = _json_file(path)
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


def _json_file(path: str) -> Any:
    from trustedge.errors import MalformedInputError

    try:
        return json.loads(read_input(path, limit=256 << 20))
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"{path}: not JSON ({exc})") from None


def _cmd_diff(args: argparse.Namespace) -> int:
    from trustedge.errors import MalformedInputError
    from trustedge.measuredboot.reference import diff_policies

    old, new = _json_file(args.old), _json_file(args.new)
    if not isinstance(old, dict) or not isinstance(new, dict):
        raise MalformedInputError("policies are JSON objects")
    for doc in (old, new):  # an appraisal policy: compare its boot and runtime parts
        if "boot" in doc and isinstance(doc["boot"], dict):
            doc.update(doc.pop("boot"))
    changes = diff_policies(old, new)
    if args.json:
        sys.stdout.write(json.dumps({"ok": True, "same": not changes, "changes": changes}) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for line in changes) or "policies are the same\n")
    return EXIT_OK if not changes else 1


def _explain_evidence(args: argparse.Namespace) -> int:
    """The full appraisal of a device's evidence against an appraisal policy, finding by
    finding (no store: freshness against the verifier's nonce is not checked)."""
    import time

    from trustedge.attestation.appraisal import EnrolledDevice, appraise
    from trustedge.attestation.evidence import UnverifiedEvidence

    policy = appraisal_policy_from_args(args, read_input(args.policy, limit=64 << 20))
    evidence = UnverifiedEvidence.decode(read_input(args.log, limit=256 << 20))
    device = EnrolledDevice.of(evidence.device_id, read_input(args.ak, limit=1 << 16))
    result = appraise(evidence, enrollment=device, policy=policy, now=int(time.time()))
    status = result.status.value
    reasons = list(result.result.reasons)
    models = list(result.models.reasons) if result.models is not None else []
    if args.json:
        out = {"ok": status == "affirming", "status": status, "reasons": reasons,
               "model_reasons": models, "freshness": "not checked (no verifier nonce)"}  # fmt: skip
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        print(f"{status}  (device {evidence.device_id!r}; freshness not checked)")
        for reason in [*reasons, *models]:
            print(f"      {reason}")
    return EXIT_OK if status == "affirming" else 1


def _cmd_explain(args: argparse.Namespace) -> int:
    if args.ak:
        return _explain_evidence(args)
    from trustedge._cli.measuredboot import parse_pcr_values
    from trustedge.errors import PolicyError
    from trustedge.measuredboot import load_policy, parse_event_log
    from trustedge.measuredboot.policy import boot_facts

    doc = _boot_rules(args.policy)
    workarounds = workarounds_of(args)
    log = parse_event_log(read_input(args.log, limit=64 << 20), workarounds=workarounds)
    if args.pcrs:
        text = read_input(args.pcrs, limit=1 << 20).decode("utf-8", "replace")
        verified = log.verify(parse_pcr_values(text), workarounds=workarounds)
    else:
        verified = log.verify(log.replay(), workarounds=workarounds)
    facts = boot_facts(verified, workarounds=workarounds)
    outcomes = []
    for rule_doc in doc["rules"]:
        single = load_policy(json.dumps({"version": 1, "rules": [rule_doc]}))
        try:
            single.check(verified, facts=facts)
            outcomes.append({"rule": rule_doc, "ok": True, "violations": []})
        except PolicyError as exc:
            outcomes.append({"rule": rule_doc, "ok": False, "violations": list(exc.violations)})
    failed = [o for o in outcomes if not o["ok"]]
    if args.json:
        out = {"ok": not failed, "pcrs_from": "pcrs" if args.pcrs else "the log's own replay",
               "rules": outcomes}  # fmt: skip
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        if not args.pcrs:
            print("note: the log is checked against its own replay (give --pcrs)", file=sys.stderr)
        for o in outcomes:
            rule = o["rule"]
            name = str(rule.get("rule")) + (f" PCR{rule['pcr']}" if "pcr" in rule else "")
            print(f"{'pass' if o['ok'] else 'FAIL'}  {name}")
            for v in o["violations"][:10]:
                print(f"      {v}")
    return EXIT_OK if not failed else 1


def _cmd_sign(args: argparse.Namespace) -> int:
    from trustedge.attestation.signedpolicy import sign_policy
    from trustedge.errors import MalformedInputError
    from trustedge.keys import load_private_key

    document = read_input(args.policy, limit=64 << 20)
    try:
        json.loads(document)  # sign only what a verifier will be able to read
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError(f"{args.policy}: not JSON ({exc})") from None
    key = load_private_key(read_input(args.key, limit=1 << 20))
    signed = sign_policy(
        document, key, kind=args.kind, version=args.policy_version, expires=args.expires
    )
    return _write_bytes(args, signed, {"kind": args.kind, "version": args.policy_version})


def _cmd_verify(args: argparse.Namespace) -> int:
    import time

    from trustedge.attestation.signedpolicy import verify_signed_policy
    from trustedge.keys import load_public_key

    keys = [load_public_key(read_input(p, limit=1 << 20)) for p in args.key]
    verified = verify_signed_policy(
        read_input(args.signed, limit=64 << 20),
        keys,
        now=int(time.time()) if args.now is None else args.now,
        min_version=args.min_version,
        kind=args.kind,
    )
    report = {"kind": verified.kind, "version": verified.version, "expires": verified.expires,
              "signer": verified.signer.hex()}  # fmt: skip
    return _write_bytes(args, verified.document, report)


def _write_bytes(args: argparse.Namespace, data: bytes, report: dict[str, Any]) -> int:
    from trustedge._cli._common import write_output

    if args.output == "-" and args.json:
        raise CommandError("--json needs -o FILE for binary output")
    write_output(args.output, data)
    if args.output == "-":
        return EXIT_OK
    if args.json:
        sys.stdout.write(json.dumps({"ok": True, "output": args.output, **report}) + "\n")
    return EXIT_OK


def _boot_rules(path: str) -> dict[str, Any]:
    from trustedge.errors import MalformedInputError

    doc = _json_file(path)
    if isinstance(doc, dict) and isinstance(doc.get("boot"), dict):
        doc = doc["boot"]
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise MalformedInputError(f"{path}: not a boot policy (rules) or an appraisal policy")
    return doc


def _cmd_export_corim(args: argparse.Namespace) -> int:
    from trustedge.attestation.corim import export_corim
    from trustedge.keys import load_private_key

    key = load_private_key(read_input(args.key, limit=1 << 20)) if args.key else None
    data = export_corim(
        _boot_rules(args.policy),
        corim_id=args.corim_id,
        vendor=args.vendor,
        model=args.model,
        signer=key,
        signer_name=args.signer_name,
        not_after=args.not_after,
    )
    return _write_bytes(args, data, {"signed": key is not None, "bytes": len(data)})


def _cmd_import_corim(args: argparse.Namespace) -> int:
    import time

    from trustedge.attestation.corim import decode_corim, import_corim, verify_signed_corim
    from trustedge.errors import SignatureError
    from trustedge.keys import load_public_key

    data = read_input(args.corim, limit=16 << 20)
    now = int(time.time()) if args.now is None else args.now
    decoded = decode_corim(data)
    if decoded.signed:
        keys = [load_public_key(read_input(p, limit=1 << 20)) for p in args.key]
        if not keys:
            raise SignatureError("a signed CoRIM needs --key to verify it with")
        decoded = verify_signed_corim(data, keys, now=now)
    elif not args.unsigned:
        raise SignatureError("the CoRIM is not signed (give --unsigned to read it anyway)")
    imported = import_corim(decoded, any_profile=args.any_profile)
    report = {
        "signed": decoded.signed,
        "signer": decoded.signer_name,
        "environments": list(imported.environments),
        "notes": list(imported.unconverted),
    }
    return _write(args, imported.document, report)


def _cmd_from_update(args: argparse.Namespace) -> int:
    from trustedge._cli.ota import prediction_from_args
    from trustedge.errors import SignatureError
    from trustedge.measuredboot.reference import policy_from_prediction

    if not (args.trust_root or args.pub):
        raise SignatureError("reference values come only from an authenticated update: "
                             "give --key or --trust-root")  # fmt: skip
    prediction, _, _ = prediction_from_args(args)
    document = policy_from_prediction(prediction, bank=args.bank, window=args.window)
    notes = [f"unpredictable: {b}:{p}" for b, p in sorted(prediction.unpredictable)]
    if not args.pcrs:
        notes.append("the event log was checked against its own replay only (give --pcrs)")
    report = {"pinned_pcrs": [r["pcr"] for r in document["rules"]], "notes": notes}
    return _write(args, document, report)


def add_policy_key_args(parser: argparse.ArgumentParser) -> None:
    """``--policy-key`` / ``--policy-min-version``: require a signed appraisal policy."""
    parser.add_argument(
        "--policy-key", action="append", default=[], metavar="PUB",
        help="accept only a signed appraisal policy (policy sign --kind appraisal) that "
        "verifies with this key (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--policy-min-version", type=int, default=0, metavar="N",
        help="refuse signed policies older than version N",
    )  # fmt: skip


def appraisal_policy_from_args(args: argparse.Namespace, data: bytes) -> Any:
    """The appraisal policy from ``data``, verified when ``--policy-key`` was given."""
    import time

    from trustedge.attestation.signedpolicy import load_appraisal_policy_document
    from trustedge.keys import load_public_key

    keys = [load_public_key(read_input(p, limit=1 << 20)) for p in args.policy_key]
    return load_appraisal_policy_document(
        data, keys=keys, now=int(time.time()), min_version=args.policy_min_version
    )
