#!/usr/bin/env python3
"""Start-up and batch mode: trustedge commands as scripts call them, one process each.

Figures (``repeat``, milliseconds per process, target <= 80 ms): ``trustedge --help`` (the
console script and ``python -m trustedge``), ``attest --help``, ``quote verify --help``,
one small ``quote verify`` and ``eventlog replay``, beside bare ``python -c pass`` and
``age --version``. Comparisons (``alternate``, per-process peers timed per process):

* one quote per process: ``trustedge quote verify`` vs ``tpm2_checkquote``;
* one log per process: ``trustedge eventlog replay`` vs ``tpm2_eventlog``;
* batch mode: N quotes in one ``quote verify`` process vs N ``tpm2_checkquote`` processes,
  and N logs in one ``eventlog replay`` vs N ``tpm2_eventlog`` processes;
* with ``--against COMMIT``: this tree vs COMMIT's tree (a temporary ``git worktree``, run
  first on ``sys.path``) on the same commands -- the before/after of the start-up work.

Children run with byte-code caching on (``PYTHONDONTWRITEBYTECODE`` removed from their
environment; the harness's untimed warm-up writes the caches): this environment sets it,
and with it every start recompiles every module. Inputs live in a temporary directory that
is removed at the end. Usage: ``tools/bench/startup.py [--pairs N] [--report FILE]
[--batch N] [--starts N] [--against COMMIT]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from _harness import (  # noqa: E402
    Reporter,
    Run,
    add_arguments,
    alternate,
    repeat,
    timed_process,
)

SELECTION = {"sha256": [0, 1, 2, 3, 7]}
LOG = ROOT / "tests/data/third_party/eventlog/tpm2-tss/binary_measurements_pc_client.bin"
TARGET_MS = 80.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte-code caching on (see the docstring)
    return env


def _quotes(tmp: Path, count: int) -> list[tuple[Path, str]]:
    """``count`` quotes from a SoftwareTPM (ECDSA P-256 AK): (PREFIX, nonce hex); PREFIX.msg,
    .sig, .pcrs (tpm2-tools formats), and ak.tpm2b / ak.pem in ``tmp``."""
    from cryptography.hazmat.primitives import serialization

    from trustedge.attestation.backends.software import SoftwareTPM
    from trustedge.hazmat.tpm2 import PCRSelectionList, Public, write_pcr_file

    tpm = SoftwareTPM(tmp / "tpm")
    ak = tpm.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    public = Public.unmarshal_tpm2b(ak.public)
    (tmp / "ak.tpm2b").write_bytes(ak.public)
    pem = public.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp / "ak.pem").write_bytes(pem)
    out = []
    for i in range(count):
        nonce = os.urandom(16)
        q = tpm.quote(ak, nonce, SELECTION)
        prefix = tmp / f"q{i}"
        Path(f"{prefix}.msg").write_bytes(q.message)
        Path(f"{prefix}.sig").write_bytes(q.signature)
        pcrs = write_pcr_file(PCRSelectionList.from_mapping(SELECTION), q.pcrs)
        Path(f"{prefix}.pcrs").write_bytes(pcrs)
        out.append((prefix, nonce.hex()))
    return out


def _quote_args(quotes: Sequence[tuple[Path, str]], tmp: Path) -> list[str]:
    argv = ["quote", "verify", "--ak", str(tmp / "ak.tpm2b")]
    for prefix, nonce in quotes:
        argv += ["--message", f"{prefix}.msg", "--signature", f"{prefix}.sig",
                 "--pcr-values", f"{prefix}.pcrs", "--nonce", nonce]  # fmt: skip
    return argv


def _checkquote(prefix: Path, nonce: str, tmp: Path) -> list[str]:
    return ["tpm2_checkquote", "-u", str(tmp / "ak.pem"), "-m", f"{prefix}.msg",
            "-s", f"{prefix}.sig", "-f", f"{prefix}.pcrs", "-g", "sha256", "-q", nonce]  # fmt: skip


def _each(runs: Sequence[Run]) -> Run:
    """One run that does every run of ``runs`` in turn (N peer processes = one sample)."""

    def run() -> float:
        return sum(r() for r in runs)

    return run


def _per_start(run: Run, starts: int) -> float:
    return run() / starts * 1e3


def _worktree(commit: str, tmp: Path) -> Path:
    """COMMIT checked out in a temporary git worktree, with this tree's built C extension
    (so both sides hash with the same code); removed by :func:`_drop_worktree`."""
    tree = tmp / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree),
                    commit], check=True)  # fmt: skip
    for ext in (ROOT / "trustedge" / "hashing").glob("_speedups*.so"):
        shutil.copy2(ext, tree / "trustedge" / "hashing" / ext.name)
    return tree


def _drop_worktree(tree: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                   check=False)  # fmt: skip


def _launcher(py: str, tree: Path) -> list[str]:
    """``trustedge`` from the tree at ``tree`` (first on ``sys.path``: the editable install's
    finder would otherwise win over ``PYTHONPATH``); the same launcher for both sides."""
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); "
            "from trustedge._cli import main; sys.exit(main())")  # fmt: skip
    return [py, "-c", code]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    parser.add_argument("--batch", type=int, default=20, help="inputs per batch (default 20)")
    parser.add_argument("--starts", type=int, default=10,
                        help="processes per timed run of a figure (default 10)")  # fmt: skip
    parser.add_argument("--against", metavar="COMMIT",
                        help="also compare with COMMIT's tree (git worktree)")  # fmt: skip
    args = parser.parse_args()
    report = Reporter("startup", args.report)
    py = sys.executable
    script = str(Path(py).parent / "trustedge")
    env = _env()
    print("children run with byte-code caching on (PYTHONDONTWRITEBYTECODE unset); "
          f"python {py}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="trustedge-bench-startup-") as d:
        tmp = Path(d)
        quotes = _quotes(tmp, args.batch)
        one_quote = _quote_args(quotes[:1], tmp)
        logs = []
        for i in range(args.batch):
            logs.append(tmp / f"log{i}.bin")
            shutil.copyfile(LOG, logs[-1])

        def te(*argv: str, times: int = 1, use_script: bool = True) -> Run:
            cmd = [script, *argv] if use_script else [py, "-m", "trustedge", *argv]
            return timed_process(cmd, times=times, env=env, cwd=tmp)

        # -- figures: ms per process ----------------------------------------------------
        n = args.starts
        figures: list[tuple[str, Run, float | None]] = [
            ("python -c pass", timed_process([py, "-c", "pass"], times=n, env=env), None),
            ("trustedge --help (console script)", te("--help", times=n), TARGET_MS),
            ("python -m trustedge --help", te("--help", times=n, use_script=False), TARGET_MS),
            ("trustedge attest --help", te("attest", "--help", times=n), TARGET_MS),
            ("trustedge quote verify --help", te("quote", "verify", "--help", times=n),
             TARGET_MS),
            ("trustedge quote verify, one quote", te(*one_quote, times=n), TARGET_MS),
            ("trustedge eventlog replay, one log", te("eventlog", "replay", str(LOG), times=n),
             TARGET_MS),
        ]  # fmt: skip
        if shutil.which("age"):
            figures.append(("age --version", timed_process(["age", "--version"], times=n), None))
        for name, run, target in figures:
            report(repeat(f"startup: {name}", lambda run=run: _per_start(run, n), unit="ms "
                          "per process", runs=args.pairs, target=target,
                          higher_is_better=False))  # fmt: skip
        report(alternate("startup: --help vs bare python", ("trustedge --help", te("--help")),
                         ("python -c pass", timed_process([py, "-c", "pass"], env=env)),
                         work="one process", pairs=args.pairs))  # fmt: skip

        # -- per-process peers -----------------------------------------------------------
        prefix, nonce = quotes[0]
        if shutil.which("tpm2_checkquote"):
            report(alternate(
                "startup: one quote per process",
                ("trustedge quote verify", te(*one_quote, times=n)),
                ("tpm2_checkquote", timed_process(_checkquote(prefix, nonce, tmp), times=n)),
                work=f"{n} processes, one quote each", pairs=args.pairs,
            ))  # fmt: skip
            report(alternate(
                f"startup: batch of {args.batch} quotes",
                ("trustedge quote verify (one process)", te(*_quote_args(quotes, tmp))),
                (f"tpm2_checkquote ({args.batch} processes)", _each(
                    [timed_process(_checkquote(p, q, tmp)) for p, q in quotes])),
                work=f"{args.batch} quotes", pairs=args.pairs,
            ))  # fmt: skip
        if shutil.which("tpm2_eventlog"):
            report(alternate(
                "startup: one log per process",
                ("trustedge eventlog replay", te("eventlog", "replay", str(LOG), times=n)),
                ("tpm2_eventlog", timed_process(["tpm2_eventlog", str(LOG)], times=n)),
                work=f"{n} processes, one log each", pairs=args.pairs,
            ))  # fmt: skip
            report(alternate(
                f"startup: batch of {args.batch} logs",
                ("trustedge eventlog replay (one process)",
                 te("eventlog", "replay", *map(str, logs))),
                (f"tpm2_eventlog ({args.batch} processes)", _each(
                    [timed_process(["tpm2_eventlog", str(p)]) for p in logs])),
                work=f"{args.batch} logs", pairs=args.pairs,
            ))  # fmt: skip

        # -- before/after ----------------------------------------------------------------
        if args.against:
            tree = _worktree(args.against, tmp)
            try:
                for label, argv in (
                    ("--help", ["--help"]),
                    ("attest --help", ["attest", "--help"]),
                    ("quote verify --help", ["quote", "verify", "--help"]),
                    ("quote verify, one quote", one_quote),
                    ("eventlog replay, one log", ["eventlog", "replay", str(LOG)]),
                ):
                    new_cmd = [*_launcher(py, ROOT), *argv]
                    old_cmd = [*_launcher(py, tree), *argv]
                    report(alternate(
                        f"startup: {label}, this tree vs {args.against}",
                        ("this tree", timed_process(new_cmd, times=n, env=env, cwd=tmp)),
                        (args.against, timed_process(old_cmd, times=n, env=env, cwd=tmp)),
                        work=f"{n} processes", pairs=args.pairs,
                    ))  # fmt: skip
            finally:
                _drop_worktree(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
