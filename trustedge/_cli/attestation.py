"""CLI commands of the attestation group: ``tpm``, ``quote``, ``credential``, ``attest``.

``tpm`` commands work on any backend of the TPMBackend protocol: ``--software
DIR`` (the pure-Python SoftwareTPM) or ``--tcti TCTI`` (a real TPM or swtpm
through tpm2-pytss; exit 4 when that backend is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from trustedge._cli._batch import batched
from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
    add_json_flag,
    emit,
    failure_line,
    read_input,
    write_output,
)
from trustedge._fs import atomic_write
from trustedge.errors import BackendUnavailableError, MalformedInputError, VerificationError

if TYPE_CHECKING:
    from trustedge.hazmat.tpm2 import Public
    from trustedge.hazmat.tpmbackend import AKAlgorithm, EKKind, PCRValues, TPMBackend

__all__ = ["add_backend_options", "open_backend", "opened_backend", "parse_pcr_spec", "register"]

_AK_ALGS = ("ecc-p256-ecdsa", "rsa2048-rsassa", "rsa2048-rsapss")
_EK_KINDS = ("rsa2048", "ecc-p256", "ecc-p384")
_DEFAULT_AK_BLOB = "trustedge-ak.blob"
_SMALL = 1 << 20


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def add_backend_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The one TPM option set of every command: ``--software DIR`` (``--software-tpm DIR`` is
    the same option) or ``--tcti TCTI``; :func:`open_backend` opens what was chosen."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--software", "--software-tpm", dest="software", metavar="DIR",
        help="software TPM state directory",
    )  # fmt: skip
    group.add_argument("--tcti", metavar="TCTI", help="TCTI of a real TPM or swtpm")


def open_backend(args: argparse.Namespace) -> TPMBackend:
    """The backend named by ``--software DIR`` or ``--tcti TCTI`` (:func:`add_backend_options`);
    a usage error when neither was given."""
    if not getattr(args, "software", None) and not getattr(args, "tcti", None):
        raise CommandError("this needs a TPM: --tcti TCTI or --software DIR")
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
    return cast("TPMBackend", backend_cls(args.tcti))


def _close(backend: TPMBackend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


@contextlib.contextmanager
def opened_backend(args: argparse.Namespace) -> Iterator[TPMBackend]:
    """:func:`open_backend`, closed when the block ends (also on failure)."""
    backend = open_backend(args)
    try:
        yield backend
    finally:
        _close(backend)


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


_YAML_BANK = re.compile(r"\s*(sha1|sha256|sha384|sha512|sm3_256)\s*:\s*")
_YAML_PCR = re.compile(r"\s*([0-9]{1,2})\s*:\s*0x([0-9A-Fa-f]{2,128})\s*")


def _pcrread_yaml(text: str) -> dict[str, dict[str, str]] | None:
    """``tpm2_pcrread`` output (``sha256:`` then ``  0 : 0xHEX`` lines), line by line with
    fixed patterns (no YAML parser on untrusted input); None when it is not that format."""
    doc: dict[str, dict[str, str]] = {}
    bank: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if (m := _YAML_BANK.fullmatch(line)) is not None:
            bank = m.group(1)
            if bank in doc:
                raise MalformedInputError(f"tpm2_pcrread YAML: bank {bank} listed twice")
            doc[bank] = {}
        elif (m := _YAML_PCR.fullmatch(line)) is not None and bank is not None:
            if m.group(1) in doc[bank]:
                raise MalformedInputError(f"tpm2_pcrread YAML: {bank} PCR {m.group(1)} twice")
            doc[bank][m.group(1)] = m.group(2).lower()
        else:
            return None
    return doc or None


def _load_pcrs(data: bytes, selection: dict[str, list[int]] | None = None) -> PCRValues:
    """PCR values as tpm2-tools write them: ``tpm2_quote -o`` (selection + digests),
    ``tpm2_pcrread`` YAML, ``tpm2_pcrread -o`` (bare digests in selection order: needs the
    selection), or JSON ``{"sha256": {"0": "hex", ...}}``. The values are claims until the
    quote's PCR digest is checked against them."""
    from trustedge.hazmat.tpm2 import pcr_values_from_json, read_pcr_file

    if data.lstrip()[:1] == b"{":
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise MalformedInputError(f"PCR JSON is not {{bank: {{index: hex}}}}: {exc}") from exc
        return pcr_values_from_json(doc)
    try:
        text: str | None = data.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is not None and (yaml := _pcrread_yaml(text)) is not None:
        return pcr_values_from_json(yaml)
    if selection:
        from trustedge.measuredboot.events import BANK_SIZES as sizes  # the one hash table

        order = [(bank, i) for bank in selection for i in sorted(set(selection[bank]))]
        if all(bank in sizes for bank, _ in order) and len(data) == sum(
            sizes[bank] for bank, _ in order
        ):
            doc2: dict[str, dict[str, str]] = {}
            offset = 0
            for bank, index in order:
                size = sizes[bank]
                doc2.setdefault(bank, {})[str(index)] = data[offset : offset + size].hex()
                offset += size
            return pcr_values_from_json(doc2)
    return read_pcr_file(data)[1]


