#!/usr/bin/env python3
"""Load test of the fleet verifier: simulated devices pushing evidence over loopback.

The server is the real ``trustedge verifier serve`` (supervisor + ``--workers`` worker
processes on one socket) on PostgreSQL and on SQLite. The generator is cheap so that the
2-core machine spends its time in the server:

* devices are enrolled directly in the store (``add_device`` + ``bind_ak``; no HTTP);
* every device has its own P-256 AK (a TPM ``TPMT_PUBLIC`` built around a key made with
  cryptography) under one software TPM's EK, whose certificate the server checks;
* a push is the real protocol: ``POST /challenges`` gives a fresh nonce and the IMA offset,
  the client builds the TPMS_ATTEST a TPM would (nonce, an advancing clock, the PCR
  digest of this round) with the hazmat encoder and signs it with the device's AK --
  legitimate because the server verifies everything it would verify for a real TPM --
  and ``POST /evidence`` sends the CBOR evidence: a 60-event firmware log (Secure Boot on,
  replayed and checked at every push) and ``--ima-per-push`` new IMA entries (replayed
  against PCR 10 from the stored position; all devices share one IMA stream, so each
  round's PCR 10 is computed once). A result counts only when it is ``affirming``.

The client is asyncio (uvloop) + httptools in ``--clients`` processes with ``--concurrency``
connections each (a device is never pushed twice at once); it stops by itself after
``--warmup`` + ``--seconds``. Figures are taken over the ``--seconds`` window: sustained
appraisals/s, p50/p99 latency of the evidence call and of the whole push, errors, store
connections in use (``/metrics`` pool gauges and ``pg_stat_activity``), server CPU time per
appraisal (workers' utime+stime from /proc; PostgreSQL backends separately when the
cluster is the bench's own) and the load average.

Without ``--store`` PostgreSQL runs on a private throwaway cluster (fsync on, as in
production) and SQLite in a temporary file (durable). Usage::

    python tools/bench/fleet.py --devices 10000 --seconds 60 --workers 2
    python tools/bench/fleet.py --devices 500 --seconds 10 --stores postgres
    python tools/bench/fleet.py --store postgresql://user@host/db   # an existing server
    python tools/bench/fleet.py --tls --concurrency 8               # HTTPS, 16 pushes in flight
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from _evidence import (  # noqa: E402  (tools/bench: the evidence both benches send)
    MemoryTPM,
    boot_aggregate_entry,
    firmware_log,
    ima_entry,
    quote_message,
    sign_quote,
)
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.fleet_support import PrivatePostgres, tls_files  # noqa: E402
from trustedge.attestation.evidence import Evidence  # noqa: E402
from trustedge.attestation.simulate import boot_from_event_log  # noqa: E402
from trustedge.attestation.store import DeviceRecord, open_store  # noqa: E402
from trustedge.hazmat.tpm2 import (  # noqa: E402
    PCRSelectionList,
    Public,
    TPMAlg,
    TPMHandle,
    ak_template,
    pcr_composite_digest,
    qualified_name,
    with_key,
)
from trustedge.measuredboot import parse_ima_log  # noqa: E402
from trustedge.measuredboot.ima import boot_aggregate_candidates  # noqa: E402

PCRS = (0, 1, 2, 3, 4, 5, 6, 7, 10)
PROGRAMS = 40  # distinct runtime paths in the policy; the IMA stream cycles through them
REG_TOKEN = "bench-registration-token-0123456789"
OP_TOKEN = "bench-operator-token-0123456789"


def program(i: int) -> tuple[str, bytes]:
    path = f"/usr/lib/edge/app{i % PROGRAMS:02d}"
    return path, hashlib.sha256(path.encode()).digest()


def policy_document() -> dict[str, Any]:
    return {
        "version": 1,
        "policy_id": "fleet-bench",
        "bank": "sha256",
        "pcrs": list(PCRS),
        "secure_boot": True,
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
        "runtime": {
            "digests": {program(i)[0]: [program(i)[1].hex()] for i in range(PROGRAMS)},
        },
    }


@dataclass(frozen=True)
class BenchDevice:
    device_id: str
    ak_public: bytes  # TPM2B_PUBLIC
    ak_name: bytes
    qualified_signer: bytes
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Fleet:
    ek_public: bytes
    ek_certificate: bytes
    ek_ca_pem: bytes
    firmware: bytes
    pcrs: dict[int, bytes]  # PCRs 0-9 after the boot (sha256)
    boot_aggregate: bytes
    devices: list[BenchDevice]


def make_fleet(count: int, workdir: Path) -> Fleet:
    tpm = MemoryTPM(workdir / "tpm")
    fw = firmware_log()
    boot_from_event_log(tpm, fw, banks=("sha256",))
    pcrs = tpm.pcr_read({"sha256": list(range(10))})["sha256"]
    ek_public = tpm.ek_public("ecc-p256")
    ek_cert = tpm.ek_certificate("ecc-p256")
    assert ek_cert is not None
    from cryptography import x509

    ca_pem = x509.load_der_x509_certificate(tpm.ek_ca_certificate()).public_bytes(
        serialization.Encoding.PEM
    )
    ek = Public.unmarshal_tpm2b(ek_public)
    qn_ek = qualified_name(int(TPMHandle.RH_ENDORSEMENT).to_bytes(4, "big"), ek.name(), ek.name_alg)
    template = ak_template("ecc-p256-ecdsa")
    devices = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        public = with_key(template, key.public_key())
        devices.append(
            BenchDevice(
                f"bench-{i:06d}", public.marshal_tpm2b(), public.name(),
                qualified_name(qn_ek, public.name(), public.name_alg), key,
            )
        )  # fmt: skip
    agg = boot_aggregate_candidates(pcrs, "sha256")[0]  # H(PCR0..7): PCRs 8-9 are not quoted
    return Fleet(ek_public, ek_cert, ca_pem, fw, dict(pcrs), agg, devices)


def _enroll_share(fleet: Fleet, location: str, share: range) -> None:
    store = open_store(location, durable=False)
    now = int(time.time())
    try:
        for i in share:
            d = fleet.devices[i]
            store.add_device(DeviceRecord(d.device_id, fleet.ek_public, fleet.ek_certificate))
            store.bind_ak(d.device_id, d.ak_public, d.ak_name, now)
    finally:
        store.close()


def enroll(fleet: Fleet, location: str, processes: int) -> float:
    """Every device enrolled with its AK bound, straight into the store; returns seconds.
    (PostgreSQL: ``processes`` processes at once; SQLite has one writer anyway.)"""
    started = time.perf_counter()
    n = len(fleet.devices)
    if location.endswith(".db") or processes <= 1:
        _enroll_share(fleet, location, range(n))
        return time.perf_counter() - started
    ctx = multiprocessing.get_context("fork")
    open_store(location).close()  # the schema, created once
    procs = [ctx.Process(target=_enroll_share, args=(fleet, location, range(p, n, processes)))
             for p in range(processes)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError("enrollment failed")
    return time.perf_counter() - started


class ImaStream:
    """The IMA list all devices share: entry 0 is boot_aggregate, then the programs."""

    def __init__(self, boot_aggregate: bytes, per_push: int) -> None:
        self.per_push = per_push
        self.entries: list[bytes] = [boot_aggregate_entry(boot_aggregate)]
        self.pcr10 = [bytes(32)]  # PCR 10 after i entries
        self._extend(self.entries[0])

    def _extend(self, entry: bytes) -> None:
        data = parse_ima_log(entry).unverified_entries[0].template_data
        self.pcr10.append(hashlib.sha256(self.pcr10[-1] + hashlib.sha256(data).digest()).digest())

    def chunk(self, offset: int) -> tuple[bytes, bytes]:
        """(entries offset..offset+per_push, PCR 10 after them)."""
        end = offset + self.per_push
        while len(self.entries) < end:
            entry = ima_entry(*program(len(self.entries)))
            self.entries.append(entry)
            self._extend(entry)
        return b"".join(self.entries[offset:end]), self.pcr10[end]


class Pusher:
    """Builds one device's evidence for a challenge (what its TPM and agent would send)."""

    def __init__(self, fleet: Fleet, per_push: int) -> None:
        self.fleet = fleet
        self.ima = ImaStream(fleet.boot_aggregate, per_push)
        self.selection = PCRSelectionList.from_mapping({"sha256": list(PCRS)})
        self.clock: dict[str, int] = {}
        self._digests: dict[int, bytes] = {}

    def evidence(self, d: BenchDevice, nonce: bytes, ima_offset: int) -> bytes:
        chunk, pcr10 = self.ima.chunk(ima_offset)
        values = {i: self.fleet.pcrs[i] for i in PCRS if i != 10}
        values[10] = pcr10
        digest = self._digests.get(ima_offset)
        if digest is None:
            ordered = [values[i] for _, i in self.selection.pcr_order()]
            digest = self._digests[ima_offset] = pcr_composite_digest(TPMAlg.SHA256, ordered)
        clock = max(self.clock.get(d.device_id, 0) + 1, int(time.monotonic() * 1000))
        self.clock[d.device_id] = clock
        message = quote_message(d.qualified_signer, nonce, clock, self.selection, digest)
        signature = sign_quote(d.key, message)
        return Evidence(
            device_id=d.device_id, nonce=nonce, quote=message, signature=signature,
            ak_public=d.ak_public, pcrs={0x000B: values}, event_log=self.fleet.firmware,
            ima_log=chunk, ima_offset=ima_offset,
        ).encode()  # fmt: skip


