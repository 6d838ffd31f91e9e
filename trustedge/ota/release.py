"""Build and sign SUIT manifests from suit-tool's JSON input format.

:func:`compile_spec` takes the dict suit-tool reads (``manifest-version``,
``manifest-sequence-number``, ``components`` with ``install-id``,
``vendor-id``, ``class-id``, ``install-digest``/``install-size`` or ``file``,
``uri``, ``bootable``, ``slot``) and lays the manifest out the way the
draft-37 examples are laid out, so the draft's inputs give byte-identical
manifests (examples 0, 1, 3, 5; see docs/ota.md for what differs).

:func:`sign_envelope` adds one COSE_Sign1 per key over the SUIT_Digest
(k-of-n), keeping signatures already present.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trustedge import _cbor
from trustedge.cose import PrivateKey, create_sign1, key_id
from trustedge.errors import MalformedInputError
from trustedge.measuredboot.predict import MAX_IMAGE, BootMeasurement
from trustedge.ota._digest import digest_file
from trustedge.ota.suit import numbers as n
from trustedge.ota.suit.codec import (
    Command,
    CommandSequence,
    Digest,
    Manifest,
    decode_envelope,
    encode_envelope,
    encode_manifest,
)

__all__ = ["class_id", "compile_spec", "create_envelope", "sign_envelope", "vendor_id"]

_REPORT = 15  # report on success and failure, as suit-tool writes for conditions


def vendor_id(name: str) -> bytes:
    """suit-tool's vendor UUID: UUIDv5(NAMESPACE_DNS, ``name``) (e.g. "arm.com")."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, name).bytes


def class_id(vendor: bytes, name: str) -> bytes:
    """suit-tool's class UUID: UUIDv5(vendor UUID, ``name``)."""
    return uuid.uuid5(uuid.UUID(bytes=vendor), name).bytes


