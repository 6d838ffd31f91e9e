"""Memory stays bounded by threads x buffer size, whatever the file size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

CHILD = """
import sys
import trustedge.hashing as h


def peak_kib():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak over exec.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit("no VmHWM")


path = sys.argv[1]
assert h.IMPLEMENTATION == sys.argv[2]
before = peak_kib()
h.tree_digest(path, threads=2)
print(before, peak_kib())
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
