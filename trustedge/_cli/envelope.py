"""``trustedge envelope keygen|seal|open|rewrap|inspect``.

Input is ``-i FILE`` or stdin, output ``-o FILE`` or stdout. Files are
written atomically (temporary file, fsync, rename): a failed ``open`` leaves
no output file. Exit codes: 1 for any authentication failure (wrong key,
commitment, chunk, truncation, trailing data, context), 3 for malformed
input, 4 when a key provider (TPM, KMS) fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trustedge import envelope
from trustedge._cli._common import (
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Progress,
    add_json_flag,
    add_password_file,
    emit,
    key_password,
    read_input,
    write_key_file,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    from trustedge.envelope.slots import Identity, Recipient

__all__ = ["register"]

_BLOCK = 1024 * 1024  # no progress bar for inputs of one block or less
#: ``--suite`` names (aes: Cobblestone-256, chacha: ChaCha20-Poly1305; resolved when sealing,
#: so that building the parser does not load the envelope implementation).
_SUITES = ("aes", "chacha")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the top-level parser."""
    group = sub.add_parser("envelope", help="envelope encryption (seal, open, rewrap)")
    cmds = group.add_subparsers(dest="envelope_command", metavar="COMMAND")
    group.set_defaults(handler=lambda _args: _usage(group))

    p = cmds.add_parser("keygen", help="create a recipient key pair, a KEK or a TPM-sealed KEK")
    p.add_argument("--type", choices=["x25519", "p256", "box", "kek", "tpm-kek"], default="x25519")
    p.add_argument("-o", "--output", required=True, help="private key / KEK file (KEY.pub too)")
    _tpm_options(p)
    add_json_flag(p)
    p.set_defaults(handler=_keygen)

    p = cmds.add_parser("seal", help="encrypt for one or more recipients")
    _key_options(p, public=True)
    p.add_argument("--context", action="append", default=[], metavar="K=V")
    p.add_argument("--content-type")
    p.add_argument("--suite", choices=sorted(_SUITES), default="aes")
    _io_options(p)
    p.set_defaults(handler=_seal)

    p = cmds.add_parser("open", help="decrypt and authenticate")
    _key_options(p, public=False)
    p.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="K=V",
        help="require this stored context value",
    )
    _io_options(p)
    p.set_defaults(handler=_open)

    p = cmds.add_parser("rewrap", help="change recipients without touching the body")
    _key_options(p, public=False)
    p.add_argument("--add-recipient", action="append", default=[], metavar="PUB")
    p.add_argument("--add-box-recipient", action="append", default=[], metavar="PUB")
    p.add_argument("--add-kek", action="append", default=[], metavar="KEK")
    p.add_argument(
        "--remove",
        action="append",
        default=[],
        metavar="KEK_ID",
        help="key id of a slot to drop (see inspect)",
    )
    _io_options(p)
    p.set_defaults(handler=_rewrap)

    p = cmds.add_parser("inspect", help="show header and slots (unverified, no keys needed)")
    p.add_argument("-i", "--input")
    add_json_flag(p)
    p.set_defaults(handler=_inspect)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", help="input file (default and -: stdin)")
    p.add_argument("-o", "--output", help="output file (default and -: stdout)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (what was written; needs -o FILE)",
    )


def _check_json_output(args: argparse.Namespace) -> None:
    if args.json and args.output in (None, "-"):
        raise CommandError("--json prints a document on stdout: give -o FILE for the output")


def _written(args: argparse.Namespace, **extra: Any) -> None:
    if args.json:
        emit(args, {"ok": True, "output": args.output, **extra}, "")


def _tpm_options(p: argparse.ArgumentParser) -> None:
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p, required=False)
    p.add_argument("--tpm-auth-file", help="file holding the sealed KEK's auth value")
    p.add_argument(
        "--pcr",
        action="append",
        default=[],
        metavar="BANK:I",
        help="seal the TPM KEK to this PCR (repeatable)",
    )
    p.add_argument(
        "--tpm-authority",
        metavar="PUB",
        help="seal the TPM KEK to PCR policies signed by this key (PEM; TPM2_PolicyAuthorize)",
    )
    p.add_argument(
        "--tpm-policy",
        action="append",
        default=[],
        metavar="POLICY",
        help="a signed PCR policy to unseal with (release policy; repeatable)",
    )
    p.add_argument("--policy-ref", default="", help="policyRef of the authorized policy")


