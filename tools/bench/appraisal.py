#!/usr/bin/env python3
"""Benchmark: full remote-attestation appraisals per second, and their parts.

**Full appraisals** (the issue's figure): ``Verifier.appraise`` on evidence
holding a SoftwareTPM quote over PCRs 0-7 and 10, a 60-event firmware event
log (replayed and checked for Secure Boot every time) and 1,000 *new* IMA
entries (parsed, template hashes checked, replayed incrementally against
PCR 10 from the stored position, checked against a 1,000-path runtime
policy), plus issuing the nonce and committing the appraisal; the result is
signed as a JWT (ES256). Evidence is generated up front (device work is not
timed). Measured on SQLite (one process; durable and ``durable=False``) and
on PostgreSQL (1 and 2 worker processes, each owning its devices).

**Parts**: the store traffic of one appraisal, evidence encode/decode, and
EAR signing/verification.

**Against Keylime** (issue 19's appraisal row, always first): the same evidence
(every round, in order) through Keylime's library parts -- ``checkquote`` on
tpm2-tools quote files, ``parse_binary_bootlog`` (which runs ``tpm2_eventlog``)
and ``process_measurement_list`` on the ASCII list with the same runtime policy
-- alternated with trustedge's full appraisals on a fresh durable SQLite store
(nonce, appraisal, commit, signed EAR), A B A B through ``tools/bench/_harness.py``,
with the firmware-log verdict cache on (as the verifier runs) and off (every log
replayed); target 4x. Then the per-step costs of both (µs per appraisal).

Prints absolute rates and the ratio against the issue's target of 500 full
appraisals per second per core. PostgreSQL needs ``TRUSTEDGE_PG_DSN``
(``tools/test`` exports one). Usage::

    python tools/bench/appraisal.py [--seconds 2] [--pg-workers 2] [--rounds 20]
    python tools/bench/appraisal.py --keylime --pairs 5 --report appraisal.jsonl

**Before/after** (``--against REV``): checks ``REV`` out into a temporary git
worktree and measures the full appraisal (SQLite, ``durable=False``, binary
IMA) of this tree (A) and of ``REV`` (B) alternately, A B A B, each run in its
own subprocess with only that tree's ``trustedge`` on the path (this script
over both trees: it uses only names both have), through the harness: every
pair, the median (min-max) of the pairwise ratios and the load before and
after::

    python tools/bench/appraisal.py --against 69fcb5f --pairs 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The tree whose trustedge is measured (``--against`` points its subprocesses at another).
sys.path.insert(
    0, os.environ.get("TRUSTEDGE_BENCH_TREE") or str(Path(__file__).resolve().parents[2])
)

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustedge.attestation.ear import (
    AttestationResult,
    VerifierId,
    sign_cwt,
    sign_jwt,
    verify_result,
)
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.findings import Finding, appraisal_from_findings
from trustedge.attestation.nonces import NonceIssuer
from trustedge.attestation.store import (
    DeviceRecord,
    ImaState,
    NonceRecord,
    PostgresStore,
    QuoteClockState,
    SQLiteStore,
)
from trustedge.attestation.store._sql import SQLStore
from trustedge.attestation.verifier import AppraisalPolicy, TrustAnchors, Verifier
from trustedge.measuredboot import EventLogPolicy, ImaRuntimePolicy, RequireSecureBoot

sys.path.insert(1, str(Path(__file__).resolve().parent))  # tools/bench: the shared modules
import _harness
from _evidence import (
    FIRMWARE_EVENTS,
    MemoryTPM,
    boot_aggregate_entry,
    firmware_log,
    ima_ascii,
    ima_entry,
    template_digests,
)

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


def _ima_state(ima: Any, entries: int) -> Any:
    """The next IMA position, in whichever shape the measured tree's store keeps it
    (``--against`` runs this script over older trees: before issue 14's reshape the
    store had its own ImaState(offset, pcr10, bank))."""
    if hasattr(ImaState, "_fields"):  # the one measuredboot.ImaState
        return ImaState((ima.entries if ima else 0) + entries, 0, bytes(32), "sha256")
    return ImaState((ima.offset if ima else 0) + entries, bytes(32))  # type: ignore[call-arg,arg-type]  # the old store shape


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
    new_ima = _ima_state(ima, 1000)
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
        results[f"store/postgres {workers} procs (sum)"] = sum(float(r) for r in rates)  # type: ignore[arg-type,misc]
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


# ---------------------------------------------------------------------------
# full appraisals
# ---------------------------------------------------------------------------
FULL_PCRS = (0, 1, 2, 3, 4, 5, 6, 7, 10)
IMA_PER_APPRAISAL = 1000
FULL_DEVICES = 4


@dataclass(frozen=True)
class FullSetup:
    policy: AppraisalPolicy
    roots: tuple[Any, ...]
    devices: dict[str, tuple[bytes, bytes, bytes, bytes | None]]  # ek, ak public, ak name, cert
    rounds: list[list[tuple[str, bytes, bytes]]]  # per round: (device, nonce, evidence)


def build_full_setup(rounds: int, tmp: Path, ima_format: str = "binary") -> FullSetup:
    fw = firmware_log()
    chunk_entries = [
        ima_entry(f"/usr/lib/app/file{i:04d}.so", hashlib.sha256(b"%d" % i).digest())
        for i in range(IMA_PER_APPRAISAL)
    ]

    def wire_and_digests(entries: list[bytes]) -> tuple[bytes, list[bytes]]:
        chunk = b"".join(entries)
        return (chunk if ima_format == "binary" else ima_ascii(chunk)), template_digests(chunk)

    runtime = ImaRuntimePolicy(
        digests={
            f"/usr/lib/app/file{i:04d}.so": frozenset({hashlib.sha256(b"%d" % i).digest()})
            for i in range(IMA_PER_APPRAISAL)
        }
    )
    policy = AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(),)), runtime=runtime, pcrs=FULL_PCRS,
        policy_id="bench",
    )  # fmt: skip
    tpm = MemoryTPM(tmp / "tpm")
    roots = tuple(load_certificates(tpm.ek_ca_certificate()))
    from trustedge.attestation.simulate import boot_from_event_log

    devices = {}
    aks = {}
    for d in range(FULL_DEVICES):
        ak = tpm.create_ak("ecc-p256-ecdsa")
        name = f"bench-{d}"
        aks[name] = ak
        devices[name] = (tpm.ek_public(), ak.public, ak.name, tpm.ek_certificate())
    boot_from_event_log(tpm, fw, banks=("sha256",))  # one TPM, one boot, shared by the AKs
    # The list of a boot starts with boot_aggregate (checked since issue 14): here the
    # H(PCR0..7) form, checkable against the quoted PCRs 0-7. The first round sends it
    # and 999 files, later rounds 1,000 files each.
    boot = tpm.pcr_read({"sha256": tuple(range(8))})["sha256"]
    aggregate = hashlib.sha256(b"".join(boot[i] for i in range(8))).digest()
    first = [boot_aggregate_entry(aggregate), *chunk_entries[:-1]]
    chunks = [wire_and_digests(first), wire_and_digests(chunk_entries)]
    per_round: list[list[tuple[str, bytes, bytes]]] = []
    for k in range(rounds):
        wire_chunk, ima_digests = chunks[min(k, 1)]
        # All devices share the TPM's PCR 10 here, so each round's 1,000 entries
        # are extended once and every device quotes the same value.
        for digest in ima_digests:
            tpm.pcr_extend(10, {"sha256": digest})
        batch = []
        for name, ak in aks.items():
            nonce = hashlib.sha256(f"{name}-{k}".encode()).digest()
            q = tpm.quote(ak, nonce, {"sha256": list(FULL_PCRS)})
            ev = Evidence(
                device_id=name, nonce=nonce, quote=q.message, signature=q.signature,
                ak_public=ak.public, pcrs={0x000B: q.pcrs["sha256"]}, event_log=fw,
                ima_log=wire_chunk, ima_offset=IMA_PER_APPRAISAL * k,
            )  # fmt: skip
            batch.append((name, nonce, ev.encode()))
        per_round.append(batch)
    return FullSetup(policy, roots, devices, per_round)


def _run_full(
    store: SQLStore, setup: FullSetup, mine: set[str], *, boot_cache: bool = True
) -> tuple[int, float]:
    """Enroll (untimed), then time issue-nonce + appraise for every evidence of ``mine``.
    ``boot_cache=False`` appraises every firmware log in full (no verdict cache)."""
    now = int(time.time())
    for name in sorted(mine):
        ek, ak_public, ak_name, cert = setup.devices[name]
        if store.get_device(name) is None:
            store.add_device(DeviceRecord(device_id=name, ek_public=ek, ek_certificate=cert))
        store.bind_ak(name, ak_public, ak_name, now)
    anchors = TrustAnchors(signing_key=ec.generate_private_key(ec.SECP256R1()),
                           software_roots=setup.roots)  # fmt: skip
    verifier = Verifier(store, setup.policy, anchors, now=lambda: now)
    if not boot_cache:
        verifier.boot_cache = None
    done, start = 0, time.perf_counter()
    for batch in setup.rounds:
        for name, nonce, wire in batch:
            if name not in mine:
                continue
            store.issue_nonce(NonceRecord(nonce=nonce, device_id=name, expires_at=now + 60))
            outcome = verifier.appraise(wire)
            if outcome.status.value != "affirming":
                raise RuntimeError(f"appraisal not affirming: {outcome.appraisal.reasons}")
            done += 1
    return done, time.perf_counter() - start


def _pg_full_worker(
    dsn: str, schema: str, setup: FullSetup, mine: set[str], out: multiprocessing.Queue[object]
) -> None:
    try:
        store = PostgresStore(dsn, schema=schema)
        out.put(_run_full(store, setup, mine))
        store.close()
    except BaseException as exc:
        out.put(exc)


def bench_full(rounds: int, pg_workers: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        setup = build_full_setup(rounds, Path(tmp))
        print(f"(generated {rounds * FULL_DEVICES} evidence bundles in "
              f"{time.perf_counter() - t0:.1f} s)")  # fmt: skip
        everyone = set(setup.devices)
        for durable in (True, False):
            store = SQLiteStore(Path(tmp) / f"full-{durable}.db", durable=durable)
            n, elapsed = _run_full(store, setup, everyone)
            store.close()
            results[f"FULL appraisal, sqlite 1 proc, durable={durable}"] = n / elapsed
        ascii_setup = build_full_setup(rounds, Path(tmp) / "ascii", "ascii")
        store = SQLiteStore(Path(tmp) / "full-ascii.db", durable=False)
        n, elapsed = _run_full(store, ascii_setup, everyone)
        store.close()
        results["FULL appraisal, sqlite 1 proc, durable=False, ASCII IMA"] = n / elapsed
        dsn = os.environ.get("TRUSTEDGE_PG_DSN")
        if not dsn:
            print("TRUSTEDGE_PG_DSN not set: PostgreSQL skipped", file=sys.stderr)
            return results
        names = sorted(everyone)
        for workers in sorted({1, pg_workers}):
            schema = "benchfull_" + uuid.uuid4().hex[:12]
            seeder = PostgresStore(dsn, schema=schema)
            ctx = multiprocessing.get_context("fork")
            out: multiprocessing.Queue[object] = ctx.Queue()
            shares = [set(names[w::workers]) for w in range(workers)]
            procs = [ctx.Process(target=_pg_full_worker, args=(dsn, schema, setup, shares[w], out))
                     for w in range(workers)]  # fmt: skip
            for p in procs:
                p.start()
            got = [out.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
            with seeder.transaction() as tx:
                tx.run(f"DROP SCHEMA {schema} CASCADE")
            seeder.close()
            for r in got:
                if isinstance(r, BaseException):
                    raise r
            total = sum(r[0] for r in got)  # type: ignore[index]
            longest = max(r[1] for r in got)  # type: ignore[index]
            results[f"FULL appraisal, postgres {workers} procs (total)"] = total / longest
    return results


# ---------------------------------------------------------------------------
# against Keylime's library parts (issue 19's appraisal row)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KeylimeInput:
    """One evidence as Keylime's verifier gets it: tpm2-tools quote files, the binary
    firmware log, the ASCII IMA lines and their PCR 10 (Keylime, given no agent state,
    replays a list from zero)."""

    aik_pem: bytes
    nonce: bytes
    signature: bytes
    quote: bytes
    pcr_file: bytes
    bootlog: bytes
    ima_lines: list[str]
    pcr10: str
    sha1_template: bool


def _keylime() -> tuple[Any, Any, Any, Any]:
    import types

    sys.modules.setdefault("gpg", types.ModuleType("gpg"))  # GPGME binding: unused here
    from keylime.common import algorithms
    from keylime.ima import ima
    from keylime.mba.elparsing import tpm2_tools_elparser
    from keylime.tpm import tpm_util

    return tpm_util, tpm2_tools_elparser, ima, algorithms


def keylime_inputs(setup: FullSetup) -> tuple[list[KeylimeInput], dict[str, Any]]:
    """The same evidence (every round, in order) and runtime policy, in Keylime's shapes."""
    from cryptography.hazmat.primitives import serialization

    from trustedge.hazmat.tpm2 import PCRSelectionList, Public
    from trustedge.hazmat.tpm2.files import write_pcr_file
    from trustedge.measuredboot import parse_ima_log

    selection = PCRSelectionList.from_mapping({"sha256": list(FULL_PCRS)})
    runtime = setup.policy.runtime
    assert runtime is not None
    digests = {path: sorted(d.hex() for d in ds) for path, ds in runtime.digests.items()}
    out = []
    for batch in setup.rounds:
        for _, _, wire in batch:
            ev = Evidence.decode(wire)
            key = Public.unmarshal_tpm2b(ev.ak_public).public_key()
            pem = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            entries = parse_ima_log(ev.ima_log or b"").unverified_entries
            sha1 = len(entries[0].template_hash) == 20
            running = bytes(20 if sha1 else 32)
            for e in entries:
                h = hashlib.sha1 if sha1 else hashlib.sha256
                running = h(running + e.template_hash).digest()
                if e.template_name == "ima-ng" and e.fields().path == "boot_aggregate":
                    digests["boot_aggregate"] = [e.fields().digest.hex()]
            out.append(
                KeylimeInput(
                    pem, ev.nonce, ev.signature, ev.quote,
                    write_pcr_file(selection, {"sha256": dict(ev.bank("sha256"))}),
                    ev.event_log or b"", ima_ascii(ev.ima_log or b"").decode().splitlines(),
                    running.hex(), sha1,
                )
            )  # fmt: skip
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
    return out, policy


