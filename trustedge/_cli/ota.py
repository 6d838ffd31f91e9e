"""CLI commands of the ota group: ``release``, ``root`` and ``update``.

Release engineers: ``release keygen|create|sign|verify|inspect`` and
``root init|sign|rotate|verify``. Devices: ``update apply|confirm``.
Exit codes: 0 ok / authentic / installed, 1 verification failed or update
rejected (signature, rollback, wrong device, digest, expiry), 2 usage,
3 malformed input, 4 environment.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import _cbor
from trustedge._cli._common import (
    EXIT_OK,
    CommandError,
    add_json_flag,
    add_password_file,
    emit,
    key_password,
    read_input,
    to_stdout,
    write_key_file,
    write_output,
)
from trustedge._fs import atomic_write
from trustedge.cose import PublicKey, key_id
from trustedge.errors import MalformedInputError
from trustedge.keys import load_private_key, load_public_key, private_key_to_pem, public_key_to_pem
from trustedge.ota import (
    FileStateStore,
    FileSystemDevice,
    KeySet,
    TrustRoot,
    Updater,
    build_trust_root,
    decode_envelope,
)
from trustedge.ota.release import create_envelope, sign_envelope
from trustedge.ota.suit.inspect import diagnostic, summary
from trustedge.ota.trustroot import add_signatures
from trustedge.ota.updater import verify_envelope

__all__ = ["register"]

_MAX_MANIFEST = 64 << 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``release``, ``root`` and ``update`` command groups."""
    _register_release(sub)
    _register_root(sub)
    _register_update(sub)


# -- helpers -------------------------------------------------------------------------


def _public_key(path: str) -> PublicKey:
    """A release/root public key in any encoding ``trustedge.keys`` reads (PEM, DER, OpenSSH,
    COSE_Key, raw Ed25519)."""
    return load_public_key(read_input(path, limit=1 << 16))


def _trust(args: argparse.Namespace) -> TrustRoot | KeySet:
    if args.trust_root:
        return TrustRoot.load(read_input(args.trust_root, limit=1 << 20))
    if not args.pub:
        raise CommandError("give --trust-root ROOT or --key PUB")
    return KeySet.of([_public_key(p) for p in args.pub], args.threshold)


def _add_trust_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--trust-root", metavar="ROOT", help="signed trust root (firmware role)")
    g.add_argument(
        "--key",
        dest="pub",
        action="append",
        metavar="PUB",
        help="trusted public key (PEM or COSE_Key); repeatable",
    )
    p.add_argument(
        "--threshold", type=int, default=1, help="signatures needed with --key (default 1)"
    )
    p.add_argument(
        "--legacy-install",
        action="store_true",
        help="accept pre-draft-29 numbering (install = 17, libcsuit 2023 files)",
    )


def _now(args: argparse.Namespace) -> int:
    return int(args.now) if args.now is not None else int(time.time())


# -- release -------------------------------------------------------------------------


def _register_release(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = sub.add_parser("release", help="create, sign, verify and inspect SUIT manifests")
    rs = release.add_subparsers(dest="release_command", metavar="COMMAND", required=True)

    p = rs.add_parser("keygen", help="generate a signing key (keep it offline)")
    p.add_argument("--alg", choices=("es256", "ed25519"), default="es256")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="KEY",
        help="private key (PEM); KEY.pub gets the public key",
    )
    add_json_flag(p)
    p.set_defaults(handler=_keygen)

    p = rs.add_parser("create", help="compile a suit-tool JSON spec into an unsigned envelope")
    p.add_argument("spec", metavar="SPEC.json")
    p.add_argument("-o", "--output", required=True, metavar="MANIFEST")
    p.add_argument(
        "--integrate",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="integrated payload (uri '#NAME')",
    )
    add_json_flag(p)
    p.set_defaults(handler=_create)

    p = rs.add_parser("sign", help="add signatures (one per --key) to an envelope")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--key", action="append", required=True, metavar="KEY")
    p.add_argument("-o", "--output", metavar="OUT", help="default: rewrite MANIFEST; - stdout")
    add_password_file(p)
    add_json_flag(p)
    p.set_defaults(handler=_sign)

    p = rs.add_parser(
        "verify", help="check an envelope's signatures (exit 0 authentic, 1 not, 3 malformed)"
    )
    p.add_argument("manifest", metavar="MANIFEST")
    _add_trust_args(p)
    p.add_argument("--now", type=int, help="unix time for the trust root's expiry (default: now)")
    add_json_flag(p)
    p.set_defaults(handler=_verify)

    p = rs.add_parser("inspect", help="readable and CBOR-diagnostic dump (verifies nothing)")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--legacy-install", action="store_true")
    add_json_flag(p)
    p.set_defaults(handler=_inspect)