def _uuid(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedInputError(f"{what} must be a UUID string")
    try:
        return uuid.UUID(value).bytes
    except ValueError:
        raise MalformedInputError(f"{what} is not a UUID: {value!r}") from None


def _component_id(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise MalformedInputError("install-id must be a list of hex strings")
    try:
        return tuple(bytes.fromhex(p) for p in value)
    except ValueError:
        raise MalformedInputError("install-id parts must be hex") from None


def _boot_measurement(spec: object, path: Path) -> BootMeasurement:
    """The trustedge-boot-measurement of the payload at ``path`` (computed, never taken
    from the spec): ``{"role": ..., "banks": [...], "path": ..., "authority": hex,
    "variables": [hex UEFI_VARIABLE_DATA, ...]}`` (the last two are what the update
    sets in PCR7, stated by the release)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("role"), str):
        raise MalformedInputError("boot-measurement must be an object with a 'role'")
    unknown = set(spec) - {"role", "banks", "path", "authority", "variables"}
    if unknown:
        raise MalformedInputError(f"boot-measurement: unknown keys {sorted(unknown)}")
    banks = spec.get("banks", ["sha256"])
    if not isinstance(banks, list) or not banks or not all(isinstance(b, str) for b in banks):
        raise MalformedInputError("boot-measurement banks must be a list of bank names")
    boot_path = spec.get("path")
    if boot_path is not None and not isinstance(boot_path, str):
        raise MalformedInputError("boot-measurement path must be text")
    authority = spec.get("authority")
    try:
        auth_bytes = None if authority is None else bytes.fromhex(str(authority))
    except ValueError:
        raise MalformedInputError("boot-measurement authority must be hex") from None
    raw_vars = spec.get("variables", [])
    if not isinstance(raw_vars, list) or not all(isinstance(v, str) for v in raw_vars):
        raise MalformedInputError("boot-measurement variables must be a list of hex strings")
    try:
        variables = [bytes.fromhex(v) for v in raw_vars]
    except ValueError:
        raise MalformedInputError("boot-measurement variables must be hex") from None
    if path.stat().st_size > MAX_IMAGE:
        raise MalformedInputError(f"{path}: boot image larger than {MAX_IMAGE} bytes")
    return BootMeasurement.of_image(
        path.read_bytes(),
        spec["role"],
        banks=banks,
        path=boot_path,
        authority=auth_bytes,
        variables=variables,
    )


def _image(c: Mapping[str, Any], base: Path) -> dict[int, Any]:
    if "boot-measurement" in c and "file" not in c:
        raise MalformedInputError("a component with a boot-measurement needs its 'file'")
    if "file" in c:
        with open(base / str(c["file"]), "rb") as fh:
            value, length = digest_file(fh, 2**64 - 2)
        out: dict[int, Any] = {n.P_IMAGE_DIGEST: Digest(n.SHA256, value), n.P_IMAGE_SIZE: length}
        out.update(_binding(c))
        if "boot-measurement" in c:
            out[n.P_BOOT_MEASUREMENT] = _boot_measurement(
                c["boot-measurement"], base / str(c["file"])
            )
        return out
    dig = c.get("install-digest")
    if not isinstance(dig, dict) or dig.get("algorithm-id") != "sha256":
        raise MalformedInputError("a component needs 'file' or a sha256 'install-digest'")
    try:
        value = bytes.fromhex(str(dig.get("digest-bytes")))
    except ValueError:
        raise MalformedInputError("install-digest digest-bytes must be hex") from None
    size = c.get("install-size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise MalformedInputError("install-size must be a non-negative integer")
    if len(value) != 32:
        raise MalformedInputError("sha256 digest-bytes must be 32 bytes")
    return {n.P_IMAGE_DIGEST: Digest(n.SHA256, value), n.P_IMAGE_SIZE: size, **_binding(c)}


def _binding(c: Mapping[str, Any]) -> dict[int, Any]:
    """``"envelope-binding": hex``: the trustedge-envelope-binding of an encrypted payload
    (``trustedge.ota.model.envelope_binding``), when the component has one."""
    if "envelope-binding" not in c:
        return {}
    try:
        value = bytes.fromhex(str(c["envelope-binding"]))
    except ValueError:
        raise MalformedInputError("envelope-binding must be hex") from None
    if len(value) != 32:
        raise MalformedInputError("envelope-binding must be 32 bytes (SHA-256)")
    return {n.P_ENVELOPE_BINDING: value}


def _ovr(params: dict[int, Any]) -> Command:
    return Command(n.DIR_OVERRIDE_PARAMETERS, params)


def _slot_try(
    entries: Sequence[Mapping[str, Any]], make: Callable[[Any], dict[int, Any]]
) -> Command:
    branches = []
    for e in entries:
        branches.append(
            (
                _ovr({n.P_COMPONENT_SLOT: e["slot"]}),
                Command(n.COND_COMPONENT_SLOT, 5),
                _ovr(make(e)),
            )
        )
    return Command(n.DIR_TRY_EACH, tuple(branches))


_SPEC_KEYS = frozenset({"manifest-version", "manifest-sequence-number", "components"})
_COMPONENT_KEYS = frozenset(
    {"install-id", "vendor-id", "class-id", "install-digest", "install-size", "file", "uri",
     "bootable", "slot", "boot-measurement", "envelope-binding"}
)  # fmt: skip
_EXPLAINED = {
    "offset": "'offset' (suit-tool's component-offset condition for A/B images, dropped by "
    "later SUIT drafts) is not supported: give each A/B entry a 'slot' (component slot) "
    "and the same install-id instead",
}


def _check_keys(obj: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    """Unknown keys are refused, not dropped: a misspelled ``bootable`` would silently give
    a manifest without ``invoke``."""
    for key in obj:
        if key in known:
            continue
        if key in _EXPLAINED:
            raise MalformedInputError(f"{where}: {_EXPLAINED[key]}")
        close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
        raise MalformedInputError(f"{where}: unknown key {key!r} ({hint})")


def compile_spec(spec: Mapping[str, Any], *, base: Path = Path(".")) -> Manifest:
    """Compile a suit-tool JSON input into a :class:`Manifest` (unsigned).

    ``base`` resolves relative ``file`` paths. Raises MalformedInputError for
    inputs outside the supported subset (e.g. ``load-id``/``download-id``).
    """
    if not isinstance(spec, Mapping):
        raise MalformedInputError("the release spec must be a JSON object")
    _check_keys(spec, _SPEC_KEYS, "release spec")
    if spec.get("manifest-version", 1) != 1:
        raise MalformedInputError("manifest-version must be 1")
    seq_no = spec.get("manifest-sequence-number")
    if isinstance(seq_no, bool) or not isinstance(seq_no, int) or not 0 <= seq_no < 2**64:
        raise MalformedInputError("manifest-sequence-number must be a uint64")
    raw_comps = spec.get("components")
    if not isinstance(raw_comps, list) or not raw_comps:
        raise MalformedInputError("components must be a non-empty list")
    groups: dict[tuple[bytes, ...], list[Mapping[str, Any]]] = {}
    for c in raw_comps:
        if not isinstance(c, dict):
            raise MalformedInputError("each component must be an object")
        for unsupported in ("load-id", "download-id", "compression-info", "encryption-info"):
            if unsupported in c:
                raise MalformedInputError(f"{unsupported!r} is not supported by release create")
        _check_keys(c, _COMPONENT_KEYS, "component")
        groups.setdefault(_component_id(c.get("install-id")), []).append(c)
    ids = list(groups)
    multi = len(ids) > 1
    shared: list[Command] = []
    validate: list[Command] = []
    install: list[Command] = []
    invoke: list[Command] = []
    for i, cid in enumerate(ids):
        entries = groups[cid]
        first = entries[0]
        slotted = len(entries) > 1 or "slot" in first
        if slotted and any("slot" not in e for e in entries):
            raise MalformedInputError("entries sharing an install-id need a 'slot' each")
        index = [Command(n.DIR_SET_COMPONENT_INDEX, i)] if multi else []
        ident: dict[int, Any] = {}
        if "vendor-id" in first:
            ident[n.P_VENDOR_ID] = _uuid(first["vendor-id"], "vendor-id")
        if "class-id" in first:
            ident[n.P_CLASS_ID] = _uuid(first["class-id"], "class-id")
        shared += index
        if slotted:
            shared.append(_ovr(ident))
            shared.append(_slot_try(entries, lambda e: _image(e, base)))
        else:
            shared.append(_ovr({**ident, **_image(first, base)}))
        if n.P_VENDOR_ID in ident:
            shared.append(Command(n.COND_VENDOR_ID, _REPORT))
        if n.P_CLASS_ID in ident:
            shared.append(Command(n.COND_CLASS_ID, _REPORT))
        validate += [*index, Command(n.COND_IMAGE_MATCH, _REPORT)]
        if any("uri" in e for e in entries):
            install += index
            if slotted:
                install.append(_slot_try(entries, lambda e: {n.P_URI: str(e["uri"])}))
            else:
                install.append(_ovr({n.P_URI: str(first["uri"])}))
            install += [Command(n.DIR_FETCH, 2), Command(n.COND_IMAGE_MATCH, _REPORT)]
        if sum(bool(c.get("bootable")) for c in raw_comps) == 1 and first.get("bootable"):
            # suit-tool emits invoke only for exactly one bootable entry: with
            # several (e.g. A/B slots) it cannot choose without conditions.
            invoke += [*index, Command(n.DIR_INVOKE, 2)]
    sequences: dict[int, CommandSequence] = {n.VALIDATE: tuple(validate)}
    if install:
        sequences[n.INSTALL] = tuple(install)
    if invoke:
        sequences[n.INVOKE] = tuple(invoke)
    return Manifest(1, seq_no, tuple(ids), tuple(shared), sequences)


def create_envelope(
    spec: Mapping[str, Any],
    *,
    base: Path = Path("."),
    payloads: Mapping[str, bytes] | None = None,
) -> bytes:
    """Compile ``spec`` and wrap it in an unsigned envelope (digest, no signatures)."""
    raw, members = encode_manifest(compile_spec(spec, base=base))
    return encode_envelope(raw, members=members, payloads=payloads)


def sign_envelope(envelope: bytes, keys: Sequence[PrivateKey]) -> bytes:
    """Add a COSE_Sign1 per key (detached, over the bstr-wrapped SUIT_Digest).

    Existing signatures are kept; a key that already signed is not added twice.
    The envelope's digest is recomputed and must match (no re-signing of a
    tampered manifest).
    """
    env = decode_envelope(envelope, max_size=max(len(envelope), 1))
    if not env.digest.matches(env.manifest_digest):
        raise MalformedInputError("manifest does not match the envelope's SUIT_Digest")
    blocks = [
        _cbor.encode(
            _cbor.CBORTag(18, [b.protected_raw, dict(b.unprotected), b.payload, b.signature])
        )
        for b in env.auth_blocks
    ]
    signed_by = {bytes(b.unprotected.get(4, b"")) for b in env.auth_blocks}
    for key in keys:
        kid = key_id(key.public_key())
        if kid in signed_by:
            continue
        signed_by.add(kid)
        blocks.append(create_sign1(env.digest_raw, key, unprotected={4: kid}, detached=True))
    members = dict(env.members)
    return encode_envelope(env.manifest_raw, blocks, members=members, payloads=env.payloads)