def keylime_steps(inputs: list[KeylimeInput], policy: dict[str, Any]) -> dict[str, Any]:
    """Keylime's three library parts, each a function over the whole input list."""
    tpm_util, elparser, ima, algorithms = _keylime()

    def quote() -> None:
        for k in inputs:
            tpm_util.checkquote(k.aik_pem, k.nonce, k.signature, k.quote, k.pcr_file, "sha256")

    def bootlog() -> None:
        for k in inputs:
            failure, log = elparser.parse_binary_bootlog(k.bootlog)
            if failure or not log:
                raise RuntimeError(f"Keylime could not parse the firmware log: {failure}")

    def imalist() -> None:
        for k in inputs:
            alg = algorithms.Hash.SHA1 if k.sha1_template else algorithms.Hash.SHA256
            _, failure = ima.process_measurement_list(
                None, k.ima_lines, policy, pcrval=k.pcr10, hash_alg=alg
            )
            if failure:
                raise RuntimeError(f"Keylime refused the IMA list: {failure.get_event_ids()}")

    return {"checkquote": quote, "parse_binary_bootlog": bootlog,
            "process_measurement_list": imalist}  # fmt: skip


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _trustedge_run(setup: FullSetup, tmp: Path, *, boot_cache: bool) -> _harness.Run:
    """One run: every evidence of ``setup`` appraised on a fresh durable SQLite store."""

    def run() -> float:
        where = Path(tempfile.mkdtemp(dir=tmp))
        try:
            store = SQLiteStore(where / "verifier.db", durable=True)
            _, elapsed = _run_full(store, setup, set(setup.devices), boot_cache=boot_cache)
            store.close()
        finally:
            shutil.rmtree(where)
        return elapsed

    return run


