#!/usr/bin/env python3
"""Envelope benchmark: seal and open a 1 GiB file, whole process, trustedge vs Debian's ``age``.

    python tools/bench/envelope.py [--size-mib 1024] [--pairs 5] [--report FILE]
                                   [--disk-dir /var/tmp] [--in-process]

Both tools are programs, so both are timed per process (``timed_process``, start-up included)
and alternated, A B A B ..., through ``tools/bench/_harness.py``. trustedge uses an X25519
HPKE recipient and the AES-256-GCM suite, age an X25519 recipient. The plaintext and the
ciphertexts read are on tmpfs (``/dev/shm``) so the input side never waits for a disk.

* ``seal`` / ``open`` to stdout: the output goes to ``/dev/null`` for both (target 2x).
* ``seal -o FILE``: trustedge writes through its atomic helper (temporary file, ``fsync`` of
  the file, rename, ``fsync`` of the directory); the peer is ``age -o FILE`` followed by
  ``sync FILE`` (coreutils, an ``fsync`` of the file) so both end with the data on the device
  (target 1.5x). Measured twice: FILE on ``--disk-dir`` (ext4 on the VM's disk by default,
  ``/var/tmp``), where the device write dominates, and FILE on ``/dev/shm`` (tmpfs, where
  ``fsync`` has nothing to do: the CPU side of the same commands).

``--in-process`` adds single-side figures: AES-256-GCM body encryption and decryption in
this process, GB/s over 256 MiB (median of the runs). Children run with byte-code caching on
(``PYTHONDONTWRITEBYTECODE`` dropped, the cache in the temporary directory). Every temporary
file (plaintext, ciphertexts, keys, outputs, byte-code cache) is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))

from _harness import Reporter, Run, add_arguments, alternate, repeat, timed_process  # noqa: E402

TRUSTEDGE = [sys.executable, "-m", "trustedge", "envelope"]


def ensure_age() -> None:
    if shutil.which("age") and shutil.which("age-keygen"):
        return
    if os.geteuid() != 0:
        sys.exit("age not installed: apt-get install -y age")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "age"], check=True, env=env)


def then(*runs: Run) -> Run:
    """One run made of several per-process runs in order (``age -o F`` then ``sync F``)."""

    def run() -> float:
        return sum(r() for r in runs)

    return run


def in_process_figures(report: Reporter, pairs: int) -> None:
    from trustedge.envelope import _cobblestone as cb

    key, nonce, _ = cb.derive(cb.AES_256_GCM, os.urandom(32), os.urandom(24), b"")
    cipher = cb.ChunkCipher(cb.AES_256_GCM, key, nonce)
    block = 64 << 20
    reps = 4  # 256 MiB
    pt = memoryview(bytearray(os.urandom(1 << 20) * (block >> 20)))
    ct = memoryview(bytearray(block // cb.CHUNK_SIZE * cb.CT_CHUNK_SIZE))
    out = memoryview(bytearray(block))

    def enc() -> float:
        t = time.perf_counter()
        for r in range(reps):
            cipher.encrypt_full_chunks(pt, r * (block // cb.CHUNK_SIZE), ct)
        return reps * block / (time.perf_counter() - t) / 1e9

    def dec() -> float:
        t = time.perf_counter()
        for _ in range(reps):
            cipher.decrypt_chunks(ct, 0, out)
        return reps * block / (time.perf_counter() - t) / 1e9

    report(repeat("envelope in-process encrypt, 16 KiB chunks", enc, unit="GB/s", runs=pairs))
    cipher.encrypt_full_chunks(pt, 0, ct)  # decrypt chunks numbered from 0
    report(repeat("envelope in-process decrypt, 16 KiB chunks", dec, unit="GB/s", runs=pairs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--disk-dir", default="/var/tmp", help="directory on a disk for -o FILE")
    ap.add_argument("--in-process", action="store_true", help="add in-process GB/s figures")
    add_arguments(ap)
    args = ap.parse_args()
    ensure_age()
    report = Reporter("envelope", args.report)
    size = args.size_mib << 20
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with (
        tempfile.TemporaryDirectory(prefix="te-bench-env-", dir=shm) as tmp,
        tempfile.TemporaryDirectory(prefix="te-bench-env-", dir=args.disk_dir) as disk,
    ):
        d = Path(tmp)
        env["PYTHONPYCACHEPREFIX"] = str(d / "pycache")
        plain = d / "plain.bin"
        with open(plain, "wb") as fh:
            chunk = os.urandom(16 << 20)
            for _ in range(size // len(chunk)):
                fh.write(chunk)
            fh.write(chunk[: size % len(chunk)])
        subprocess.run(["age-keygen", "-o", str(d / "age.key")], check=True, capture_output=True)
        age_pub = subprocess.run(
            ["age-keygen", "-y", str(d / "age.key")], check=True, capture_output=True, text=True
        ).stdout.strip()
        te_key, te_pub = d / "te.key", d / "te.key.pub"
        subprocess.run(
            [*TRUSTEDGE, "keygen", "--type", "x25519", "-o", str(te_key)],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
        age_ct, te_ct = d / "plain.age", d / "plain.tenv"
        subprocess.run(["age", "-r", age_pub, "-o", str(age_ct), str(plain)], check=True)
        seal = [*TRUSTEDGE, "seal", "--recipient", str(te_pub), "-i", str(plain)]
        subprocess.run([*seal, "-o", str(te_ct)], check=True, env=env)  # warms the cache too
        mib = f"{args.size_mib} MiB"
        report(
            alternate(
                f"envelope seal {mib} to stdout (/dev/null)",
                ("trustedge", timed_process(seal, env=env, stdout=os.devnull)),
                ("age", timed_process(["age", "-r", age_pub, plain], stdout=os.devnull)),
                work=f"one process sealing {mib} from tmpfs",
                pairs=args.pairs,
                target=2.0,
            )
        )
        report(
            alternate(
                f"envelope open {mib} to stdout (/dev/null)",
                (
                    "trustedge",
                    timed_process(
                        [*TRUSTEDGE, "open", "--identity", str(te_key), "-i", str(te_ct)],
                        env=env,
                        stdout=os.devnull,
                    ),
                ),
                (
                    "age",
                    timed_process(
                        ["age", "-d", "-i", str(d / "age.key"), age_ct], stdout=os.devnull
                    ),
                ),
                work=f"one process opening {mib} from tmpfs",
                pairs=args.pairs,
                target=2.0,
            )
        )
        for where, out_dir in ((f"{args.disk_dir} (disk)", Path(disk)), ("/dev/shm (tmpfs)", d)):
            te_out, age_out = out_dir / "out.tenv", out_dir / "out.age"
            result = alternate(
                f"envelope seal {mib} -o FILE on {where}, durable",
                ("trustedge -o F", timed_process([*seal, "-o", te_out], env=env)),
                (
                    "age -o F; sync F",
                    then(
                        timed_process(["age", "-r", age_pub, "-o", age_out, plain]),
                        timed_process(["sync", age_out]),
                    ),
                ),
                work=f"one seal of {mib} from tmpfs to a file, fsync'd",
                pairs=args.pairs,
                target=1.5,
            )
            result.notes["output_dir"] = where
            report(result)
            te_out.unlink(missing_ok=True)
            age_out.unlink(missing_ok=True)
        if args.in_process:
            in_process_figures(report, args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