def _ak_blob_path(args: argparse.Namespace) -> Path:
    if args.ak_blob:
        return Path(args.ak_blob)
    if getattr(args, "software", None):
        return Path(args.software) / _DEFAULT_AK_BLOB
    raise CommandError("--ak-blob is required with --tcti (tpm init -o PREFIX writes PREFIX.blob)")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    add_json_flag(parser)


def _pem(public: Public) -> bytes:
    from cryptography.hazmat.primitives import serialization

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
    from trustedge.hazmat.tpm2 import Public

    backend = open_backend(args)
    try:
        ek_kind = cast("EKKind", args.ek)
        ek = backend.ek_public(ek_kind)
        ak = backend.create_ak(cast("AKAlgorithm", args.ak_alg), ek_kind=ek_kind)
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
        atomic_write(path, content, mode=0o600 if path.endswith(".blob") else 0o644)
    if args.software:
        atomic_write(Path(args.software, _DEFAULT_AK_BLOB), ak.blob)
    data = {"ak_name": ak.name.hex(), "algorithm": ak.algorithm, "ek": ek_kind,
            "files": sorted(files)}  # fmt: skip
    emit(args, data, lambda: f"AK {ak.name.hex()} ({ak.algorithm}) -> " + ", ".join(sorted(files)))
    return EXIT_OK


def _tpm_quote(args: argparse.Namespace) -> int:
    from trustedge.hazmat.tpm2 import PCRSelectionList, write_pcr_file

    selection = parse_pcr_spec(args.pcrs)
    nonce = _hex(args.nonce, "--nonce")
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        q = backend.quote(ak, nonce, selection)
    finally:
        _close(backend)
    prefix = args.output
    pcr_file = write_pcr_file(PCRSelectionList.from_mapping(selection), q.pcrs)
    if prefix == "-":  # three files do not fit on stdout: one JSON document of their bytes
        emit(argparse.Namespace(json=True), {"message": q.message, "signature": q.signature,
             "pcrs": pcr_file, "ak_name": ak.name}, "")  # fmt: skip
        return EXIT_OK
    write_output(f"{prefix}.msg", q.message)
    write_output(f"{prefix}.sig", q.signature)
    write_output(f"{prefix}.pcrs", pcr_file)
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
def _tpm_key(path: str, option: str) -> Public | Any:
    """An AK/EK file in any format tpm2-tools writes (the one key loader); one line, exit 3,
    when it is none of them."""
    from trustedge.errors import UnsupportedAlgorithmError
    from trustedge.keys import load_tpm_public

    try:
        return load_tpm_public(read_input(path, limit=_SMALL))
    except (MalformedInputError, UnsupportedAlgorithmError) as exc:
        raise CommandError(f"{option}: {exc}", exit_code=EXIT_MALFORMED) from None


_DIGEST_HASH = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}


