"""Rollback state: the rules (no I/O) and the storage backends.

Rules (:class:`RollbackState`, immutable; every transition returns a new state):

* per component (keyed by the CBOR of its SUIT component id) a ``floor`` and
  an optional ``pending`` sequence number, plus the manifest digest of each;
* :meth:`RollbackState.check` rejects ``seq < floor``; ``seq == floor`` is
  allowed only for the *same* manifest (digest equal) -- a re-install, never a
  different manifest reusing the number; sequence numbers compare as uint64;
* :meth:`RollbackState.begin` records ``pending``; the floor is raised only by
  :meth:`RollbackState.confirm` after the new image booted (AVB rule), so an
  A/B fallback to the old slot still passes its own check;
* :meth:`RollbackState.apply_floor_reset` lowers floors only for a newer
  trust-root version (root-threshold signed, see :mod:`trustedge.ota.trustroot`).

Backends (:class:`StateStore` protocol): :class:`FileStateStore` writes two
copies, each atomically (``trustedge._fs.atomic_write``) with a checksum
and a generation, and loads the newest valid copy -- it survives power loss,
not an attacker who can write the disk. :class:`NVCounterStateStore` adds an
HMAC over the file and a TPM NV counter as generation, so a rolled-back file
is detected (works with any object providing ``nv_counter_define``,
``nv_counter_increment``, ``nv_counter_read``, e.g. a ``TPMBackend``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from trustedge import _cbor
from trustedge._fs import atomic_write
from trustedge.errors import MalformedInputError, PolicyError, RollbackError

__all__ = [
    "ComponentState",
    "FileStateStore",
    "NVCounter",
    "NVCounterStateStore",
    "RollbackState",
    "StateStore",
]

_FORMAT: Final = 1
_MAGIC: Final = b"TEOTA\x00\x01\x00"
_LIMITS: Final = _cbor.DecodeLimits(max_size=1 << 20, max_depth=8, max_items=100_000)
_UINT64_MAX: Final = 2**64 - 1


@dataclass(frozen=True)
class ComponentState:
    """Floor (highest confirmed sequence) and pending install of one component."""

    floor: int = 0
    floor_digest: bytes = b""
    pending: int | None = None
    pending_digest: bytes = b""


@dataclass(frozen=True)
class RollbackState:
    """The persisted rollback rules' state. Pure: transitions return new states."""

    generation: int = 0
    trust_root_version: int = 0
    components: Mapping[bytes, ComponentState] = field(default_factory=dict)

    def component(self, cid: bytes) -> ComponentState:
        return self.components.get(cid, ComponentState())

    @property
    def has_pending(self) -> bool:
        return any(c.pending is not None for c in self.components.values())

    @property
    def pending_components(self) -> tuple[tuple[bytes, ...], ...]:
        """The SUIT component ids with a pending install (decoded from their state keys).

        Raises MalformedInputError for a key that is not the CBOR of a component id.
        """
        out = []
        for cid, c in self.components.items():
            if c.pending is None:
                continue
            item = _cbor.decode(cid, limits=_LIMITS, canonical=True)
            if not isinstance(item, list) or not item or any(type(p) is not bytes for p in item):
                raise MalformedInputError("a pending state key is not a SUIT component id")
            out.append(tuple(item))
        return tuple(out)

    def check(self, cid: bytes, seq: int, digest: bytes) -> None:
        """Raise RollbackError unless ``seq`` may be installed on component ``cid``."""
        if not 0 <= seq <= _UINT64_MAX:
            raise RollbackError("sequence number outside the uint64 range")
        cur = self.component(cid)
        if seq < cur.floor:
            raise RollbackError(f"sequence {seq} is below the floor {cur.floor}")
        if (
            seq == cur.floor
            and cur.floor_digest
            and not hmac.compare_digest(digest, cur.floor_digest)
        ):
            raise RollbackError(f"sequence {seq} equals the floor but names a different manifest")

    def begin(self, cids: list[bytes], seq: int, digest: bytes) -> RollbackState:
        """Record a pending install of ``seq`` on ``cids`` (after :meth:`check`)."""
        if self.has_pending:
            raise PolicyError("an update is already pending confirmation")
        comps = dict(self.components)
        for cid in cids:
            self.check(cid, seq, digest)
            comps[cid] = replace(self.component(cid), pending=seq, pending_digest=digest)
        return replace(self, components=comps)

    def confirm(self) -> RollbackState:
        """The pending image booted and is good: raise floors to the pending values."""
        comps = {}
        for cid, c in self.components.items():
            if c.pending is not None and c.pending >= c.floor:
                c = ComponentState(c.pending, c.pending_digest)
            elif c.pending is not None:
                c = replace(c, pending=None, pending_digest=b"")
            comps[cid] = c
        return replace(self, components=comps)

    def abandon(self) -> RollbackState:
        """The pending image failed: drop it, floors unchanged."""
        comps = {
            cid: replace(c, pending=None, pending_digest=b"") for cid, c in self.components.items()
        }
        return replace(self, components=comps)

    def apply_floor_reset(self, root_version: int, resets: Mapping[bytes, int]) -> RollbackState:
        """Adopt trust root ``root_version``; its floor resets apply once, when newer."""
        if root_version < self.trust_root_version:
            raise RollbackError(
                f"trust root version {root_version} is older than {self.trust_root_version}"
            )
        if root_version == self.trust_root_version:
            return self
        comps = dict(self.components)
        for cid, floor in resets.items():
            comps[cid] = ComponentState(floor)
        return replace(self, trust_root_version=root_version, components=comps)

    # -- encoding --------------------------------------------------------------
    def encode(self) -> bytes:
        comps = {
            cid: [c.floor, c.floor_digest, c.pending, c.pending_digest]
            for cid, c in self.components.items()
        }
        return _cbor.encode([_FORMAT, self.generation, self.trust_root_version, comps])

    @classmethod
    def decode(cls, data: bytes) -> RollbackState:
        """Decode (canonical CBOR only); MalformedInputError on anything else."""
        item = _cbor.decode(data, limits=_LIMITS, canonical=True)
        if not isinstance(item, list) or len(item) != 4 or item[0] != _FORMAT:
            raise MalformedInputError("not a rollback state (format 1)")
        _, gen, root_ver, comps = item
        if not all(_is_uint(v) for v in (gen, root_ver)) or not isinstance(comps, dict):
            raise MalformedInputError("malformed rollback state header")
        out = {}
        for cid, v in comps.items():
            if (
                not isinstance(cid, bytes)
                or not isinstance(v, list)
                or len(v) != 4
                or not _is_uint(v[0])
                or not (v[2] is None or _is_uint(v[2]))
                or not isinstance(v[1], bytes)
                or not isinstance(v[3], bytes)
            ):
                raise MalformedInputError("malformed component state")
            out[cid] = ComponentState(v[0], v[1], v[2], v[3])
        return cls(gen, root_ver, out)


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _UINT64_MAX


