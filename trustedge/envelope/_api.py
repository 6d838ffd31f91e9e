"""The safe recipes: seal, open, rewrap, inspect (bytes and files)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trustedge._fs import atomic_output
from trustedge.envelope import _cobblestone as cb
from trustedge.envelope import _core
from trustedge.envelope._format import (
    SUITE_COBBLESTONE_256,
    ContextValue,
    Header,
    Prefix,
    Slot,
    binding,
    encode_prefix,
    read_prefix,
)
from trustedge.envelope.slots import Identity, RandomSource, Recipient
from trustedge.envelope.stream import Reader, Writer, _read_full
from trustedge.errors import MalformedInputError

__all__ = [
    "UnverifiedEnvelopeInfo",
    "atomic_output",
    "inspect",
    "open",
    "open_file",
    "rewrap",
    "rewrap_file",
    "seal",
    "seal_file",
]

_COPY_BLOCK = 1024 * 1024  # rewrap_file copies the body in blocks of this size


def seal(
    plaintext: bytes | bytearray | memoryview | IO[bytes],
    recipients: Sequence[Recipient],
    *,
    context: Mapping[str, ContextValue] | None = None,
    content_type: str | None = None,
    suite: int = SUITE_COBBLESTONE_256,
    rng: RandomSource = os.urandom,
) -> bytes:
    """Encrypt ``plaintext`` (bytes, or a binary file object read to its end) for
    every recipient; returns the envelope.

    ``context`` (text keys, text or bytes values) is stored in the clear and
    authenticated; ``open`` can require values in it. Byte input records its
    size in the header (exact truncation/trailing-data errors).
    """
    out = io.BytesIO()
    if isinstance(plaintext, (bytes, bytearray, memoryview)):
        size = memoryview(plaintext).nbytes
        with Writer(
            out,
            recipients,
            context=context,
            content_type=content_type,
            size=size,
            suite=suite,
            rng=rng,
        ) as w:
            w.write(plaintext)
    else:
        with Writer(
            out, recipients, context=context, content_type=content_type, suite=suite, rng=rng
        ) as w:
            w.write_from(plaintext)
    return out.getvalue()


def open(  # the recipe's name; shadows the builtin inside this module only
    envelope: bytes | bytearray | memoryview | IO[bytes],
    identities: Sequence[Identity],
    *,
    context: Mapping[str, ContextValue] | None = None,
) -> bytes:
    """Decrypt and authenticate a whole envelope; returns the plaintext only if
    every check passed.

    Checks, in order: format and limits (``MalformedInputError``,
    ``LimitExceededError``, ``UnsupportedAlgorithmError``); required ``context``
    (``ContextMismatchError``); a slot the identities open
    (``KeyNotFoundError``, or ``KeyProviderError`` when a TPM/KMS refused);
    key commitment over the header (``CommitmentError``); body length
    (``TruncationError``, ``TrailingDataError``); every chunk
    (``ChunkAuthenticationError`` with the chunk index).
    """
    src: IO[bytes]
    if isinstance(envelope, (bytes, bytearray, memoryview)):
        src = io.BytesIO(bytes(envelope))
    else:
        src = envelope
    return Reader(src, identities, context=context).read()


def seal_file(
    src: str | Path,
    dst: str | Path,
    recipients: Sequence[Recipient],
    *,
    context: Mapping[str, ContextValue] | None = None,
    content_type: str | None = None,
    suite: int = SUITE_COBBLESTONE_256,
    rng: RandomSource = os.urandom,
) -> None:
    """Encrypt the file ``src`` into ``dst`` (atomically; size recorded)."""
    with io.open(src, "rb") as fin, atomic_output(dst) as fout:  # noqa: UP020
        size = os.fstat(fin.fileno()).st_size
        with Writer(
            fout,
            recipients,
            context=context,
            content_type=content_type,
            size=size,
            suite=suite,
            rng=rng,
        ) as w:
            w.write_from(fin)


def open_file(
    src: str | Path,
    dst: str | Path,
    identities: Sequence[Identity],
    *,
    context: Mapping[str, ContextValue] | None = None,
) -> Header:
    """Decrypt ``src`` into ``dst``. Plaintext goes to a temporary file that is
    renamed to ``dst`` only after the whole envelope authenticated; on any
    error it is removed. Returns the authenticated header."""
    with io.open(src, "rb") as fin, atomic_output(dst) as fout:  # noqa: UP020
        reader = Reader(fin, identities, context=context)
        reader.copy_to(fout)
        return reader.header


def _rewrap_slots(
    prefix: Prefix,
    chunk_header: bytes,
    unwrap_with: Sequence[Identity],
    add: Sequence[Recipient],
    remove: Sequence[str | Recipient],
    rng: RandomSource,
) -> list[Slot]:
    file_key, _ = _core.unwrap(prefix, chunk_header, unwrap_with)
    drop = {r if isinstance(r, str) else r.kek_id for r in remove}
    unknown = drop - {s.kek_id for s in prefix.slots}
    if unknown:
        raise ValueError(f"no slot with key id {sorted(unknown)} to remove")
    slots = [s for s in prefix.slots if s.kek_id not in drop]
    bind = binding(prefix.header_bytes)
    present = {s.kek_id for s in slots}
    for r in add:
        if r.kek_id in present:
            raise ValueError(f"a slot for {r.kek_id} already exists")
        slots.append(r.wrap(file_key, bind, rng))
        present.add(r.kek_id)
    if not slots:
        raise ValueError("rewrap would leave no slot: the envelope could never be opened")
    return slots


def rewrap(
    envelope: bytes | bytearray | memoryview,
    unwrap_with: Sequence[Identity],
    *,
    add: Sequence[Recipient] = (),
    remove: Sequence[str | Recipient] = (),
    rng: RandomSource = os.urandom,
) -> bytes:
    """Rewrite only the slot list: unwrap the file key with ``unwrap_with``
    (verifying it against the key commitment first), drop the slots whose
    key ids are in ``remove``, add a slot per ``add`` recipient. The header
    and body bytes are copied unchanged; the body is not decrypted.
    """
    data = bytes(envelope)
    src = io.BytesIO(data)
    prefix = read_prefix(lambda n: _read_full(src, n))
    chunk_header = data[prefix.body_offset : prefix.body_offset + cb.HEADER_SIZE]
    slots = _rewrap_slots(prefix, chunk_header, unwrap_with, add, remove, rng)
    return encode_prefix(prefix.header_bytes, slots) + data[prefix.body_offset :]


def rewrap_file(
    path: str | Path,
    unwrap_with: Sequence[Identity],
    *,
    add: Sequence[Recipient] = (),
    remove: Sequence[str | Recipient] = (),
    dst: str | Path | None = None,
    rng: RandomSource = os.urandom,
) -> None:
    """:func:`rewrap` for files: ``dst`` (default: ``path`` itself) is replaced
    atomically; the body is stream-copied without decryption."""
    with io.open(path, "rb") as fin:  # noqa: UP020
        prefix = read_prefix(lambda n: _read_full(fin, n))
        chunk_header = _read_full(fin, cb.HEADER_SIZE)
        slots = _rewrap_slots(prefix, chunk_header, unwrap_with, add, remove, rng)
        with atomic_output(dst if dst is not None else path) as fout:
            fout.write(encode_prefix(prefix.header_bytes, slots) + chunk_header)
            while block := fin.read(_COPY_BLOCK):
                fout.write(block)


@dataclass(frozen=True)
class UnverifiedEnvelopeInfo:
    """What :func:`inspect` shows. Nothing here is authenticated: without a key
    the header and slots may have been edited."""

    version: int
    suite: int
    aead: str
    context: Mapping[str, ContextValue]
    content_type: str | None
    size: int | None
    slots: list[dict[str, Any]]
    header_size: int
    body_size: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": False,
            "version": self.version,
            "suite": self.suite,
            "aead": self.aead,
            "context": dict(self.context),
            "content_type": self.content_type,
            "size": self.size,
            "slots": self.slots,
            "header_size": self.header_size,
            "body_size": self.body_size,
        }


def inspect(envelope: bytes | bytearray | memoryview | IO[bytes]) -> UnverifiedEnvelopeInfo:
    """Parse header and slot list without any key (no secrets are shown: slots
    list type, key id and parameters, not the wrapped key)."""
    src: IO[bytes] = (
        io.BytesIO(bytes(envelope))
        if isinstance(envelope, (bytes, bytearray, memoryview))
        else envelope
    )
    prefix = read_prefix(lambda n: _read_full(src, n))
    body_size: int | None = None
    try:
        if src.seekable():
            body_size = src.seek(0, io.SEEK_END) - prefix.body_offset
    except (OSError, AttributeError):
        body_size = None
    if body_size is not None and body_size < 0:
        raise MalformedInputError("envelope shorter than its prefix")
    h = prefix.header
    return UnverifiedEnvelopeInfo(
        version=1,
        suite=h.suite,
        aead=h.aead.name,
        context=h.context,
        content_type=h.content_type,
        size=h.size,
        slots=[s.describe() for s in prefix.slots],
        header_size=len(prefix.header_bytes),
        body_size=body_size,
    )
