"""CLI commands of the ota group: ``release``, ``root`` and ``update``.

Release engineers: ``release keygen|create|sign|verify|inspect|model`` and
``root init|sign|rotate|verify``. Devices: ``update apply|confirm|load``
(``release model`` builds an encrypted model update from an OMS-signed model
directory; ``update apply --identity`` installs it; ``update load`` verifies
the installed model, extends its signed digest into the TPM's NV index and
appends to the model-load log).
Exit codes: 0 ok / authentic / installed, 1 verification failed or update
rejected (signature, rollback, wrong device, digest, expiry), 2 usage,
3 malformed input, 4 environment.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from trustedge import envelope
from trustedge._cli._batch import batched
from trustedge._cli._common import (
    EXIT_ENVIRONMENT,
    EXIT_MALFORMED,
    EXIT_OK,
    CommandError,
    add_json_flag,
    add_password_file,
    emit,
    failure_fields,
    key_password,
    read_input,
    to_stdout,
    write_key_file,
    write_output,
)
from trustedge._fs import atomic_output, atomic_write
from trustedge.errors import MalformedInputError

if TYPE_CHECKING:
    from trustedge.cose import PublicKey
    from trustedge.ota import KeySet, TrustRoot
    from trustedge.ota.model import ModelDevice, ModelKey

__all__ = ["register"]

_MAX_MANIFEST = 64 << 20


#: ``trustedge.attestation.modellog.DEFAULT_NV_INDEX``, spelled here so that building the
#: parser does not import the attestation layer (tests/test_startup.py checks they agree).
MODEL_NV_INDEX: Final = 0x013E0D01


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``release``, ``root`` and ``update`` command groups."""
    _register_release(sub)
    _register_root(sub)
    _register_update(sub)


# -- helpers -------------------------------------------------------------------------


def _write(path: str, data: bytes, *, private: bool = False) -> None:
    # Keys, roots and manifests are replaced whole or not at all (tools/crashsafety.py).
    with atomic_output(path, mode=0o600 if private else 0o644) as fh:
        fh.write(data)


def _public_key(path: str) -> PublicKey:
    """A release/root public key in any encoding ``trustedge.keys`` reads (PEM, DER, OpenSSH,
    COSE_Key, raw Ed25519)."""
    from trustedge.keys import load_public_key

    return load_public_key(read_input(path, limit=1 << 16))


def _trust(args: argparse.Namespace) -> TrustRoot | KeySet:
    from trustedge.ota import KeySet, TrustRoot

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
        "verify",
        help="check an envelope's signatures (exit 0 authentic, 1 not, 3 malformed)",
        description="Check envelopes' signatures. Several manifests: one line (--json: one JSON "
        "document per line) per manifest, exit status the worst.",
    )
    p.add_argument("manifest", metavar="MANIFEST", nargs="+")
    _add_trust_args(p)
    p.add_argument("--now", type=int, help="unix time for the trust root's expiry (default: now)")
    add_json_flag(p)
    p.set_defaults(handler=batched(_verify, "manifest"))

    p = rs.add_parser(
        "model", help="build an encrypted model update (SUIT + envelope) from a signed model"
    )
    p.add_argument("model", metavar="DIR", help="the model directory (OMS-signed)")
    p.add_argument("--signature", metavar="SIG", help="its OMS bundle (default: DIR.sig)")
    p.add_argument(
        "--recipient",
        action="append",
        required=True,
        metavar="DEVICE_PUB",
        help="device HPKE public key (PEM, from 'envelope keygen --type hpke'); repeatable",
    )
    p.add_argument(
        "--key", action="append", required=True, metavar="KEY", help="release signing key"
    )
    p.add_argument("--sequence", type=int, required=True, help="SUIT sequence number")
    p.add_argument("--vendor-id", required=True, help="device vendor UUID")
    p.add_argument("--class-id", required=True, help="device class UUID")
    p.add_argument(
        "--component", default="model", help="component id, '/'-separated parts (default model)"
    )
    p.add_argument(
        "--model-key",
        action="append",
        default=[],
        metavar="PUB",
        help="check the model against its signature with this key first; repeatable",
    )
    p.add_argument("-o", "--output", required=True, metavar="UPDATE", help="SUIT envelope")
    p.add_argument("--payload", metavar="FILE", help="encrypted payload (default UPDATE.tenv)")
    p.add_argument("--uri", help="payload URI in the manifest (default: its file name)")
    add_json_flag(p)
    p.set_defaults(handler=failure_fields(_release_model, built=False))

    p = rs.add_parser("inspect", help="readable and CBOR-diagnostic dump (verifies nothing)")
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--legacy-install", action="store_true")
    add_json_flag(p)
    p.set_defaults(handler=_inspect)
    _register_release_policy(rs)


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from trustedge.cose import key_id
    from trustedge.keys import private_key_to_pem, public_key_to_pem

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
    from trustedge.ota import decode_envelope
    from trustedge.ota.release import create_envelope

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
    from trustedge.keys import load_private_key
    from trustedge.ota import decode_envelope
    from trustedge.ota.release import sign_envelope

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
    from trustedge.ota.updater import verify_envelope

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
    from trustedge import _cbor
    from trustedge.ota import decode_envelope
    from trustedge.ota.suit.codec import decode_manifest
    from trustedge.ota.suit.inspect import diagnostic, summary

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


