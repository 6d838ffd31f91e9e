"""Encrypted model delivery over SUIT: one update per model, decrypted and verified while streaming.

A model directory travels as one SUIT component whose payload is a
trustedge envelope (:mod:`trustedge.envelope`, e.g. to the device's HPKE
key) of a *model pack*: the model's files in one stream, plus its
signature. The SUIT manifest's ``image-digest``/``image-size`` are those of
the plaintext pack (as in SUIT firmware encryption, the digest names what
gets installed), so the signed manifest binds every byte of every file.
docs/adr/0007-model-delivery-and-measurement.md records the choice.

On the device, :class:`ModelDevice` keeps each model component as A/B slot
*directories* (``slot0/``, ``slot1/``, each holding ``model/``, ``model.sig``
and the pack header). The processor streams fetch -> envelope decryption
(:func:`decrypting`: the envelope's binding named in the signed manifest, key
commitment, every chunk authenticated before its plaintext is released) ->
SHA-256 of the pack -> :class:`PackWriter`, which
unpacks into a temporary directory. The directory gets its slot name only
after the final chunk authenticated *and* the pack digest matched the
manifest *and*, when the device names ``model_keys``, the model's OpenSSF
Model Signing bundle verified with one of them and every file matched it
(:func:`trustedge.models.check_model`: the model vendor is a trust domain of
its own, beside the OTA release key); the switch to the new slot is the slot
file's atomic rewrite (pending, then confirmed), and the rollback floor is
the SUIT sequence number.

The manifest names its envelope (custom SUIT parameter
``trustedge-envelope-binding``, :func:`envelope_binding`: SHA-256 over the
envelope's header, salt and key commitment, not its slot list). Anyone can
encrypt to a device's HPKE key; with the binding, a chunk that authenticates
comes from a holder of the file key the release signed, so no plaintext of
someone else's envelope is ever released, even before the pack digest is
checked at the end. Re-wrapping to more devices keeps the binding.

Pack format (``application/vnd.trustedge.model-pack``)::

    pack   = "TEMP" 0x01 | header_len:u32be | header | file_0 | ... | file_n
    header = deterministic CBOR {0: [+ [path: tstr, size: uint]], ? 1: signature: bstr}

Paths are normalised relative POSIX paths (``hashing.manifest.normalise_path``),
unique, sorted by UTF-8 bytes; file bytes follow in that order.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge import _binary, _cbor
from trustedge._fs import atomic_write, fsync_directory
from trustedge.cose import PrivateKey
from trustedge.envelope import Identity, Reader, Recipient, Writer
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    SignatureError,
    VerificationError,
)
from trustedge.hashing.manifest import MAX_FILES, normalise_path
from trustedge.models import MAX_BUNDLE_BYTES, VerifiedModel, check_model, verify_bundle
from trustedge.ota._digest import digest_stream
from trustedge.ota.device import FileSystemDevice, SlotWriter
from trustedge.ota.release import create_envelope, sign_envelope

__all__ = [
    "PACK_CONTENT_TYPE",
    "PACK_MAGIC",
    "ModelDevice",
    "ModelRelease",
    "PackHeader",
    "PackWriter",
    "build_model_release",
    "decrypting",
    "envelope_binding",
    "envelope_context",
    "pack_header",
    "verify_model_dir",
]

PACK_MAGIC: Final = b"TEMP\x01"
PACK_CONTENT_TYPE: Final = "application/vnd.trustedge.model-pack"
MAX_HEADER: Final = 16 * 1024 * 1024
#: The model's files and its signature inside a slot directory.
MODEL_DIR: Final = "model"
SIGNATURE_FILE: Final = "model.sig"
_HEADER_FILE: Final = "pack-header"
_BLOCK: Final = 1 << 20
_LIMITS: Final = _cbor.DecodeLimits(max_size=MAX_HEADER, max_depth=4, max_items=3 * MAX_FILES + 8)

ModelKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def verify_model_dir(
    directory: str | os.PathLike[str], bundle: bytes | None, keys: Sequence[ModelKey]
) -> VerifiedModel:
    """Check ``directory`` against its OMS ``bundle``: signed by one of ``keys``,
    then every file (same file set, every digest). Raises ``SignatureError``
    (no bundle, or no key verifies it), ``VerificationError`` (a file differs),
    ``MalformedInputError`` (not a bundle)."""
    if bundle is None:
        raise SignatureError("the model carries no signature")
    last: VerificationError | None = None
    for key in keys:
        try:
            statement = verify_bundle(bundle, public_key=key)
        except VerificationError as exc:
            last = exc
            continue
        try:
            return check_model(directory, statement)
        except OSError as exc:
            raise VerificationError(f"model directory unreadable: {exc}") from exc
    raise SignatureError(
        "the model's signature does not verify with a trusted model key"
        + (f" ({last})" if last is not None else "")
    )


_BINDING_LABEL: Final = b"trustedge/ota/envelope-binding/v1\x00"
#: Envelope preamble ("TEnv" 0x01), Cobblestone body header (salt 24 + commitment 32).
_ENV_PREAMBLE: Final = 5
_ENV_CHUNK_HEADER: Final = 56
_ENV_MAX_HEADER: Final = 64 * 1024
_ENV_MAX_SLOTS: Final = 1024 * 1024
_ENV_MAX_PREFIX: Final = _ENV_PREAMBLE + 8 + _ENV_MAX_HEADER + _ENV_MAX_SLOTS + _ENV_CHUNK_HEADER


def envelope_binding(prefix: bytes) -> bytes:
    """The trustedge-envelope-binding of an envelope whose first bytes are
    ``prefix`` (preamble, header, slot list, salt and key commitment; nothing
    after): SHA-256 over everything there but the slot list.

    The key commitment binds the file key to the salt and header, so a chunk
    that authenticates under an envelope with this binding was made by a holder
    of that file key. Raises ``MalformedInputError`` for a prefix that does not
    parse.
    """
    r = _binary.Reader(prefix)
    preamble = r.read(_ENV_PREAMBLE, "envelope preamble")
    header = r.bytes_u32be("envelope header", max_len=_ENV_MAX_HEADER)
    r.bytes_u32be("envelope slot list", max_len=_ENV_MAX_SLOTS)
    chunk_header = r.read(_ENV_CHUNK_HEADER, "salt and key commitment")
    r.expect_end("end of the envelope prefix")
    size = len(header).to_bytes(4, "big")
    return hashlib.sha256(_BINDING_LABEL + preamble + size + header + chunk_header).digest()


def envelope_context(component: tuple[bytes, ...]) -> dict[str, str]:
    """The envelope context binding a payload to its SUIT component (checked on open)."""
    return {"trustedge.ota.component": _cbor.encode(list(component)).hex()}


@dataclass(frozen=True)
class PackHeader:
    """The file list (path, size) and the model signature of a pack (claims
    until the pack's digest matched a signed manifest)."""

    files: tuple[tuple[str, int], ...]
    signature: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.files) > MAX_FILES:
            raise LimitExceededError(f"more than {MAX_FILES} files")
        for path, size in self.files:
            normalise_path(path)
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**63:
                raise MalformedInputError(f"{path!r}: size must be a non-negative integer")
        keys = [p.encode() for p, _ in self.files]
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise MalformedInputError("pack paths must be unique and sorted (by UTF-8 bytes)")
        for a, b in itertools.pairwise(keys):
            if b.startswith(a + b"/"):
                raise MalformedInputError(f"{a.decode()!r} is a file and a directory")

    def encode(self) -> bytes:
        """``magic | header_len | header``: the start of the pack."""
        doc: dict[int, Any] = {0: [[p, s] for p, s in self.files]}
        if self.signature is not None:
            doc[1] = self.signature
        raw = _cbor.encode(doc)
        return PACK_MAGIC + len(raw).to_bytes(4, "big") + raw

    @property
    def size(self) -> int:
        """The whole pack's size in bytes."""
        return len(self.encode()) + sum(s for _, s in self.files)

    @classmethod
    def decode(cls, raw: bytes) -> PackHeader:
        """Parse the header's CBOR (after magic and length) from untrusted bytes."""
        doc = _cbor.decode(raw, limits=_LIMITS, canonical=True)
        if not isinstance(doc, dict) or not set(doc) <= {0, 1} or 0 not in doc:
            raise MalformedInputError("pack header is a map with keys 0 (files) and 1 (signature)")
        files = doc[0]
        if not isinstance(files, list) or not files:
            raise MalformedInputError("pack header lists no files")
        out = []
        for entry in files:
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
                raise MalformedInputError("a pack file entry is [path, size]")
            out.append((entry[0], entry[1]))
        sig = doc.get(1)
        if sig is not None and not isinstance(sig, bytes):
            raise MalformedInputError("the pack signature must be a byte string")
        return cls(tuple(out), sig)


