#!/usr/bin/env python3
"""``trustedge hash`` as users call it, against its per-process peers, warm page cache.

    tools/bench/hashing.py [--section all|dir|verify|file] [--files 4] [--size 256M]
                           [--file-size 1G] [--dir /var/tmp] [--pairs 5] [--report FILE]

Every figure comes from ``tools/bench/_harness.py``: trustedge (A) and the peer (B) run as
whole processes, alternated A B A B ... after one untimed warm-up each, for ``--pairs`` pairs;
the median (min-max) of the pairwise ratio B/A (above 1: trustedge is faster) and the load
average before and after are printed, and appended as JSON to ``--report``.

* ``dir``: a model directory of ``--files`` random files of ``--size`` bytes.
  ``trustedge hash DIR`` (each file's SHA-256, all files at once on the C workers) against
  ``model_signing.hashing.hash(DIR)`` (the same SHA-256 per file), target 2; then
  ``trustedge hash --json DIR`` (the manifest: SHA-256 and tree of every file) against the
  same peer, no target (what the manifest costs).
* ``verify``: one file of ``--file-size`` bytes and the sidecar ``trustedge hash --tree --json``
  writes. ``trustedge hash verify FILE --digest @sidecar`` (the tree, the cheapest sufficient
  digest) against ``openssl dgst -sha256 FILE``, target 3; ``--all-digests`` too, no target.
* ``file``: the same file: ``trustedge hash FILE`` against ``openssl dgst -sha256`` and
  coreutils ``sha256sum``; ``trustedge hash --tree-only FILE`` against ``b3sum`` when it is
  installed (both all cores) and against ``openssl dgst -sha256``.

Temporary files live in a directory made under ``--dir`` (use a disk, e.g. /var/tmp, not a
tmpfs) and are removed at the end, also on failure or Ctrl-C. The machine may be shared:
absolute times are noisy, the alternated ratios are what to quote, with the load printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Reporter, add_arguments, alternate, timed_process

BIN = Path(sys.executable).parent
TRUSTEDGE = BIN / "trustedge"
# Installed packages run with byte-code caches; keep this process's setting out of the runs.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def parse_size(text: str) -> int:
    t = text.upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if t[-1:] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=fh, check=True)


def warm(*paths: Path) -> None:
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)


def has_module(python: str, module: str) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, env=ENV)
    return probe.returncode == 0


def mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--section", choices=("all", "dir", "verify", "file"), default="all")
    ap.add_argument("--files", type=int, default=4, help="files of the model directory (4)")
    ap.add_argument("--size", type=parse_size, default=256 << 20, help="bytes per file (256M)")
    ap.add_argument("--file-size", type=parse_size, default=1 << 30, help="single file (1G)")
    ap.add_argument("--dir", default=None, help="where the temporary files go (a disk)")
    ap.add_argument(
        "--peer-python",
        default=sys.executable,
        help="python with model_signing (default: this one)",
    )
    add_arguments(ap)
    args = ap.parse_args()
    report = Reporter("hashing", args.report)
    pairs = args.pairs
    tmp = Path(tempfile.mkdtemp(prefix="bench-hashing-", dir=args.dir))
    try:
        print(f"temporary files in {tmp}; load {os.getloadavg()}", file=sys.stderr)
        if args.section in ("all", "dir"):
            if not has_module(args.peer_python, "model_signing"):
                raise SystemExit(f"{args.peer_python} has no model_signing (--peer-python)")
            model = tmp / "model"
            model.mkdir()
            for i in range(args.files):
                random_file(model / f"model-{i + 1:05d}-of-{args.files:05d}.safetensors", args.size)
            (model / "config.json").write_text('{"architectures": ["Bench"]}\n')
            warm(model)
            work = f"a model of {args.files} x {mib(args.size)}"
            code = f"import model_signing.hashing as m; m.hash({str(model)!r})"
            ms = timed_process([args.peer_python, "-c", code], env=ENV)
            report(
                alternate(
                    "hash DIR vs model_signing.hashing.hash",
                    ("trustedge hash DIR", timed_process([TRUSTEDGE, "hash", model], env=ENV)),
                    ("model_signing", ms),
                    work=work,
                    pairs=pairs,
                    target=2.0,
                )
            )
            report(
                alternate(
                    "hash --json DIR (manifest: sha256 + tree) vs model_signing.hashing.hash",
                    (
                        "trustedge hash --json DIR",
                        timed_process([TRUSTEDGE, "hash", "--json", model], env=ENV),
                    ),
                    ("model_signing", ms),
                    work=work,
                    pairs=pairs,
                )
            )
            shutil.rmtree(model)
        if args.section in ("all", "verify", "file"):
            blob = tmp / "blob.bin"
            random_file(blob, args.file_size)
            warm(blob)
            work = f"one {mib(args.file_size)} file"
            openssl = ("openssl dgst -sha256", timed_process(["openssl", "dgst", "-sha256", blob]))
            if args.section in ("all", "verify"):
                sidecar = tmp / "blob.json"
                out = subprocess.run(
                    [TRUSTEDGE, "hash", "--tree", "--json", blob],
                    check=True,
                    capture_output=True,
                    env=ENV,
                ).stdout
                sidecar.write_bytes(out)
                verify = [TRUSTEDGE, "hash", "verify", blob, "--digest", f"@{sidecar}"]
                report(
                    alternate(
                        "hash verify (sidecar of hash --tree --json) vs openssl dgst -sha256",
                        ("trustedge hash verify", timed_process(verify, env=ENV)),
                        openssl,
                        work=work,
                        pairs=pairs,
                        target=3.0,
                    )
                )
                report(
                    alternate(
                        "hash verify --all-digests vs openssl dgst -sha256",
                        (
                            "trustedge hash verify --all-digests",
                            timed_process([*verify, "--all-digests"], env=ENV),
                        ),
                        openssl,
                        work=work,
                        pairs=pairs,
                    )
                )
            if args.section in ("all", "file"):
                te_sha = ("trustedge hash FILE", timed_process([TRUSTEDGE, "hash", blob], env=ENV))
                report(alternate("hash FILE vs openssl dgst -sha256", te_sha, openssl,
                                 work=work, pairs=pairs))  # fmt: skip
                report(
                    alternate(
                        "hash FILE vs sha256sum",
                        te_sha,
                        ("sha256sum", timed_process(["sha256sum", blob])),
                        work=work,
                        pairs=pairs,
                    )
                )
                te_tree = (
                    "trustedge hash --tree-only FILE",
                    timed_process([TRUSTEDGE, "hash", "--tree-only", blob], env=ENV),
                )
                report(alternate("hash --tree-only FILE vs openssl dgst -sha256", te_tree,
                                 openssl, work=work, pairs=pairs))  # fmt: skip
                if shutil.which("b3sum"):
                    report(
                        alternate(
                            "hash --tree-only FILE vs b3sum",
                            te_tree,
                            ("b3sum", timed_process(["b3sum", blob])),
                            work=work,
                            pairs=pairs,
                        )
                    )
                else:
                    print("b3sum is not installed: its row is skipped", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