def trustedge_steps(setup: FullSetup) -> dict[str, Callable[[], None]]:
    """trustedge's parts of one appraisal, each over the evidence of the second round on
    (1,000 new IMA entries each, replayed from the previous round's position)."""
    from trustedge.attestation.quote import AttestationKey, verify_quote
    from trustedge.hazmat.tpm2 import Public
    from trustedge.measuredboot import boot_facts, parse_event_log, parse_ima_log, verify_ima_log

    runtime = setup.policy.runtime
    assert runtime is not None
    items = []
    pcr10_before: dict[str, bytes] = {}
    for k, batch in enumerate(setup.rounds):
        for name, _, wire in batch:
            ev = Evidence.decode(wire)
            bank = dict(ev.bank("sha256"))
            if k >= 1:
                ak = AttestationKey.from_public(Public.unmarshal_tpm2b(ev.ak_public))
                items.append((ev, ak, bank, pcr10_before[name], IMA_PER_APPRAISAL * k))
            pcr10_before[name] = bank[10]

    def quote() -> None:
        for ev, ak, bank, _, _ in items:
            verify_quote(ev.quote, ev.signature, ak, nonce=ev.nonce, pcrs={"sha256": bank},
                         selection={"sha256": FULL_PCRS})  # fmt: skip

    def firmware() -> None:
        for ev, _, bank, _, _ in items:
            firmware_pcrs = {"sha256": {i: v for i, v in bank.items() if i != 10}}
            verified = parse_event_log(ev.event_log or b"").verify(firmware_pcrs)
            setup.policy.boot.check(verified, facts=boot_facts(verified))

    def imalist() -> None:
        from trustedge.measuredboot import ImaState

        for ev, _, bank, before, offset in items:
            state = ImaState(offset, 0, before, "sha256")
            log = parse_ima_log(ev.ima_log or b"", first_number=offset)
            verified = verify_ima_log(log, bank[10], bank="sha256", state=state)
            if runtime.violations(verified):
                raise RuntimeError("runtime policy violated")

    return {"quote verify": quote, "firmware log (parse, replay, Secure Boot policy)": firmware,
            "IMA (parse, replay, 1,000-path policy)": imalist}  # fmt: skip


