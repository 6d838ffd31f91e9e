"""Large-blob hashing: whole-file SHA-256 and a parallel chunk-tree digest.

The C extension ``_speedups`` is used when it was built; ``_native`` (hashlib)
is the twin that gives identical digests. ``IMPLEMENTATION`` names the active
one; ``TRUSTEDGE_HASHING=native`` forces the twin.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["IMPLEMENTATION"]


def _select() -> tuple[ModuleType, str]:
    from trustedge.hashing import _native

    if os.environ.get("TRUSTEDGE_HASHING", "") == "native":
        return _native, "native"
    try:
        from trustedge.hashing import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return _native, "native"
    return _speedups, "speedups"


_impl, IMPLEMENTATION = _select()
