"""Test support for the fleet service: booted software devices, the policy, a served verifier.

A device here is a real ``SoftwareTPM`` (or swtpm through ``Tpm2Backend``) booted like the
demo's: the published firmware event log replayed into its PCRs, an IMA list with the real
boot_aggregate and three programs. The verifier is the real ``trustedge verifier serve``
process (its supervisor and workers), talked to over loopback with TLS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import Attester
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import boot_from_event_log, measure_file
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.measuredboot import parse_event_log, secure_boot_state
from trustedge.measuredboot.ima import boot_aggregate_candidates

ROOT = Path(__file__).resolve().parent.parent
PCRS = (1, 2, 3, 4, 5, 6, 7, 8, 10)
PROGRAMS = {
    "/usr/lib/systemd/systemd": b"systemd 257",
    "/usr/sbin/sshd": b"OpenSSH 9.9p1",
    "/usr/bin/edge-agent": b"edge-agent 2.4.0",
}
REGISTRATION_TOKEN = "reg-token-for-tests-0123456789"
OPERATOR_TOKEN = "operator-token-for-tests-9876543210"


def policy_document() -> dict[str, Any]:
    """The appraisal policy (JSON) that affirms a device booted by :func:`boot_device`."""
    parsed = parse_event_log(EVENT_LOG)
    good = parsed.verify(parsed.replay())
    apps = secure_boot_state(good).boot_applications
    return {
        "version": 1,
        "policy_id": "fleet-test",
        "bank": "sha256",
        "pcrs": list(PCRS),
        "secure_boot": True,
        "boot": {
            "version": 1,
            "rules": [
                {"rule": "secure_boot"},
                {
                    "rule": "boot_applications",
                    "bank": "sha256",
                    "digests": sorted(a.digests["sha256"].hex() for a in apps),
                },
            ],
        },
        "runtime": {
            "digests": {p: [hashlib.sha256(c).hexdigest()] for p, c in PROGRAMS.items()},
        },
    }


@dataclass
class Device:
    device_id: str
    backend: TPMBackend
    attester: Attester
    ima: Path
    eventlog: Path
    ak_blob: Path


def boot_device(backend: TPMBackend, workdir: Path, device_id: str) -> Device:
    """Create the AK, boot the published log into the PCRs and measure the programs."""
    workdir.mkdir(parents=True, exist_ok=True)
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    eventlog, ima = workdir / "binary_bios_measurements", workdir / "ima.bin"
    eventlog.write_bytes(EVENT_LOG)
    ima.write_bytes(b"")
    boot_from_event_log(backend, EVENT_LOG)
    pcrs = backend.pcr_read({"sha256": list(range(10))})["sha256"]
    measure_file(backend, ima, "boot_aggregate", boot_aggregate_candidates(pcrs, "sha256")[0])
    for path, content in PROGRAMS.items():
        measure_file(backend, ima, path, hashlib.sha256(content).digest())
    blob = workdir / "ak.blob"
    blob.write_bytes(ak.blob)
    attester = Attester(backend, ak=ak, device_id=device_id, eventlog_path=eventlog, ima_path=ima)
    return Device(device_id, backend, attester, ima, eventlog, blob)


def software_device(workdir: Path, device_id: str) -> Device:
    return boot_device(SoftwareTPM(workdir / "tpm"), workdir, device_id)


def tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustedge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    signing_key: ec.EllipticCurvePrivateKey
    ca: Path | None
    workdir: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(x) for x in out.split()]


@contextmanager
def serve_verifier(
    workdir: Path,
    store: str,
    *,
    software_roots: list[bytes],
    tls: bool = True,
    workers: int = 2,
    extra: list[str] | None = None,
    policy: dict[str, Any] | None = None,
) -> Iterator[Served]:
    """``trustedge verifier serve`` on a free loopback port; stopped (SIGTERM) afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = workdir / "signing.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    (workdir / "policy.json").write_text(json.dumps(policy or policy_document()))
    (workdir / "registration.tokens").write_text(f"# tokens\n{REGISTRATION_TOKEN}\n")
    (workdir / "operator.tokens").write_text(f"{OPERATOR_TOKEN}\n")
    args = [
        sys.executable, "-m", "trustedge", "verifier", "serve", "--json",
        "--store", store, "--policy", str(workdir / "policy.json"),
        "--signing-key", str(key_path), "--listen", "127.0.0.1:0",
        "--workers", str(workers),
        "--registration-tokens", str(workdir / "registration.tokens"),
        "--operator-tokens", str(workdir / "operator.tokens"),
    ]  # fmt: skip
    for i, root in enumerate(software_roots):
        path = workdir / f"software-root-{i}.pem"
        path.write_bytes(root)
        args += ["--software-roots", str(path)]
    ca = None
    if tls:
        ca, cert, tkey = tls_files(workdir)
        args += ["--tls-cert", str(cert), "--tls-key", str(tkey)]
    args += extra or []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"verifier did not start (exit {proc.wait()})")
        url = json.loads(line)["listening"].replace("127.0.0.1", "localhost")
        served = Served(url, proc, key, ca, workdir)
        _wait_healthy(served)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def client_for(served: Served, timeout: float = 10.0) -> Any:
    from trustedge.fleet import FleetClient

    return FleetClient(served.url, ca_file=served.ca, timeout=timeout)


def _wait_healthy(served: Served, timeout: float = 30.0) -> None:
    from trustedge.fleet import ServiceUnavailableError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"verifier exited with {served.process.returncode}")
        try:
            with client_for(served, timeout=2.0) as client:
                client.healthz()
            return
        except ServiceUnavailableError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"verifier not healthy after {timeout} s: {last}")


def find_pg_bin() -> Path:
    """The directory of Debian's PostgreSQL server binaries (as ``tools/test`` finds it)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of its own (initdb + pg_ctl, like ``tools/test``), so a
    test or the bench may restart or load it without touching anyone else's server.

    ``fsync`` off is the test cluster's setting; the bench turns it on (``fsync=True``) so
    commit figures include the WAL flush.
    """

    def __init__(self, *, fsync: bool = False, max_connections: int = 100) -> None:
        import tempfile

        self.bin = find_pg_bin()
        # its own directory under /tmp (the server user must reach it; pytest's are 0700)
        self.dir = Path(tempfile.mkdtemp(prefix="trustedge-pg."))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.fsync = fsync
        self.max_connections = max_connections
        self._as: list[str] = []
        if os.getuid() == 0:  # initdb refuses to run as root: run the server as postgres
            if subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode:
                subprocess.run(["useradd", "--system", "postgres"], check=True)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=trustedge dbname=trustedge"

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PrivatePostgres:
        if not self.data.exists():
            if self._as:
                subprocess.run(["chown", "postgres", str(self.dir)], check=True)
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "trustedge",
                      "--auth=trust", "-E", "UTF8")  # fmt: skip
        self._pg_ctl("start")
        if not getattr(self, "_created", False):
            self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "trustedge", "trustedge")  # fmt: skip
            self._created = True
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c fsync={'on' if self.fsync else 'off'} "
            f"-c max_connections={self.max_connections}"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-w", "-o", options, action, *extra)  # fmt: skip

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: every connection is cut; the server is back when this returns."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


def operator_certificate(workdir: Path, name: str = "operator") -> tuple[Path, Path, Path]:
    """An operator CA and a client certificate it issued: (ca.pem, cert.pem, key.pem)."""
    workdir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (workdir / f"{name}-ca.pem", workdir / f"{name}.pem", workdir / f"{name}.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