def _model_component(text: str) -> tuple[bytes, ...]:
    parts = tuple(p.encode() for p in text.split("/"))
    if not all(parts):
        raise CommandError(f"bad component id {text!r} (parts separated by '/')")
    return parts


def _model_keys(paths: list[str]) -> list[ModelKey]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    keys = []
    for path in paths:
        key = _public_key(path)
        if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
            raise CommandError(f"{path}: model keys are ECDSA or Ed25519", exit_code=EXIT_MALFORMED)
        keys.append(key)
    return keys


def _release_model(args: argparse.Namespace) -> int:
    import uuid

    from trustedge.models import MAX_BUNDLE_BYTES, default_signature_path
    from trustedge.ota import decode_envelope
    from trustedge.ota.model import build_model_release, verify_model_dir

    model = Path(args.model)
    if not model.is_dir():
        raise CommandError(f"{model}: not a directory", exit_code=EXIT_ENVIRONMENT)
    sig_path = Path(args.signature) if args.signature else default_signature_path(model)
    if sig_path.resolve().is_relative_to(model.resolve()):
        raise CommandError("keep the signature beside the model directory, not inside it")
    bundle = read_input(str(sig_path), limit=MAX_BUNDLE_BYTES)
    if args.model_key:
        verify_model_dir(model, bundle, _model_keys(args.model_key))
    recipients: list[envelope.Recipient] = [
        envelope.HPKERecipient.from_pem(read_input(p, limit=1 << 16)) for p in args.recipient
    ]
    payload = args.payload or args.output + ".tenv"
    uri = args.uri or Path(payload).name
    try:
        vendor, klass = str(uuid.UUID(args.vendor_id)), str(uuid.UUID(args.class_id))
    except ValueError:
        raise CommandError("vendor/class ids must be UUIDs") from None
    try:
        with envelope.atomic_output(payload) as out:
            built = build_model_release(
                model,
                bundle,
                recipients,
                out,
                sequence_number=args.sequence,
                vendor_id=vendor,
                class_id=klass,
                keys=_signers(args.key, args),
                component=_model_component(args.component),
                uri=uri,
            )
    except ValueError as exc:  # an unusable model directory (symlink, special file)
        raise CommandError(str(exc), exit_code=EXIT_MALFORMED) from None
    _write(args.output, built.envelope)
    digest = decode_envelope(built.envelope, max_size=len(built.envelope)).manifest_digest
    data = {
        "manifest": args.output,
        "payload": payload,
        "uri": uri,
        "sequence_number": args.sequence,
        "manifest_digest": digest,
        "pack_digest": built.pack_digest,
        "pack_size": built.pack_size,
        "payload_size": built.payload_size,
        "recipients": len(recipients),
    }
    emit(
        args,
        data,
        f"model update {args.output} (sequence {args.sequence}, {built.pack_size} bytes "
        f"packed) with encrypted payload {payload} ({built.payload_size} bytes)",
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
    from trustedge.keys import load_private_key

    password = key_password(args)
    return [load_private_key(read_input(p, limit=1 << 16), password=password) for p in paths]


def _root_init(args: argparse.Namespace) -> int:
    from trustedge.ota import build_trust_root

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
    from trustedge import _cbor

    try:
        return _cbor.encode([bytes.fromhex(p) for p in text.split("/")])
    except ValueError:
        raise CommandError(f"bad component id {text!r}") from None


def _root_rotate(args: argparse.Namespace) -> int:
    from trustedge.ota import TrustRoot, build_trust_root

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
    from trustedge.ota.trustroot import add_signatures

    out = add_signatures(read_input(args.root, limit=1 << 20), _signers(args.key, args))
    if to_stdout(args, args.output or args.root):
        write_output(args.output or args.root, out)
        return EXIT_OK
    write_output(args.output or args.root, out)
    emit(args, {"root": args.output or args.root}, "signed")
    return EXIT_OK


def _root_verify(args: argparse.Namespace) -> int:
    from trustedge.ota import TrustRoot

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
        p.add_argument(
            "--model-component",
            action="append",
            default=[],
            metavar="ID",
            help="a component installed as a model directory ('/'-separated parts, e.g. "
            "model/edge-llm; default: DIR/identity.json 'model-components'); repeatable",
        )
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
    p.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="KEY",
        help="device HPKE private key (PEM) that opens encrypted model payloads; repeatable",
    )
    p.add_argument(
        "--model-key",
        action="append",
        default=[],
        metavar="PUB",
        help="install a model only if its OMS signature verifies with this key; repeatable",
    )
    device_args(p)
    _sealed_state_args(p)
    p.add_argument(
        "--tpm-policy",
        metavar="POLICY",
        help="sealed state: the update's signed PCR policy (release policy), staged before it "
        "installs so that the new boot chain unseals the state key",
    )
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p, required=False)
    p.set_defaults(handler=failure_fields(_with_sealed_state(_apply), installed=False))

    p = us.add_parser("confirm", help="the new image booted: raise the rollback floor")
    device_args(p)
    p.add_argument("--revert", action="store_true", help="the new image failed: drop it instead")
    p.add_argument(
        "--policy-counter",
        type=lambda t: int(t, 0),
        metavar="NV",
        help="also revoke signed PCR policies older than --policy-version (sealed updates)",
    )
    p.add_argument("--policy-version", type=int, help="the confirmed update's policy version")
    _sealed_state_args(p)
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p, required=False)
    p.set_defaults(handler=_with_sealed_state(_confirm))

    p = us.add_parser(
        "load",
        help="load an installed model with verification: OMS signature, every file; then "
        "extend its digest into the TPM NV index and append to the model-load log",
    )
    p.add_argument("--component", default=None, metavar="ID", help="model component to load")
    p.add_argument(
        "--model-key", action="append", required=True, metavar="PUB", help="trusted model signer"
    )
    p.add_argument("--log", required=True, metavar="LOG", help="model-load log (CBOR)")
    p.add_argument(
        "--nv-index",
        type=lambda text: int(text, 0),
        default=MODEL_NV_INDEX,
        help=f"NV extend index (default 0x{MODEL_NV_INDEX:08x})",
    )
    p.add_argument("--name", help="name recorded in the log (default: the signed model name)")
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p)
    p.add_argument("--device", required=True, metavar="DIR", help="device (A/B slots) directory")
    p.add_argument("--vendor-id", help="device vendor UUID (default: DIR/identity.json)")
    p.add_argument("--class-id", help="device class UUID (default: DIR/identity.json)")
    p.add_argument("--model-component", action="append", default=[], help=argparse.SUPPRESS)
    add_json_flag(p)
    p.set_defaults(handler=failure_fields(_load, loaded=False))
    _register_predict(us)