def pack_header(directory: str | os.PathLike[str], signature: bytes | None) -> PackHeader:
    """The header of ``directory``'s pack (regular files only, sorted)."""
    root = Path(directory)
    found: list[tuple[str, int]] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path}: model directories may not hold symlinks")
        if path.is_file():
            found.append((path.relative_to(root).as_posix(), path.stat().st_size))
        elif not path.is_dir():
            raise ValueError(f"{path}: not a regular file or directory")
    found.sort(key=lambda item: item[0].encode())
    return PackHeader(tuple(found), signature)


def iter_pack(directory: str | os.PathLike[str], header: PackHeader) -> Iterator[bytes]:
    """The pack of ``directory`` in pieces: the header, then every listed file
    (each read to exactly its listed size; a file that changed size fails)."""
    yield header.encode()
    root = Path(directory)
    for rel, size in header.files:
        with open(root / rel, "rb") as fh:
            left = size
            while left:
                chunk = fh.read(min(_BLOCK, left))
                if not chunk:
                    raise MalformedInputError(f"{rel!r} is shorter than its listed {size} bytes")
                left -= len(chunk)
                yield chunk
            if fh.read(1):
                raise MalformedInputError(f"{rel!r} is longer than its listed {size} bytes")


class _Concat(io.RawIOBase):
    """A read-only file object over an iterator of byte strings."""

    def __init__(self, pieces: Iterable[bytes], *, record: int = 0) -> None:
        super().__init__()
        self._it = iter(pieces)
        self._buf = b""
        self._record = record
        self.recorded = bytearray()  # the first ``record`` bytes read

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(view), len(self._buf))
        view[:n] = self._buf[:n]
        if len(self.recorded) < self._record:
            self.recorded += self._buf[: min(n, self._record - len(self.recorded))]
        self._buf = self._buf[n:]
        return n


