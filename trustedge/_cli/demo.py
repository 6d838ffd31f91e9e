"""``trustedge demo``: remote attestation end to end, in a few seconds, with no set-up.

The story runs on the pure-Python SoftwareTPM in a temporary directory (or,
with ``--tcti``, on a swtpm that has measured nothing yet: a real TPM, or one whose PCRs 0-10
moved, is refused with exit 4, because the story extends a published firmware log into them):
a device is manufactured and enrolled by credential activation, boots by replaying the project's
published firmware event log into its PCRs, runs a few programs (IMA), and
is appraised -- affirming. Then attacks, each caught: a replayed nonce and
a held-back (rolled-back) quote; a model chapter (a signed model delivered
encrypted, loaded with verification and attested; weights swapped on disk,
a model loaded outside the agent, an older signed model); a modified
program and an unexpected boot application. Exit 0 when every step ends as
expected.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from trustedge._cli._common import (
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_VERIFICATION,
    CommandError,
    add_json_flag,
    emit,
)
from trustedge._cli._demo_data import EVENT_LOG, VECTOR_FILE, VECTOR_TC_ID

if TYPE_CHECKING:
    from trustedge.attestation.evidence import Evidence
    from trustedge.attestation.verifier import AppraisalOutcome, AppraisalPolicy
    from trustedge.hazmat.tpmbackend import TPMBackend

__all__ = ["register", "run_story"]

DEVICE = "edge-0001"
#: On a real TPM (``--tcti``) PCR0 is left out: its start value depends on the
#: startup locality the published log records (3), which software cannot
#: reproduce there; boot_aggregate is then reported unchecked.
PCRS = (1, 2, 3, 4, 5, 6, 7, 8, 10)
#: The SoftwareTPM starts at locality 3 like the logged platform: every boot PCR
#: is quoted and the IMA list's boot_aggregate is checked against PCR0-9.
SOFTWARE_PCRS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
PROGRAMS = {
    "/usr/lib/systemd/systemd": b"systemd 257",
    "/usr/sbin/sshd": b"OpenSSH 9.9p1",
    "/usr/bin/edge-agent": b"edge-agent 2.4.0",
}


@dataclass
class Step:
    """One step of the story: what happened, what was expected, what came out."""

    title: str
    story: str
    expect: str
    status: str = ""
    reasons: list[str] = field(default_factory=list)
    vector: dict[str, int] = field(default_factory=dict)
    ok: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "story": self.story,
            "expected": self.expect,
            "status": self.status,
            "reasons": self.reasons,
            "trust_vector": self.vector,
            "ok": self.ok,
        }


def _digest(content: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(content).digest()


def _policy(log: bytes, pcrs: tuple[int, ...] = PCRS) -> AppraisalPolicy:
    """The fleet's golden values, learned from a known-good boot of this image."""
    from trustedge.attestation.verifier import AppraisalPolicy
    from trustedge.measuredboot import (
        BootApplications,
        EventLogPolicy,
        ImaRuntimePolicy,
        RequireSecureBoot,
        parse_event_log,
        secure_boot_state,
    )

    parsed = parse_event_log(log)
    good = parsed.verify(parsed.replay())
    apps = secure_boot_state(good).boot_applications
    allowed = frozenset(a.digests["sha256"] for a in apps)
    return AppraisalPolicy(
        boot=EventLogPolicy((RequireSecureBoot(), BootApplications("sha256", allowed))),
        runtime=ImaRuntimePolicy(
            digests={path: frozenset({_digest(c)}) for path, c in PROGRAMS.items()}
        ),
        pcrs=pcrs,
        policy_id="demo-fleet-golden-image",
    )


#: PCRs the story extends: the published firmware log (0-7), the IMA list (10) and 4.
FIRMWARE_PCRS: Final = tuple(range(11))
#: TCG vendor id of libtpms, the TPM inside swtpm (a simulator, never a chip).
_SIMULATOR_MANUFACTURERS: Final = frozenset({"IBM"})