def _key_options(p: argparse.ArgumentParser, *, public: bool) -> None:
    if public:
        p.add_argument(
            "--recipient",
            action="append",
            default=[],
            metavar="PUB",
            help="HPKE recipient public key, X25519 or P-256 (PEM, DER, COSE_Key, raw)",
        )
        p.add_argument(
            "--box-recipient",
            action="append",
            default=[],
            metavar="PUB",
            help="libsodium sealed-box public key (32 bytes: raw, hex or base64)",
        )
    else:
        p.add_argument(
            "--identity",
            action="append",
            default=[],
            metavar="KEY",
            help="HPKE private key, X25519 or P-256 (PEM, DER, OpenSSH, COSE_Key, raw)",
        )
        add_password_file(p)
        p.add_argument(
            "--box-identity",
            action="append",
            default=[],
            metavar="KEY",
            help="libsodium sealed-box private key (32 bytes: raw, hex or base64)",
        )
    p.add_argument("--kek", action="append", default=[], metavar="KEK", help="software KEK file")
    p.add_argument(
        "--kms-key",
        action="append",
        default=[],
        metavar="FILE",
        help="local key-provider key file (example KMS provider)",
    )
    p.add_argument(
        "--tpm",
        action="append",
        default=[],
        metavar="SEALED",
        help="TPM-sealed KEK blob (made by keygen --type tpm-kek)",
    )
    _tpm_options(p)


# -- keys --------------------------------------------------------------------------------


_SMALL = 1 << 16


def _tpm_backend(args: argparse.Namespace) -> Any:
    from trustedge._cli.attestation import open_backend

    if not args.software and not args.tcti:
        raise CommandError("TPM-sealed keys need --tcti TCTI or --software DIR")
    return open_backend(args)


