#!/usr/bin/env python3
"""Benchmark: firmware event logs (parse + replay) and IMA lists (parse + verify + policy).

    tools/bench/measuredboot.py [--rounds N] [--ima-entries N] [--pairs P] [--report FILE]
    tools/bench/measuredboot.py --against REV [--pairs P]    # before/after, alternated

Firmware: every shared corpus log that parses (tests/data/third_party/eventlog), parsed and
replayed in all banks, ``--rounds`` times per run; figure = events/s (target 300,000).
IMA: a generated ima-ng list of ``--ima-entries`` entries (SHA-1 PCR 10 bank), parsed,
verified against PCR 10 and checked against an allow-list of all its digests; figure =
entries/s (target 150,000).

``--against REV`` checks REV out into a temporary git worktree and alternates this tree (A)
and REV (B) in child processes, A B A B, for both workloads: the printed ratio is B time / A
time (above 1: this tree is faster). Per-process peers (``tpm2_eventlog``) are compared per
process in ``tools/bench/startup.py``; Keylime's IMA code in-process in ``tools/bench/ima.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness

sys.path.insert(0, str(_harness.tree_root()))

from trustedge.errors import MalformedInputError
from trustedge.measuredboot import parse_event_log, parse_ima_log, verify_ima_log
from trustedge.measuredboot.policy import ImaRuntimePolicy

CORPUS = _harness.ROOT / "tests" / "data" / "third_party" / "eventlog"


def corpus_logs() -> list[bytes]:
    """The corpus logs with expected results that parse (the same set for every tree)."""
    blobs = []
    for expected in sorted(CORPUS.glob("*/expected.json")):
        doc = json.loads(expected.read_text())
        for name, entry in doc["logs"].items():
            path = expected.parent / name
            if not (path.is_file() and "n_records_total" in entry):
                continue
            blob = path.read_bytes()
            try:
                parse_event_log(blob)
            except MalformedInputError:
                continue
            blobs.append(blob)
    return blobs


def firmware_round(blobs: list[bytes]) -> int:
    events = 0
    for blob in blobs:
        log = parse_event_log(blob)
        log.replay()
        events += len(log.unverified_events)
    return events


def make_ima_list(n: int) -> tuple[bytes, ImaRuntimePolicy, bytes]:
    """An ASCII ima-ng list of ``n`` entries (SHA-256 file digests), its allow-list, PCR10."""
    lines = []
    digests: dict[str, set[bytes]] = {}
    pcr = bytes(20)
    for i in range(n):
        path = "boot_aggregate" if i == 0 else f"/usr/lib/bench/file{i:07d}.so"
        digest = hashlib.sha256(f"file {i}".encode()).digest()
        d_ng = b"sha256:\x00" + digest
        n_ng = path.encode() + b"\x00"
        template = len(d_ng).to_bytes(4, "little") + d_ng + len(n_ng).to_bytes(4, "little") + n_ng
        template_hash = hashlib.sha1(template).digest()
        pcr = hashlib.sha1(pcr + template_hash).digest()
        lines.append(f"10 {template_hash.hex()} ima-ng sha256:{digest.hex()} {path}")
        digests.setdefault(path, set()).add(digest)
    policy = ImaRuntimePolicy(digests={p: frozenset(d) for p, d in digests.items()})
    return ("\n".join(lines) + "\n").encode(), policy, pcr


def ima_run(data: bytes, policy: ImaRuntimePolicy, pcr10: bytes) -> None:
    verified = verify_ima_log(parse_ima_log(data), pcr10)
    policy.check(verified)


def child(args: argparse.Namespace) -> int:
    """One timed workload in this process; prints the harness's child JSON line."""
    import trustedge

    if args.child == "firmware":
        blobs = corpus_logs()
        firmware_round(blobs)  # warm-up
        start = time.perf_counter()
        for _ in range(args.rounds):
            firmware_round(blobs)
    else:
        data, policy, pcr10 = make_ima_list(args.ima_entries)
        start = time.perf_counter()
        ima_run(data, policy, pcr10)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "trustedge": trustedge.__file__}))
    return 0


def against(args: argparse.Namespace, report: _harness.Reporter) -> int:
    script = Path(__file__).resolve()
    head = _harness.describe_tree()
    with _harness.old_tree(args.against) as old:
        print(f"A = {head} ({_harness.ROOT}); B = {args.against} ({old})", flush=True)
        for workload, extra in (
            ("firmware", ["--rounds", str(args.rounds)]),
            ("ima", ["--ima-entries", str(args.ima_entries)]),
        ):
            argv = ["--child", workload, *extra]
            report(
                _harness.alternate(
                    f"measuredboot {workload} before/after",
                    (head, _harness.tree_run(_harness.ROOT, script, argv)),
                    (args.against, _harness.tree_run(old, script, argv)),
                    work=(
                        f"{workload}: "
                        + (f"{args.rounds} rounds of the corpus" if workload == "firmware"
                           else f"{args.ima_entries} ima-ng entries")
                    ),
                    pairs=args.pairs,
                    target=1.0,
                )
            )  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="corpus rounds per firmware run")
    parser.add_argument("--ima-entries", type=int, default=200_000)
    parser.add_argument("--against", metavar="REV", help="alternate this tree with git REV")
    parser.add_argument("--child", choices=("firmware", "ima"), help=argparse.SUPPRESS)
    _harness.add_arguments(parser)
    args = parser.parse_args()
    if args.child:
        return child(args)
    report = _harness.Reporter("measuredboot", args.report)
    if args.against:
        return against(args, report)
    blobs = corpus_logs()
    events = firmware_round(blobs)

    def firmware_rate() -> float:
        start = time.perf_counter()
        for _ in range(args.rounds):
            firmware_round(blobs)
        return events * args.rounds / (time.perf_counter() - start)

    report(
        _harness.repeat(
            f"firmware parse+replay ({len(blobs)} corpus logs, {events} events a round)",
            firmware_rate, unit="events/s", runs=args.pairs, target=300_000,
        )
    )  # fmt: skip
    data, policy, pcr10 = make_ima_list(args.ima_entries)

    def ima_rate() -> float:
        start = time.perf_counter()
        ima_run(data, policy, pcr10)
        return args.ima_entries / (time.perf_counter() - start)

    report(
        _harness.repeat(
            f"IMA parse+verify+policy ({args.ima_entries} ima-ng entries, SHA-1 PCR 10)",
            ima_rate, unit="entries/s", runs=args.pairs, target=150_000,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