def bench_keylime(rounds: int, pairs: int, reporter: _harness.Reporter) -> None:
    """Full appraisals against Keylime's library parts on the same evidence, alternated;
    then the per-step costs of both."""
    with tempfile.TemporaryDirectory(prefix="appraisal-bench.") as tmp:
        setup = build_full_setup(rounds, Path(tmp))
        inputs, policy = keylime_inputs(setup)
        steps = keylime_steps(inputs, policy)
        n = len(inputs)

        def keylime() -> float:
            return sum(_timed(fn) for fn in steps.values())

        work = (
            f"{n} appraisals (quote + {FIRMWARE_EVENTS}-event log + {IMA_PER_APPRAISAL:,} IMA"
            " entries; trustedge: nonce, appraisal, SQLite durable commit, signed EAR)"
        )
        for cache in (True, False):
            reporter(
                _harness.alternate(
                    "full appraisal vs Keylime (checkquote + parse_binary_bootlog +"
                    f" process_measurement_list), firmware-log cache {'on' if cache else 'off'}",
                    ("trustedge", _trustedge_run(setup, Path(tmp), boot_cache=cache)),
                    ("keylime", keylime),
                    work=work,
                    pairs=pairs,
                    target=4.0,
                )
            )
        # per-step costs, microseconds per appraisal
        ours = trustedge_steps(setup)
        per = len(setup.rounds[1:]) * FULL_DEVICES
        for label, fn, count in [
            *((f"trustedge {k}", f, per) for k, f in ours.items()),
            *((f"keylime {k}", f, n) for k, f in steps.items()),
        ]:
            reporter(
                _harness.repeat(
                    f"step: {label}",
                    lambda fn=fn, count=count: _timed(fn) / count * 1e6,  # type: ignore[misc]
                    unit="µs per appraisal",
                    higher_is_better=False,
                )
            )


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


