"""A compromised device for the adversarial suite, on the SoftwareTPM or on swtpm.

The attacker owns the device's software: it decides what is extended into
the PCRs (the *truth*, what really booted) and, separately, which event log
and IMA list it presents (the *story*). It cannot forge a quote. Each case
of the suite makes the truth bad and tells a story that looks good wherever
no digest reaches; the verifier must not affirm.

The golden boot is the published event log (``vectors/measuredboot/eventlog.json``
#1, the demo's) without its StartupLocality record, so PCR0 replays from
zero on a TPM started at locality 0 and the fleet policy can quote PCR0-9
(boot_aggregate is then checked, never "unchecked"), plus a kernel file
measured by GRUB on PCR9 and shim's MokList on PCR14, in SHA-1 and SHA-256.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.swtpm import Swtpm
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import Verifier
from trustedge.attestation.attester import Attester
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ear import TrustTier, verify_result
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.evidence import Evidence
from trustedge.attestation.store import SQLiteStore
from trustedge.attestation.verifier import AppraisalOutcome, AppraisalPolicy, TrustAnchors
from trustedge.hazmat.tpmbackend import TPMBackend
from trustedge.measuredboot import (
    BootApplications,
    EventLogPolicy,
    EventType,
    ImaRuntimePolicy,
    KernelCmdline,
    Measurements,
    RequireSecureBoot,
    parse_event_log,
)
from trustedge.measuredboot.build import LogEvent, build_event_log, build_ima_entry
from trustedge.measuredboot.events import bank_hash

DEVICE = "edge-adversarial"
BANKS = ("sha1", "sha256")
#: Everything a fleet policy should quote: firmware (0-7), boot loader (8, 9),
#: IMA (10), systemd-stub (12) and shim (14).
PCRS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14)
PROGRAMS = {"/usr/sbin/sshd": b"sshd 9.9", "/usr/bin/edge-agent": b"agent 2.4"}
KERNEL = b"vmlinuz 6.12 (golden)"
MOKLIST = b"shim MokList: one vendor certificate"
FORBIDDEN_CMDLINE = (r"init=", r"ima_appraise=off", r"lockdown=none")


def digest(content: bytes) -> bytes:
    return hashlib.sha256(content).digest()


def digests(content: bytes) -> dict[str, bytes]:
    """The event digests of ``content`` in every bank of the log."""
    return {b: bank_hash(b, content) for b in BANKS}


def ev(pcr: int, etype: int, data: bytes, content: bytes | None = None) -> LogEvent:
    """An event whose digests hash ``content`` (default: its own data)."""
    return LogEvent(pcr, etype, data, digests(data if content is None else content))


def golden_events() -> list[LogEvent]:
    """The golden boot as (PCR, type, data, digests) records, in log order."""
    out = []
    for e in parse_event_log(EVENT_LOG).unverified_events:
        if e.event_type == EventType.EV_NO_ACTION:
            continue  # the Spec ID header is rebuilt; StartupLocality dropped
        dig = {b: e.digests[b] for b in BANKS}
        out.append(LogEvent(e.pcr, e.event_type, e.data, dig))
    out.append(ev(9, EventType.EV_IPL, b"/vmlinuz\x00", KERNEL))
    out.append(ev(14, EventType.EV_IPL, b"MokList\x00", MOKLIST))
    return out


def find(events: Sequence[LogEvent], pcr: int, etype: int, nth: int = 0) -> int:
    """The index of the ``nth`` event of ``etype`` on ``pcr``."""
    hits = [i for i, e in enumerate(events) if e.pcr == pcr and e.event_type == etype]
    return hits[nth]


def image_load_event(path: str) -> bytes:
    """UEFI_IMAGE_LOAD_EVENT for a file-path device path (media node 4/4)."""
    name = path.encode("utf-16-le") + b"\x00\x00"
    node = b"\x04\x04" + (4 + len(name)).to_bytes(2, "little") + name
    device_path = node + b"\x7f\xff\x04\x00"
    header = (0x7E000000).to_bytes(8, "little") + (0x20000).to_bytes(8, "little")
    return header + bytes(8) + len(device_path).to_bytes(8, "little") + device_path


def golden_policy(**changes: object) -> AppraisalPolicy:
    """The fleet's reference values, learned from the golden boot's measurements."""
    events = golden_events()

    def measured(pcr: int) -> frozenset[bytes]:
        # every golden event's digest is allowed: proven events never need it,
        # but a lie must not pass because a golden *proven* digest was allowed
        # as a measurement either -- Measurements checks only unproven events.
        return frozenset(e.digests["sha256"] for e in events if e.pcr == pcr and e.digests)

    boot = EventLogPolicy(
        (
            RequireSecureBoot(),
            BootApplications("sha256", frozenset(_apps(events))),
            Measurements(0, "sha256", measured(0)),
            Measurements(1, "sha256", measured(1)),
            Measurements(2, "sha256", frozenset()),
            Measurements(9, "sha256", frozenset({digest(KERNEL)})),
            Measurements(14, "sha256", frozenset({digest(MOKLIST)})),
            KernelCmdline(required=(r"\bro\b",), forbidden=FORBIDDEN_CMDLINE),
        )
    )
    fields: dict[str, object] = {
        "boot": boot,
        "runtime": ImaRuntimePolicy(
            digests={p: frozenset({digest(c)}) for p, c in PROGRAMS.items()}
        ),
        "pcrs": PCRS,
        "policy_id": "adversarial-fleet",
    }
    fields.update(changes)
    return AppraisalPolicy(**fields)  # type: ignore[arg-type]


def _apps(events: Sequence[LogEvent]) -> list[bytes]:
    return [
        e.digests["sha256"]
        for e in events
        if e.pcr == 4 and e.event_type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION and e.digests
    ]


@dataclass
class Device:
    """One compromised device and its verifier."""

    backend: TPMBackend
    attester: Attester
    verifier: Verifier
    key: ec.EllipticCurvePrivateKey
    clock: list[int]
    dir: Path
    truth: list[LogEvent] = field(default_factory=list)
    #: Power-cycles the TPM (PCRs reset, resetCount up); returns the backend to use.
    power_cycle: Callable[[], TPMBackend] | None = None

    def reboot(self) -> None:
        """Restart the device: the TPM resets; its AK is loaded again from its blob."""
        assert self.power_cycle is not None
        self.backend = self.power_cycle()
        old = self.attester
        self.attester = Attester(
            self.backend,
            ak=self.backend.load_ak(old.ak.blob),
            device_id=old.device_id,
            eventlog_path=old.eventlog_path,
            ima_path=old.ima_path,
        )

    @property
    def ima(self) -> Path:
        assert self.attester.ima_path is not None
        return self.attester.ima_path

    @property
    def eventlog(self) -> Path:
        assert self.attester.eventlog_path is not None
        return self.attester.eventlog_path

    # -- what really happens -------------------------------------------------------
    def boot(self, truth: Sequence[LogEvent], story: Sequence[LogEvent] | None = None) -> None:
        """Extend ``truth`` into the PCRs, present ``story`` (default: the truth) as
        the event log, then start IMA (boot_aggregate) and run the golden programs."""
        have = set(self.backend.info().banks)
        for e in truth:
            if e.event_type == EventType.EV_NO_ACTION or e.pcr > 16:
                continue  # not extended (DRTM PCRs cannot be, from locality 0)
            assert e.digests is not None
            self.backend.pcr_extend(e.pcr, {b: d for b, d in e.digests.items() if b in have})
        self.truth = list(truth)
        self.present(story if story is not None else truth)
        self.ima.write_bytes(b"")
        self.boot_aggregate()
        for path, content in PROGRAMS.items():
            self.measure(path, digest(content))

    def present(self, story: Sequence[LogEvent], *, banks: Sequence[str] = BANKS) -> None:
        self.eventlog.write_bytes(build_event_log(story, banks=banks))

    def boot_aggregate(self, value: bytes | None = None, *, name: str = "boot_aggregate") -> bytes:
        """Log entry ``boot_aggregate`` = H(PCR0..9) (or ``value``) and extend PCR10."""
        if value is None:
            values = self.backend.pcr_read({"sha256": tuple(range(10))})["sha256"]
            value = digest(b"".join(values[i] for i in range(10)))
        self.ima_record(build_ima_entry(name, value, algo="sha256"))
        return value

    def measure(self, path: str, file_digest: bytes) -> None:
        self.ima_record(build_ima_entry(path, file_digest, algo="sha256"))

    def ima_record(self, record: bytes, *, log: bool = True, extend: bool = True) -> None:
        """What the kernel does for one IMA entry: log it and extend PCR10 with
        H_bank(template data) (the template hash in SHA-1)."""
        from trustedge.measuredboot import parse_ima_log

        entry = parse_ima_log(record).unverified_entries[0]
        if extend:
            self.backend.pcr_extend(
                10,
                {
                    b: entry.template_hash
                    if b == "sha1"
                    else hashlib.new(b, entry.template_data).digest()
                    for b in self.backend.info().banks
                },
            )
        if log:
            with open(self.ima, "ab") as out:
                out.write(record)

    # -- what the verifier sees --------------------------------------------------
    def evidence(self, *, pcrs: Sequence[int] | None = None) -> Evidence:
        ch = self.verifier.challenge(DEVICE)
        return self.attester.evidence(
            ch.nonce, pcrs=ch.pcrs if pcrs is None else pcrs, ima_offset=ch.ima_offset
        )

    def appraise(self, evidence: Evidence | bytes | None = None) -> AppraisalOutcome:
        outcome = self.verifier.appraise(evidence if evidence is not None else self.evidence())
        assert verify_result(outcome.token, self.key.public_key()).claims == outcome.result
        return outcome


def reasons(outcome: AppraisalOutcome) -> list[str]:
    """The reason ids of an outcome (``"boot-policy-violation"``, ...)."""
    return [r.split(":", 1)[0] for r in outcome.appraisal.reasons]


def assert_caught(outcome: AppraisalOutcome, reason: str, tier: TrustTier) -> None:
    assert outcome.status is tier, outcome.appraisal.reasons
    assert reason in reasons(outcome), outcome.appraisal.reasons


def _enroll(
    backend: TPMBackend, tmp: Path, anchors: TrustAnchors, policy: AppraisalPolicy
) -> Device:
    clock = [int(time.time())]
    store = SQLiteStore(tmp / "verifier.db", durable=False)
    verifier = Verifier(store, policy, anchors, now=lambda: clock[0])
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    attester = Attester(
        backend, ak=ak, device_id=DEVICE, eventlog_path=tmp / "eventlog.bin", ima_path=tmp / "ima"
    )
    req = attester.enrollment_request()
    cred = verifier.enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    verifier.enrollment.complete(DEVICE, attester.activate(cred))
    key = anchors.signing_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Device(backend, attester, verifier, key, clock, tmp)


@dataclass(frozen=True)
class SwtpmTemplate:
    state: Path
    root: x509.Certificate
    issuer: x509.Certificate


def swtpm_template(base: Path) -> SwtpmTemplate:
    from tests.unit.attestation.test_ekcert import manufacture

    state = manufacture(base)
    return SwtpmTemplate(
        state,
        load_certificates((base / "ca" / "swtpm-localca-rootca-cert.pem").read_bytes())[0],
        load_certificates((base / "ca" / "issuercert.pem").read_bytes())[0],
    )


DeviceFactory = Callable[..., Device]


def device_factory(
    kind: str,
    tmp: Path,
    swtpm_factory: type[Swtpm],
    template: Callable[[], SwtpmTemplate],
    closers: list[Callable[[], None]],
) -> DeviceFactory:
    """A function making enrolled devices on backend ``kind`` (``policy=`` overrides
    the golden policy)."""

    def make(policy: AppraisalPolicy | None = None) -> Device:
        pol = policy if policy is not None else golden_policy()
        key = ec.generate_private_key(ec.SECP256R1())
        if kind == "software":
            tpm = SoftwareTPM(tmp / "tpm")
            anchors = TrustAnchors(
                signing_key=key, software_roots=tuple(load_certificates(tpm.ek_ca_certificate()))
            )
            device = _enroll(tpm, tmp, anchors, pol)

            def soft_cycle() -> TPMBackend:
                tpm.reboot()
                return tpm

            device.power_cycle = soft_cycle
            return device
        from trustedge.attestation.backends.tpm2 import Tpm2Backend

        tpl = template()
        state = tmp / "swtpm-state"
        shutil.copytree(tpl.state, state)
        proc = swtpm_factory(state).start()
        anchors = TrustAnchors(
            signing_key=key, ek_roots=(tpl.root,), intermediates=(tpl.issuer,), result_format="cwt"
        )
        current = [Tpm2Backend(proc.tcti)]
        closers.append(lambda: current[0].close())
        device = _enroll(current[0], tmp, anchors, pol)

        def swtpm_cycle() -> TPMBackend:
            current[0].close()
            proc.restart()
            current[0] = Tpm2Backend(proc.tcti)
            return current[0]

        device.power_cycle = swtpm_cycle
        return device

    return make


__all__ = [
    "BANKS",
    "DEVICE",
    "FORBIDDEN_CMDLINE",
    "KERNEL",
    "PCRS",
    "PROGRAMS",
    "Device",
    "LogEvent",
    "DeviceFactory",
    "assert_caught",
    "device_factory",
    "digest",
    "digests",
    "ev",
    "find",
    "golden_events",
    "golden_policy",
    "image_load_event",
    "reasons",
]
