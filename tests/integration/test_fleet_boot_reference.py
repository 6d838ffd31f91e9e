"""The fleet API for predicted boot references, through ``trustedge verifier serve`` on
loopback (TLS, two workers), on SQLite and PostgreSQL, driven by a software TPM.

The operator posts the release-signed update (a new kernel with its boot measurement) and the
device's current event log to ``POST /v1/devices/{id}/boot-reference``; the server checks the
release signature, predicts the next boot and stores the reference. Then the device boots the
predicted chain (affirming), a kernel nobody signed (contraindicated, the diverging event
named), the old chain (affirming before confirm, contraindicated after), and after
``DELETE`` the boot policy alone decides again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fleet_support import (
    OPERATOR_TOKEN,
    REGISTRATION_TOKEN,
    client_for,
    serve_verifier,
)
from tests.integration.test_fleet_service import _fresh_pg_database, _pem, _validate
from tests.integration.test_predicted_reference import _rewrite
from tests.pe import build_pe
from trustedge._cli._demo_data import EVENT_LOG
from trustedge.attestation import Attester, verify_result
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import boot_from_event_log
from trustedge.fleet import FleetClient, ServiceRefusedError
from trustedge.keys import public_key_to_pem
from trustedge.measuredboot.authenticode import authenticode_digests
from trustedge.ota.release import create_envelope, sign_envelope

DEVICE = "edge-boot-0001"
VENDOR = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
CLASS = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
RELEASE = ec.derive_private_key(0x12E1EA5E, ec.SECP256R1())
BANKS = ("sha1", "sha256")
PATH = "/v1/devices/{device_id}/boot-reference"


def _policy() -> dict[str, Any]:
    # reference values replace golden lists of boot applications across the update window
    return {
        "version": 1,
        "policy_id": "boot-reference",
        "bank": "sha256",
        "pcrs": [1, 2, 3, 4, 5, 6, 7, 8],
        "secure_boot": True,
        "boot": {"version": 1, "rules": [{"rule": "secure_boot"}]},
    }


def _kernel(name: bytes) -> bytes:
    return build_pe(((".text", b"\x90" * 300 + b"\xc3"), (".data", name * 16)))


def _update(tmp: Path, kernel: bytes, key: ec.EllipticCurvePrivateKey = RELEASE) -> bytes:
    (tmp / "vmlinuz.efi").write_bytes(kernel)
    spec = {
        "manifest-version": 1,
        "manifest-sequence-number": 7,
        "components": [
            {
                "install-id": [b"kernel".hex()],
                "vendor-id": VENDOR,
                "class-id": CLASS,
                "file": "vmlinuz.efi",
                "uri": "#kernel",
                "boot-measurement": {"role": "kernel", "banks": list(BANKS)},
            }
        ],
    }
    env = create_envelope(spec, base=tmp, payloads={"#kernel": kernel})
    return sign_envelope(env, [key])


class _Device:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.tpm = SoftwareTPM(workdir / "tpm")
        ak = self.tpm.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        self.eventlog, self.ima = workdir / "eventlog.bin", workdir / "ima.bin"
        self.eventlog.write_bytes(EVENT_LOG)
        self.ima.write_bytes(b"")
        boot_from_event_log(self.tpm, EVENT_LOG)
        self.attester = Attester(
            self.tpm, ak=ak, device_id=DEVICE, eventlog_path=self.eventlog, ima_path=self.ima
        )

    def boot(self, log: bytes) -> None:
        self.tpm.reboot()
        self.eventlog.write_bytes(log)
        boot_from_event_log(self.tpm, log)

    def push(self, client: FleetClient, served: Any) -> tuple[str, str]:
        ch = client.challenge(DEVICE)
        ev = self.attester.evidence(ch.nonce, pcrs=ch.pcrs, ima_offset=ch.ima_offset)
        result = client.push_evidence(DEVICE, ev.encode())
        verified = verify_result(result.token.decode(), served.signing_key.public_key())
        reasons = " ".join(r for sub in verified.submods.values() for r in sub.reasons)
        return verified.status.value, reasons


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_posted_update_becomes_the_next_reference(tmp_path: Path, store_kind: str) -> None:
    device = _Device(tmp_path / "dev")
    roots = [_pem(device.tpm.ek_ca_certificate())]
    release_pub = tmp_path / "release.pub"
    release_pub.write_bytes(public_key_to_pem(RELEASE.public_key()))
    location = str(tmp_path / "v.db") if store_kind == "sqlite" else _fresh_pg_database()
    extra = ["--rate", "1000", "--burst", "1000", "--release-key", str(release_pub)]
    new_kernel, evil_kernel = _kernel(b"linux 6.12"), _kernel(b"rootkit")
    update = _update(tmp_path, new_kernel)
    with serve_verifier(
        tmp_path / "srv", location, software_roots=roots, extra=extra, policy=_policy()
    ) as served:
        with client_for(served) as client:
            credential = client.enroll(device.attester.enrollment_request(), REGISTRATION_TOKEN)
            client.activate(DEVICE, device.attester.activate(credential))
            first = device.push(client, served)
            assert first[0] == "affirming", first
            path = f"/v1/devices/{DEVICE}/boot-reference"
            body = {
                "update": _b64(update),
                "eventlog": _b64(EVENT_LOG),
            }

            # operator-authenticated, release-signed, well-formed, a known device
            status, _, raw, _ = client.request(
                "POST", path, body=json.dumps(body).encode(), content_type="application/json"
            )
            assert status == 401
            _validate(json.loads(raw), PATH, "POST", 401, raw)
            other = ec.derive_private_key(0xBAD, ec.SECP256R1())
            for doc, code in (
                ({**body, "update": _b64(_update(tmp_path, new_kernel, other))}, 403),
                ({**body, "update": "not base64!"}, 400),
                ({**body, "eventlog": _b64(b"\x01\x02")}, 400),  # not an event log
                ({**body, "eventlog": _b64(b"\x00" * 64)}, 403),  # one the boot policy rejects
                ({**body, "confirmed": "yes"}, 400),
                ({"eventlog": body["eventlog"]}, 400),
            ):
                with pytest.raises(ServiceRefusedError) as refused:
                    client._json("POST", path, doc, token=OPERATOR_TOKEN)
                assert refused.value.status == code, (doc.keys(), refused.value)
            with pytest.raises(ServiceRefusedError) as refused:
                client.expect_boot("no-such-device", update, EVENT_LOG, OPERATOR_TOKEN)
            assert refused.value.status == 404

            answer = client.expect_boot(DEVICE, update, EVENT_LOG, OPERATOR_TOKEN)
            _validate(answer, PATH, "POST", 200, json.dumps(answer).encode())
            assert answer["sequence_number"] == 7 and answer["bank"] == "sha256"
            assert [c["pcr"] for c in answer["changes"]] == [4]
            pcr4 = answer["pcrs"]["4"]
            assert pcr4["current"] != pcr4["next"]

            # the predicted chain: affirming, and PCR4 is what the server predicted
            new_log = _rewrite(authenticode_digests(new_kernel, BANKS))
            device.boot(new_log)
            assert device.tpm.pcr_read({"sha256": [4]})["sha256"][4].hex() == pcr4["next"]
            assert device.push(client, served)[0] == "affirming"

            # a kernel nobody signed: contraindicated, the diverging event named
            evil = authenticode_digests(evil_kernel, BANKS)
            device.boot(_rewrite(evil))
            status_text, reasons = device.push(client, served)
            assert status_text == "contraindicated"
            assert "next-boot reference: PCR4 event 23" in reasons
            assert evil["sha256"].hex() in reasons

            # the old chain before confirm: the fallback is accepted
            device.boot(EVENT_LOG)
            assert device.push(client, served)[0] == "affirming"
            # the device confirmed: only the new chain from now on
            client.expect_boot(DEVICE, update, EVENT_LOG, OPERATOR_TOKEN, confirmed=True)
            status_text, reasons = device.push(client, served)
            assert status_text == "contraindicated" and "next-boot reference: PCR4" in reasons
            device.boot(new_log)
            assert device.push(client, served)[0] == "affirming"

            # dropped: the boot policy alone decides again
            device.boot(EVENT_LOG)
            with pytest.raises(ServiceRefusedError) as refused:
                client.drop_boot_reference(DEVICE, "wrong-token")
            assert refused.value.status == 403
            client.drop_boot_reference(DEVICE, OPERATOR_TOKEN)
            assert device.push(client, served)[0] == "affirming"


def test_without_release_keys_the_call_is_refused(tmp_path: Path) -> None:
    device = _Device(tmp_path / "dev")
    roots = [_pem(device.tpm.ek_ca_certificate())]
    with serve_verifier(
        tmp_path / "srv", str(tmp_path / "v.db"), software_roots=roots, tls=False, workers=1,
        policy=_policy(),
    ) as served:  # fmt: skip
        with client_for(served) as client:
            credential = client.enroll(device.attester.enrollment_request(), REGISTRATION_TOKEN)
            client.activate(DEVICE, device.attester.activate(credential))
            with pytest.raises(ServiceRefusedError) as refused:
                client.expect_boot(DEVICE, _update(tmp_path, _kernel(b"k")), EVENT_LOG,
                                   OPERATOR_TOKEN)  # fmt: skip
            assert refused.value.status == 409 and "release key" in str(refused.value)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")
