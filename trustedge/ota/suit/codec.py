"""Decode and encode SUIT envelopes and manifests (draft-ietf-suit-manifest-37 subset).

Two steps, so that nothing in a manifest is interpreted before it is
authenticated (SUIT THREAT.IMG.NON_AUTH):

1. :func:`decode_envelope` parses the envelope (tag 107) and the
   authentication wrapper only; the manifest stays an opaque byte string.
2. :func:`decode_manifest` parses the manifest, its common block and every
   command sequence; it is called by :mod:`trustedge.ota.suit.auth` after the
   digest and signatures have been checked.

Everything not understood is rejected with MalformedInputError (unknown
envelope/manifest/common keys, commands, parameters, delegation chains,
untagged authentication blocks); size, depth and uint64 range are bounded.
Encoding (:func:`encode_manifest`, :func:`encode_envelope`) is deterministic
CBOR, matching suit-tool's output for the draft's examples.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from trustedge import _cbor
from trustedge.cose import Sign1Message, sign1_from_item
from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.measuredboot.predict import BootMeasurement, UKISectionDigests
from trustedge.ota.suit import numbers as n

__all__ = [
    "DEFAULT_MAX_ENVELOPE",
    "Command",
    "Digest",
    "Manifest",
    "UnverifiedEnvelope",
    "decode_boot_measurement",
    "decode_envelope",
    "decode_manifest",
    "digest_of_member",
    "encode_boot_measurement",
    "encode_envelope",
    "encode_manifest",
    "encode_sequence",
]

#: Default cap on an envelope's size, checked before any decoding.
DEFAULT_MAX_ENVELOPE: Final = 1 << 20
_UINT64_MAX: Final = 2**64 - 1
_MAX_COMPONENTS: Final = 64
_MAX_AUTH_BLOCKS: Final = 16


@functools.lru_cache(maxsize=64)
def _limits(size: int) -> _cbor.DecodeLimits:
    return _cbor.DecodeLimits(max_size=size, max_depth=16, max_items=100_000)


def _uint(value: object, what: str) -> int:
    # type() is exact: the CBOR reader yields int or bool, never another subclass
    if type(value) is not int or not 0 <= value <= _UINT64_MAX:
        raise MalformedInputError(f"{what} must be an unsigned 64-bit integer")
    return value


def _bytes(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise MalformedInputError(f"{what} must be a byte string")
    return value


def _map(value: object, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise MalformedInputError(f"{what} must be a map")
    return value


def _unwrap(value: object, what: str, limits: _cbor.DecodeLimits) -> Any:
    return _cbor.decode(_bytes(value, what), limits=limits)


@dataclass(frozen=True)
class Digest:
    """A SUIT_Digest ``[algorithm-id, digest-bytes]`` (only SHA-256, -16)."""

    alg: int
    value: bytes

    @classmethod
    def from_item(cls, item: object, what: str = "SUIT_Digest") -> Digest:
        if not isinstance(item, list) or len(item) != 2:
            raise MalformedInputError(f"{what} must be [algorithm-id, digest-bytes]")
        alg, value = item
        if alg != n.SHA256 or isinstance(alg, bool):
            raise MalformedInputError(f"{what}: only SHA-256 (-16) is supported, got {alg!r}")
        value = _bytes(value, what)
        if len(value) != 32:
            raise MalformedInputError(f"{what}: SHA-256 digest must be 32 bytes")
        return cls(alg, value)

    def to_item(self) -> list[Any]:
        return [self.alg, self.value]

    def matches(self, digest: bytes) -> bool:
        """Constant-time comparison with a computed digest."""
        return hmac.compare_digest(self.value, digest)


def digest_of_member(raw: bytes) -> bytes:
    """SHA-256 over the bstr-wrapped ``raw`` (CBOR bstr header included), as SUIT specifies."""
    return hashlib.sha256(_cbor.encode(raw)).digest()


@dataclass(frozen=True)
class Command:
    """One SUIT command. ``arg`` is: a reporting policy (uint) for conditions
    and fetch/copy/invoke; a parameter map for override-parameters (image
    digests as :class:`Digest`); an index, ``True`` or tuple of indices for
    set-component-index; a tuple of command tuples for try-each."""

    id: int
    arg: Any

    @property
    def name(self) -> str:
        return n.COMMAND_NAMES.get(self.id, str(self.id))


CommandSequence = tuple[Command, ...]


@dataclass(frozen=True)
class Manifest:
    """A decoded (authenticated) SUIT manifest.

    ``sequences`` holds every command sequence that is available (inline or a
    severable member supplied and digest-checked); ``severed`` the severable
    members present only as a digest. ``raw`` is the manifest bstr content.
    """

    version: int
    sequence_number: int
    components: tuple[tuple[bytes, ...], ...]
    shared_sequence: CommandSequence
    sequences: Mapping[int, CommandSequence]
    severed: Mapping[int, Digest] = field(default_factory=dict)
    text: bytes | None = None
    reference_uri: str | None = None
    raw: bytes = b""


@dataclass(frozen=True)
class UnverifiedEnvelope:
    """A SUIT envelope whose authentication has NOT been checked yet.

    ``digest_raw`` is the bstr-wrapped SUIT_Digest's content (the detached
    COSE payload); ``auth_blocks`` the COSE_Sign1 blocks (tag 18, unverified);
    ``manifest_raw`` the manifest bstr content, not parsed; ``members`` the
    severable members carried in the envelope; ``payloads`` integrated
    payloads by their text key.
    """

    digest: Digest
    digest_raw: bytes
    auth_blocks: tuple[Sign1Message, ...]
    manifest_raw: bytes
    members: Mapping[int, bytes]
    payloads: Mapping[str, bytes]
    legacy_install: bool = False

    @property
    def manifest_digest(self) -> bytes:
        """SHA-256 over the bstr-wrapped manifest, as computed (not as claimed)."""
        return digest_of_member(self.manifest_raw)


def decode_envelope(
    data: bytes, *, max_size: int = DEFAULT_MAX_ENVELOPE, legacy_install: bool = False
) -> UnverifiedEnvelope:
    """Parse a SUIT_Envelope_Tagged (107) from hostile bytes, up to the auth wrapper.

    ``legacy_install=True`` accepts envelope/manifest key 17 as ``install``
    (drafts -17..-28, libcsuit 2023); without it key 17 is rejected.
    Raises MalformedInputError / LimitExceededError.
    """
    if len(data) > max_size:
        raise LimitExceededError(f"envelope of {len(data)} bytes exceeds {max_size}")
    limits = _limits(max_size)
    top = _cbor.decode(data, limits=limits)
    if not isinstance(top, _cbor.CBORTag) or top.tag != n.ENVELOPE_TAG:
        raise MalformedInputError("SUIT envelope must carry CBOR tag 107")
    env = _map(top.value, "SUIT envelope")
    install = n.LEGACY_INSTALL if legacy_install else n.INSTALL
    members: dict[int, bytes] = {}
    payloads: dict[str, bytes] = {}
    for key, value in env.items():
        if isinstance(key, str):
            payloads[key] = _bytes(value, f"integrated payload {key!r}")
        elif key in (n.ENV_AUTH, n.ENV_MANIFEST):
            continue
        elif key in (n.PAYLOAD_FETCH, n.TEXT, install):
            members[n.INSTALL if key == install else key] = _bytes(value, f"member {key}")
        elif key == n.ENV_DELEGATION:
            raise MalformedInputError("delegation chains (envelope key 1) are not supported")
        else:
            raise MalformedInputError(f"unknown envelope key {key!r}")
    if n.ENV_AUTH not in env or n.ENV_MANIFEST not in env:
        raise MalformedInputError("envelope needs an authentication wrapper (2) and manifest (3)")
    manifest_raw = _bytes(env[n.ENV_MANIFEST], "manifest")
    wrapper = _unwrap(env[n.ENV_AUTH], "authentication wrapper", limits)
    if not isinstance(wrapper, list) or not wrapper:
        raise MalformedInputError("authentication wrapper must be a non-empty array")
    if len(wrapper) - 1 > _MAX_AUTH_BLOCKS:
        raise LimitExceededError(f"more than {_MAX_AUTH_BLOCKS} authentication blocks")
    digest_raw = _bytes(wrapper[0], "SUIT_Digest")
    digest = Digest.from_item(_cbor.decode(digest_raw, limits=limits))
    blocks = tuple(
        sign1_from_item(_unwrap(b, "authentication block", limits), tagged=True)
        for b in wrapper[1:]
    )
    return UnverifiedEnvelope(
        digest, digest_raw, blocks, manifest_raw, members, payloads, legacy_install
    )


_PARAM_CHECKS: Final = {
    n.P_VENDOR_ID: "uuid",
    n.P_CLASS_ID: "uuid",
    n.P_IMAGE_DIGEST: "digest",
    n.P_USE_BEFORE: "uint",
    n.P_COMPONENT_SLOT: "uint",
    n.P_IMAGE_SIZE: "uint",
    n.P_URI: "text",
    n.P_SOURCE_COMPONENT: "uint",
    n.P_BOOT_MEASUREMENT: "boot-measurement",
    n.P_ENVELOPE_BINDING: "sha256",
}


def _parameters(value: object, limits: _cbor.DecodeLimits) -> dict[int, Any]:
    params = _map(value, "override-parameters argument")
    out: dict[int, Any] = {}
    for key, val in params.items():
        kind = _PARAM_CHECKS.get(key)
        if kind is None:
            raise MalformedInputError(f"unsupported SUIT parameter {key!r}")
        name = n.PARAMETER_NAMES[key]
        if kind == "uuid":
            if len(_bytes(val, name)) != 16:
                raise MalformedInputError(f"{name} must be a 16-byte UUID")
            out[key] = val
        elif kind == "digest":
            out[key] = Digest.from_item(_unwrap(val, name, limits), name)
        elif kind == "uint":
            out[key] = _uint(val, name)
        elif kind == "boot-measurement":
            out[key] = decode_boot_measurement(_bytes(val, name), limits)
        elif kind == "sha256":
            if len(_bytes(val, name)) != 32:
                raise MalformedInputError(f"{name} must be a 32-byte SHA-256 digest")
            out[key] = val
        elif not isinstance(val, str):
            raise MalformedInputError(f"{name} must be a text string")
        else:
            out[key] = val
    return out


# trustedge-boot-measurement (-257) = bstr .cbor {
#   1: role (tstr), 2: authenticode {bank tstr: bstr},
#   ? 3: uki sections [+ [name tstr, {bank: bstr}]], ? 4: file digests {bank: bstr},
#   ? 5: path (tstr), ? 6: authority UEFI_VARIABLE_DATA (bstr),
#   ? 7: Secure Boot variables the update sets [+ UEFI_VARIABLE_DATA (bstr)] }
_BM_KEYS: Final = frozenset({1, 2, 3, 4, 5, 6, 7})
_MAX_SECTIONS: Final = 16


def _bank_map(value: object, what: str) -> dict[str, bytes]:
    m = _map(value, what)
    if not m or len(m) > 8:
        raise MalformedInputError(f"{what}: 1..8 banks")
    out = {}
    for bank, digest in m.items():
        if not isinstance(bank, str):
            raise MalformedInputError(f"{what}: bank names are text")
        out[bank] = _bytes(digest, what)
    return out


def decode_boot_measurement(raw: bytes, limits: _cbor.DecodeLimits) -> BootMeasurement:
    """Decode the trustedge-boot-measurement parameter (bstr-wrapped map)."""
    m = _map(_cbor.decode(raw, limits=limits), "trustedge-boot-measurement")
    unknown = set(m) - _BM_KEYS
    if unknown or 1 not in m or 2 not in m:
        raise MalformedInputError("trustedge-boot-measurement needs keys 1, 2 and only 1..7")
    role = m[1]
    if not isinstance(role, str):
        raise MalformedInputError("boot role must be text")
    sections = []
    raw_sections = m.get(3, [])
    if not isinstance(raw_sections, list) or len(raw_sections) > _MAX_SECTIONS:
        raise MalformedInputError(f"UKI sections: a list of at most {_MAX_SECTIONS}")
    for item in raw_sections:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise MalformedInputError("a UKI section is [name, {bank: digest}]")
        sections.append(UKISectionDigests(item[0], _bank_map(item[1], item[0])))
    path = m.get(5)
    if path is not None and not isinstance(path, str):
        raise MalformedInputError("boot path must be text")
    authority = m.get(6)
    if authority is not None:
        authority = _bytes(authority, "authority")
    raw_vars = m.get(7, [])
    if not isinstance(raw_vars, list) or (not raw_vars and 7 in m):
        raise MalformedInputError("boot-measurement variables: a non-empty list")
    variables = tuple(_bytes(v, "variable") for v in raw_vars)
    return BootMeasurement(
        role,
        _bank_map(m[2], "authenticode"),
        tuple(sections),
        _bank_map(m[4], "file digests") if 4 in m else {},
        path,
        authority,
        variables,
    )


def encode_boot_measurement(bm: BootMeasurement) -> bytes:
    """The bstr content of the trustedge-boot-measurement parameter."""
    out: dict[int, Any] = {1: bm.role, 2: dict(bm.authenticode)}
    if bm.uki_sections:
        out[3] = [[s.name, dict(s.digests)] for s in bm.uki_sections]
    if bm.file_digests:
        out[4] = dict(bm.file_digests)
    if bm.path is not None:
        out[5] = bm.path
    if bm.authority is not None:
        out[6] = bm.authority
    if bm.variables:
        out[7] = list(bm.variables)
    return _cbor.encode(out)


_REPORTING: Final = n.CONDITIONS | n.DIRECTIVES_WITH_REPORT


def _sequence(
    raw: object, ncomp: int, limits: _cbor.DecodeLimits, depth: int = 0
) -> CommandSequence:
    if depth > 4:
        raise LimitExceededError("try-each nested too deeply")
    items = _unwrap(raw, "command sequence", limits)
    if not isinstance(items, list) or len(items) % 2:
        raise MalformedInputError("command sequence must be an array of (command, argument) pairs")
    out = []
    for i in range(0, len(items), 2):
        cid, arg = items[i], items[i + 1]
        if type(cid) is not int:
            raise MalformedInputError("command id must be an integer")
        if cid in _REPORTING:
            if type(arg) is not int or not 0 <= arg <= _UINT64_MAX:
                _uint(arg, "reporting policy")
            out.append(Command(cid, arg))
        elif cid == n.DIR_OVERRIDE_PARAMETERS:
            out.append(Command(cid, _parameters(arg, limits)))
        elif cid == n.DIR_SET_COMPONENT_INDEX:
            out.append(Command(cid, _component_index(arg, ncomp)))
        elif cid == n.DIR_TRY_EACH:
            if not isinstance(arg, list) or not arg:
                raise MalformedInputError("try-each needs a non-empty array of sequences")
            branches: list[CommandSequence] = []
            for j, branch in enumerate(arg):
                if branch is None and j == len(arg) - 1:
                    branches.append(())
                else:
                    branches.append(_sequence(branch, ncomp, limits, depth + 1))
            out.append(Command(cid, tuple(branches)))
        else:
            raise MalformedInputError(f"unsupported SUIT command {cid}")
    return tuple(out)


def _component_index(arg: object, ncomp: int) -> int | bool | tuple[int, ...]:
    if arg is True:
        return True
    values = arg if isinstance(arg, list) else [arg]
    out = tuple(_uint(v, "component index") for v in values)
    if not out or any(v >= ncomp for v in out):
        raise MalformedInputError("component index out of range")
    return out[0] if not isinstance(arg, list) else out


_MANIFEST_KEYS_COMMON: Final = frozenset(
    {
        n.MANIFEST_VERSION,
        n.SEQUENCE_NUMBER,
        n.COMMON,
        n.REFERENCE_URI,
        n.VALIDATE,
        n.LOAD,
        n.INVOKE,
        n.PAYLOAD_FETCH,
        n.TEXT,
    }
)
_MANIFEST_KEYS: Final = _MANIFEST_KEYS_COMMON | {n.INSTALL}
_MANIFEST_KEYS_LEGACY: Final = _MANIFEST_KEYS_COMMON | {n.LEGACY_INSTALL}
_SEQUENCE_KEYS: Final = frozenset(
    {n.VALIDATE, n.LOAD, n.INVOKE, n.PAYLOAD_FETCH, n.INSTALL, n.TEXT}
)


def decode_manifest(
    raw: bytes, members: Mapping[int, bytes] | None = None, *, legacy_install: bool = False
) -> Manifest:
    """Parse a manifest (bstr content) and its command sequences.

    Severable members given as digests are resolved from ``members`` after a
    constant-time digest check (mismatch: MalformedInputError); absent ones are
    listed in :attr:`Manifest.severed`. Call only on authenticated bytes.
    """
    limits = _limits(max(len(raw), 64) + sum(len(v) for v in (members or {}).values()))
    m = _map(_cbor.decode(raw, limits=limits), "manifest")
    install = n.LEGACY_INSTALL if legacy_install else n.INSTALL
    allowed = _MANIFEST_KEYS_LEGACY if legacy_install else _MANIFEST_KEYS
    for key in m:
        if key not in allowed:
            raise MalformedInputError(f"unsupported manifest key {key!r}")
    if m.get(n.MANIFEST_VERSION) != 1 or isinstance(m.get(n.MANIFEST_VERSION), bool):
        raise MalformedInputError("manifest-version must be 1")
    seq_no = _uint(m.get(n.SEQUENCE_NUMBER), "manifest-sequence-number")
    if n.COMMON not in m:
        raise MalformedInputError("manifest has no common block")
    common = _map(_unwrap(m[n.COMMON], "common", limits), "common")
    for key in common:
        if key not in (n.COMMON_COMPONENTS, n.COMMON_SHARED_SEQUENCE):
            raise MalformedInputError(f"unsupported common key {key!r}")
    comps = common.get(n.COMMON_COMPONENTS)
    if not isinstance(comps, list) or not comps or len(comps) > _MAX_COMPONENTS:
        raise MalformedInputError(f"components must be a list of 1..{_MAX_COMPONENTS} ids")
    components = []
    for comp in comps:
        if not isinstance(comp, list) or not comp:
            raise MalformedInputError("a component id must be a non-empty array of byte strings")
        components.append(tuple(_bytes(p, "component id part") for p in comp))
    ncomp = len(components)
    shared: CommandSequence = ()
    if n.COMMON_SHARED_SEQUENCE in common:
        shared = _sequence(common[n.COMMON_SHARED_SEQUENCE], ncomp, limits)
    sequences: dict[int, CommandSequence] = {}
    severed: dict[int, Digest] = {}
    text: bytes | None = None
    supplied = dict(members or {})
    for key, value in m.items():
        canon = n.INSTALL if key == install else key
        if canon not in _SEQUENCE_KEYS:
            continue
        if isinstance(value, list) and canon in n.SEVERABLE:
            digest = Digest.from_item(value, f"severed member {key}")
            member = supplied.get(canon)
            if member is None:
                severed[canon] = digest
                continue
            if not digest.matches(digest_of_member(member)):
                raise MalformedInputError(f"severable member {key} does not match its digest")
            value = member
        elif canon in supplied:
            raise MalformedInputError(f"member {key} is both in the manifest and the envelope")
        if canon == n.TEXT:
            text = _bytes(value, "text")  # kept, never interpreted
        else:
            sequences[canon] = _sequence(value, ncomp, limits)
    ref = m.get(n.REFERENCE_URI)
    if ref is not None and not isinstance(ref, str):
        raise MalformedInputError("reference-uri must be a text string")
    return Manifest(1, seq_no, tuple(components), shared, sequences, severed, text, ref, raw)


# -- encoding ------------------------------------------------------------------


def _command_items(seq: Sequence[Command]) -> list[Any]:
    out: list[Any] = []
    for cmd in seq:
        out.append(cmd.id)
        if cmd.id == n.DIR_OVERRIDE_PARAMETERS:
            params = {}
            for k, v in cmd.arg.items():
                if isinstance(v, Digest):
                    v = _cbor.encode(v.to_item())
                elif isinstance(v, BootMeasurement):
                    v = encode_boot_measurement(v)
                params[k] = v
            out.append(params)
        elif cmd.id == n.DIR_TRY_EACH:
            out.append([encode_sequence(b) if b else None for b in cmd.arg])
        elif cmd.id == n.DIR_SET_COMPONENT_INDEX and isinstance(cmd.arg, tuple):
            out.append(list(cmd.arg))
        else:
            out.append(cmd.arg)
    return out


def encode_sequence(seq: Sequence[Command]) -> bytes:
    """The CBOR of a command sequence (the content of its bstr wrapper)."""
    return _cbor.encode(_command_items(seq))


def encode_manifest(
    manifest: Manifest, *, sever: frozenset[int] = frozenset()
) -> tuple[bytes, dict[int, bytes]]:
    """Deterministic CBOR of ``manifest``; returns (manifest bstr content, severed members).

    Members whose key is in ``sever`` are replaced by their SUIT_Digest and
    returned separately for the envelope.
    """
    common: dict[int, Any] = {n.COMMON_COMPONENTS: [list(c) for c in manifest.components]}
    if manifest.shared_sequence:
        common[n.COMMON_SHARED_SEQUENCE] = encode_sequence(manifest.shared_sequence)
    out: dict[int, Any] = {
        n.MANIFEST_VERSION: manifest.version,
        n.SEQUENCE_NUMBER: manifest.sequence_number,
        n.COMMON: _cbor.encode(common),
    }
    if manifest.reference_uri is not None:
        out[n.REFERENCE_URI] = manifest.reference_uri
    members: dict[int, bytes] = {}
    items: dict[int, bytes] = {k: encode_sequence(v) for k, v in manifest.sequences.items()}
    if manifest.text is not None:
        items[n.TEXT] = manifest.text
    for key, raw in items.items():
        if key in sever:
            if key not in n.SEVERABLE:
                raise ValueError(f"member {key} is not severable")
            out[key] = [n.SHA256, digest_of_member(raw)]
            members[key] = raw
        else:
            out[key] = raw
    return _cbor.encode(out), members


def encode_envelope(
    manifest_raw: bytes,
    auth_blocks: Sequence[bytes] = (),
    *,
    members: Mapping[int, bytes] | None = None,
    payloads: Mapping[str, bytes] | None = None,
) -> bytes:
    """Build a SUIT_Envelope_Tagged around ``manifest_raw`` with the given
    tagged COSE_Sign1 ``auth_blocks`` (each bstr-wrapped in the wrapper)."""
    digest = _cbor.encode([n.SHA256, digest_of_member(manifest_raw)])
    wrapper = _cbor.encode([digest, *auth_blocks])
    env: dict[Any, Any] = {n.ENV_AUTH: wrapper, n.ENV_MANIFEST: manifest_raw}
    env.update(members or {})
    env.update(payloads or {})
    return _cbor.encode(_cbor.CBORTag(n.ENVELOPE_TAG, env))
