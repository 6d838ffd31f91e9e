#!/usr/bin/env python3
"""Benchmark: firmware event logs (parse+replay) and IMA lists (parse+verify+policy).

Peers, measured in the same run:
- ``tpm2_eventlog`` (Debian tpm2-tools), one process per shared log, as Keylime runs it;
- Keylime's ``process_measurement_list`` on the same generated IMA list and allow-list,
  run with ``--keylime-python`` (a throwaway venv with ``pip install keylime``; never a
  project dependency).

Usage: tools/bench/measuredboot.py [--rounds N] [--ima-entries N] [--keylime-python PATH]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from trustedge.errors import MalformedInputError  # noqa: E402
from trustedge.measuredboot import parse_event_log, parse_ima_log, verify_ima_log  # noqa: E402
from trustedge.measuredboot.policy import ImaRuntimePolicy  # noqa: E402

SHARED = ROOT / "tests" / "data" / "third_party"

KEYLIME_SCRIPT = r"""
import json, sys, time, types
sys.modules.setdefault("gpg", types.ModuleType("gpg"))  # GPGME binding: unused by IMA checks
from keylime.ima import ima
from keylime.common import algorithms
lines = open(sys.argv[1]).read().splitlines()
policy = json.load(open(sys.argv[2]))
pcr = sys.argv[3]
start = time.perf_counter()
cpu = time.process_time()
running, failure = ima.process_measurement_list(None, lines, policy, pcrval=pcr,
                                                hash_alg=algorithms.Hash.SHA1)
elapsed = time.perf_counter() - start
cpu = time.process_time() - cpu
print(json.dumps({"seconds": elapsed, "cpu": cpu, "ok": not failure, "running": running}))
"""


def _shared_logs() -> list[Path]:
    out = []
    for expected in sorted((SHARED / "eventlog").glob("*/expected.json")):
        doc = json.loads(expected.read_text())
        for name, entry in doc["logs"].items():
            path = expected.parent / name
            if path.is_file() and "n_records_total" in entry:
                out.append(path)
    return out


def bench_firmware(rounds: int) -> dict[str, float]:
    logs = []
    for path in _shared_logs():
        try:
            parse_event_log(path.read_bytes())
        except MalformedInputError:
            continue
        logs.append(path)
    blobs = [p.read_bytes() for p in logs]
    events = 0
    start = time.perf_counter()
    cpu = time.process_time()
    for _ in range(rounds):
        for blob in blobs:
            log = parse_event_log(blob)
            log.replay()
            events += len(log.unverified_events)
    ours = events / (time.perf_counter() - start)
    ours_cpu = events / (time.process_time() - cpu)
    result = {
        "logs": len(blobs),
        "events_per_round": events / rounds,
        "trustedge_events_per_s_wall": ours,
        "trustedge_events_per_s_cpu": ours_cpu,
    }
    tool = shutil.which("tpm2_eventlog")
    if tool:
        ok_events = 0
        ok_logs = 0
        counts = [len(parse_event_log(blob).unverified_events) for blob in blobs]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        for path, n_events in zip(logs, counts, strict=True):
            proc = subprocess.run([tool, str(path)], capture_output=True, check=False)
            if proc.returncode == 0:
                ok_logs += 1
                ok_events += n_events
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        result["tpm2_eventlog_logs_ok"] = float(
            sum(
                1
                for p in logs
                if subprocess.run([tool, str(p)], capture_output=True, check=False).returncode == 0
            )
        )
        result["tpm2_eventlog_events_per_s_wall"] = ok_events / elapsed
        result["tpm2_eventlog_events_per_s_cpu"] = ok_events / max(child_cpu, 1e-9)
        result["ratio_vs_tpm2_eventlog_wall"] = ours / (ok_events / elapsed)
        result["ratio_vs_tpm2_eventlog_cpu"] = ours_cpu / (ok_events / max(child_cpu, 1e-9))
    return result


def make_ima_list(n: int) -> tuple[bytes, dict[str, object], bytes]:
    """An ASCII ima-ng list of ``n`` entries (SHA-256 file digests), its allow-list, PCR10."""
    lines = []
    digests: dict[str, list[str]] = {}
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
        digests.setdefault(path, []).append(digest.hex())
    policy = {
        "meta": {"version": 1, "generator": 0},
        "release": 0,
        "digests": digests,
        "excludes": [],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }
    return ("\n".join(lines) + "\n").encode(), policy, pcr


def bench_ima(n: int, keylime_python: str | None) -> dict[str, float]:
    data, policy_doc, pcr10 = make_ima_list(n)
    policy_json = json.dumps(policy_doc)
    digests = policy_doc["digests"]
    assert isinstance(digests, dict)
    policy = ImaRuntimePolicy(
        digests={path: frozenset(bytes.fromhex(d) for d in ds) for path, ds in digests.items()}
    )
    # Drop the generator's JSON-shaped copy so only what a verifier holds is in memory.
    del policy_doc, digests
    gc.collect()
    start = time.perf_counter()
    cpu = time.process_time()
    log = parse_ima_log(data)
    verified = verify_ima_log(log, pcr10)
    policy.check(verified)
    ours_s = time.perf_counter() - start
    ours_cpu = time.process_time() - cpu
    assert len(verified.entries) == n
    del log, verified
    gc.collect()
    start = time.perf_counter()
    log = parse_ima_log(data)
    verify_ima_log(log, pcr10)
    replay_s = time.perf_counter() - start
    result = {
        "entries": float(n),
        "trustedge_entries_per_s_wall": n / ours_s,
        "trustedge_entries_per_s_cpu": n / ours_cpu,
        "trustedge_parse_verify_only_entries_per_s_wall": n / replay_s,
    }
    if keylime_python:
        with tempfile.TemporaryDirectory() as tmp:
            list_path = Path(tmp) / "ascii_runtime_measurements"
            policy_path = Path(tmp) / "policy.json"
            script = Path(tmp) / "run.py"
            list_path.write_bytes(data)
            policy_path.write_text(policy_json)
            script.write_text(KEYLIME_SCRIPT)
            proc = subprocess.run(
                [keylime_python, str(script), str(list_path), str(policy_path), pcr10.hex()],
                capture_output=True,
                text=True,
                check=False,
                cwd=tmp,
            )
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
            else:
                report = json.loads(proc.stdout.strip().splitlines()[-1])
                result["keylime_ok"] = float(bool(report["ok"]))
                result["keylime_entries_per_s_wall"] = n / report["seconds"]
                result["keylime_entries_per_s_cpu"] = n / report["cpu"]
                result["ratio_vs_keylime_wall"] = (n / ours_s) / (n / report["seconds"])
                result["ratio_vs_keylime_cpu"] = (n / ours_cpu) / (n / report["cpu"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--ima-entries", type=int, default=200_000)
    parser.add_argument("--keylime-python", help="python of a venv with keylime installed")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    firmware = bench_firmware(args.rounds)
    print("firmware event logs (parse + replay, all banks):")
    for key, value in firmware.items():
        print(f"  {key}: {value:,.1f}")
    ima = bench_ima(args.ima_entries, args.keylime_python)
    print(f"IMA list ({args.ima_entries} ima-ng entries, SHA-1 PCR10, allow-list of all digests):")
    for key, value in ima.items():
        print(f"  {key}: {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