@dataclass
class ClientStats:
    ok: int = 0
    errors: int = 0
    not_affirming: int = 0
    push_latency: list[float] | None = None
    evidence_latency: list[float] | None = None
    first_errors: list[str] | None = None


def _client(
    url: str, fleet: Fleet, share: list[int], args: argparse.Namespace,
    window: tuple[float, float], out: Any,
) -> None:  # fmt: skip
    try:
        try:  # the cheaper event loop, when installed (it is with uvicorn[standard])
            import uvloop

            run: Any = uvloop.run
        except ImportError:
            run = asyncio.run
        out.put(run(_client_main(url, fleet, share, args, window)))
    except BaseException as exc:
        out.put(f"client failed: {exc!r}")


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the load generator, parsed with httptools.

    The generator must be cheap (it shares the 2 cores with the server): a request is one
    pre-built byte string and one transport write, a response one pass of httptools'
    parser (the same C parser uvicorn serves with) -- about a tenth of aiohttp's CPU per
    request. Only what the bench reads is kept: the status, ``Trustedge-Status`` and the
    body.
    """

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self.body: list[bytes] = []
        self.trustedge_status = b""
        self.lost = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed response: fail the request, drop the line
            self._fail(ConnectionError(f"bad response: {exc}"))
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionError(f"connection lost: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"trustedge-status":
            self.trustedge_status = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            result = (self.parser.get_status_code(), self.trustedge_status, b"".join(self.body))
            self.waiter.set_result(result)

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, raw: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        """Send one request (complete bytes); (status, Trustedge-Status, body)."""
        if self.lost or self.transport is None:
            raise ConnectionError("connection closed")
        self.body = []
        self.trustedge_status = b""
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        async with asyncio.timeout(timeout):
            return await self.waiter


def _post(path: str, body: bytes = b"", extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n%s\r\n%s" % (
        path.encode(),
        len(body),
        extra,
        body,
    )


_EVIDENCE_HEADERS: bytes = b"Content-Type: application/cbor\r\nAccept: application/eat+jwt\r\n"


async def _client_main(
    url: str, fleet: Fleet, share: list[int], args: argparse.Namespace, window: tuple[float, float]
) -> ClientStats:
    from urllib.parse import urlsplit

    start, end = window
    pusher = Pusher(fleet, args.ima_per_push)
    idle: deque[BenchDevice] = deque(fleet.devices[i] for i in share)
    stats = ClientStats(push_latency=[], evidence_latency=[], first_errors=[])
    where = urlsplit(url)
    loop = asyncio.get_running_loop()
    context = _ssl(args)

    async def connect() -> _Connection:
        _, conn = await loop.create_connection(
            _Connection, where.hostname, where.port, ssl=context,
            server_hostname=where.hostname if context else None,
        )  # fmt: skip
        return conn

    def error(text: str, now: float) -> None:
        if start <= now < end:
            stats.errors += 1
            assert stats.first_errors is not None
            if len(stats.first_errors) < 5:
                stats.first_errors.append(text)

    async def one() -> None:
        conn: _Connection | None = None
        while True:
            began = time.time()
            if began >= end or not idle:
                break
            d = idle.popleft()
            try:
                if conn is None or conn.lost:
                    conn = await connect()
                code, _, body = await conn.request(
                    _post(f"/v1/devices/{d.device_id}/challenges"), args.timeout
                )
                if code != 201:
                    error(f"challenge {code}: {body[:200]!r}", time.time())
                    continue
                ch = json.loads(body)
                wire = pusher.evidence(d, base64.b64decode(ch["nonce"]), int(ch["ima_offset"]))
                sent = time.time()
                code, status, _ = await conn.request(
                    _post(f"/v1/devices/{d.device_id}/evidence", wire, _EVIDENCE_HEADERS),
                    args.timeout,
                )
                done = time.time()
                if not start <= began < end:
                    continue
                if code != 200:
                    error(f"evidence {code}", began)
                elif status != b"affirming":
                    stats.not_affirming += 1
                    error(f"evidence {status.decode(errors='replace')}", began)
                else:
                    stats.ok += 1
                    assert stats.push_latency is not None and stats.evidence_latency is not None
                    stats.push_latency.append(done - began)
                    stats.evidence_latency.append(done - sent)
            except (ConnectionError, TimeoutError, OSError) as exc:
                error(f"{type(exc).__name__}: {exc}", time.time())
                if conn is not None and conn.transport is not None:
                    conn.transport.close()
                conn = None
            finally:
                idle.append(d)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(one() for _ in range(args.concurrency)))
    return stats


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout  # fmt: skip
    return [int(x) for x in out.split()]


def _ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client's TLS context (trusting the bench's own CA) when ``--tls``."""
    return ssl.create_default_context(cafile=args.tls_ca) if args.tls else None