def _device(
    args: argparse.Namespace, payload: str | None = None, model_keys: list[ModelKey] | None = None
) -> ModelDevice:
    import uuid

    from trustedge.ota.model import ModelDevice

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

    listed: Any = ident.get("model-components", [])
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise MalformedInputError(
            f"{Path(args.device) / _IDENTITY}: 'model-components' is a list of strings"
        )
    models = [_model_component(c) for c in [*args.model_component, *listed]]

    def fetch(uri: str) -> Iterator[bytes]:
        if payload is None:
            raise CommandError(f"manifest fetches {uri!r}: give --payload FILE")
        with open(payload, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    # a FileSystemDevice whose model components (if any) are A/B slot directories
    return ModelDevice(
        args.device,
        vendor_id=vid,
        class_id=cid,
        model_components=models,
        fetcher=fetch,
        model_keys=model_keys or (),
    )


_IDENTITY = "identity.json"


def _recorded_identity(device: str) -> dict[str, Any]:
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
        isinstance(doc.get(k, ""), str) for k in ("vendor-id", "class-id")
    ):
        raise MalformedInputError(f"{path}: expected vendor-id and class-id strings")
    return doc


def _record_identity(args: argparse.Namespace) -> None:
    import uuid

    vendor, klass = _device_ids(args)
    recorded = _recorded_identity(args.device)
    doc = {**recorded, "vendor-id": str(uuid.UUID(bytes=vendor)),
           "class-id": str(uuid.UUID(bytes=klass))}  # fmt: skip
    if recorded != doc:
        atomic_write(Path(args.device) / _IDENTITY, json.dumps(doc).encode() + b"\n", mode=0o644)


