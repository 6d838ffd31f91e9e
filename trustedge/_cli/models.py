"""``trustedge model``: sign and verify ML models as OMS v1.0 bundles.

``trustedge model sign DIR --key KEY [-o SIG|-] [--certificate-chain PEM]...``
writes an OpenSSF Model Signing bundle (default ``DIR.sig`` beside the
directory); ``trustedge model verify DIR --signature SIG|- (--key PUB |
--certificate-chain ROOT.pem...)`` checks one (exit 0 ok, 1 verification
failed, 3 malformed or unsupported input, 4 a file cannot be read). Bundles
are those of sigstore's ``model_signing sign key`` / ``sign certificate``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Progress,
    add_json_flag,
    add_password_file,
    emit,
    failure_fields,
    key_password,
    read_input,
)
from trustedge.errors import TrustedgeError

__all__ = ["register"]

#: Largest key or certificate file read.
_SMALL = 1 << 16
#: Largest bundle read (trustedge.models.MAX_BUNDLE_BYTES).
_BUNDLE_LIMIT = 64 << 20

USAGE_SIGN = """\
trustedge model sign DIR --key KEY [--password-file FILE] [-o SIG|-] [--certificate-chain PEM]...
                         [--ignore-paths PATH...] [--shard-size N] [--hash-type HASH]
                         [--cache FILE] [--threads N] [--no-progress] [--json]"""
USAGE_VERIFY = """\
trustedge model verify DIR --signature SIG|- (--key PUB | --certificate-chain ROOT.pem...)
                           [--ignore-paths PATH...] [--ignore-unsigned-files] [--threads N]
                           [--no-progress] [--json]"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trustedge model sign`` and ``trustedge model verify``."""
    p = sub.add_parser(
        "model",
        help="sign and verify ML models (OpenSSF Model Signing v1.0 bundles)",
        description="Sign a model directory into an OMS v1.0 bundle (interoperable with "
        "sigstore's model_signing) and verify one.",
    )
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    s = msub.add_parser(
        "sign",
        usage=USAGE_SIGN,
        help="sign a model directory (or file)",
        description="Hash every file of DIR and sign the OMS statement with an ECDSA "
        "(P-256/384/521) or Ed25519 key. With --certificate-chain the bundle carries the "
        "signing certificate (the first one, for --key) and its intermediates.",
    )
    _add_model(s, chain="signing certificate then intermediates")
    s.add_argument("--key", required=True, help="private key (PEM, DER, OpenSSH, COSE_Key)")
    add_password_file(s)
    s.add_argument(
        "-o",
        "--output",
        "--signature",
        dest="output",
        help="where to write the bundle; '-' for stdout (default: DIR.sig beside DIR)",
    )
    _add_ignore(s)
    s.add_argument(
        "--shard-size",
        type=_size,
        default=None,
        help="sign byte ranges of this size (OMS 'shards'; e.g. 1G) instead of whole files",
    )
    s.add_argument(
        "--hash-type",
        choices=("sha256", "blake2b", "blake3"),
        default="sha256",
        help="digest of files or shards (default sha256)",
    )
    s.add_argument(
        "--cache",
        help="re-use digests of unchanged files from this cache file (signing only)",
    )
    _add_common(s)
    s.set_defaults(handler=failure_fields(_sign, signed=False))

    v = msub.add_parser(
        "verify",
        usage=USAGE_VERIFY,
        help="verify a model directory against an OMS bundle",
        description="Check the bundle's signature with --key (key method) or against "
        "trusted root certificates (--certificate-chain), then hash every file of DIR "
        "against it. Exit 1 when verification fails, 3 for a malformed bundle.",
    )
    _add_model(v, chain="trusted root certificate(s)")
    v.add_argument("--signature", required=True, help="the bundle (e.g. DIR.sig); '-' for stdin")
    v.add_argument("--key", help="the signer's public key (key method)")
    _add_ignore(v)
    v.add_argument(
        "--ignore-unsigned-files",
        action="store_true",
        help="accept files the signature does not list",
    )
    _add_common(v)
    v.set_defaults(handler=failure_fields(_verify, verified=False))


def _add_model(p: argparse.ArgumentParser, *, chain: str) -> None:
    """DIR and ``--certificate-chain`` (what the chain is differs: sign vs verify)."""
    p.add_argument("model", metavar="DIR", help="model directory or single file")
    p.add_argument(
        "--certificate-chain",
        action="append",
        default=[],
        metavar="PEM",
        help=f"{chain} (PEM; repeatable): certificate method",
    )


def _add_ignore(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ignore-paths",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="files or directories to leave out (relative to DIR, or paths inside it); "
        ".git, .github, .gitattributes and .gitignore always are",
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: CPUs)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it shows only on a TTY)"
    )
    add_json_flag(p)


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        value = int(t[:-1]) * units[t[-1]] if t[-1:] in units else int(t)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the size must be positive")
    return value