@runtime_checkable
class StateStore(Protocol):
    """Where rollback state lives. ``save`` returns only once the state is durable."""

    def load(self) -> RollbackState: ...

    def save(self, state: RollbackState) -> RollbackState:
        """Persist ``state`` with the next generation; return what was stored."""
        ...


class FileStateStore:
    """Two copies (``state.0``, ``state.1``) in ``directory``, each atomically replaced.

    Each copy is ``MAGIC || state || tag`` where tag is SHA-256 (or HMAC-SHA256
    with ``mac_key``) over ``MAGIC || state``. Generation G goes to copy
    ``G % 2``, so the previous generation is always intact in the other copy.
    :meth:`load` returns the newest copy whose tag checks; no copy at all is a
    fresh device; copies present but none valid raise MalformedInputError
    (never a silent reset to floor 0).
    """

    def __init__(self, directory: str | os.PathLike[str], *, mac_key: bytes | None = None) -> None:
        self.directory = Path(directory)
        self._mac_key = mac_key

    def _tag(self, body: bytes) -> bytes:
        if self._mac_key is None:
            return hashlib.sha256(body).digest()
        return hmac.new(self._mac_key, body, hashlib.sha256).digest()

    def _read(self, path: Path) -> RollbackState | None:
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        body, tag = blob[:-32], blob[-32:]
        if len(blob) < len(_MAGIC) + 32 or not body.startswith(_MAGIC):
            return None
        if not hmac.compare_digest(self._tag(body), tag):
            return None
        try:
            return RollbackState.decode(body[len(_MAGIC) :])
        except MalformedInputError:
            return None

    def load(self) -> RollbackState:
        paths = [self.directory / f"state.{i}" for i in (0, 1)]
        states = [s for s in (self._read(p) for p in paths) if s is not None]
        if not states:
            if any(p.exists() for p in paths):
                raise MalformedInputError("every copy of the rollback state is corrupt")
            return RollbackState()
        return max(states, key=lambda s: s.generation)

    def write(self, state: RollbackState) -> None:
        """Write ``state`` as-is (its generation chooses the copy)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        body = _MAGIC + state.encode()
        atomic_write(self.directory / f"state.{state.generation % 2}", body + self._tag(body))

    def save(self, state: RollbackState) -> RollbackState:
        stored = replace(state, generation=self.load().generation + 1)
        self.write(stored)
        return stored


@runtime_checkable
class NVCounter(Protocol):
    """The NV-counter part of :class:`trustedge.hazmat.tpmbackend.TPMBackend`."""

    def nv_counter_define(self, index: int) -> None: ...

    def nv_counter_increment(self, index: int) -> int: ...

    def nv_counter_read(self, index: int) -> int: ...


class NVCounterStateStore:
    """Rollback state MAC'd with ``mac_key`` whose generation is a TPM NV counter.

    Commit = write the file with generation ``c + 1`` (``c`` = counter), then
    increment the counter. Load accepts generation ``== c`` or ``== c + 1``
    (a crash between the two steps; the counter is then caught up); anything
    older is a rolled-back file -> RollbackError. ``mac_key`` should come from
    the TPM (e.g. unsealed) so an attacker with disk access cannot forge it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        counter: NVCounter,
        index: int,
        mac_key: bytes,
    ) -> None:
        self.files = FileStateStore(directory, mac_key=mac_key)
        self.counter = counter
        self.index = index

    def provision(self) -> RollbackState:
        """Define the counter, take it out of its initial state, write a fresh state."""
        self.counter.nv_counter_define(self.index)
        value = self.counter.nv_counter_increment(self.index)
        state = RollbackState(generation=value)
        self.files.write(state)
        return state

    def load(self) -> RollbackState:
        value = self.counter.nv_counter_read(self.index)
        state = self.files.load()
        if state.generation == value + 1:
            self.counter.nv_counter_increment(self.index)  # finish an interrupted commit
            return state
        if state.generation != value:
            raise RollbackError(
                f"state file generation {state.generation} does not match NV counter {value}"
            )
        return state

    def save(self, state: RollbackState) -> RollbackState:
        current = self.load()
        stored = replace(state, generation=current.generation + 1)
        self.files.write(stored)
        self.counter.nv_counter_increment(self.index)
        return stored
