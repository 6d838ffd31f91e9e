"""Persistent state of the software TPM: one deterministic-CBOR file, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from trustedge import _cbor
from trustedge.errors import MalformedInputError

__all__ = ["STATE_FILE", "atomic_write", "load_state"]

STATE_FILE: Final = "softtpm.cbor"
_LIMITS: Final = _cbor.DecodeLimits(max_size=4 * 1024 * 1024, max_depth=8, max_items=100_000)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file:
    temp file in the same directory, fsync, rename, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_state(path: Path) -> dict[str, Any] | None:
    """The decoded state map, or None when there is no state file yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    state = _cbor.decode(data, limits=_LIMITS, canonical=True)
    if not isinstance(state, dict) or state.get("v") != 1:
        raise MalformedInputError(f"{path}: not a software TPM state (version 1)")
    return state
