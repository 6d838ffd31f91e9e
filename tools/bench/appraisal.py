#!/usr/bin/env python3
"""Benchmark skeleton for appraisals: the parts that exist before the merge.

Measures, per appraisal, what does not depend on quote verification or log
replay (the lead adds those stages after merging measured boot and quotes):

* store round trip of one appraisal -- issue nonce, consume it, read device,
  quote-clock and IMA state, record the appraisal (two compare-and-sets) --
  on SQLite (one process) and on PostgreSQL (2 worker processes, when
  ``TRUSTEDGE_PG_DSN`` is set, e.g. under ``tools/test``'s cluster);
* evidence bundle encode + decode with a 60-event-sized firmware log and
  1,000 IMA entries;
* EAR signing and verification as JWT (ES256) and CWT (EdDSA).

Prints absolute rates and the ratio against the issue's target of 500 full
appraisals per second per core. Usage::

    python tools/bench/appraisal.py [--seconds 2] [--pg-workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge.attestation.ear import (
    AttestationResult,
    VerifierId,
    sign_cwt,
    sign_jwt,
    verify_result,
)
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.findings import Finding, appraisal_from_findings
from trustedge.attestation.nonces import NonceIssuer
from trustedge.attestation.store import (
    DeviceRecord,
    ImaState,
    PostgresStore,
    QuoteClockState,
    SQLiteStore,
)
from trustedge.attestation.store._sql import SQLStore

TARGET_PER_CORE = 500.0
NOW = 1_700_000_000
DEVICES = 32


def rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls per second of ``fn(i)`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn(n)
        n += 1
    return n / elapsed


def seed(store: SQLStore, workers: int) -> None:
    for w in range(workers):
        for d in range(DEVICES):
            device_id = f"dev-{w}-{d}"
            if store.get_device(device_id) is None:
                store.add_device(DeviceRecord(device_id=device_id, ek_public=b"ek"))
                store.bind_ak(device_id, b"ak", b"\x00\x0b" + bytes(32), NOW)


def store_appraisal(store: SQLStore, issuer: NonceIssuer, i: int, worker: int) -> None:
    """The store traffic of one appraisal, as Verifier.appraise will do it.

    Challenge (one write), one read snapshot, one commit that consumes the
    nonce and advances both states. Each worker owns its devices: concurrent
    appraisals of one device are refused by design (compare-and-set).
    """
    device_id = f"dev-{worker}-{i % DEVICES}"
    challenge = issuer.challenge(device_id, NOW)
    state = store.device_state(device_id)
    quote, ima = state.quote, state.ima
    new_quote = QuoteClockState(1, 0, (quote.clock if quote else 0) + 1)
    new_ima = ImaState((ima.offset if ima else 0) + 1000, bytes(32))
    store.record_appraisal(
        device_id,
        quote=(quote, new_quote),
        ima=(ima, new_ima),
        nonce=challenge.nonce,
        now=NOW + 1,
    )


def _pg_worker(
    dsn: str, schema: str, worker: int, seconds: float, out: multiprocessing.Queue[object]
) -> None:
    try:
        store = PostgresStore(dsn, schema=schema)
        issuer = NonceIssuer(store)
        out.put(rate(lambda i: store_appraisal(store, issuer, i, worker), seconds))
        store.close()
    except BaseException as exc:
        out.put(exc)


def bench_stores(seconds: float, pg_workers: int) -> dict[str, float]:
    results: dict[str, float] = {}
    for durable in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "bench.db", durable=durable)
            seed(store, 1)
            issuer = NonceIssuer(store)
            name = f"store/sqlite 1 proc, durable={durable}"
            results[name] = rate(
                lambda i, s=store, n=issuer: store_appraisal(s, n, i, 0),  # type: ignore[misc]
                seconds,
            )
            store.close()
    dsn = os.environ.get("TRUSTEDGE_PG_DSN")
    if not dsn:
        print("TRUSTEDGE_PG_DSN not set: PostgreSQL skipped", file=sys.stderr)
        return results
    for workers in sorted({1, pg_workers}):
        schema = "bench_" + uuid.uuid4().hex[:12]
        seeder = PostgresStore(dsn, schema=schema)
        seed(seeder, workers)
        ctx = multiprocessing.get_context("fork")
        out: multiprocessing.Queue[object] = ctx.Queue()
        procs = [
            ctx.Process(target=_pg_worker, args=(dsn, schema, w, seconds, out))
            for w in range(workers)
        ]
        for p in procs:
            p.start()
        rates = [out.get(timeout=seconds + 60) for _ in procs]
        for p in procs:
            p.join()
        with seeder.transaction() as tx:
            tx.run(f"DROP SCHEMA {schema} CASCADE")
        seeder.close()
        for r in rates:
            if isinstance(r, BaseException):
                raise r
        results[f"store/postgres {workers} procs (sum)"] = sum(float(r) for r in rates)  # type: ignore[arg-type]
    return results


def sample_evidence() -> Evidence:
    ima_line = b"10 " + b"a" * 40 + b" ima-ng sha256:" + b"b" * 64 + b" /usr/bin/example\n"
    return Evidence(
        device_id="dev-1",
        nonce=bytes(32),
        quote=bytes(145),
        signature=bytes(72),
        ak_public=bytes(90),
        pcrs={0x000B: {i: bytes(32) for i in range(24)}},
        event_log=bytes(60 * 700),  # ~60 events of typical size
        ima_log=ima_line * 1000,
        ima_offset=5000,
    )


def bench_codecs(seconds: float) -> dict[str, float]:
    wire = sample_evidence().encode()
    p256 = ec.generate_private_key(ec.SECP256R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    appraisal = appraisal_from_findings(
        [Finding.AK_ENROLLED, Finding.SOFTWARE_TPM, Finding.BOOT_APPROVED, Finding.RUNTIME_APPROVED]
    )
    result = AttestationResult(
        NOW, VerifierId("bench", "trustedge"), {"dev-1": appraisal}, bytes(32)
    )
    jwt, cwt = sign_jwt(result, p256), sign_cwt(result, ed)
    return {
        f"evidence decode+encode ({len(wire) // 1024} KiB)": rate(
            lambda i: Evidence.decode(wire).encode(), seconds
        ),
        "EAR sign JWT ES256": rate(lambda i: sign_jwt(result, p256), seconds),
        "EAR verify JWT ES256": rate(lambda i: verify_result(jwt, p256.public_key()), seconds),
        "EAR sign CWT EdDSA": rate(lambda i: sign_cwt(result, ed), seconds),
        "EAR verify CWT EdDSA": rate(lambda i: verify_result(cwt, ed.public_key()), seconds),
    }


def fsync_latency(samples: int = 20) -> float:
    """Median seconds of one small write + fsync in a temp dir: what bounds a durable commit."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(Path(tmp) / "probe", os.O_WRONLY | os.O_CREAT)
        try:
            for _ in range(samples):
                start = time.perf_counter()
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
                times.append(time.perf_counter() - start)
        finally:
            os.close(fd)
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--pg-workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()} (CPU shared with other work)")
    print(
        f"fsync latency (median): {fsync_latency() * 1e3:.2f} ms -- bounds durable SQLite commits"
    )
    figures = {**bench_stores(args.seconds, args.pg_workers), **bench_codecs(args.seconds)}
    width = max(len(name) for name in figures)
    for name, per_second in figures.items():
        print(
            f"{name:<{width}}  {per_second:10.0f}/s  {1e6 / per_second:9.1f} µs"
            f"  x{per_second / TARGET_PER_CORE:6.2f} of the {TARGET_PER_CORE:.0f}/s target"
        )
    # TODO(lead, after merge): add quote verification, firmware-log replay (60 events)
    # and IMA incremental replay (1,000 entries), then report full appraisals/s.
    return 0


if __name__ == "__main__":
    sys.exit(main())