def one_full(rounds: int) -> float:
    """One full-appraisal rate (SQLite, durable=False, binary IMA): the --against unit."""
    with tempfile.TemporaryDirectory() as tmp:
        setup = build_full_setup(rounds, Path(tmp))
        store = SQLiteStore(Path(tmp) / "full.db", durable=False)
        n, elapsed = _run_full(store, setup, set(setup.devices))
        store.close()
    return n / elapsed


def _run_tree(tree: Path, rounds: int) -> float:
    env = {**os.environ, "TRUSTEDGE_BENCH_TREE": str(tree)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--one-full", "--rounds", str(rounds)],
        env=env, cwd=tree, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark run on {tree} failed:\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if not str(report["trustedge"]).startswith(str(tree)):
        raise RuntimeError(f"run for {tree} imported trustedge from {report['trustedge']}")
    return float(report["rate"])


def against(rev: str, pairs: int, rounds: int, reporter: _harness.Reporter) -> int:
    """Alternate this tree (A) and ``rev`` (B); print pairs, ratio median (min-max), load."""
    here = _harness.ROOT
    head = _harness.describe_tree()
    commit = subprocess.run(
        ["git", "-C", str(here), "rev-parse", "--short", rev],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with _harness.old_tree(rev) as old:
        print(f"A = {head} ({here})")
        print(f"B = {rev} = {commit} (temporary worktree {old})")
        work = rounds * FULL_DEVICES  # appraisals per run, the same on both trees
        comparison = _harness.alternate(
            f"full appraisal, this tree against {rev}",
            (head, lambda: work / _run_tree(here, rounds)),
            (commit, lambda: work / _run_tree(old, rounds)),
            work=f"{work} full appraisals (SQLite durable=False, binary IMA), a process each",
            pairs=pairs,
        )
        reporter(comparison)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--pg-workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20, help="full appraisals per device")
    parser.add_argument("--full-only", action="store_true", help="skip the part benchmarks")
    parser.add_argument("--against", metavar="REV", help="alternate this tree with git REV")
    parser.add_argument(
        "--keylime",
        action="store_true",
        help="only the comparison with Keylime's library parts (and the steps)",
    )
    parser.add_argument("--one-full", action="store_true", help=argparse.SUPPRESS)
    _harness.add_arguments(parser)
    args = parser.parse_args()
    reporter = _harness.Reporter("appraisal", args.report)
    if args.one_full:  # a subprocess of --against: one figure, as JSON
        import trustedge

        print(json.dumps({"rate": one_full(args.rounds), "trustedge": trustedge.__file__}))
        return 0
    if args.against:
        return against(args.against, args.pairs, args.rounds, reporter)
    print(f"load average: {os.getloadavg()} (CPU shared with other work)")
    print(
        f"fsync latency (median): {fsync_latency() * 1e3:.2f} ms -- bounds durable SQLite commits"
    )
    bench_keylime(args.rounds, args.pairs, reporter)
    if args.keylime:
        return 0
    figures = bench_full(args.rounds, args.pg_workers)
    if not args.full_only:
        figures.update(bench_stores(args.seconds, args.pg_workers))
        figures.update(bench_codecs(args.seconds))
    width = max(len(name) for name in figures)
    for name, per_second in figures.items():
        print(
            f"{name:<{width}}  {per_second:10.0f}/s  {1e6 / per_second:9.1f} µs"
            f"  x{per_second / TARGET_PER_CORE:6.2f} of the {TARGET_PER_CORE:.0f}/s target"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