def require_unused_simulator(backend: TPMBackend, where: str) -> None:
    """Refuse (exit 4) unless ``backend`` is a simulator whose PCRs 0-10 are still at their
    reset values: the story replays a *published* firmware log into them, which on a real
    TPM would leave fake measurements in the machine's boot PCRs until it reboots, and on a
    simulator that has measured something already could not match the log."""
    from trustedge.hazmat.tpm2.pcr import pcr_reset_value

    info = backend.info()
    if info.manufacturer.strip() not in _SIMULATOR_MANUFACTURERS:
        raise CommandError(
            f"{where} is a real TPM ({info.manufacturer.strip() or 'unknown maker'}): the demo "
            "would extend a published firmware log into its boot PCRs 0-10, so it refuses. "
            "Run it on the software TPM (no --tcti) or a fresh swtpm; to attest this machine "
            "use its own log: trustedge attest evidence --eventlog "
            "/sys/kernel/security/tpm0/binary_bios_measurements",
            exit_code=EXIT_ENVIRONMENT,
        )
    bank = "sha256"
    values = backend.pcr_read({bank: FIRMWARE_PCRS})[bank]
    used = [i for i in FIRMWARE_PCRS if values[i] != pcr_reset_value(bank, i)]
    if used:
        raise CommandError(
            f"{where} has measured a boot already (PCR {', '.join(map(str, used))} not at "
            "its reset value; a simulator resets them only when restarted): the demo needs a "
            "TPM that has measured nothing. Restart swtpm with a new state directory, or run "
            "the demo without --tcti.",
            exit_code=EXIT_ENVIRONMENT,
        )