def decrypting(
    chunks: Iterable[bytes],
    identities: Sequence[Identity],
    *,
    context: Mapping[str, str] | None = None,
    binding: bytes | None = None,
) -> Iterator[bytes]:
    """Decrypt an envelope arriving as ``chunks``, yielding only authenticated plaintext.

    The envelope's prefix, required ``context``, key commitment and (when
    given) its :func:`envelope_binding` are checked before the first byte is
    yielded; each batch of chunks is authenticated before it is yielded; the
    generator ends only after the final chunk authenticated (truncation and
    trailing data raise). Raises what :class:`trustedge.envelope.Reader`
    raises, and ``VerificationError`` for another envelope than ``binding`` names.
    """
    source = _Concat(chunks, record=_ENV_MAX_PREFIX if binding is not None else 0)
    reader = Reader(source, identities, context=context)  # type: ignore[arg-type]
    if binding is not None:
        end = reader.prefix.body_offset + _ENV_CHUNK_HEADER
        if len(source.recorded) < end or not hmac.compare_digest(
            envelope_binding(bytes(source.recorded[:end])), binding
        ):
            raise VerificationError("the encrypted payload is not the envelope the manifest names")
        source.recorded = bytearray()
    while piece := reader.read(_BLOCK):
        yield piece


# -- the device side -------------------------------------------------------------------


