"""Memory stays bounded by threads x buffer size, whatever the file size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

CHILD = """
import resource, sys
import trustedge.hashing as h
path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert h.IMPLEMENTATION == sys.argv[2]
h.tree_digest(path, threads=2)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def test_two_gib_file_hashes_in_bounded_memory(tmp_path: Path, implementation: ModuleType) -> None:
    path = tmp_path / "sparse-2g.bin"
    with open(path, "wb") as fh:
        fh.truncate(2 << 30)  # sparse: no disk used, reads return zeros
    native = implementation.__name__.endswith("_native")
    env = dict(os.environ, TRUSTEDGE_HASHING="native" if native else "")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "native" if native else "speedups"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    before_kib, after_kib = map(int, out.stdout.split())
    # Buffers are 16 lanes x 32 KiB (+ 256 KiB) per worker: growth must stay far below 128 MiB.
    assert (after_kib - before_kib) < 16 * 1024, (before_kib, after_kib)
    assert after_kib < 128 * 1024