def run_story(backend: TPMBackend, workdir: Path, say: Callable[[str], None]) -> list[Step]:
    """Play the whole story on ``backend`` with files under ``workdir``; return its steps."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustedge._cli._demo_model import run_model_chapter
    from trustedge.attestation.attester import Attester
    from trustedge.attestation.ear import verify_result
    from trustedge.attestation.ekcert import load_certificates
    from trustedge.attestation.simulate import (
        append_boot_application,
        boot_from_event_log,
        measure_boot_aggregate,
        measure_file,
    )
    from trustedge.attestation.store import SQLiteStore
    from trustedge.attestation.verifier import TrustAnchors, Verifier

    steps: list[Step] = []
    seen: set[str] = set()
    key = ec.generate_private_key(ec.SECP256R1())
    store = SQLiteStore(workdir / "verifier.db", durable=False)
    info = backend.info()
    software = info.kind == "software"
    ca_getter = getattr(backend, "ek_ca_certificate", None)
    roots = load_certificates(ca_getter()) if software and callable(ca_getter) else []
    anchors = TrustAnchors(
        signing_key=key,
        software_roots=tuple(roots),
        allow_uncertified_ek=not software,
    )
    verifier = Verifier(store, _policy(EVENT_LOG, SOFTWARE_PCRS if software else PCRS), anchors)
    eventlog, ima = workdir / "binary_bios_measurements", workdir / "ima.bin"

    # 1. manufacture and enroll
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="rsa2048")
    attester = Attester(backend, ak=ak, device_id=DEVICE, eventlog_path=eventlog, ima_path=ima)
    request = attester.enrollment_request()
    if not software:
        request = type(request)(request.device_id, request.ek_public, request.ak_public, None)
    credential = verifier.enrollment.enroll(
        DEVICE,
        ek_public=request.ek_public,
        ak_public=request.ak_public,
        ek_certificate=request.ek_certificate,
    )
    record = verifier.enrollment.complete(DEVICE, attester.activate(credential))
    step = Step(
        "Manufacture and enroll",
        f"The device's TPM ({info.manufacturer or info.kind}) creates an attestation key "
        "(AK). The verifier seals a secret to the TPM's endorsement key, bound to that "
        "AK's name (MakeCredential); only the same TPM can unseal it (ActivateCredential).",
        "enrolled",
        status=record.state.value,
        reasons=[
            f"AK {record.ak_name.hex()[:16]}... bound to {DEVICE}"
            if record.ak_name
            else "AK bound",
            "EK certificate chains to the software TPM's CA: labelled software, never "
            "'genuine hardware'"
            if software
            else "EK pinned by the operator (no certificate check in the demo)",
        ],
    )
    step.ok = record.state.value == "enrolled"
    steps.append(step)
    say_step(say, step, seen)

    # 2. boot and run
    eventlog.write_bytes(EVENT_LOG)
    ima.write_bytes(b"")
    reboot = getattr(backend, "reboot", None)
    if software and callable(reboot):
        reboot(startup_locality=3)  # the platform of the published log starts at locality 3
    events = boot_from_event_log(backend, EVENT_LOG)
    measure_boot_aggregate(backend, ima)  # the real H(PCR0..9), as the kernel logs it
    for path, content in PROGRAMS.items():
        measure_file(backend, ima, path, _digest(content))

    def appraise(evidence: Evidence | None = None) -> tuple[AppraisalOutcome, Evidence]:
        if evidence is None:
            ch = verifier.challenge(DEVICE)
            evidence = attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)
        outcome = verifier.appraise(evidence.encode())
        verify_result(outcome.token, key.public_key())  # what a relying party does
        return outcome, evidence

    def record_step(step: Step, outcome: AppraisalOutcome, want: str) -> None:
        step.status = outcome.status.value
        step.reasons = list(outcome.appraisal.reasons)
        step.vector = {n: v for _, n, v in outcome.appraisal.trust_vector.items()}
        step.ok = step.status == want
        steps.append(step)
        say_step(say, step, seen)

    good, good_evidence = appraise()
    record_step(
        Step(
            "Boot and attest",
            f"The device boots: {events} firmware events of the published log "
            f"({VECTOR_FILE} #{VECTOR_TC_ID}: Secure Boot, shim-style authority, one boot "
            f"loader, a kernel command line) are measured into its PCRs, and the kernel's IMA "
            f"measures {len(PROGRAMS)} programs. The verifier sends a nonce; the device answers "
            "with a quote, the event log and the IMA list.",
            "affirming",
        ),
        good,
        "affirming",
    )

    # 3. replay the good evidence
    replay, _ = appraise(good_evidence)
    record_step(
        Step(
            "Attack: replay yesterday's good evidence",
            "An attacker who recorded the accepted evidence sends it again.",
            "contraindicated",
        ),
        replay,
        "contraindicated",
    )

    # 4. a held-back quote
    ch_old = verifier.challenge(DEVICE)
    held_back = attester.evidence(ch_old.nonce, pcrs=ch_old.pcrs, ima_offset=ch_old.ima_offset)
    fresh, _ = appraise()
    rolled, _ = appraise(held_back)
    ok_between = fresh.status.value == "affirming"
    record_step(
        Step(
            "Attack: a held-back (rolled-back) quote",
            "A compromised agent keeps an older quote for a still-valid nonce and submits it "
            "after a newer quote was accepted (e.g. to hide a change made in between).",
            "contraindicated",
        ),
        rolled,
        "contraindicated",
    )
    steps[-1].ok = steps[-1].ok and ok_between

    # the model chapter (trustedge._cli._demo_model), before the attacks that taint the boot
    def record_model(
        title: str, story: str, expect: str, status: str, reasons: list[str], vector: dict[str, int]
    ) -> None:
        step = Step(title, story, expect, status=status, reasons=reasons, vector=vector)
        step.ok = status == expect
        steps.append(step)
        say_step(say, step, seen)

    say("\n-- A model, delivered encrypted, and the device proves which one it runs")
    run_model_chapter(
        backend=backend,
        workdir=workdir,
        attester=attester,
        store=store,
        policy=verifier.policy,
        anchors=anchors,
        device_id=DEVICE,
        result_key=key.public_key(),
        record=record_model,
    )

    # 5. a modified program
    measure_file(backend, ima, "/usr/sbin/sshd", _digest(b"OpenSSH 9.9p1 + backdoor"))
    modified, _ = appraise()
    record_step(
        Step(
            "Attack: a modified program runs",
            "/usr/sbin/sshd is replaced; IMA measures the new file before it runs.",
            "contraindicated",
        ),
        modified,
        "contraindicated",
    )

    # 6. an unexpected boot application
    eventlog.write_bytes(
        append_boot_application(backend, EVENT_LOG, r"\EFI\tools\loader.efi", b"bootkit")
    )
    bootkit, _ = appraise()
    record_step(
        Step(
            "Attack: an unexpected boot application",
            "An EFI application that is not in the golden image is loaded at boot "
            "(PCR4 and the event log record it).",
            "contraindicated",
        ),
        bootkit,
        "contraindicated",
    )
    store.close()
    return steps


_MARK = {
    "enrolled": "OK ",
    "installed": "OK ",
    "affirming": "OK ",
    "refused": "!! ",
    "contraindicated": "!! ",
    "warning": "?? ",
    "none": "-- ",
}


_GOOD = ("ak-enrolled", "software-tpm", "hardware-tpm", "model-log-certified")


def say_step(say: Callable[[str], None], step: Step, seen: set[str] | None = None) -> None:
    """Print one step: title, what happens, the verdict and the reasons that matter."""
    import textwrap

    verdict = "as expected" if step.ok else f"UNEXPECTED (wanted {step.expect})"
    say(f"\n== {step.title}")
    say(textwrap.fill(step.story, width=88, initial_indent="   ", subsequent_indent="   "))
    say(f"   {_MARK.get(step.status, '   ')}result: {step.status}  ({verdict})")
    shown = step.reasons
    if step.status == "contraindicated":
        shown = [
            r for r in step.reasons if not r.startswith(_GOOD) and "-approved:" not in r
        ] or step.reasons
    for reason in shown:
        still = " (still)" if seen is not None and reason in seen else ""
        text = textwrap.shorten(reason, width=150, placeholder=" ...")
        say(textwrap.fill(f"- {text}{still}", width=88, initial_indent="      ",
                          subsequent_indent="        "))  # fmt: skip
    if step.status == "affirming" and step.vector:
        vector = ", ".join(f"{n} {v}" for n, v in step.vector.items())
        say(f"      trust vector (AR4SI): {vector}")
    if seen is not None:
        seen.update(step.reasons)


def _demo(args: argparse.Namespace) -> int:
    import tempfile

    from trustedge._cli.attestation import open_backend

    started = time.perf_counter()
    lines: list[str] = []

    def say(text: str) -> None:
        if args.json:
            lines.append(text)
        else:
            print(text, flush=True)

    with tempfile.TemporaryDirectory(prefix="trustedge-demo-") as tmp:
        workdir = Path(tmp)
        if args.tcti:
            args.software = None
            backend = open_backend(args)
            where = f"TPM at {args.tcti}"
            try:
                require_unused_simulator(backend, where)
            except BaseException:
                _close(backend)
                raise
        else:
            from trustedge.attestation.backends.software import SoftwareTPM

            backend = SoftwareTPM(workdir / "tpm")
            where = "a software TPM (pure Python, in a temporary directory)"
        say("trustedge demo: remote attestation of one edge device, end to end")
        say(f"   on {where}.")
        say("   The device is the Attester, the cloud service the Verifier; every verdict is a")
        say("   signed EAR token (here checked again as a relying party would).")
        try:
            steps = run_story(backend, workdir, say)
        finally:
            _close(backend)
    ok = all(s.ok for s in steps)
    elapsed = time.perf_counter() - started
    summary = (
        f"\n{sum(s.ok for s in steps)}/{len(steps)} steps as expected in {elapsed:.1f} s: "
        + ("every attack was caught." if ok else "SOMETHING WENT WRONG.")
    )
    emit(
        args,
        {"backend": where, "ok": ok, "seconds": round(elapsed, 3), "steps": steps},
        summary,
    )
    if not args.json:
        sys.stdout.flush()
    return EXIT_OK if ok else EXIT_VERIFICATION


def _close(backend: TPMBackend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``trustedge demo``."""
    p = sub.add_parser(
        "demo",
        help="remote attestation end to end on a software TPM: enroll, boot, attest, tamper",
        description=__doc__,
    )
    p.add_argument(
        "--tcti",
        help="run on a fresh swtpm (e.g. swtpm:port=2321); a real TPM or one that measured a "
        "boot already is refused: the demo never extends a machine's firmware PCRs",
    )
    add_json_flag(p)
    p.set_defaults(handler=_demo)