def _device_ids(args: argparse.Namespace) -> tuple[bytes, bytes]:
    import uuid

    ident = _recorded_identity(args.device)
    vendor = args.vendor_id or ident.get("vendor-id")
    klass = args.class_id or ident.get("class-id")
    return uuid.UUID(str(vendor)).bytes, uuid.UUID(str(klass)).bytes


def _apply(args: argparse.Namespace) -> int:
    from trustedge.ota import TrustRoot, Updater

    env = read_input(args.manifest, limit=_MAX_MANIFEST)
    device = _device(args, args.payload, _model_keys(args.model_key))
    identities: list[envelope.Identity] = [
        envelope.HPKEIdentity.from_pem(read_input(p, limit=1 << 16)) for p in args.identity
    ]
    if device.model_components and not identities:
        raise CommandError("model components arrive encrypted: give --identity KEY")
    if identities and not device.model_components:
        raise CommandError("--identity opens model payloads: name them with --model-component")
    updater = Updater(
        _trust(args),
        _state_store(args),
        device,
        max_envelope=_MAX_MANIFEST,
        legacy_install=args.legacy_install,
        max_seq_jump=args.max_seq_jump,
        decrypt={c: identities for c in device.model_components} if identities else None,
    )
    if args.rotate:
        if not isinstance(updater.trust, TrustRoot):
            raise CommandError("--rotate needs --trust-root")
        chain = [read_input(p, limit=1 << 20) for p in args.rotate]
        updater.adopt_trust_root(updater.trust.rotate_chain(chain, now=_now(args)))
    if args.sealed_key is not None:  # staged first: the new chain must open the state
        if not args.tpm_policy:
            raise CommandError("a sealed state needs the update's signed policy: --tpm-policy")
        args.sealed_key.stage(read_input(args.tpm_policy, limit=1 << 16))
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
    if args.sealed_key is not None:
        return _confirm_sealed(args)
    from trustedge.ota import FileStateStore
    from trustedge.ota.updater import confirm, revert

    if args.policy_counter is not None and (
        args.policy_version is None or not (args.software or args.tcti)
    ):
        raise CommandError("--policy-counter needs --policy-version and --software or --tcti")
    # No keys: confirm and revert act only on the pending state `update apply` recorded
    # (atomically) after it authenticated the manifest.
    store, device = FileStateStore(args.state), _device(args)
    new = revert(store, device) if args.revert else confirm(store, device)
    floors = {cid.hex(): c.floor for cid, c in new.components.items()}
    data: dict[str, Any] = {"floors": floors, "reverted": args.revert}
    if args.policy_counter is not None and not args.revert:
        data["policy_version"] = _advance_policies(args)
    emit(args, data, f"floors: {floors}")
    return EXIT_OK