class PackWriter:
    """A :class:`~trustedge.ota.device.SlotWriter` that unpacks a pack stream
    into ``<slot>.tmp-*`` and renames it to ``slot`` only on :meth:`commit`.

    Written bytes are plaintext the processor has not yet matched against the
    manifest's digest: they only ever exist under the temporary name, which
    :meth:`discard` (and a later install) removes. ``check`` (if given) is
    called with the unpacked model directory and its signature before the
    rename; when it raises, the directory is discarded.
    """

    def __init__(
        self, slot: Path, check: Callable[[Path, bytes | None], object] | None = None
    ) -> None:
        self.slot = slot
        self._check = check
        self.tmp = slot.with_name(f"{slot.name}.tmp-{secrets.token_hex(8)}")
        self.tmp.mkdir(mode=0o700)
        (self.tmp / MODEL_DIR).mkdir(mode=0o700)
        self._head = bytearray()
        self._header: PackHeader | None = None
        self._files: list[tuple[str, int]] = []
        self._fh: BinaryIO | None = None
        self._left = 0
        self._failed = False

    def _parse_head(self) -> None:
        if len(self._head) < len(PACK_MAGIC) + 4:
            return
        if bytes(self._head[: len(PACK_MAGIC)]) != PACK_MAGIC:
            raise MalformedInputError("payload is not a model pack (magic)")
        length = int.from_bytes(self._head[len(PACK_MAGIC) : len(PACK_MAGIC) + 4], "big")
        if length > MAX_HEADER:
            raise LimitExceededError(f"pack header of {length} bytes exceeds {MAX_HEADER}")
        start = len(PACK_MAGIC) + 4
        if len(self._head) < start + length:
            return
        raw = bytes(self._head[start : start + length])
        self._header = PackHeader.decode(raw)
        rest = bytes(self._head[start + length :])
        self._head = bytearray()
        atomic_write(self.tmp / _HEADER_FILE, self._header.encode())
        if self._header.signature is not None:
            atomic_write(self.tmp / SIGNATURE_FILE, self._header.signature)
        self._files = list(self._header.files)
        self._next_file()
        if rest:
            self._body(rest)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def _next_file(self) -> None:
        while self._left == 0:
            self._close_file()
            if not self._files:
                return
            rel, self._left = self._files.pop(0)
            path = self.tmp / MODEL_DIR / rel
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise MalformedInputError(f"pack file {rel!r} cannot be created: {exc}") from exc
            self._fh = os.fdopen(fd, "wb")

    def _body(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._fh is None:
                raise MalformedInputError("data after the last file of the pack")
            n = min(self._left, len(view))
            self._fh.write(view[:n])
            view = view[n:]
            self._left -= n
            self._next_file()

    def write(self, data: bytes) -> None:
        if self._failed:
            raise MalformedInputError("the pack writer failed earlier")
        try:
            if self._header is None:
                self._head += data
                if len(self._head) > MAX_HEADER + 64:
                    raise LimitExceededError("pack header too large")
                self._parse_head()
            else:
                self._body(data)
        except BaseException:
            self._failed = True
            raise

    def commit(self) -> None:
        """Give the unpacked directory its slot name (the caller verified the digest)."""
        if self._failed or self._header is None or self._fh is not None or self._files:
            raise MalformedInputError("the pack ended before its last file")
        if self._check is not None:
            try:
                self._check(self.tmp / MODEL_DIR, self._header.signature)
            except BaseException:
                self._failed = True
                self.discard()
                raise
        for dirpath, _, _ in os.walk(self.tmp):
            fsync_directory(dirpath)
        old = None
        if self.slot.exists():
            old = self.slot.with_name(f"{self.slot.name}.old-{secrets.token_hex(8)}")
            os.replace(self.slot, old)
        os.replace(self.tmp, self.slot)
        fsync_directory(self.slot.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _read_capped(path: Path, limit: int) -> bytes:
    """A file of at most ``limit`` bytes (slot files are on a disk an attacker may
    write: never read an unbounded one). Raises ``LimitExceededError``, ``OSError``."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise LimitExceededError(f"{path} is larger than {limit} bytes")
    return data


class ModelDevice(FileSystemDevice):
    """A :class:`FileSystemDevice` whose ``model_components`` are A/B slot directories.

    Other components stay slot files. :meth:`read` of a model slot rebuilds
    its pack from the installed files, so SUIT ``condition-image-match``
    re-checks exactly what is on disk; :meth:`model` names the directory and
    signature of a model component's active slot (for a loader). With
    ``model_keys``, a model is installed only when its OMS bundle verifies with
    one of them and every file matches (:func:`verify_model_dir`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        vendor_id: bytes,
        class_id: bytes,
        model_components: Iterable[tuple[bytes, ...]],
        fetcher: Callable[[str], Iterator[bytes]] | None = None,
        model_keys: Sequence[ModelKey] = (),
    ) -> None:
        super().__init__(root, vendor_id=vendor_id, class_id=class_id, fetcher=fetcher)
        self.model_components = frozenset(model_components)
        self.model_keys = tuple(model_keys)

    def _slot_dir(self, component: tuple[bytes, ...], slot: int) -> Path:
        self._check_slot(slot)
        return self._dir(component) / f"slot{slot}"

    def _clean(self, component: tuple[bytes, ...]) -> None:
        """Remove leftovers of interrupted installs (never a slot itself)."""
        for leftover in self._dir(component).glob("slot?.*-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def read(self, component: tuple[bytes, ...], slot: int) -> BinaryIO | None:
        if component not in self.model_components:
            return super().read(component, slot)
        directory = self._slot_dir(component, slot)
        try:
            raw = _read_capped(directory / _HEADER_FILE, len(PACK_MAGIC) + 4 + MAX_HEADER)
        except FileNotFoundError:
            return None
        if not raw.startswith(PACK_MAGIC) or len(raw) < len(PACK_MAGIC) + 4:
            raise MalformedInputError(f"corrupt pack header in {directory}")
        header = PackHeader.decode(raw[len(PACK_MAGIC) + 4 :])
        pieces = iter_pack(directory / MODEL_DIR, header)
        return io.BufferedReader(_Concat(pieces))

    def open_writer(self, component: tuple[bytes, ...], slot: int) -> SlotWriter:
        if component not in self.model_components:
            return super().open_writer(component, slot)
        self._clean(component)
        keys = self.model_keys
        if not keys:
            return PackWriter(self._slot_dir(component, slot))
        return PackWriter(
            self._slot_dir(component, slot),
            lambda directory, bundle: verify_model_dir(directory, bundle, keys),
        )

    def model(self, component: tuple[bytes, ...]) -> tuple[Path, bytes | None]:
        """``(model directory, signature bytes or None)`` of the active (or pending) slot."""
        directory = self._slot_dir(component, self.active_slot(component))
        try:
            signature: bytes | None = _read_capped(directory / SIGNATURE_FILE, MAX_BUNDLE_BYTES)
        except FileNotFoundError:
            signature = None
        return directory / MODEL_DIR, signature


# -- the release side ---------------------------------------------------------------------


class _FirstWrite:
    """Passes writes to ``out`` and keeps the first one (the envelope Writer
    writes its whole prefix, salt and key commitment in one call)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.first = b""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if not self.first:
            self.first = bytes(data)
        return self._out.write(data)


@dataclass(frozen=True)
class ModelRelease:
    """A built model update: the signed SUIT envelope and the encrypted payload's size."""

    envelope: bytes
    payload_size: int
    pack_digest: bytes
    pack_size: int


def build_model_release(
    model_dir: str | os.PathLike[str],
    signature: bytes | None,
    recipients: Sequence[Recipient],
    payload_out: IO[bytes],
    *,
    sequence_number: int,
    vendor_id: str,
    class_id: str,
    keys: Sequence[PrivateKey],
    component: tuple[bytes, ...] = (b"model",),
    uri: str = "model.tenv",
) -> ModelRelease:
    """Pack ``model_dir`` (with its ``signature``), encrypt the pack to
    ``recipients`` into ``payload_out``, and return a SUIT envelope signed by
    ``keys`` that installs it as one component (digest and size of the pack,
    fetched from ``uri``). Raises ``ValueError`` for an unusable directory."""
    header = pack_header(model_dir, signature)
    size = header.size
    start = payload_out.tell() if payload_out.seekable() else 0
    first = _FirstWrite(payload_out)
    with Writer(
        first,  # type: ignore[arg-type]
        recipients,
        context=envelope_context(component),
        content_type=PACK_CONTENT_TYPE,
        size=size,
    ) as writer:

        def sink(data: bytes) -> None:
            writer.write(data)

        digest, length = digest_stream(iter_pack(model_dir, header), size, sink)
    if length != size:
        raise ValueError("the model directory changed while it was packed")
    end = payload_out.tell() if payload_out.seekable() else 0
    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": sequence_number,
        "components": [
            {
                "install-id": [p.hex() for p in component],
                "vendor-id": vendor_id,
                "class-id": class_id,
                "install-digest": {"algorithm-id": "sha256", "digest-bytes": digest.hex()},
                "install-size": size,
                "envelope-binding": envelope_binding(first.first).hex(),
                "uri": uri,
            }
        ],
    }
    envelope = sign_envelope(create_envelope(spec), list(keys))
    return ModelRelease(envelope, end - start, digest, size)