def _tpm_auth(args: argparse.Namespace) -> bytes | None:
    return Path(args.tpm_auth_file).read_bytes() if args.tpm_auth_file else None


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    out = Path(args.output)
    pub = out.with_name(out.name + ".pub")
    if args.type in ("x25519", "p256"):
        from cryptography.hazmat.primitives import serialization

        sk: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey = (
            x25519.X25519PrivateKey.generate()
            if args.type == "x25519"
            else ec.generate_private_key(ec.SECP256R1())
        )
        write_key_file(
            str(out),
            sk.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        write_key_file(
            str(pub),
            sk.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            mode=0o644,
        )
        kek_id = envelope.HPKEIdentity(sk).kek_id
    elif args.type == "box":
        ident = envelope.SealedBoxIdentity.generate()
        write_key_file(str(out), ident.private_bytes())
        write_key_file(str(pub), ident.recipient.public_bytes, mode=0o644)
        kek_id = ident.kek_id
    elif args.type == "kek":
        kek = envelope.KEK.generate()
        write_key_file(str(out), kek.key_bytes())
        kek_id = kek.kek_id
    else:
        pcrs: dict[str, list[int]] = {}
        for item in args.pcr:
            bank, _, index = item.partition(":")
            pcrs.setdefault(bank, []).append(int(index))
        authority = _tpm_authority(args)
        if authority is not None:
            if pcrs or args.tpm_auth_file:
                raise CommandError("--tpm-authority replaces --pcr and --tpm-auth-file")
            tpm = envelope.TPMSealedKEK.create_authorized(
                _tpm_backend(args), authority=authority, policy_ref=args.policy_ref.encode()
            )
        else:
            tpm = envelope.TPMSealedKEK.create(
                _tpm_backend(args), pcrs=pcrs or None, auth=_tpm_auth(args)
            )
        write_key_file(str(out), tpm.sealed)
        kek_id = tpm.kek_id
    emit(args, {"key_id": kek_id, "path": str(out)}, f"{kek_id}  {out}")
    return EXIT_OK


def _identities(args: argparse.Namespace) -> list[Identity]:
    from trustedge import keys

    ids: list[Identity] = []
    password = key_password(args)
    ids += [
        envelope.HPKEIdentity(
            keys.load_agreement_private_key(read_input(p, limit=_SMALL), password=password)
        )
        for p in args.identity
    ]
    ids += [envelope.SealedBoxIdentity(_raw32(p)) for p in args.box_identity]
    ids += _symmetric(args)
    if not ids:
        raise CommandError("give at least one key (--identity, --kek, --tpm, ...)")
    return ids


def _symmetric(args: argparse.Namespace) -> list[Any]:
    found: list[Any] = [envelope.KEK.from_file(p) for p in args.kek]
    found += [envelope.KMSSlot(envelope.LocalKeyFileProvider.from_file(p)) for p in args.kms_key]
    if args.tpm:
        backend = _tpm_backend(args)
        auth = _tpm_auth(args)
        authority = _tpm_authority(args)
        policies = [read_input(p, limit=_SMALL) for p in args.tpm_policy]
        found += [
            envelope.TPMSealedKEK(
                backend,
                read_input(p, limit=_SMALL),
                auth=auth,
                authority=authority,
                policies=policies,
            )
            for p in args.tpm
        ]
    return found


def _tpm_authority(args: argparse.Namespace) -> bytes | None:
    """The TPM2B_PUBLIC of ``--tpm-authority`` (a PEM EC or RSA public key)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if not args.tpm_authority:
        return None
    from cryptography.hazmat.primitives.asymmetric import rsa

    from trustedge.hazmat.tpm2.policy import authority_public
    from trustedge.keys import load_public_key

    key = load_public_key(Path(args.tpm_authority).read_bytes())
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise CommandError("a TPM policy authority is an EC or RSA key", exit_code=EXIT_MALFORMED)
    return authority_public(key).marshal_tpm2b()


def _raw32(path: str) -> bytes:
    from trustedge import keys

    return keys.load_raw_key(read_input(path, limit=_SMALL), 32)


def _recipients(
    args: argparse.Namespace, pems: list[str], boxes: list[str], keks: list[Any]
) -> list[Recipient]:
    from trustedge import keys

    rs: list[Recipient] = [
        envelope.HPKERecipient(keys.load_agreement_public_key(read_input(p, limit=_SMALL)))
        for p in pems
    ]
    rs += [envelope.SealedBoxRecipient(_raw32(p)) for p in boxes]
    rs += keks
    return rs


def _context(items: list[str]) -> dict[str, str]:
    ctx = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--context takes K=V, got {item!r}")
        ctx[key] = value
    return ctx


# -- streams --------------------------------------------------------------------------------


@contextlib.contextmanager
def _input(path: str | None) -> Iterator[tuple[IO[bytes], int | None]]:
    if path in (None, "-"):
        yield sys.stdin.buffer, None
        return
    with open(path, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        regular = stat.S_ISREG(st.st_mode)
        if regular and hasattr(os, "posix_fadvise"):
            # Read once, front to back: the kernel may read ahead further.
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        yield fh, st.st_size if regular else None


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[bytes]]:
    if path in (None, "-"):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with envelope.atomic_output(path) as fh:
        yield fh


def _suite(name: str) -> int:
    return envelope.SUITE_COBBLESTONE_256 if name == "aes" else envelope.SUITE_CHACHA20_POLY1305


def _seal(args: argparse.Namespace) -> int:
    from trustedge.envelope.stream import Writer

    _check_json_output(args)
    recipients = _recipients(args, args.recipient, args.box_recipient, _symmetric(args))
    if not recipients:
        raise CommandError("give at least one --recipient, --box-recipient, --kek or --tpm")
    ctx = _context(args.context)
    with _input(args.input) as (fin, size), _output(args.output) as fout:
        progress = Progress(size or 0, "sealing")
        progress.enabled = progress.enabled and (size or 0) > _BLOCK
        with Writer(
            fout,
            recipients,
            context=ctx,
            content_type=args.content_type,
            size=size,
            suite=_suite(args.suite),
        ) as w:
            w.write_from(fin, progress.update)
        progress.close()
    _written(args)
    return EXIT_OK


def _open(args: argparse.Namespace) -> int:
    from trustedge.envelope.stream import Reader

    _check_json_output(args)
    identities = _identities(args)
    with _input(args.input) as (fin, size), _output(args.output) as fout:
        reader = Reader(fin, identities, context=_context(args.context) or None)
        progress = Progress(size or 0, "opening")
        progress.enabled = progress.enabled and (size or 0) > _BLOCK
        reader.copy_to(fout, progress.update)
        progress.close()
    _written(args, verified=True)
    return EXIT_OK


def _rewrap(args: argparse.Namespace) -> int:
    _check_json_output(args)
    identities = _identities(args)
    add_keks = [envelope.KEK.from_file(p) for p in args.add_kek]
    add = _recipients(args, args.add_recipient, args.add_box_recipient, add_keks)
    with _input(args.input) as (fin, _):
        data = fin.read()
    _check_removals(envelope.inspect(io.BytesIO(data)).slots, args.remove)
    out = envelope.rewrap(data, identities, add=add, remove=args.remove)
    with _output(args.output) as fout:
        fout.write(out)
    _written(args)
    return EXIT_OK


def _check_removals(slots: Any, remove: list[str]) -> None:
    """``--remove ID`` must name a slot of the envelope (a typo would keep the access it was
    meant to revoke)."""
    present = [str(slot["kek_id"]) for slot in slots]
    for kek_id in remove:
        if kek_id not in present:
            raise CommandError(
                f"--remove {kek_id}: no such slot (slots: {', '.join(present) or 'none'})",
                exit_code=EXIT_MALFORMED,
            )


def _inspect(args: argparse.Namespace) -> int:
    with _input(args.input) as (fin, _):
        info = envelope.inspect(fin)

    def text() -> str:
        lines = [
            "envelope (UNVERIFIED: no key was used)",
            f"  suite:        {info.suite} ({info.aead})",
            f"  content type: {info.content_type or '-'}",
            f"  size:         {info.size if info.size is not None else '-'}",
            f"  body bytes:   {info.body_size if info.body_size is not None else '-'}",
            "  context:",
        ]
        lines += [f"    {k} = {v!r}" for k, v in sorted(info.context.items())] or ["    (none)"]
        lines.append(f"  slots ({len(info.slots)}):")
        names = {1: "kek", 2: "tpm-kek", 3: "hpke", 4: "sealed-box", 5: "kms"}
        lines += [f"    {names.get(s['type'], s['type'])}  {s['kek_id']}" for s in info.slots]
        return "\n".join(lines)

    emit(args, info, text)
    return EXIT_OK
