#!/usr/bin/env python3
"""IMA benchmark: memory of a parsed 200,000-entry list, and parse speed.

    python tools/bench/ima.py [--entries 200000] [--pairs 5] [--report FILE] [--before COMMIT]

Figures (all through ``tools/bench/_harness.py``):

* ``ima memory``: MiB allocated above the input bytes while parsing and verifying the list
  (``tracemalloc`` peak; the input is allocated before tracing starts), target <= 60 MiB;
  the MiB still held after verification and the same figures for the implementation
  before the columnar entries (``--before``, default the commit this branch started from)
  are in the notes.
* ``ima peak RSS``: the same in a fresh process, as the kernel sees it (``VmHWM`` after
  parse + verify minus ``VmRSS`` with the input read; ``/proc/self/clear_refs`` resets the
  high-water mark first).
* ``ima parse`` (ASCII and binary list) and ``ima parse+verify``: trustedge now (A) against
  the ``--before`` implementation (B), alternated in this process (``timed_calls``).
* ``ima parse+verify+policy vs Keylime``: trustedge (A) against Keylime's
  ``process_measurement_list`` (B) with an allow-list of every digest, in this process
  (Keylime 7.14 from the dev extra; its GPGME binding is stubbed, IMA checks do not use it).

The list is the one ``tools/bench/measuredboot.py`` generates (ASCII ``ima-ng``, SHA-256
file digests, SHA-1 PCR10). No files are written.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "bench"))

from _harness import Reporter, add_arguments, alternate, repeat, timed_calls  # noqa: E402
from measuredboot import make_ima_list  # noqa: E402

from trustedge.measuredboot import ima as ima_now  # noqa: E402
from trustedge.measuredboot.policy import ImaRuntimePolicy  # noqa: E402

MIB = 1 << 20
#: The commit this branch started from: ``ImaEntry`` tuples with eagerly decoded fields.
BEFORE = "ab7f6c0"

RSS_CHILD = r"""
import gc, sys
sys.path.insert(0, sys.argv[1])
from trustedge.measuredboot import parse_ima_log, verify_ima_log
data = sys.stdin.buffer.read()
pcr = bytes.fromhex(sys.argv[2])
gc.collect()
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset VmHWM to the current RSS
before = status("VmRSS:")
log = parse_ima_log(data)
verified = verify_ima_log(log, pcr)
assert len(verified.entries) == len(log.unverified_entries)
print(status("VmHWM:") - before)
"""


def load_before(commit: str) -> types.ModuleType:
    """``trustedge/measuredboot/ima.py`` as it was at ``commit``, as a module."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:trustedge/measuredboot/ima.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = "trustedge.measuredboot._ima_before"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:ima.py", "exec"), module.__dict__)
    return module


def binary_list(ascii_list: bytes) -> bytes:
    """The ``binary_runtime_measurements`` form of an ASCII ``ima-ng`` list."""
    log = ima_now.parse_ima_log(ascii_list)
    out = bytearray()
    for e in log.unverified_entries:
        out += e.pcr.to_bytes(4, "little") + e.template_hash
        out += len(b"ima-ng").to_bytes(4, "little") + b"ima-ng"
        out += len(e.template_data).to_bytes(4, "little") + e.template_data
    return bytes(out)


def traced_mib(module: types.ModuleType, data: bytes, pcr: bytes) -> tuple[float, float]:
    """(peak, held after) MiB allocated by parse + verify, above ``data``."""
    gc.collect()
    tracemalloc.start()
    try:
        log = module.parse_ima_log(data)
        verified = module.verify_ima_log(log, pcr)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(verified.entries) == len(log.unverified_entries)
    del log, verified
    return peak / MIB, held / MIB


def rss_mib(data: bytes, pcr: bytes) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(ROOT), pcr.hex()],
        input=data,
        capture_output=True,
        check=True,
    )
    return int(proc.stdout) / MIB


def keylime_policy(policy: ImaRuntimePolicy) -> dict[str, Any]:
    """``policy`` in Keylime's runtime-policy JSON layout."""
    return {
        "meta": {"version": 1, "generator": 0},
        "release": 0,
        "digests": {p: sorted(d.hex() for d in ds) for p, ds in policy.digests.items()},
        "excludes": [],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }


def keylime_runner(data: bytes, policy_doc: dict[str, Any], pcr: bytes) -> Any:
    sys.modules.setdefault("gpg", types.ModuleType("gpg"))  # GPGME binding: unused here
    from keylime.common import algorithms
    from keylime.ima import ima as keylime_ima

    lines = data.decode().splitlines()
    policy = json.loads(json.dumps(policy_doc))

    def run() -> None:
        _running, failure = keylime_ima.process_measurement_list(
            None, lines, policy, pcrval=pcr.hex(), hash_alg=algorithms.Hash.SHA1
        )
        assert not failure, failure

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--before", default=BEFORE, help="commit of the implementation to compare")
    ap.add_argument("--no-keylime", action="store_true", help="skip the Keylime comparison")
    add_arguments(ap)
    args = ap.parse_args()
    report = Reporter("ima", args.report)
    before = load_before(args.before)
    data, policy, pcr = make_ima_list(args.entries)
    binary = binary_list(data)
    n = args.entries
    mib = len(data) / MIB

    peak_before, held_before = traced_mib(before, data, pcr)
    held: list[float] = []

    def memory() -> float:
        peak, now_held = traced_mib(ima_now, data, pcr)
        held.append(now_held)
        return peak

    fig = repeat(
        f"ima memory ({n} entries, {mib:.1f} MiB ASCII input), parse+verify peak above input",
        memory,
        unit="MiB",
        runs=args.pairs,
        target=60,
        higher_is_better=False,
    )
    fig.notes.update(
        held_after_verify_mib=held[-1],
        before_commit=args.before,
        before_peak_mib=peak_before,
        before_held_mib=held_before,
    )
    report(fig)
    fig = repeat(
        f"ima peak RSS ({n} entries), fresh process, parse+verify above input",
        lambda: rss_mib(data, pcr),
        unit="MiB",
        runs=args.pairs,
        target=60,
        higher_is_better=False,
    )
    report(fig)

    for label, blob in (("ASCII", data), ("binary", binary)):
        report(
            alternate(
                f"ima parse {label} ({n} entries)",
                ("trustedge", timed_calls(lambda b=blob: ima_now.parse_ima_log(b), 1)),
                (f"before {args.before}", timed_calls(lambda b=blob: before.parse_ima_log(b), 1)),
                work=f"one parse of {len(blob) / MIB:.1f} MiB",
                pairs=args.pairs,
                target=1.0,
            )
        )
    report(
        alternate(
            f"ima parse+verify ASCII ({n} entries, SHA-1 PCR10)",
            (
                "trustedge",
                timed_calls(lambda: ima_now.verify_ima_log(ima_now.parse_ima_log(data), pcr), 1),
            ),
            (
                f"before {args.before}",
                timed_calls(lambda: before.verify_ima_log(before.parse_ima_log(data), pcr), 1),
            ),
            work="one parse + verify",
            pairs=args.pairs,
            target=1.0,
        )
    )
    if not args.no_keylime:

        def ours() -> None:
            policy.check(ima_now.verify_ima_log(ima_now.parse_ima_log(data), pcr))

        report(
            alternate(
                f"ima parse+verify+policy vs Keylime process_measurement_list ({n} entries)",
                ("trustedge", timed_calls(ours, 1)),
                ("keylime 7.14", timed_calls(keylime_runner(data, keylime_policy(policy), pcr), 1)),
                work="one list, allow-list of every digest",
                pairs=args.pairs,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
