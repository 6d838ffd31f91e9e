#!/usr/bin/env python3
"""TPM paths on a fresh swtpm: trustedge vs tpm2-tools per process, Tpm2Backend latencies.

    tools/bench/tpm2.py [--pairs P] [--quotes N] [--report FILE]

Per process, alternated (A B A B ...): ``trustedge tpm quote`` (open the TPM, EK from its
template, EK policy session, load the AK blob under the EK, quote, flush everything, write the
three tpm2-tools files) against ``tpm2_quote`` + ``tpm2_flushcontext -t`` on an AK context
file that tpm2-tools saved (it loads no key under the EK and opens no policy session: trustedge
does more TPM work per quote). In-process, per operation: Tpm2Backend's quote cycle, AK
creation, seal/unseal and NV counter increments, as median (min-max) over runs of ``--quotes``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness

sys.path.insert(0, str(_harness.ROOT))

from tests.swtpm import Swtpm
from trustedge.attestation.backends.tpm2 import Tpm2Backend

SELECTION = {"sha256": [0, 7, 16]}
NV_INDEX = 0x01500030


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=20, help="operations per timed run")
    _harness.add_arguments(parser)
    args = parser.parse_args()
    report = _harness.Reporter("tpm2", args.report)
    os.environ["TSS2_LOG"] = "all+none"
    tpm = Swtpm().start()
    try:
        env = {**tpm.env(), "TSS2_LOG": "all+none"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # a CLI user's interpreter caches byte code
        with tempfile.TemporaryDirectory() as tmp:

            def tool(*cmd: str) -> None:
                subprocess.run(cmd, env=env, cwd=tmp, check=True, capture_output=True)

            tool("tpm2_createek", "-c", "ek.ctx", "-G", "ecc", "-u", "ek.pub")
            tool("tpm2_flushcontext", "-t")
            tool("tpm2_flushcontext", "-s")
            tool("tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "ecc", "-g", "sha256",
                 "-s", "ecdsa", "-u", "ak.pub")  # fmt: skip
            tool("tpm2_flushcontext", "-t")
            tool("tpm2_flushcontext", "-s")
            cli = [sys.executable, "-m", "trustedge"]
            tool(*cli, "tpm", "init", "--tcti", tpm.tcti, "-o", "te", "--ak-alg",
                 "ecc-p256-ecdsa", "--ek", "ecc-p256")  # fmt: skip
            nonce = "00112233445566778899aabbccddeeff"
            ours = _harness.timed_process(
                [*cli, "tpm", "quote", "--tcti", tpm.tcti, "--pcr-selection", "sha256:0,7,16",
                 "--nonce", nonce, "--ak-blob", "te.blob", "-o", "q"],
                cwd=tmp, env=env,
            )  # fmt: skip
            quote = _harness.timed_process(
                ["tpm2_quote", "-c", "ak.ctx", "-l", "sha256:0,7,16", "-q", nonce, "-m",
                 "p.msg", "-s", "p.sig", "-o", "p.pcrs", "-g", "sha256"],
                cwd=tmp, env=env,
            )  # fmt: skip
            flush = _harness.timed_process(["tpm2_flushcontext", "-t"], cwd=tmp, env=env)
            report(
                _harness.alternate(
                    "one quote per process",
                    ("trustedge tpm quote", ours),
                    ("tpm2_quote + tpm2_flushcontext", lambda: quote() + flush()),
                    work="ECDSA P-256 AK, sha256:0,7,16, quote files written",
                    pairs=args.pairs,
                )
            )
        with Tpm2Backend(tpm.tcti) as backend:
            ecc = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
            rsa = backend.create_ak("rsa2048-rsassa", ek_kind="rsa2048")
            blob = backend.seal(b"k" * 32, pcrs={"sha256": [16]})
            backend.nv_counter_define(NV_INDEX)
            n = args.quotes
            ops = {
                "create_ak ecc-p256-ecdsa (ECC EK)": (
                    lambda: backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256"),
                    max(2, n // 4),
                ),
                "quote cycle, ECC AK": (lambda: backend.quote(ecc, b"n" * 16, SELECTION), n),
                "quote cycle, RSA AK under RSA EK": (
                    lambda: backend.quote(rsa, b"n" * 16, SELECTION),
                    max(2, n // 4),
                ),
                "seal to PCR 16": (lambda: backend.seal(b"k" * 32, pcrs={"sha256": [16]}), n),
                "unseal (PCR policy, salted session)": (lambda: backend.unseal(blob), n),
                "nv_counter_increment": (lambda: backend.nv_counter_increment(NV_INDEX), n),
            }
            for name, (fn, calls) in ops.items():
                run = _harness.timed_calls(fn, calls)
                report(
                    _harness.repeat(
                        f"Tpm2Backend {name}",
                        lambda run=run, calls=calls: run() / calls * 1e3,  # type: ignore[misc]
                        unit="ms per operation",
                        runs=args.pairs,
                        higher_is_better=False,
                    )
                )
            backend.nv_counter_undefine(NV_INDEX)
            if backend.loaded_handles():
                raise SystemExit(f"handles left loaded: {backend.loaded_handles()}")
    finally:
        tpm.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