def _quote_signature(args: argparse.Namespace, data: bytes, ak: Any, message: bytes) -> bytes:
    """The TPMT_SIGNATURE: as given (``tpm2_quote -s``, tss format), or built from a
    ``tpm2_quote -f plain`` signature (told by ``--signature-format plain``, or seen: DER for
    an ECC AK, or the AK's plain length, which no TPMT_SIGNATURE for that AK has). The hash is
    ``--hash-alg``, else the one the quote's pcrDigest length names."""
    from trustedge.attestation import AttestationKey, signature_from_plain
    from trustedge.hazmat.tpm2 import read_quote_fields

    key = AttestationKey.from_public(ak).key
    if hasattr(key, "curve"):  # plain ECDSA: DER (tpm2-tools 5.x) or r || s
        plain = data[:1] == b"\x30" or len(data) == 2 * ((key.curve.key_size + 7) // 8)
    else:
        plain = len(data) == (key.key_size + 7) // 8
    if args.signature_format == "tss" or (args.signature_format == "auto" and not plain):
        return data
    hash_alg = args.hash_alg
    if hash_alg is None:
        fields = read_quote_fields(message)
        hash_alg = _DIGEST_HASH.get(len(fields.pcr_digest), "sha256") if fields else "sha256"
    return signature_from_plain(data, ak, hash_alg=hash_alg)


def _quote_verify(args: argparse.Namespace) -> int:
    from trustedge.attestation import QuotePolicy, verify_quote

    message = read_input(args.message, limit=_SMALL)
    ak = _tpm_key(args.ak, "--ak")
    signature = _quote_signature(args, read_input(args.signature, limit=_SMALL), ak, message)
    nonce = _hex(args.nonce, "--nonce")
    if not nonce:
        raise CommandError("--nonce must not be empty")
    selection = parse_pcr_spec(args.selection) if args.selection else None
    pcrs = _load_pcrs(read_input(args.pcrs, limit=_SMALL), selection)
    banks = frozenset({"sha256", "sha384", "sha512", *(b.lower() for b in args.allow_bank)})
    policy = QuotePolicy(allowed_banks=banks)
    signer = _hex(args.qualified_signer, "--qualified-signer") if args.qualified_signer else None
    try:
        verified = verify_quote(message, signature, ak, nonce=nonce, pcrs=pcrs,
                                selection=selection, policy=policy,
                                qualified_signer=signer)  # fmt: skip
    except VerificationError as exc:
        if args.json:
            failure_line(exc.diagnostics())
            emit(args, {"valid": False, "error": type(exc).__name__, "message": str(exc)}, "")
            return EXIT_VERIFICATION
        raise
    emit(args, verified, lambda: _verified_text(verified.to_json()))
    return EXIT_OK


def _verified_line(doc: dict[str, Any]) -> str:
    """One batch-mode line of a verified quote."""
    name = doc["ak_name"] or "bare public key"
    warnings = "".join(f"; warning: {w}" for w in doc["warnings"])
    return f"OK (ak name {name}, clock {doc['clock']['clock']}){warnings}"


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
    from trustedge.hazmat.tpm2 import Public, make_credential

    ek = _tpm_key(args.ek, "--ek")
    if not isinstance(ek, Public):
        ek = _ek_from_key(ek)
    secret = read_input(args.secret, limit=64)
    cred = make_credential(ek, secret, _hex(args.ak_name, "--ak-name"))
    atomic_write(args.output, cred.to_tpm2_tools(), mode=0o644)
    emit(args, {"output": args.output}, f"credential written to {args.output}")
    return EXIT_OK


def _ek_from_key(key: Any) -> Public:
    """A PEM/DER EK public key (``tpm2_createek -f pem``) as the TPM object it names: the TCG
    default EK template (EK Credential Profile L-1 RSA 2048, L-2 P-256, H-3 P-384) with this
    key. An EK made from another template has another name: give its TPM2B_PUBLIC then."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from trustedge.hazmat.tpm2.public import ek_template, with_key

    if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        kind = "rsa2048"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        kind = "ecc-p256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1":
        kind = "ecc-p384"
    else:
        raise CommandError(
            "--ek: a PEM EK must be RSA 2048, P-256 or P-384 (else give its TPM2B_PUBLIC)",
            exit_code=EXIT_MALFORMED,
        )
    return with_key(ek_template(kind), key)


def _credential_activate(args: argparse.Namespace) -> int:
    from trustedge.hazmat.tpm2 import Credential

    cred = Credential.from_tpm2_tools(read_input(args.input, limit=_SMALL))
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        secret = backend.activate_credential(ak, cred.credential_blob, cred.encrypted_secret)
    finally:
        _close(backend)
    atomic_write(args.output, secret)  # 0600: the activated secret
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
    p.add_argument("--pcr-selection", "--pcrs", dest="pcrs", required=True,
                   help="selection, e.g. sha256:0,1,2,7 (--pcrs: deprecated alias)")  # fmt: skip
    p.add_argument("--nonce", required=True, help="the verifier's nonce (hex)")
    p.add_argument("--ak-blob", help="AK blob from tpm init (default: the software state's AK)")
    p.add_argument("-o", "--output", required=True, metavar="PREFIX",
                   help="PREFIX.msg/.sig/.pcrs; - prints them as one JSON document")  # fmt: skip
    p.set_defaults(handler=_tpm_quote)

    p = tsub.add_parser("pcrread", help="read PCR values")
    _add_backend(p)
    p.add_argument("--pcr-selection", "--pcrs", dest="pcrs", default="sha256:0-23",
                   help="selection (default sha256:0-23; --pcrs: deprecated alias)")  # fmt: skip
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
    p = qsub.add_parser(
        "verify",
        help="verify a quote, or many in one process (exit 0 valid, 1 invalid, 3 malformed)",
        description="Verify a TPM quote. Batch mode: repeat --message, --signature and "
        "--pcr-values once per quote (--ak and --nonce once for all or once per quote); one "
        "line (--json: one JSON document per line) per quote, exit status the worst.",
    )
    many = "; repeat once per quote for batch mode"
    p.add_argument("--message", action="append", required=True,
                   help="TPMS_ATTEST (tpm2_quote -m)" + many)  # fmt: skip
    p.add_argument("--signature", action="append", required=True,
                   help="tpm2_quote -s: TPMT_SIGNATURE, or -f plain (r||s, raw RSA)"
                   + many)  # fmt: skip
    p.add_argument("--signature-format", choices=("auto", "tss", "plain"), default="auto",
                   help="auto: plain when the length is the AK's plain size")  # fmt: skip
    p.add_argument("--hash-alg", choices=("sha1", "sha256", "sha384", "sha512"),
                   help="hash of a plain signature (tpm2_quote -g; default: the quote's)",
                   )  # fmt: skip
    p.add_argument(
        "--ak",
        action="append",
        required=True,
        help="AK: TPM2B_PUBLIC (tpm2_readpublic -o), TPMT_PUBLIC (-f tpmt), PEM/DER (-f pem/der: "
        "no TPM name, so scheme and attributes go unchecked); batch: once, or per quote",
    )
    p.add_argument(
        "--nonce",
        action="append",
        required=True,
        help="the nonce the quote must carry (hex; batch: once, or per quote)",
    )
    p.add_argument(
        "--pcr-values",
        "--pcrs",
        dest="pcrs",
        action="append",
        required=True,
        help="PCR values: tpm2_quote -o file, tpm2_pcrread YAML, tpm2_pcrread -o values (with "
        "--pcr-selection) or JSON {bank: {index: hex}} (--pcrs: deprecated alias)" + many,
    )
    p.add_argument("--pcr-selection", "--selection", dest="selection",
                   help="the selection asked for (default: every PCR in --pcr-values)")  # fmt: skip
    p.add_argument("--qualified-signer", help="expected qualified name of the AK (hex)")
    p.add_argument("--allow-bank", action="append", default=[],
                   help="also accept this PCR bank (e.g. sha1)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(handler=batched(_quote_verify, "message",
                                   each=("signature", "pcrs", "ak", "nonce"),
                                   line=_verified_line))  # fmt: skip

    cred = sub.add_parser("credential", help="AK enrollment: MakeCredential / ActivateCredential")
    csub = cred.add_subparsers(dest="credential_command", metavar="COMMAND", required=True)
    p = csub.add_parser("make", help="encrypt a secret to an EK, bound to an AK name")
    p.add_argument("--ek", required=True,
                   help="EK: TPM2B_PUBLIC, or PEM/DER of a default-template EK "
                   "(tpm2_createek -f pem)")  # fmt: skip
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

    _register_attest(sub)


# ---------------------------------------------------------------------------
# attest: evidence (device), enroll/complete/challenge/appraise (verifier),
# result verify (relying party)
# ---------------------------------------------------------------------------
def _certs(paths: list[str]) -> tuple[Any, ...]:
    from trustedge.attestation.ekcert import load_certificates

    out: list[Any] = []
    for path in paths:
        out.extend(load_certificates(read_input(path, limit=_SMALL)))
    return tuple(out)


def _verifier(args: argparse.Namespace, *, key: bool = False) -> Any:
    """The Verifier over ``--store``; only ``attest appraise`` (``key=True``) loads a
    result-signing key: enroll, complete and challenge sign nothing and need none."""
    from trustedge._cli.policy import appraisal_policy_from_args
    from trustedge.attestation.cli_support import load_private_key
    from trustedge.attestation.signer import ResultSigner
    from trustedge.attestation.store import open_store
    from trustedge.attestation.verifier import TrustAnchors, Verifier

    policy = appraisal_policy_from_args(args, read_input(args.policy, limit=_SMALL))
    anchors = TrustAnchors(
        ek_roots=_certs(args.ek_roots),
        software_roots=_certs(args.software_roots),
        intermediates=_certs(args.intermediates),
        allow_uncertified_ek=getattr(args, "allow_uncertified_ek", False),
    )
    signer = (
        ResultSigner(
            load_private_key(read_input(args.key, limit=_SMALL)),
            result_format=getattr(args, "format", "jwt"),
        )
        if key
        else None
    )
    return Verifier(open_store(args.store), policy, anchors, signer=signer)


def _enroll_keys(args: argparse.Namespace) -> tuple[bytes, bytes]:
    """EK and AK as the TPM2B_PUBLIC the verifier stores. A PEM/DER EK stands for the TCG
    default EK template with that key; a PEM/DER AK is refused: the credential is bound to
    the AK's TPM name, which a bare key does not give."""
    ek = _tpm_key(args.ek, "--ek")
    ak = _tpm_key(args.ak, "--ak")
    if not isinstance(ak, Public):
        raise CommandError(
            "--ak: a PEM/DER key has no TPM name, and enrollment binds the credential to the "
            "AK's name; give its TPM2B_PUBLIC (tpm2_readpublic -c AK -o ak.tpm2b) or "
            "TPMT_PUBLIC (-f tpmt)",
            exit_code=EXIT_MALFORMED,
        )
    return (ek if isinstance(ek, Public) else _ek_from_key(ek)).marshal_tpm2b(), ak.marshal_tpm2b()


def _attest_enroll(args: argparse.Namespace) -> int:
    ek_public, ak_public = _enroll_keys(args)
    verifier = _verifier(args)
    try:
        cred = verifier.enrollment.enroll(
            args.device_id,
            ek_public=ek_public,
            ak_public=ak_public,
            ek_certificate=read_input(args.ek_cert, limit=_SMALL) if args.ek_cert else None,
        )
    finally:
        verifier.store.close()
    atomic_write(args.output, cred.to_tpm2_tools(), mode=0o644)
    emit(
        args,
        {"device_id": args.device_id, "credential": args.output},
        f"{args.device_id}: registered; credential challenge -> {args.output} "
        "(the device runs: trustedge credential activate)",
    )
    return EXIT_OK


def _attest_complete(args: argparse.Namespace) -> int:
    verifier = _verifier(args)
    try:
        record = verifier.enrollment.complete(args.device_id, read_input(args.secret, limit=64))
    finally:
        verifier.store.close()
    data = {"device_id": record.device_id, "state": record.state.value,
            "ak_name": record.ak_name}  # fmt: skip
    emit(args, data, f"{record.device_id}: {record.state.value} (AK {record.ak_name.hex()})")
    return EXIT_OK


def _attest_challenge(args: argparse.Namespace) -> int:
    verifier = _verifier(args)
    try:
        ch = verifier.challenge(args.device_id)
    finally:
        verifier.store.close()
    data = {"device_id": ch.device_id, "nonce": ch.nonce, "expires_at": ch.expires_at,
            "ima_offset": ch.ima_offset, "pcrs": list(ch.pcrs)}  # fmt: skip
    emit(args, data, lambda: (
        f"nonce {ch.nonce.hex()}\nexpires_at {ch.expires_at}\nima_offset {ch.ima_offset}\n"
        f"pcrs {','.join(map(str, ch.pcrs))}"
    ))  # fmt: skip
    return EXIT_OK


def _read_challenge(path: str) -> dict[str, Any]:
    """The fields of ``attest challenge --json`` the device needs, type-checked (the challenge
    is not signed: a wrong one only makes the verifier reject the evidence)."""
    try:
        doc = json.loads(read_input(path, limit=_SMALL))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedInputError(
            f"challenge: not JSON from attest challenge --json: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise MalformedInputError("challenge: expected a JSON object (attest challenge --json)")
    out: dict[str, Any] = {}
    try:
        out["nonce"] = bytes.fromhex(doc["nonce"])
        if not out["nonce"]:
            raise ValueError("empty nonce")
        pcrs = doc.get("pcrs", [])
        if not isinstance(pcrs, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 24 for i in pcrs
        ):
            raise ValueError("pcrs must be a list of PCR indexes 0-23")
        out["pcrs"] = pcrs
        offset = doc.get("ima_offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("ima_offset must be a non-negative integer")
        out["ima_offset"] = offset
        device = doc.get("device_id")
        if device is not None and not isinstance(device, str):
            raise ValueError("device_id must be a string")
        out["device_id"] = device
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedInputError(f"challenge: {exc}") from None
    return out


def _attest_evidence(args: argparse.Namespace) -> int:
    from trustedge.attestation.attester import Attester

    challenge = _read_challenge(args.challenge) if args.challenge else {}
    device_id = args.device_id or challenge.get("device_id")
    if not device_id:
        raise CommandError("give --device-id or a --challenge naming the device")
    if args.device_id and challenge and challenge.get("device_id") != args.device_id:
        raise CommandError(
            f"--device-id {args.device_id} but the challenge is for {challenge.get('device_id')}"
        )
    if args.nonce:
        nonce = _hex(args.nonce, "--nonce")
        # not secret: both are the verifier's public challenge nonce, given twice by the user
        if challenge and nonce != challenge["nonce"]:
            raise CommandError("--nonce differs from the challenge's nonce")
    elif challenge:
        nonce = challenge["nonce"]
    else:
        raise CommandError("give --nonce HEX or --challenge FILE")
    if args.pcrs is not None:
        pcrs = parse_pcr_spec(f"{args.bank}:{args.pcrs}")[args.bank]
    else:
        pcrs = challenge.get("pcrs") or parse_pcr_spec(f"{args.bank}:0-10")[args.bank]
    ima_offset = args.ima_offset if args.ima_offset is not None else challenge.get("ima_offset", 0)
    backend = open_backend(args)
    try:
        ak = backend.load_ak(_ak_blob_path(args).read_bytes())
        attester = Attester(backend, ak=ak, device_id=device_id, bank=args.bank,
                            eventlog_path=args.eventlog, ima_path=args.ima)  # fmt: skip
        evidence = attester.evidence(nonce, pcrs=pcrs, ima_offset=ima_offset)
        if args.model_log:  # the model-load log + TPM2_NV_Certify of its index (update load)
            from trustedge.attestation.modellog import ModelAgent

            agent = ModelAgent(backend, args.model_log, (), nv_index=args.model_nv_index)
            evidence = agent.attach(evidence, ak)
    finally:
        _close(backend)
    wire = evidence.encode()
    write_output(args.output, wire)
    emit(args, evidence.to_json(), lambda: (
        f"evidence for {evidence.device_id}: {len(wire)} bytes -> {args.output} "
        f"(PCRs {','.join(map(str, pcrs))}, IMA entries from {evidence.ima_offset})"
    ))  # fmt: skip
    return EXIT_OK


def _attest_appraise(args: argparse.Namespace) -> int:
    from trustedge.attestation.cli_support import render_result

    verifier = _verifier(args, key=True)
    try:
        outcome = verifier.appraise(read_input(args.evidence, limit=64 << 20))
    finally:
        verifier.store.close()
    token = outcome.token
    if args.output:
        Path(args.output).write_bytes(token.encode("ascii") if isinstance(token, str) else token)
    data = {
        "status": outcome.status.value,
        "device_id": outcome.device_id,
        "token": token if isinstance(token, str) else token.hex(),
        "claims": outcome.result.to_json_claims(),
    }
    emit(args, data, lambda: render_result(outcome.result)
         + (f"\nsigned result -> {args.output}" if args.output else ""))  # fmt: skip
    if outcome.status.value != "affirming":
        failure_line(f"evidence of {outcome.device_id}: {outcome.status.value}, not affirming")
        return EXIT_VERIFICATION
    return EXIT_OK


def _attest_verify(args: argparse.Namespace) -> int:
    """One-shot offline check (CI, audits): ``verify_evidence`` against a pinned AK."""
    import time

    from trustedge._cli.policy import appraisal_policy_from_args
    from trustedge.attestation.appraisal import EvidenceRejectedError, verify_evidence
    from trustedge.attestation.evidence import UnverifiedEvidence

    policy = appraisal_policy_from_args(args, read_input(args.policy, limit=_SMALL))
    evidence = UnverifiedEvidence.decode(read_input(args.evidence, limit=64 << 20))
    try:
        appraisal = verify_evidence(
            evidence,
            ak_public=read_input(args.ak, limit=_SMALL),
            policy=policy,
            nonce=_hex(args.nonce, "--nonce"),
            now=int(time.time()),
            allow_warning=args.allow_warning,
        )
        code = EXIT_OK
    except EvidenceRejectedError as exc:
        appraisal, code = exc.appraisal, EXIT_VERIFICATION
    result = appraisal.result
    models = appraisal.models
    data = {
        "status": appraisal.status.value,
        "device_id": appraisal.device_id,
        "policy_id": appraisal.policy_id,
        "reasons": list(result.reasons),
        "model_reasons": None if models is None else list(models.reasons),
        "quote": None if appraisal.quote is None else appraisal.quote.to_json(),
    }
    emit(args, data, lambda: "\n".join(
        [f"evidence of {appraisal.device_id} (claimed): {appraisal.status.value.upper()}"]
        + [f"  - {r}" for r in result.reasons]
        + ([f"  model: - {r}" for r in models.reasons] if models is not None else [])
    ))  # fmt: skip
    if code != EXIT_OK:
        failure_line(f"evidence of {appraisal.device_id}: {appraisal.status.value}, not affirming")
    return code


def _attest_result_verify(args: argparse.Namespace) -> int:
    import time

    from trustedge.attestation.cli_support import render_result, result_view, verify_result_bytes

    now = int(time.time()) if args.max_age is not None else None
    result = verify_result_bytes(
        read_input(args.token, limit=_SMALL),
        read_input(args.key, limit=_SMALL),
        now=now,
        max_age=args.max_age,
        expected_nonce=_hex(args.nonce, "--nonce") if args.nonce else None,
    )
    emit(args, result_view(result), lambda: render_result(result))
    return EXIT_OK if result.status.value == "affirming" else EXIT_VERIFICATION


def _add_verifier(p: argparse.ArgumentParser, *, policy: bool = True) -> None:
    p.add_argument("--store", required=True, help="SQLite path or postgresql:// URI")
    p.add_argument("--policy", required=policy, help="appraisal policy (JSON, or signed)")
    from trustedge._cli.policy import add_policy_key_args

    add_policy_key_args(p)
    p.add_argument("--ek-roots", action="append", default=[], metavar="PEM",
                   help="TPM manufacturer root(s): genuine hardware")  # fmt: skip
    p.add_argument("--software-roots", action="append", default=[], metavar="PEM",
                   help="software-TPM CA(s): enrolled, labelled software")  # fmt: skip
    p.add_argument("--intermediates", action="append", default=[], metavar="PEM")
    add_json_flag(p)


def _register_attest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``attest`` (called from :func:`register`)."""
    attest = sub.add_parser("attest", help="remote attestation: evidence, appraisal, results")
    asub = attest.add_subparsers(dest="attest_command", metavar="COMMAND", required=True)

    p = asub.add_parser("evidence", help="device: quote + logs -> evidence bundle (CBOR)")
    _add_backend(p)
    p.add_argument("--ak-blob", help="AK blob from tpm init (default: the software state's AK)")
    p.add_argument("--device-id", help="required unless --challenge names it")
    p.add_argument(
        "--challenge",
        metavar="FILE",
        help="the verifier's challenge (attest challenge --json, - for stdin): nonce, PCRs, "
        "IMA offset and device id come from it",
    )
    p.add_argument("--nonce", help="the verifier's challenge nonce (hex; or --challenge)")
    p.add_argument(
        "--pcr-indices",
        "--pcrs",
        dest="pcrs",
        default=None,
        help="PCR indexes to quote (default: the challenge's, else 0-10; --pcrs is deprecated)",
    )
    p.add_argument("--bank", default="sha256", choices=("sha256", "sha384", "sha512"))
    p.add_argument(
        "--ima-offset",
        type=int,
        default=None,
        help="IMA entries the verifier has (default: the challenge's, else 0)",
    )
    p.add_argument("--eventlog", help="firmware event log (binary_bios_measurements)")
    p.add_argument("--ima", help="IMA list (binary_runtime_measurements)")
    p.add_argument("--model-log", metavar="LOG",
                   help="model-load log (update load): add it and an NV certification")  # fmt: skip
    p.add_argument("--model-nv-index", type=lambda t: int(t, 0), default=0x013E0D01,
                   help="the model log's NV extend index (default 0x013e0d01)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="where to write the evidence")
    p.set_defaults(handler=_attest_evidence)

    p = asub.add_parser("enroll", help="verifier: register a device, write its credential")
    _add_verifier(p)
    p.add_argument("--device-id", required=True)
    p.add_argument("--ek", required=True,
                   help="EK: TPM2B_PUBLIC (tpm init: PREFIX.ek.tpm2b), TPMT_PUBLIC, or PEM/DER "
                   "of a default-template EK (tpm2_createek -f pem)")  # fmt: skip
    p.add_argument("--ak", required=True,
                   help="AK: TPM2B_PUBLIC (tpm init: PREFIX.tpm2b) or TPMT_PUBLIC "
                   "(tpm2_readpublic -f tpmt); not PEM (no TPM name)")  # fmt: skip
    p.add_argument("--ek-cert", help="EK certificate DER (tpm init: PREFIX.ek.der)")
    p.add_argument("--allow-uncertified-ek", action="store_true",
                   help="accept an EK without certificate (no hardware claim)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="credential (tpm2-tools format)")
    p.set_defaults(handler=_attest_enroll)

    p = asub.add_parser("complete", help="verifier: bind the AK with the activated secret")
    _add_verifier(p)
    p.add_argument("--device-id", required=True)
    p.add_argument("--secret", required=True, help="secret from credential activate")
    p.set_defaults(handler=_attest_complete)

    p = asub.add_parser("challenge", help="verifier: issue a single-use nonce")
    _add_verifier(p)
    p.add_argument("--device-id", required=True)
    p.set_defaults(handler=_attest_challenge)

    p = asub.add_parser(
        "appraise", help="verifier: appraise evidence -> signed EAR (exit 0 affirming, else 1)"
    )
    p.add_argument("evidence", help="evidence bundle (CBOR)")
    _add_verifier(p)
    p.add_argument("--key", required=True, help="verifier signing key (PEM/DER, P-256 or Ed25519)")
    p.add_argument("--format", choices=("jwt", "cwt"), default="jwt")
    p.add_argument("-o", "--output", help="where to write the signed result")
    p.set_defaults(handler=_attest_appraise)

    p = asub.add_parser(
        "verify",
        help="one-shot offline check of evidence against a pinned AK "
        "(CI, audits; nothing stored or signed; exit 0 affirming, else 1)",
    )
    p.add_argument("evidence", help="evidence bundle (CBOR), - for stdin")
    p.add_argument("--ak", required=True, help="the trusted AK's TPM2B_PUBLIC (pinned)")
    p.add_argument("--policy", required=True, help="appraisal policy (JSON, or signed)")
    from trustedge._cli.policy import add_policy_key_args

    add_policy_key_args(p)
    p.add_argument("--nonce", required=True, help="the nonce the device was asked to quote (hex)")
    p.add_argument("--allow-warning", action="store_true",
                   help="accept a warning result (e.g. an unsafe TPM clock) too")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(handler=_attest_verify)

    result = asub.add_parser("result", help="relying party: signed attestation results")
    rsub = result.add_subparsers(dest="result_command", metavar="COMMAND", required=True)
    p = rsub.add_parser("verify", help="verify an EAR (exit 0 affirming, 1 otherwise)")
    p.add_argument("token", help="JWT or CWT file")
    p.add_argument("--key", required=True, help="the verifier's public key (PEM/DER)")
    p.add_argument("--nonce", help="expected eat_nonce (hex)")
    p.add_argument("--max-age", type=int, help="reject results older than this (seconds)")
    add_json_flag(p)
    p.set_defaults(handler=_attest_result_verify)