def _keygen(args: argparse.Namespace) -> int:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if args.alg == "es256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    if to_stdout(args, args.output):
        write_key_file(args.output, private_key_to_pem(key))
        return EXIT_OK
    write_key_file(args.output, private_key_to_pem(key))
    write_key_file(args.output + ".pub", public_key_to_pem(key.public_key()), mode=0o644)
    kid = key_id(key.public_key())
    emit(
        args,
        {"key": args.output, "public": args.output + ".pub", "key_id": kid},
        f"key id {kid.hex()}",
    )
    return EXIT_OK


def _create(args: argparse.Namespace) -> int:
    try:
        spec = json.loads(read_input(args.spec, limit=1 << 20))
    except ValueError as exc:
        raise MalformedInputError(f"{args.spec}: not JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise MalformedInputError("spec must be a JSON object")
    payloads = {}
    for item in args.integrate:
        name, sep, path = item.partition("=")
        if not sep:
            raise CommandError("--integrate takes NAME=FILE")
        payloads["#" + name.lstrip("#")] = read_input(path, limit=_MAX_MANIFEST)
    env = create_envelope(spec, base=Path(args.spec).resolve().parent, payloads=payloads)
    if to_stdout(args, args.output):
        write_output(args.output, env)
        return EXIT_OK
    write_output(args.output, env)
    digest = decode_envelope(env, max_size=len(env)).manifest_digest
    emit(
        args,
        {"manifest": args.output, "manifest_digest": digest},
        f"manifest digest {digest.hex()}",
    )
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    env = read_input(args.manifest, limit=_MAX_MANIFEST)
    password = key_password(args)
    keys = [load_private_key(read_input(k, limit=1 << 16), password=password) for k in args.key]
    out = sign_envelope(env, keys)
    if to_stdout(args, args.output or args.manifest):
        write_output(args.output or args.manifest, out)
        return EXIT_OK
    write_output(args.output or args.manifest, out)
    blocks = len(decode_envelope(out, max_size=len(out)).auth_blocks)
    emit(
        args,
        {"manifest": args.output or args.manifest, "signatures": blocks},
        f"{blocks} signature(s)",
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    env_bytes = read_input(args.manifest, limit=_MAX_MANIFEST)
    auth = verify_envelope(
        env_bytes,
        _trust(args),
        now=_now(args),
        max_envelope=max(len(env_bytes), 1),
        legacy_install=args.legacy_install,
    )
    data = {
        "authentic": True,
        "manifest_digest": auth.digest,
        "sequence_number": auth.manifest.sequence_number,
        "signers": sorted(auth.signers),
    }
    emit(
        args,
        data,
        f"authentic: sequence {auth.manifest.sequence_number}, "
        f"{len(auth.signers)} trusted signer(s), manifest digest {auth.digest.hex()}",
    )
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from trustedge.ota.suit.codec import decode_manifest

    data = read_input(args.manifest, limit=_MAX_MANIFEST)
    env = decode_envelope(data, max_size=len(data), legacy_install=args.legacy_install)
    manifest = decode_manifest(env.manifest_raw, env.members, legacy_install=args.legacy_install)
    info = {
        "UNVERIFIED": True,
        "manifest_digest": env.manifest_digest,
        "claimed_digest_matches": env.digest.matches(env.manifest_digest),
        "authentication_blocks": len(env.auth_blocks),
        "manifest": summary(manifest),
        "integrated_payloads": {k: len(v) for k, v in env.payloads.items()},
    }
    emit(
        args,
        info,
        lambda: (
            "UNVERIFIED (inspect checks no signature)\n"
            + json.dumps(summary(manifest), indent=2)
            + "\n"
            + diagnostic(_cbor.decode(data, limits=_cbor.DecodeLimits(max_size=len(data))))
        ),
    )
    return EXIT_OK


# -- root ----------------------------------------------------------------------------


def _register_root(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    root = sub.add_parser("root", help="trust roots: keys, thresholds, rotation")
    rs = root.add_subparsers(dest="root_command", metavar="COMMAND", required=True)

    def doc_args(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--root-key", action="append", required=required, metavar="PUB")
        p.add_argument("--root-threshold", type=int, required=required)
        p.add_argument("--firmware-key", action="append", required=required, metavar="PUB")
        p.add_argument("--firmware-threshold", type=int, required=required)
        p.add_argument(
            "--expires", type=int, required=True, help="unix time after which the root is void"
        )
        p.add_argument(
            "--sign",
            action="append",
            default=[],
            metavar="KEY",
            help="private key to sign with; repeatable",
        )
        p.add_argument("-o", "--output", required=True, metavar="ROOT", help="- for stdout")
        add_password_file(p)
        add_json_flag(p)

    p = rs.add_parser("init", help="create the first (self-signed) trust root, version 1")
    doc_args(p, True)
    p.set_defaults(handler=_root_init)

    p = rs.add_parser("rotate", help="create version N+1 (sign with N's and N+1's root keys)")
    p.add_argument("current", metavar="ROOT")
    doc_args(p, False)
    p.add_argument(
        "--revoke", action="append", default=[], metavar="KEYID", help="hex key id to drop"
    )
    p.add_argument(
        "--floor-reset",
        action="append",
        default=[],
        metavar="COMPONENT=SEQ",
        help="component id as hex parts joined by '/', e.g. 00=0 (fast-forward recovery)",
    )
    p.set_defaults(handler=_root_rotate)

    p = rs.add_parser("sign", help="add signatures to a trust root (ceremony)")
    p.add_argument("root", metavar="ROOT")
    p.add_argument("--key", action="append", required=True, metavar="KEY")
    p.add_argument("-o", "--output", metavar="OUT", help="default: rewrite ROOT; - stdout")
    add_password_file(p)
    add_json_flag(p)
    p.set_defaults(handler=_root_sign)

    p = rs.add_parser("verify", help="verify a root, or a chain ROOT_1 ROOT_2 ... (each rotation)")
    p.add_argument("roots", nargs="+", metavar="ROOT")
    p.add_argument("--now", type=int)
    add_json_flag(p)
    p.set_defaults(handler=_root_verify)


def _signers(paths: list[str], args: argparse.Namespace) -> list[Any]:
    password = key_password(args)
    return [load_private_key(read_input(p, limit=1 << 16), password=password) for p in paths]


def _root_init(args: argparse.Namespace) -> int:
    signed = build_trust_root(
        version=1,
        expires=args.expires,
        root_keys=[_public_key(p) for p in args.root_key],
        root_threshold=args.root_threshold,
        firmware_keys=[_public_key(p) for p in args.firmware_key],
        firmware_threshold=args.firmware_threshold,
        signers=_signers(args.sign, args),
    )
    if to_stdout(args, args.output):
        write_output(args.output, signed)
        return EXIT_OK
    write_output(args.output, signed)
    emit(
        args, {"root": args.output, "version": 1}, f"trust root version 1 written to {args.output}"
    )
    return EXIT_OK


def _component_id(text: str) -> bytes:
    try:
        return _cbor.encode([bytes.fromhex(p) for p in text.split("/")])
    except ValueError:
        raise CommandError(f"bad component id {text!r}") from None


def _root_rotate(args: argparse.Namespace) -> int:
    current = TrustRoot.load(read_input(args.current, limit=1 << 20))
    revoked = {bytes.fromhex(k) for k in args.revoke}

    def keys(role: str, given: list[str] | None) -> list[PublicKey]:
        if given:
            return [_public_key(p) for p in given]
        return [current.keys[k] for k in current.roles[role].keys if k not in revoked]

    root_keys = keys("root", args.root_key)
    fw_keys = keys("firmware", args.firmware_key)
    resets = {}
    for item in args.floor_reset:
        comp, sep, seq = item.partition("=")
        if not sep or not seq.isdigit():
            raise CommandError("--floor-reset takes COMPONENT=SEQ")
        resets[_component_id(comp)] = int(seq)
    signed = build_trust_root(
        version=current.version + 1,
        expires=args.expires,
        root_keys=root_keys,
        root_threshold=args.root_threshold or min(current.roles["root"].threshold, len(root_keys)),
        firmware_keys=fw_keys,
        firmware_threshold=args.firmware_threshold
        or min(current.roles["firmware"].threshold, len(fw_keys)),
        signers=_signers(args.sign, args),
        floor_reset=resets,
    )
    if to_stdout(args, args.output):
        write_output(args.output, signed)
        return EXIT_OK
    write_output(args.output, signed)
    emit(
        args,
        {"root": args.output, "version": current.version + 1},
        f"trust root version {current.version + 1} written to {args.output}",
    )
    return EXIT_OK


def _root_sign(args: argparse.Namespace) -> int:
    out = add_signatures(read_input(args.root, limit=1 << 20), _signers(args.key, args))
    if to_stdout(args, args.output or args.root):
        write_output(args.output or args.root, out)
        return EXIT_OK
    write_output(args.output or args.root, out)
    emit(args, {"root": args.output or args.root}, "signed")
    return EXIT_OK


def _root_verify(args: argparse.Namespace) -> int:
    now = _now(args)
    root = TrustRoot.load(read_input(args.roots[0], limit=1 << 20))
    root = root.rotate_chain([read_input(p, limit=1 << 20) for p in args.roots[1:]], now=now)
    data = {
        "version": root.version,
        "expires": root.expires,
        "roles": {
            name: {"keys": list(r.keys), "threshold": r.threshold} for name, r in root.roles.items()
        },
        "floor_reset": {k: v for k, v in root.floor_reset.items()},
    }
    emit(args, data, f"trust root version {root.version} verified (expires {root.expires})")
    return EXIT_OK


# -- update --------------------------------------------------------------------------


def _register_update(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = sub.add_parser("update", help="apply and confirm updates on a device")
    us = update.add_subparsers(dest="update_command", metavar="COMMAND", required=True)

    def device_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state", required=True, metavar="DIR", help="rollback state directory")
        p.add_argument(
            "--device", required=True, metavar="DIR", help="device (A/B slots) directory"
        )
        p.add_argument("--vendor-id", help="device vendor UUID (default: DIR/identity.json)")
        p.add_argument("--class-id", help="device class UUID (default: DIR/identity.json)")
        add_json_flag(p)

    p = us.add_parser("apply", help="verify and install (exit 1 when rejected)")
    p.add_argument("manifest", metavar="MANIFEST")
    _add_trust_args(p)
    p.add_argument("--payload", metavar="FILE", help="payload for the manifest's URI")
    p.add_argument(
        "--rotate",
        action="append",
        default=[],
        metavar="ROOT",
        help="newer trust roots (N+1, N+2, ...) to verify against --trust-root and adopt first",
    )
    p.add_argument("--now", type=int)
    p.add_argument("--max-seq-jump", type=int)
    device_args(p)
    p.set_defaults(handler=_apply)

    p = us.add_parser("confirm", help="the new image booted: raise the rollback floor")
    device_args(p)
    p.add_argument("--revert", action="store_true", help="the new image failed: drop it instead")
    p.set_defaults(handler=_confirm)


def _device(args: argparse.Namespace, payload: str | None = None) -> FileSystemDevice:
    ident = _recorded_identity(args.device)
    vendor = args.vendor_id or ident.get("vendor-id")
    klass = args.class_id or ident.get("class-id")
    if not vendor or not klass:
        raise CommandError(
            "device identity unknown: give --vendor-id and --class-id "
            f"(update apply records them in {Path(args.device) / _IDENTITY})"
        )
    try:
        vid, cid = uuid.UUID(str(vendor)).bytes, uuid.UUID(str(klass)).bytes
    except ValueError:
        raise CommandError("vendor/class ids must be UUIDs") from None

    def fetch(uri: str) -> Iterator[bytes]:
        if payload is None:
            raise CommandError(f"manifest fetches {uri!r}: give --payload FILE")
        with open(payload, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    return FileSystemDevice(args.device, vendor_id=vid, class_id=cid, fetcher=fetch)


_IDENTITY = "identity.json"


def _recorded_identity(device: str) -> dict[str, str]:
    """The vendor and class ids ``update apply`` recorded in the device directory (a
    convenience for ``update confirm``: the ids select the manifest's conditions, they are not
    trust anchors; the manifest's signature and the rollback state are checked as always)."""
    path = Path(device) / _IDENTITY
    if not path.is_file():
        return {}
    try:
        doc = json.loads(read_input(str(path), limit=1 << 16))
    except (UnicodeDecodeError, ValueError):
        raise MalformedInputError(f"{path}: not JSON") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), str) for k in ("vendor-id", "class-id")
    ):
        raise MalformedInputError(f"{path}: expected vendor-id and class-id strings")
    return {k: doc[k] for k in ("vendor-id", "class-id")}


def _record_identity(args: argparse.Namespace) -> None:
    vendor, klass = _device_ids(args)
    doc = {"vendor-id": str(uuid.UUID(bytes=vendor)), "class-id": str(uuid.UUID(bytes=klass))}
    if _recorded_identity(args.device) != doc:
        atomic_write(Path(args.device) / _IDENTITY, json.dumps(doc).encode() + b"\n", mode=0o644)


def _device_ids(args: argparse.Namespace) -> tuple[bytes, bytes]:
    ident = _recorded_identity(args.device)
    vendor = args.vendor_id or ident.get("vendor-id")
    klass = args.class_id or ident.get("class-id")
    return uuid.UUID(str(vendor)).bytes, uuid.UUID(str(klass)).bytes


def _apply(args: argparse.Namespace) -> int:
    env = read_input(args.manifest, limit=_MAX_MANIFEST)
    updater = Updater(
        _trust(args),
        FileStateStore(args.state),
        _device(args, args.payload),
        max_envelope=_MAX_MANIFEST,
        legacy_install=args.legacy_install,
        max_seq_jump=args.max_seq_jump,
    )
    if args.rotate:
        if not isinstance(updater.trust, TrustRoot):
            raise CommandError("--rotate needs --trust-root")
        chain = [read_input(p, limit=1 << 20) for p in args.rotate]
        updater.adopt_trust_root(updater.trust.rotate_chain(chain, now=_now(args)))
    result = updater.apply(env, now=_now(args))
    _record_identity(args)
    data = {
        "installed": True,
        "sequence_number": result.sequence_number,
        "manifest_digest": result.manifest_digest,
        "slots": {str(k): v for k, v in result.slots.items()},
        "pending": True,
    }
    emit(args, data, f"installed sequence {result.sequence_number}; pending until 'update confirm'")
    return EXIT_OK


def _confirm(args: argparse.Namespace) -> int:
    store = FileStateStore(args.state)
    state = store.load()
    comps = tuple(
        tuple(_cbor.decode(cid)) for cid, c in state.components.items() if c.pending is not None
    )
    updater = Updater(KeySet({}, 1), store, _device(args))
    new = updater.revert(comps) if args.revert else updater.confirm(comps)
    floors = {cid.hex(): c.floor for cid, c in new.components.items()}
    emit(args, {"floors": floors, "reverted": args.revert}, f"floors: {floors}")
    return EXIT_OK