def _ignore_paths(model: str, paths: list[str]) -> list[str]:
    """Ignore paths relative to the model: a path naming something inside
    the model (absolute, or relative to the working directory like
    model_signing's) is made relative to it; anything else is taken as
    already relative to the model."""
    root = Path(os.path.abspath(model))
    out = []
    for p in paths:
        absolute = Path(os.path.abspath(p))
        try:
            rel = absolute.relative_to(root)
        except ValueError:
            if os.path.isabs(p):
                raise CommandError(f"--ignore-paths {p!r} is not inside the model") from None
            out.append(p)
            continue
        if rel.parts:
            out.append(rel.as_posix())
    return out


def _check_threads(args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        raise CommandError("--threads must be at least 1")


def _certificates(paths: list[str]) -> list[Any]:
    """Certificates from PEM files (several per file) or single DER files."""
    if not paths:
        return []
    from cryptography import x509

    from trustedge.errors import MalformedInputError

    out: list[Any] = []
    for path in paths:
        data = read_input(path, limit=_SMALL)
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                out.extend(x509.load_pem_x509_certificates(data))
            else:
                out.append(x509.load_der_x509_certificate(data))
        except ValueError as exc:
            raise MalformedInputError(f"{path}: not an X.509 certificate: {exc}") from None
    return out


@contextlib.contextmanager
def _progress(args: argparse.Namespace, label: str) -> Iterator[Any]:
    bar = None if args.no_progress else Progress(1, label)
    if bar is None or not bar.enabled:
        yield None
        return
    shown = bar

    def update(done: int, total: int) -> None:
        shown.total = max(total, 1)
        shown.update(done)

    try:
        yield update
    finally:
        shown.close()


def _sign(args: argparse.Namespace) -> int:
    from trustedge import models
    from trustedge.keys import load_private_key

    _check_threads(args)
    if args.output == "-" and args.json:
        raise CommandError("--json and -o - both write to stdout: choose one")
    key = load_private_key(read_input(args.key, limit=_SMALL), password=key_password(args))
    chain = _certificates(args.certificate_chain)
    target = None
    if args.output != "-":
        target = Path(args.output or models.default_signature_path(args.model))
    cache = models.HashCache(args.cache) if args.cache else None
    try:
        with _progress(args, f"sign {args.model}") as cb:
            bundle = models.sign_model(
                args.model,
                key,  # type: ignore[arg-type]  # Ed448 is refused inside with a clear error
                certificate_chain=chain,
                ignore_paths=_ignore_paths(args.model, args.ignore_paths),
                signature_path=target,
                hash_type=args.hash_type,
                shard_size=args.shard_size,
                threads=args.threads,
                progress=cb,
                cache=cache,
            )
    except ValueError as exc:
        if isinstance(exc, TrustedgeError):
            raise
        raise CommandError(str(exc), exit_code=EXIT_USAGE) from None
    parsed = models.parse_bundle(bundle)
    statement = models.parse_statement(parsed.payload)
    if target is None:
        sys.stdout.buffer.write(bundle)
        sys.stdout.flush()
        return EXIT_OK
    from trustedge import _fs

    _fs.atomic_write(target, bundle, mode=0o644)
    result = {
        "signed": True,
        "signature": str(target),
        "name": statement.subject_name,
        "digest": {"sha256": statement.subject_digest.hex()},
        "method": parsed.method,
        "serialization": statement.serialization.to_json(),
        "resources": len(statement.resources),
    }
    text = (
        f"signed {args.model} -> {target}\n"
        f"  digest sha256:{statement.subject_digest.hex()} "
        f"({len(statement.resources)} {statement.serialization.method}, {parsed.method} method)"
    )
    emit(args, result, text)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from trustedge import models
    from trustedge.keys import load_public_key

    _check_threads(args)
    if (args.key is None) == (not args.certificate_chain):
        raise CommandError("give --key (key method) or --certificate-chain (certificate method)")
    bundle = read_input(args.signature, limit=_BUNDLE_LIMIT)
    if args.key is not None:
        public_key: Any = load_public_key(read_input(args.key, limit=_SMALL))
        roots: list[Any] = []
    else:
        public_key = None
        roots = _certificates(args.certificate_chain)
    if not Path(args.model).exists():
        raise CommandError(f"{args.model}: no such file or directory", exit_code=EXIT_USAGE)
    sig_path = None if args.signature == "-" else args.signature
    try:
        with _progress(args, f"verify {args.model}") as cb:
            verified = models.verify_model(
                args.model,
                bundle,
                public_key=public_key,
                trusted_certificates=roots,
                ignore_paths=_ignore_paths(args.model, args.ignore_paths),
                signature_path=sig_path,
                ignore_unsigned_files=args.ignore_unsigned_files,
                threads=args.threads,
                progress=cb,
            )
    except ValueError as exc:
        if isinstance(exc, TrustedgeError):
            raise
        raise CommandError(str(exc), exit_code=EXIT_MALFORMED) from None
    data = {"verified": True, **verified.to_json()}
    text = (
        f"OK  {args.model}: {len(verified.files)} file(s), "
        f"digest sha256:{verified.digest.hex()} ({verified.statement.signer.method} method)"
    )
    emit(args, data, text)
    return EXIT_OK