def _sealed_state_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sealed state (its MAC key sealed to the release's signed policies)")
    g.add_argument(
        "--state-counter",
        type=lambda t: int(t, 0),
        metavar="NV",
        help="the state's generation counter: the state is MAC'd with a key the TPM unseals "
        "only under a signed PCR policy (update state-key provision)",
    )
    g.add_argument("--tpm-authority", metavar="PUB", help="the policy authority (release) key")


def _with_sealed_state(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """``handler`` with ``args.sealed_key`` (a SealedStateKey on the TPM, opened once and closed
    afterwards) when ``--state-counter`` is given, else None."""

    def run(args: argparse.Namespace) -> int:
        args.sealed_key = None
        if getattr(args, "state_counter", None) is None:
            return handler(args)
        from trustedge._cli.attestation import opened_backend
        from trustedge._cli.envelope import _tpm_authority
        from trustedge.ota.sealedstate import SealedStateKey

        authority = _tpm_authority(args)
        if authority is None:
            raise CommandError("--state-counter needs --tpm-authority PUB")
        with opened_backend(args) as backend:
            args.sealed_key = SealedStateKey(args.state, backend, authority=authority)
            return handler(args)

    return run


def _state_store(args: argparse.Namespace) -> Any:
    """The rollback state store: the sealed one (MAC key unsealed by the TPM) or the file one."""
    from trustedge.ota import FileStateStore

    key = getattr(args, "sealed_key", None)
    if key is None:
        return FileStateStore(args.state)
    return key.open_store(args.state_counter)


def _confirm_sealed(args: argparse.Namespace) -> int:
    """Confirm (or revert) with a sealed state: the pending policy must unseal in this boot;
    the policy counter then advances to its version (the old chain's policy is revoked)."""
    from trustedge import _cbor
    from trustedge.ota import KeySet, Updater
    from trustedge.ota.bootchain import PolicyCounter

    key = args.sealed_key
    store = _state_store(args)
    state = store.load()
    comps = tuple(
        tuple(_cbor.decode(cid)) for cid, c in state.components.items() if c.pending is not None
    )
    updater = Updater(KeySet({}, 1), store, _device(args))
    data: dict[str, Any] = {"reverted": args.revert}
    if args.revert:
        new = key.revert(updater, comps)
    else:
        if args.policy_counter is None:
            raise CommandError("a sealed state's confirm needs --policy-counter NV")
        counter = PolicyCounter(key.backend, args.policy_counter)
        new = key.confirm(updater, counter, comps)
        data["policy_version"] = counter.version
    floors = {cid.hex(): c.floor for cid, c in new.components.items()}
    data["floors"] = floors
    emit(args, data, f"floors: {floors}")
    return EXIT_OK


def _state_key(args: argparse.Namespace) -> int:
    """``update state-key provision|show``."""
    key = args.sealed_key
    if key is None:
        raise CommandError("give --state-counter NV and --tpm-authority PUB")
    if args.action == "provision":
        from trustedge.ota.sealedstate import SealedStateKey

        if not args.tpm_policy:
            raise CommandError("provision needs the current chain's signed policy: --tpm-policy")
        key = SealedStateKey.provision(
            args.state,
            key.backend,
            authority=key.authority,
            policy=read_input(args.tpm_policy, limit=1 << 16),
            policy_ref=args.policy_ref.encode(),
        )
        state = key.provision_store(args.state_counter).load()
    else:
        state = key.open_store(args.state_counter).load()
    from trustedge.hazmat.tpm2.policy import SignedPolicy

    versions = [SignedPolicy.decode(p).policy.version for p in key.policies()]
    data = {
        "state_counter": args.state_counter,
        "generation": state.generation,
        "policy_versions": versions,
        "pending": state.has_pending,
    }
    emit(args, data, f"state generation {state.generation}; policy versions {versions}")
    return EXIT_OK


def _load(args: argparse.Namespace) -> int:
    from trustedge._cli.attestation import opened_backend
    from trustedge.attestation.modellog import ModelAgent

    device = _device(args)
    if args.component is not None:
        component = _model_component(args.component)
    elif len(device.model_components) == 1:
        (component,) = device.model_components
    else:
        raise CommandError("name the model with --component ID")
    if component not in device.model_components:
        device.model_components = frozenset({*device.model_components, component})
    directory, bundle = device.model(component)
    if bundle is None:
        shown = "/".join(p.decode("utf-8", "replace") for p in component)
        raise CommandError(
            f"no signed model installed for component {shown!r}", exit_code=EXIT_ENVIRONMENT
        )
    with opened_backend(args) as backend:
        agent = ModelAgent(backend, args.log, _model_keys(args.model_key), nv_index=args.nv_index)
        loaded = agent.load(directory, bundle, name=args.name)
        value = backend.nv_extend_read(args.nv_index)
    data = {
        "loaded": True,
        "directory": str(directory),
        "name": loaded.event.name,
        "digest": {"sha256": loaded.digest.hex()},
        "signer": loaded.verified.statement.signer.to_json(),
        "files": [f.name for f in loaded.verified.files],
        "recnum": loaded.event.recnum,
        "nv_index": f"0x{args.nv_index:08x}",
        "nv_value": None if value is None else value.hex(),
    }
    emit(
        args,
        data,
        f"loaded {loaded.event.name!r} (sha256:{loaded.digest.hex()}): verified "
        f"{len(loaded.verified.files)} file(s), event {loaded.event.recnum} logged, "
        f"extended into NV 0x{args.nv_index:08x}",
    )
    return EXIT_OK


# -- update predict ------------------------------------------------------------------


def _register_predict(us: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = us.add_parser(
        "predict", help="the next boot's PCR values after MANIFEST's boot-chain components install"
    )
    add_prediction_args(p)
    add_json_flag(p)
    p.set_defaults(handler=_predict)

    p = us.add_parser(
        "state-key",
        help="the rollback state's MAC key sealed to signed PCR policies (provision, show)",
    )
    p.add_argument("action", choices=("provision", "show"))
    p.add_argument("--state", required=True, metavar="DIR", help="rollback state directory")
    _sealed_state_args(p)
    p.add_argument("--tpm-policy", metavar="POLICY", help="the current chain's signed policy")
    p.add_argument("--policy-ref", default="", help="policyRef (the signed policies')")
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p)
    add_json_flag(p)
    p.set_defaults(handler=_with_sealed_state(_state_key))

    p = us.add_parser(
        "policy-counter",
        help="the TPM counter that versions signed PCR policies (init, show, advance)",
    )
    p.add_argument("action", choices=("init", "show", "advance"))
    p.add_argument("--index", required=True, type=lambda t: int(t, 0), metavar="NV")
    from trustedge._cli.attestation import add_backend_options

    add_backend_options(p)
    add_json_flag(p)
    p.set_defaults(handler=_policy_counter)


def _register_release_policy(rs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = rs.add_parser(
        "policy",
        help="sign the PCR policy a device's next boot after MANIFEST reaches (PolicyAuthorize)",
    )
    p.add_argument("manifest", metavar="MANIFEST", help="the update (or - with --current)")
    p.add_argument("--eventlog", required=True, metavar="LOG", help="the device's current log")
    p.add_argument("--pcrs", metavar="PCRS", help="PCR values the log is verified against")
    p.add_argument("--sign", required=True, metavar="KEY", help="policy authority key (EC)")
    p.add_argument("--nv-index", required=True, type=lambda t: int(t, 0), metavar="NV")
    p.add_argument("--nv-name", required=True, metavar="HEX", help="the counter's NV name")
    p.add_argument("--version", required=True, type=int, help="policy version (counter value)")
    p.add_argument(
        "--policy-pcr",
        action="append",
        default=[],
        metavar="BANK:I,J",
        help="PCRs the policy covers (default sha256:4,7)",
    )
    p.add_argument("--policy-ref", default="", help="policyRef (the sealed key's)")
    _phase_arg(p)
    p.add_argument(
        "--current", action="store_true", help="sign the current boot's values (provisioning)"
    )
    trust_log = p.add_mutually_exclusive_group(required=True)
    trust_log.add_argument(
        "--boot-policy",
        metavar="POLICY",
        help="boot policy (JSON) the device's log must pass before its values are signed",
    )
    trust_log.add_argument(
        "--unsafe-trust-log",
        action="store_true",
        help="sign whatever the reported log says (only for a log you appraised yourself)",
    )
    p.add_argument("-o", "--output", required=True, metavar="POLICY")
    _add_trust_args(p)
    p.add_argument("--now", type=int)
    add_json_flag(p)
    p.set_defaults(handler=_release_policy)


def prediction_from_args(args: argparse.Namespace) -> tuple[Any, Any, bool]:
    """(prediction, manifest, authenticated) for ``update predict`` and ``policy from-update``:
    the manifest (authenticated when --key/--trust-root is given), the event log verified
    against --pcrs (or its own replay) and the device's active slots (--device)."""
    from trustedge._cli.measuredboot import parse_pcr_values
    from trustedge.measuredboot import parse_event_log
    from trustedge.ota import FileSystemDevice, decode_envelope
    from trustedge.ota.bootchain import boot_measurements, predict_update
    from trustedge.ota.suit.codec import decode_manifest
    from trustedge.ota.updater import verify_envelope

    env_bytes = read_input(args.manifest, limit=_MAX_MANIFEST)
    authenticated = bool(args.trust_root or args.pub)
    if authenticated:
        manifest = verify_envelope(
            env_bytes,
            _trust(args),
            now=_now(args),
            max_envelope=max(len(env_bytes), 1),
            legacy_install=args.legacy_install,
        ).manifest
    else:
        env = decode_envelope(env_bytes, max_size=max(len(env_bytes), 1))
        manifest = decode_manifest(env.manifest_raw, env.members)
    if not boot_measurements(manifest):
        raise MalformedInputError("the manifest has no component with a trustedge-boot-measurement")
    log = parse_event_log(read_input(args.eventlog, limit=64 << 20))
    if args.pcrs:
        pcr_text = read_input(args.pcrs, limit=1 << 20).decode("utf-8", "replace")
        verified = log.verify(parse_pcr_values(pcr_text))
    else:
        verified = log.verify(log.replay())
    device = None
    if args.device:
        device = FileSystemDevice(args.device, vendor_id=bytes(16), class_id=bytes(16))
    prediction = predict_update(manifest, verified, device=device, phases=args.phase)
    return prediction, manifest, authenticated


def add_prediction_args(p: argparse.ArgumentParser) -> None:
    """The arguments :func:`prediction_from_args` reads."""
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--eventlog", required=True, metavar="LOG", help="the current boot's event log")
    p.add_argument(
        "--pcrs",
        metavar="PCRS",
        help="PCR values the log is verified against (JSON or tpm2_pcrread YAML); "
        "default: the log's own replay (then nothing is verified)",
    )
    _add_trust_args(p)
    p.add_argument("--now", type=int, help="unix time for the trust root's expiry")
    p.add_argument(
        "--device", metavar="DIR", help="device directory: place images by its active slots"
    )
    _phase_arg(p)


def _predict(args: argparse.Namespace) -> int:
    from trustedge.ota.bootchain import boot_measurements

    prediction, manifest, authenticated = prediction_from_args(args)
    data = {
        "manifest_authenticated": authenticated,
        "log_verified_against": "pcrs" if args.pcrs else "its own replay (unverified)",
        "components": {
            "/".join(p.hex() for p in comp): bm.to_json()
            for comp, bm in boot_measurements(manifest).items()
        },
        **prediction.to_json(),
    }

    def text() -> str:
        lines = []
        if not authenticated:
            lines.append("UNVERIFIED manifest (give --key or --trust-root to authenticate it)")
        if not args.pcrs:
            lines.append("event log checked against its own replay only (give --pcrs)")
        for bank, values in sorted(prediction.current.items()):
            for pcr, old in sorted(values.items()):
                new = prediction.next.get(bank, {}).get(pcr)
                mark = "unchanged" if new == old else "CHANGES"
                lines.append(f"{bank}:{pcr:<2} {old.hex()}")
                if new != old:
                    shown = new.hex() if new is not None else "(unpredictable)"
                    lines.append(f"{'':>{len(bank) + 4}}{shown}  {mark}")
        for bank, values in sorted(prediction.next.items()):
            for pcr, new in sorted(values.items()):
                if pcr not in prediction.current.get(bank, {}):
                    lines.append(f"{bank}:{pcr:<2} (not in the log) -> {new.hex()}")
        for c in prediction.changes:
            where = f"event {c.event_number}" if c.event_number >= 0 else "new event"
            lines.append(f"  PCR{c.pcr} {c.action} {where}: {c.reason}")
        return "\n".join(lines)

    emit(args, data, text)
    return EXIT_OK


def _verified_log(args: argparse.Namespace) -> Any:
    from trustedge._cli.measuredboot import parse_pcr_values
    from trustedge.measuredboot import parse_event_log

    log = parse_event_log(read_input(args.eventlog, limit=64 << 20))
    if args.pcrs:
        text = read_input(args.pcrs, limit=1 << 20).decode("utf-8", "replace")
        return log.verify(parse_pcr_values(text))
    return log.verify(log.replay())


def _selection(items: list[str]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        bank, sep, rest = item.partition(":")
        try:
            out[bank] = tuple(sorted({int(i) for i in rest.split(",")}))
        except ValueError:
            raise CommandError(f"--policy-pcr takes BANK:I,J, got {item!r}") from None
        if not sep or not out[bank]:
            raise CommandError(f"--policy-pcr takes BANK:I,J, got {item!r}")
    return out


def _phase_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="PHASE",
        help="systemd-pcrphase string extended into the predicted PCR11 after the UKI "
        "(e.g. enter-initrd, where the disk key is unsealed); repeatable, in order",
    )


def _release_policy(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from trustedge.keys import load_private_key
    from trustedge.ota.bootchain import DEFAULT_POLICY_PCRS, predict_update, sign_pcr_policy
    from trustedge.ota.updater import verify_envelope

    verified = _verified_log(args)
    if args.boot_policy:
        # Everything a signed policy approves that the update does not replace comes
        # from the device's log: it must be a boot this release would approve.
        from trustedge.measuredboot import load_policy

        load_policy(read_input(args.boot_policy, limit=16 << 20)).check(verified)
    if args.current:
        values = verified.source.replay()
        changes: list[Any] = []
        if args.phase:
            from trustedge.errors import PolicyError
            from trustedge.measuredboot.uki import extend_phases

            if not any(11 in v for v in values.values()):
                raise PolicyError("--phase extends PCR11, which this log does not measure")
            for bank, v in values.items():
                if 11 in v:
                    v[11] = extend_phases(bank, v[11], args.phase)
    else:
        env_bytes = read_input(args.manifest, limit=_MAX_MANIFEST)
        if not (args.trust_root or args.pub):
            raise CommandError("release policy signs only authenticated updates: give --key")
        manifest = verify_envelope(
            env_bytes, _trust(args), now=_now(args), max_envelope=max(len(env_bytes), 1)
        ).manifest
        prediction = predict_update(manifest, verified, phases=args.phase)
        values, changes = prediction.next, list(prediction.changes)
    key = load_private_key(read_input(args.sign, limit=1 << 16))
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CommandError("a TPM policy authority is an EC or RSA key", exit_code=EXIT_MALFORMED)
    try:
        nv_name = bytes.fromhex(args.nv_name)
    except ValueError:
        raise CommandError("--nv-name must be hex") from None
    selection = _selection(args.policy_pcr) or dict(DEFAULT_POLICY_PCRS)
    signed = sign_pcr_policy(
        values,
        key,
        selection=selection,
        nv_index=args.nv_index,
        nv_name=nv_name,
        version=args.version,
        policy_ref=args.policy_ref.encode(),
    )
    _write(args.output, signed.encode())
    data = {
        "policy": args.output,
        "approved_policy": signed.policy.digest(),
        "selection": {b: list(i) for b, i in signed.policy.selection.items()},
        "version": args.version,
        "changes": [c.to_json() for c in changes],
    }
    emit(
        args,
        data,
        f"signed policy {signed.policy.digest().hex()} (version {args.version}) -> {args.output}",
    )
    return EXIT_OK


def _policy_counter(args: argparse.Namespace) -> int:
    from trustedge._cli.attestation import opened_backend
    from trustedge.ota.bootchain import PolicyCounter

    with opened_backend(args) as backend:
        counter = PolicyCounter(backend, args.index)
        if args.action == "init":
            counter.provision()
        elif args.action == "advance":
            counter.advance()
        version = counter.version
        data = {"index": args.index, "version": version, "next_version": version + 1,
                "nv_name": counter.name}  # fmt: skip
    emit(
        args,
        data,
        f"policy counter 0x{args.index:08x}: version {version}, name {data['nv_name'].hex()}",
    )
    return EXIT_OK


def _advance_policies(args: argparse.Namespace) -> int:
    """Advance the policy counter to the confirmed update's version (idempotent)."""
    from trustedge._cli.attestation import opened_backend
    from trustedge.ota.bootchain import PolicyCounter

    with opened_backend(args) as backend:
        return PolicyCounter(backend, args.policy_counter).advance_to(args.policy_version)