def _scrape(url: str, args: argparse.Namespace) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=10, context=_ssl(args)) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _wal_lsn(dsn: str) -> int:
    """Bytes of WAL written so far (pg_current_wal_lsn as a number)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0]) if row else 0


def _fresh_database(dsn: str) -> str:
    """A new database on the server of ``dsn`` (the bench enrolls its devices afresh)."""
    import psycopg

    name = f"fleetbench_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{dsn} dbname={name}"


def _drop_database(dsn: str) -> None:
    import psycopg

    base, _, name = dsn.rpartition(" dbname=")
    with psycopg.connect(f"{base} dbname=postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_connections(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def served(location: str, fleet: Fleet, workdir: Path, args: argparse.Namespace) -> Iterator[
    tuple[str, subprocess.Popen[str]]
]:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    (workdir / "signing.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    (workdir / "policy.json").write_text(json.dumps(policy_document()))
    (workdir / "ek-ca.pem").write_bytes(fleet.ek_ca_pem)
    (workdir / "operator.tokens").write_text(OP_TOKEN + "\n")
    cmd = [
        sys.executable, "-m", "trustedge", "verifier", "serve", "--json",
        "--store", location, "--policy", str(workdir / "policy.json"),
        "--signing-key", str(workdir / "signing.pem"), "--listen", "127.0.0.1:0",
        "--workers", str(args.workers), "--threads", str(args.threads),
        "--software-roots", str(workdir / "ek-ca.pem"),
        "--operator-tokens", str(workdir / "operator.tokens"),
        "--rate", "1000", "--burst", "1000",
    ]  # fmt: skip
    if args.tls:  # the server's certificate, from a CA of the bench's own
        ca, cert, key = tls_files(workdir)
        args.tls_ca = str(ca)
        cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"verifier did not start (exit {proc.wait()})")
        url = json.loads(line)["listening"].replace("127.0.0.1", "localhost")
        import urllib.request

        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=_ssl(args)):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("verifier did not become healthy") from None
                time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_load(
    label: str, location: str, fleet: Fleet, args: argparse.Namespace, workdir: Path,
    pg: PrivatePostgres | None, dsn: str | None,
) -> dict[str, Any]:  # fmt: skip
    with served(location, fleet, workdir, args) as (url, proc):
        workers = _children(proc.pid)
        start = time.time() + 1.0 + args.warmup
        end = start + args.seconds
        ctx = multiprocessing.get_context("fork")
        out: Any = ctx.Queue()
        n = len(fleet.devices)
        shares = [list(range(c, n, args.clients)) for c in range(args.clients)]
        procs = [ctx.Process(target=_client, args=(url, fleet, shares[c], args, (start, end), out))
                 for c in range(args.clients)]  # fmt: skip
        for p in procs:
            p.start()
        time.sleep(max(0.0, start - time.time()))
        pg_pids = _children(pg.postmaster_pid()) if pg is not None else []
        clients = [p.pid for p in procs if p.pid is not None]
        cpu0, db0, cl0 = _cpu_seconds(workers), _cpu_seconds(pg_pids), _cpu_seconds(clients)
        time.sleep(args.seconds / 2)
        metrics = _scrape(url, args)
        pg_conns = _pg_connections(dsn) if dsn else None
        load_mid = os.getloadavg()
        time.sleep(max(0.0, end - time.time()))
        cpu1, db1, cl1 = _cpu_seconds(workers), _cpu_seconds(pg_pids), _cpu_seconds(clients)
        results = [out.get(timeout=args.seconds + args.timeout + 60) for _ in procs]
        for p in procs:
            p.join(30)
        after = _children(proc.pid)
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError("; ".join(failed))
    ok = sum(r.ok for r in results)
    errors = sum(r.errors for r in results)
    push = sorted(x for r in results for x in r.push_latency)
    ev = sorted(x for r in results for x in r.evidence_latency)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")

    return {
        "store": label,
        "devices": n,
        "workers": args.workers,
        "seconds": args.seconds,
        "appraisals_per_s": ok / args.seconds,
        "affirming": ok,
        "errors": errors,
        "not_affirming": sum(r.not_affirming for r in results),
        "first_errors": [e for r in results for e in (r.first_errors or [])][:5],
        "evidence_ms_p50": pct(ev, 0.50),
        "evidence_ms_p99": pct(ev, 0.99),
        "push_ms_p50": pct(push, 0.50),
        "push_ms_p99": pct(push, 0.99),
        "push_ms_mean": statistics.fmean(push) * 1000 if push else float("nan"),
        "server_cpu_ms_per_appraisal": (cpu1 - cpu0) / ok * 1000 if ok else float("nan"),
        "db_cpu_ms_per_appraisal": (db1 - db0) / ok * 1000 if ok and pg_pids else None,
        "client_cpu_ms_per_appraisal": (cl1 - cl0) / ok * 1000 if ok else None,
        "pool_open_connections": metrics.get('trustedge_db_pool_connections{state="open"}'),
        "pool_max_connections": metrics.get('trustedge_db_pool_connections{state="max"}'),
        "pg_stat_activity_connections": pg_conns,
        "workers_replaced": sorted(set(workers) - set(after)) != [],
        "loadavg_mid_run": [round(x, 2) for x in load_mid],
    }


def _store_worker(
    location: str, fleet: Fleet, share: list[int], window: tuple[float, float], out: Any
) -> None:
    """The store traffic of one push, nothing else: challenge (device state, issue the
    nonce), appraisal (device state, the commit that consumes the nonce and moves the quote
    clock and IMA position) and the stored result -- each device in turn, until ``end``."""
    from trustedge.attestation.store import ImaState, NonceRecord, QuoteClockState, StoredResult

    try:
        store = open_store(location)
        start, end = window
        token = b"x" * 700  # the size of a signed EAR (ES256 JWT)
        done, latencies, k = 0, [], 0
        while time.time() < end:
            k += 1
            for i in share:
                began = time.time()
                if began >= end:
                    break
                d = fleet.devices[i].device_id
                now = int(began)
                state = store.device_state(d)
                nonce = os.urandom(32)
                store.issue_nonce(NonceRecord(nonce, d, now + 60))
                state = store.device_state(d)
                new_quote = QuoteClockState(1, 0, int(began * 1e6))
                new_ima = ImaState(k * 30, 0, hashlib.sha256(b"%d" % k).digest(), "sha256")
                store.record_appraisal(d, quote=(state.quote, new_quote),
                                       ima=(state.ima, new_ima), nonce=nonce, now=now)  # fmt: skip
                store.put_result(StoredResult(d, "application/eat+jwt", token, "affirming", now))
                if began >= start:
                    done += 1
                    latencies.append(time.time() - began)
        store.close()
        out.put((done, latencies))
    except BaseException as exc:
        out.put(f"store worker failed: {exc!r}")


def run_store_only(
    label: str, location: str, fleet: Fleet, args: argparse.Namespace, pg: PrivatePostgres | None
) -> dict[str, Any]:
    """pgbench-style: ``--clients`` processes drive the store path of a push directly."""
    ctx = multiprocessing.get_context("fork")
    out: Any = ctx.Queue()
    n = len(fleet.devices)
    start = time.time() + 1.0 + args.warmup
    end = start + args.seconds
    shares = [list(range(c, n, args.clients)) for c in range(args.clients)]
    procs = [ctx.Process(target=_store_worker, args=(location, fleet, shares[c], (start, end), out))
             for c in range(args.clients)]  # fmt: skip
    for p in procs:
        p.start()
    time.sleep(max(0.0, start - time.time()))
    pg_pids = _children(pg.postmaster_pid()) if pg is not None else []
    wal0 = _wal_lsn(location) if label == "postgres" else 0
    db0, me0 = _cpu_seconds(pg_pids), _cpu_seconds([p.pid for p in procs if p.pid])
    time.sleep(max(0.0, end - time.time()))
    db1, me1 = _cpu_seconds(pg_pids), _cpu_seconds([p.pid for p in procs if p.pid])
    wal1 = _wal_lsn(location) if label == "postgres" else 0
    load = os.getloadavg()
    results = [out.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError("; ".join(failed))
    done = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return {
        "store": label,
        "mode": "store-only (the store traffic of one push: 2 reads, 3 commits)",
        "clients": args.clients,
        "seconds": args.seconds,
        "pushes_per_s": done / args.seconds,
        "push_ms_p50": lat[len(lat) // 2] * 1000 if lat else float("nan"),
        "push_ms_p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan"),
        "db_cpu_ms_per_push": (db1 - db0) / done * 1000 if done and pg_pids else None,
        "client_cpu_ms_per_push": (me1 - me0) / done * 1000 if done else None,
        "wal_bytes_per_push": (wal1 - wal0) / done if done and label == "postgres" else None,
        "loadavg": [round(x, 2) for x in load],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4, help="store threads per worker")
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--concurrency", type=int, default=32, help="connections per client")
    ap.add_argument("--ima-per-push", type=int, default=30)
    ap.add_argument("--tls", action="store_true", help="serve HTTPS (a certificate of its own)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--stores", default="postgres,sqlite",
                    help="comma list of postgres, sqlite (default both)")  # fmt: skip
    ap.add_argument("--store", help="an existing PostgreSQL (URI/conninfo) instead of a private"
                    " cluster (default: TRUSTEDGE_PG_DSN if set)")  # fmt: skip
    ap.add_argument("--store-only", action="store_true",
                    help="no HTTP, no appraisal: --clients processes run the store path of a"
                    " push (commits/s one database sustains)")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = ap.parse_args()
    if args.devices < 1 or args.seconds <= 0 or args.clients < 1 or args.concurrency < 1:
        ap.error("--devices, --seconds, --clients, --concurrency must be positive")
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                              "cpus": os.cpu_count(), "runs": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fleet-bench.") as tmp:
        t0 = time.perf_counter()
        fleet = make_fleet(args.devices, Path(tmp))
        report["prepare_s"] = round(time.perf_counter() - t0, 2)
        for kind in kinds:
            pg: PrivatePostgres | None = None
            dsn: str | None = None
            if kind == "postgres":
                dsn = args.store or os.environ.get("TRUSTEDGE_PG_DSN")
                if dsn is None:
                    pg = PrivatePostgres(fsync=True, max_connections=200).start()
                    dsn = pg.dsn
                dsn = location = _fresh_database(dsn)
            elif kind == "sqlite":
                location = str(Path(tmp) / "verifier.db")
            else:
                ap.error(f"unknown store kind {kind!r}")
            try:
                enroll_s = enroll(fleet, location, 4)
                if args.store_only:
                    run = run_store_only(kind, location, fleet, args, pg)
                else:
                    run = run_load(kind, location, fleet, args, Path(tmp) / kind, pg,
                                   dsn if kind == "postgres" else None)  # fmt: skip
                run["enroll_s"] = round(enroll_s, 2)
                report["runs"].append(run)
            finally:
                if pg is not None:
                    pg.stop()
                elif kind == "postgres" and dsn is not None:
                    _drop_database(dsn)
            if not args.json:
                print(json.dumps(run, indent=1), file=sys.stderr)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=None if args.json else 1))
    return 0 if all(r.get("errors", 0) == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
