"""CLI commands of the attestation group: ``tpm ...``, ``quote verify``, ``credential ...``.

``tpm`` commands work on any backend of the TPMBackend protocol: ``--software
DIR`` (the pure-Python SoftwareTPM) or ``--tcti TCTI`` (a real TPM or swtpm
through tpm2-pytss; exit 4 when that backend is not installed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import serialization

from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
    add_json_flag,
    emit,
    read_input,
)
from trustedge.attestation import QuotePolicy, verify_quote
from trustedge.errors import BackendUnavailableError, MalformedInputError, VerificationError
from trustedge.hazmat.tpm2 import (
    Credential,
    PCRSelectionList,
    Public,
    load_public,
    make_credential,
    read_pcr_file,
    write_pcr_file,
)
from trustedge.hazmat.tpmbackend import AKAlgorithm, EKKind, PCRValues, TPMBackend

__all__ = ["open_backend", "parse_pcr_spec", "register"]

_AK_ALGS = ("ecc-p256-ecdsa", "rsa2048-rsassa", "rsa2048-rsapss")
_EK_KINDS = ("rsa2048", "ecc-p256", "ecc-p384")
_DEFAULT_AK_BLOB = "trustedge-ak.blob"
_SMALL = 1 << 20


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def open_backend(args: argparse.Namespace) -> TPMBackend:
    """The backend named by ``--software DIR`` or ``--tcti TCTI``."""
    if getattr(args, "software", None):
        from trustedge.attestation.backends.software import SoftwareTPM

        return SoftwareTPM(Path(args.software))
    # libtss2 prints WARNING/ERROR lines on stderr even for handled failures;
    # the CLI reports errors itself (a caller's own TSS2_LOG setting wins).
    os.environ.setdefault("TSS2_LOG", "all+none")
    try:
        module = importlib.import_module("trustedge.attestation.backends.tpm2")
        backend_cls = module.Tpm2Backend
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            f"the TPM backend (tpm2-pytss) is not available: {exc}"
        ) from exc
    return cast(TPMBackend, backend_cls(args.tcti))


def _close(backend: TPMBackend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def parse_pcr_spec(spec: str) -> dict[str, list[int]]:
    """``sha256:0,1,2+sha1:0`` (tpm2-tools syntax; ranges ``0-7`` allowed)."""
    out: dict[str, list[int]] = {}
    for part in spec.split("+"):
        bank, sep, indices = part.partition(":")
        if not sep or not bank:
            raise CommandError(f"bad PCR selection {spec!r} (expected e.g. sha256:0,1,2)")
        items: list[int] = []
        for item in indices.split(","):
            lo, dash, hi = item.partition("-")
            try:
                rng = range(int(lo), int(hi) + 1) if dash else range(int(lo), int(lo) + 1)
            except ValueError:
                raise CommandError(f"bad PCR index {item!r} in {spec!r}") from None
            if rng.start < 0 or rng.stop > 32:
                raise CommandError(f"PCR index out of range in {spec!r}")
            items.extend(rng)
        out[bank.lower()] = sorted(set(out.get(bank.lower(), []) + items))
    return out


def _hex(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise CommandError(f"{what} must be hex", exit_code=EXIT_USAGE) from None


def _load_pcrs(data: bytes) -> PCRValues:
    """A ``tpm2_quote -o`` file or JSON ``{"sha256": {"0": "hex", ...}}``."""
    if data.lstrip()[:1] == b"{":
        try:
            doc = json.loads(data)
            return {
                str(bank).lower(): {int(i): bytes.fromhex(v) for i, v in vals.items()}
                for bank, vals in doc.items()
            }
        except (ValueError, AttributeError, TypeError) as exc:
            raise MalformedInputError(f"PCR JSON is not {{bank: {{index: hex}}}}: {exc}") from exc
    return read_pcr_file(data)[1]


def _ak_blob_path(args: argparse.Namespace) -> Path:
    if args.ak_blob:
        return Path(args.ak_blob)
    if getattr(args, "software", None):
        return Path(args.software) / _DEFAULT_AK_BLOB
    raise CommandError("--ak-blob is required with --tcti (tpm init -o PREFIX writes PREFIX.blob)")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--software", metavar="DIR", help="software TPM state directory")
    group.add_argument("--tcti", metavar="TCTI", help="TCTI of a real TPM or swtpm")
    add_json_flag(parser)


def _pem(public: Public) -> bytes:
    return public.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# ---------------------------------------------------------------------------
# tpm ...
# ---------------------------------------------------------------------------
def _tpm_info(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    try:
        info = backend.info()
    finally:
        _close(backend)
    data = {
        "kind": info.kind, "manufacturer": info.manufacturer,
        "firmware_version": f"0x{info.firmware_version:016x}", "banks": list(info.banks),
        "ek_certificate_present": info.ek_certificate_present, "details": dict(info.details),
    }  # fmt: skip
    emit(args, data, lambda: "\n".join(f"{k}: {v}" for k, v in data.items()))
    return EXIT_OK


def _tpm_init(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    try:
        ek_kind = cast(EKKind, args.ek)
        ek = backend.ek_public(ek_kind)
        ak = backend.create_ak(cast(AKAlgorithm, args.ak_alg), ek_kind=ek_kind)
        cert = backend.ek_certificate(ek_kind)
    finally:
        _close(backend)
    prefix = args.output
    public = Public.unmarshal_tpm2b(ak.public)
    files = {
        f"{prefix}.pem": _pem(public),
        f"{prefix}.tpm2b": ak.public,
        f"{prefix}.name": ak.name,
        f"{prefix}.blob": ak.blob,
        f"{prefix}.ek.tpm2b": ek,
    }
    if cert is not None:
        files[f"{prefix}.ek.der"] = cert
    for path, content in files.items():
        Path(path).write_bytes(content)
    if args.software:
        Path(args.software, _DEFAULT_AK_BLOB).write_bytes(ak.blob)
    data = {"ak_name": ak.name.hex(), "algorithm": ak.algorithm, "ek": ek_kind,
            "files": sorted(files)}  # fmt: skip
    emit(args, data, lambda: f"AK {ak.name.hex()} ({ak.algorithm}) -> " + ", ".join(sorted(files)))
    return EXIT_OK


def _tpm_quote(args: argparse.Namespace) -> int:
    selection = parse_pcr_spec(args.pcrs)
    nonce = _hex(args.nonce, "--nonce")
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        q = backend.quote(ak, nonce, selection)
    finally:
        _close(backend)
    prefix = args.output
    Path(f"{prefix}.msg").write_bytes(q.message)
    Path(f"{prefix}.sig").write_bytes(q.signature)
    Path(f"{prefix}.pcrs").write_bytes(
        write_pcr_file(PCRSelectionList.from_mapping(selection), q.pcrs)
    )
    data = {"message": f"{prefix}.msg", "signature": f"{prefix}.sig", "pcrs": f"{prefix}.pcrs",
            "ak_name": ak.name.hex()}  # fmt: skip
    emit(args, data, f"quote written to {prefix}.msg, {prefix}.sig, {prefix}.pcrs")
    return EXIT_OK


def _tpm_pcrread(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    try:
        values = backend.pcr_read(parse_pcr_spec(args.pcrs))
    finally:
        _close(backend)
    data = {b: {str(i): v.hex() for i, v in sorted(vals.items())} for b, vals in values.items()}
    emit(args, data, lambda: "\n".join(
        f"{b}:\n" + "\n".join(f"  {i:>2}: {v}" for i, v in vals.items()) for b, vals in data.items()
    ))  # fmt: skip
    return EXIT_OK


def _tpm_extend(args: argparse.Namespace) -> int:
    digests: dict[str, bytes] = {}
    for item in args.digest:
        bank, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--digest takes BANK=HEX, got {item!r}")
        digests[bank.lower()] = _hex(value, "--digest")
    if not digests:
        raise CommandError("give at least one --digest BANK=HEX")
    backend = open_backend(args)
    try:
        backend.pcr_extend(args.pcr, digests)
        values = backend.pcr_read({b: [args.pcr] for b in digests})
    finally:
        _close(backend)
    data = {b: vals[args.pcr].hex() for b, vals in values.items()}
    emit(args, data, lambda: "\n".join(f"{b}:{args.pcr} = {v}" for b, v in data.items()))
    return EXIT_OK


def _tpm_nv_counter(args: argparse.Namespace) -> int:
    try:
        index = int(args.index, 0)
    except ValueError:
        raise CommandError(f"bad NV index {args.index!r}") from None
    backend = open_backend(args)
    try:
        value: int | None = None
        if args.action == "define":
            backend.nv_counter_define(index)
        elif args.action == "increment":
            value = backend.nv_counter_increment(index)
        elif args.action == "read":
            value = backend.nv_counter_read(index)
        else:
            backend.nv_counter_undefine(index)
    finally:
        _close(backend)
    data = {"index": f"0x{index:08x}", "action": args.action, "value": value}
    emit(args, data, f"0x{index:08x}: {args.action}" + ("" if value is None else f" -> {value}"))
    return EXIT_OK


# ---------------------------------------------------------------------------
# quote verify
# ---------------------------------------------------------------------------
def _quote_verify(args: argparse.Namespace) -> int:
    message = read_input(args.message, limit=_SMALL)
    signature = read_input(args.signature, limit=_SMALL)
    ak = load_public(read_input(args.ak, limit=_SMALL))
    nonce = _hex(args.nonce, "--nonce")
    if not nonce:
        raise CommandError("--nonce must not be empty")
    pcrs = _load_pcrs(read_input(args.pcrs, limit=_SMALL))
    selection = parse_pcr_spec(args.selection) if args.selection else None
    banks = frozenset({"sha256", "sha384", "sha512", *(b.lower() for b in args.allow_bank)})
    policy = QuotePolicy(allowed_banks=banks)
    signer = _hex(args.qualified_signer, "--qualified-signer") if args.qualified_signer else None
    try:
        verified = verify_quote(message, signature, ak, nonce=nonce, pcrs=pcrs,
                                selection=selection, policy=policy,
                                qualified_signer=signer)  # fmt: skip
    except VerificationError as exc:
        if args.json:
            emit(args, {"valid": False, "error": type(exc).__name__, "message": str(exc)}, "")
            return EXIT_VERIFICATION
        raise
    emit(args, verified, lambda: _verified_text(verified.to_json()))
    return EXIT_OK


def _verified_text(doc: dict[str, Any]) -> str:
    name = doc["ak_name"] or "(bare public key: name unknown)"
    lines = ["quote OK", f"ak name: {name}", f"clock: {doc['clock']}",
             f"firmware: {doc['firmware_version']}"]  # fmt: skip
    lines += [f"warning: {w}" for w in doc["warnings"]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# credential make / activate
# ---------------------------------------------------------------------------
def _credential_make(args: argparse.Namespace) -> int:
    ek = load_public(read_input(args.ek, limit=_SMALL))
    if not isinstance(ek, Public):
        raise CommandError("--ek must be a TPM2B_PUBLIC (tpm2_createek -u / tpm init)",
                           exit_code=EXIT_MALFORMED)  # fmt: skip
    secret = read_input(args.secret, limit=64)
    cred = make_credential(ek, secret, _hex(args.ak_name, "--ak-name"))
    Path(args.output).write_bytes(cred.to_tpm2_tools())
    emit(args, {"output": args.output}, f"credential written to {args.output}")
    return EXIT_OK


def _credential_activate(args: argparse.Namespace) -> int:
    cred = Credential.from_tpm2_tools(read_input(args.input, limit=_SMALL))
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        secret = backend.activate_credential(ak, cred.credential_blob, cred.encrypted_secret)
    finally:
        _close(backend)
    Path(args.output).write_bytes(secret)
    emit(args, {"output": args.output}, f"secret written to {args.output}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``tpm``, ``quote`` and ``credential`` to the top-level parser."""
    tpm = sub.add_parser("tpm", help="use a TPM (software or real) through one interface")
    tsub = tpm.add_subparsers(dest="tpm_command", metavar="COMMAND", required=True)

    p = tsub.add_parser("info", help="what the backend says about itself")
    _add_backend(p)
    p.set_defaults(handler=_tpm_info)

    p = tsub.add_parser("init", help="create the EK and an AK; write the AK public key")
    _add_backend(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PREFIX",
        help="writes PREFIX.pem, .tpm2b, .name, .blob, .ek.tpm2b (and .ek.der)",
    )
    p.add_argument("--ak-alg", choices=_AK_ALGS, default="ecc-p256-ecdsa")
    p.add_argument("--ek", choices=_EK_KINDS, default="rsa2048")  # fmt: skip
    p.set_defaults(handler=_tpm_init)

    p = tsub.add_parser("quote", help="quote PCRs; writes PREFIX.msg/.sig/.pcrs (tpm2-tools)")
    _add_backend(p)
    p.add_argument("--pcrs", required=True, help="selection, e.g. sha256:0,1,2,7")
    p.add_argument("--nonce", required=True, help="the verifier's nonce (hex)")
    p.add_argument("--ak-blob", help="AK blob from tpm init (default: the software state's AK)")
    p.add_argument("-o", "--output", required=True, metavar="PREFIX")
    p.set_defaults(handler=_tpm_quote)

    p = tsub.add_parser("pcrread", help="read PCR values")
    _add_backend(p)
    p.add_argument("--pcrs", default="sha256:0-23", help="selection (default sha256:0-23)")
    p.set_defaults(handler=_tpm_pcrread)

    p = tsub.add_parser("extend", help="extend a PCR")
    _add_backend(p)
    p.add_argument("--pcr", type=int, required=True)
    p.add_argument("--digest", action="append", default=[], metavar="BANK=HEX")
    p.set_defaults(handler=_tpm_extend)

    p = tsub.add_parser("nv-counter", help="define/increment/read/undefine an NV counter")
    p.add_argument("action", choices=("define", "increment", "read", "undefine"))
    p.add_argument("index", help="NV index, e.g. 0x01500020")
    _add_backend(p)
    p.set_defaults(handler=_tpm_nv_counter)

    quote = sub.add_parser("quote", help="verify TPM quotes")
    qsub = quote.add_subparsers(dest="quote_command", metavar="COMMAND", required=True)
    p = qsub.add_parser("verify", help="verify a quote (exit 0 valid, 1 invalid, 3 malformed)")
    p.add_argument("--message", required=True, help="TPMS_ATTEST (tpm2_quote -m)")
    p.add_argument("--signature", required=True, help="TPMT_SIGNATURE (tpm2_quote -s)")
    p.add_argument("--ak", required=True, help="AK public key: PEM, DER or TPM2B_PUBLIC")
    p.add_argument("--nonce", required=True, help="the nonce the quote must carry (hex)")
    p.add_argument(
        "--pcrs", required=True, help="PCR values: tpm2_quote -o file or JSON {bank: {index: hex}}"
    )
    p.add_argument("--selection", help="the selection asked for (default: every PCR in --pcrs)")
    p.add_argument("--qualified-signer", help="expected qualified name of the AK (hex)")
    p.add_argument("--allow-bank", action="append", default=[],
                   help="also accept this PCR bank (e.g. sha1)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(handler=_quote_verify)

    cred = sub.add_parser("credential", help="AK enrollment: MakeCredential / ActivateCredential")
    csub = cred.add_subparsers(dest="credential_command", metavar="COMMAND", required=True)
    p = csub.add_parser("make", help="encrypt a secret to an EK, bound to an AK name")
    p.add_argument("--ek", required=True, help="EK TPM2B_PUBLIC")
    p.add_argument("--ak-name", required=True, help="AK name (hex)")
    p.add_argument("--secret", required=True, help="file with the secret (at most 32 bytes)")
    p.add_argument("-o", "--output", required=True, help="blob (tpm2_makecredential format)")
    add_json_flag(p)
    p.set_defaults(handler=_credential_make)

    p = csub.add_parser("activate", help="recover the secret with the TPM's EK and AK")
    _add_backend(p)
    p.add_argument("-i", "--input", required=True, help="credential blob")
    p.add_argument("--ak-blob", help="AK blob from tpm init (default: the software state's AK)")
    p.add_argument("-o", "--output", required=True, help="where to write the secret")
    p.set_defaults(handler=_credential_activate)
