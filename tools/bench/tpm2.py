"""Tpm2Backend latencies on a fresh swtpm, with tpm2-tools as the peer for quotes.

    python tools/bench/tpm2.py [--quotes N]

Prints per-operation wall-clock figures (ms) and the ratio of a full Tpm2Backend quote
cycle (EK from saved context, EK policy session, AK load, quote, PCR read, flush all)
to one `tpm2_quote` + `tpm2_flushcontext` run of tpm2-tools on the same swtpm.
The machine is shared: report `uptime` with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.swtpm import Swtpm
from trustedge.attestation.backends.tpm2 import Tpm2Backend

SELECTION = {"sha256": [0, 7, 16]}


def timed(label: str, n: int, fn: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    per = (time.perf_counter() - start) / n * 1000
    print(f"{label:<44} {per:8.2f} ms  (n={n})")
    return per


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quotes", type=int, default=200)
    args = parser.parse_args()
    os.environ["TSS2_LOG"] = "all+none"
    tpm = Swtpm().start()
    try:
        with Tpm2Backend(tpm.tcti) as backend:
            timed("create_ak ecc-p256-ecdsa (ECC EK)", 10,
                  lambda _: backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256"))  # fmt: skip
            timed("create_ak rsa2048-rsassa (RSA EK)", 3,
                  lambda _: backend.create_ak("rsa2048-rsassa", ek_kind="rsa2048"))  # fmt: skip
            ecc = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
            rsa = backend.create_ak("rsa2048-rsassa", ek_kind="rsa2048")
            ours = timed("quote cycle, ECC AK", args.quotes,
                         lambda i: backend.quote(ecc, i.to_bytes(8, "big"), SELECTION))  # fmt: skip
            timed("quote cycle, RSA AK under RSA EK", args.quotes // 4,
                  lambda i: backend.quote(rsa, i.to_bytes(8, "big"), SELECTION))  # fmt: skip
            blob = backend.seal(b"k" * 32, pcrs={"sha256": [16]})
            timed("seal to PCR 16", 50, lambda _: backend.seal(b"k" * 32, pcrs={"sha256": [16]}))
            timed("unseal (PCR policy, salted session)", 50, lambda _: backend.unseal(blob))
            backend.nv_counter_define(0x01500030)
            timed("nv_counter_increment", 100, lambda _: backend.nv_counter_increment(0x01500030))
            backend.nv_counter_undefine(0x01500030)
            assert backend.loaded_handles() == []

        env = tpm.env()
        with tempfile.TemporaryDirectory() as tmp:

            def tool(*cmd: str) -> None:
                subprocess.run(cmd, env=env, cwd=tmp, check=True, capture_output=True)

            def flush() -> None:
                tool("tpm2_flushcontext", "-t")
                tool("tpm2_flushcontext", "-s")

            tool("tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub")
            flush()
            tool("tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256",
                 "-s", "ecdsa", "-u", "ak.pub")  # fmt: skip
            flush()

            def tools_quote(i: int) -> None:
                tool("tpm2_quote", "-c", "ak.ctx", "-l", "sha256:0,7,16", "-q", f"{i:016x}",
                     "-m", "q.msg", "-s", "q.sig", "-o", "q.pcrs", "-g", "sha256")  # fmt: skip
                tool("tpm2_flushcontext", "-t")

            peer = timed(
                "tpm2-tools: tpm2_quote + flushcontext", max(10, args.quotes // 10), tools_quote
            )
        print(f"ratio Tpm2Backend quote cycle / tpm2-tools quote: {ours / peer:.2f}")
    finally:
        tpm.cleanup()


if __name__ == "__main__":
    main()
