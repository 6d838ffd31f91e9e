"""The sealed-update flow through the CLI, on the software TPM.

update policy-counter init -> release policy --current -> envelope keygen
--type tpm-kek --tpm-authority -> envelope seal -> release create/sign an
update with boot measurements -> release policy (predicted) -> reboot into
the new chain -> envelope open with both policies -> update policy-counter
advance -> the old chain no longer opens it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_sealed_update_e2e import (
    CLASS,
    EVIL,
    GRUB1,
    GRUB2,
    KERNEL1,
    KERNEL2,
    SHIM,
    VENDOR,
    boot_log,
)
from trustedge._cli import main
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import boot_from_event_log
from trustedge.measuredboot.authenticode import authenticode_digest

COUNTER = "0x01500D01"


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def _boot(tpm_dir: Path, log_path: Path, *chain: bytes) -> None:
    tpm = SoftwareTPM(tpm_dir)
    tpm.reboot()
    log = boot_log(*chain)
    boot_from_event_log(tpm, log)
    log_path.write_bytes(log)


def test_cli_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tpm, log = tmp_path / "tpm", tmp_path / "boot.log"
    SoftwareTPM(tpm)
    _boot(tpm, log, SHIM, GRUB1, KERNEL1)
    soft = ["--software", str(tpm)]
    counter = _json(capsys, "update", "policy-counter", "init", "--index", COUNTER, *soft)
    v0, name = int(str(counter["version"])), str(counter["nv_name"])

    key = tmp_path / "release.pem"
    assert main(["release", "keygen", "-o", str(key)]) == 0
    approved = [authenticode_digest(i).hex() for i in (SHIM, GRUB1, KERNEL1)]
    boot_policy = tmp_path / "boot-policy.json"
    rule = {"rule": "boot_applications", "bank": "sha256", "digests": approved}
    boot_policy.write_text(json.dumps({"version": 1, "rules": [rule]}))
    common = ["--sign", str(key), "--nv-index", COUNTER, "--nv-name", name]
    common += ["--boot-policy", str(boot_policy)]
    old = tmp_path / "old.pol"
    _json(capsys, "release", "policy", "-", "--current", "--eventlog", str(log), *common,
          "--version", str(v0), "-o", str(old))  # fmt: skip

    kek = tmp_path / "kek.sealed"
    tpm_opts = ["--software-tpm", str(tpm), "--tpm-authority", f"{key}.pub"]
    assert main(["envelope", "keygen", "--type", "tpm-kek", *tpm_opts, "-o", str(kek)]) == 0
    secret, sealed = tmp_path / "secret", tmp_path / "secret.tenv"
    secret.write_bytes(b"disk key")
    assert main(["envelope", "seal", "--tpm", str(kek), *tpm_opts, "--tpm-policy", str(old),
                 "-i", str(secret), "-o", str(sealed)]) == 0  # fmt: skip

    (tmp_path / "grubx64.efi").write_bytes(GRUB2)
    (tmp_path / "vmlinuz.efi").write_bytes(KERNEL2)
    comps = [
        {"install-id": [cid.hex()], "vendor-id": VENDOR, "class-id": CLASS, "file": file,
         "uri": f"#{role}", "boot-measurement": {"role": role}}
        for cid, file, role in ((b"loader", "grubx64.efi", "loader"),
                                (b"kernel", "vmlinuz.efi", "kernel"))
    ]  # fmt: skip
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"manifest-version": 1, "manifest-sequence-number": 2,
                                "components": comps}))  # fmt: skip
    update = tmp_path / "update.suit"
    integrate = ["--integrate", f"loader={tmp_path / 'grubx64.efi'}"]
    integrate += ["--integrate", f"kernel={tmp_path / 'vmlinuz.efi'}"]
    assert main(["release", "create", str(spec), "-o", str(update), *integrate]) == 0
    assert main(["release", "sign", str(update), "--key", str(key)]) == 0
    new = tmp_path / "new.pol"
    out = _json(capsys, "release", "policy", str(update), "--eventlog", str(log), "--key",
                f"{key}.pub", *common, "--version", str(v0 + 1), "-o", str(new))  # fmt: skip
    assert [c["event_number"] for c in out["changes"]] == [6, 7]  # type: ignore[union-attr]

    opened = tmp_path / "opened"
    both = ["--tpm-policy", str(old), "--tpm-policy", str(new)]
    open_cmd = [
        "envelope",
        "open",
        "--tpm",
        str(kek),
        *tpm_opts,
        "-i",
        str(sealed),
        "-o",
        str(opened),
    ]
    _boot(tpm, log, SHIM, GRUB2, KERNEL2)
    assert main([*open_cmd, "--tpm-policy", str(old)]) == 1  # the old policy: wrong PCRs
    assert main([*open_cmd, *both]) == 0 and opened.read_bytes() == b"disk key"
    opened.unlink()

    # the device installs the update (its boot measurements recomputed), then confirms it:
    # the floors rise and the policy counter reaches the new version, however often confirm runs
    dev = ["--state", str(tmp_path / "state"), "--device", str(tmp_path / "device"),
           "--vendor-id", VENDOR, "--class-id", CLASS]  # fmt: skip
    assert main(["update", "apply", str(update), "--key", f"{key}.pub", *dev]) == 0
    confirm = ["update", "confirm", *dev, "--policy-counter", COUNTER,
               "--policy-version", str(v0 + 1), *soft]  # fmt: skip
    assert _json(capsys, *confirm)["policy_version"] == v0 + 1
    assert _json(capsys, *confirm)["policy_version"] == v0 + 1  # a retried confirm
    shown = _json(capsys, "update", "policy-counter", "show", "--index", COUNTER, *soft)
    assert shown["version"] == v0 + 1
    _boot(tpm, log, SHIM, GRUB1, KERNEL1)  # downgraded chain after confirm
    assert main([*open_cmd, *both]) == 1
    assert not opened.exists()
    assert (
        main(
            [
                "release",
                "policy",
                str(update),
                "--eventlog",
                str(log),
                *common,
                "--version",
                "1",
                "-o",
                str(tmp_path / "x.pol"),
            ]
        )
        == 2
    )  # unauthenticated
    # a device that reports a log with a component the boot policy does not know gets no
    # signed policy (the values of everything the update does not replace come from that log)
    evil_log = tmp_path / "evil.log"
    evil_log.write_bytes(boot_log(SHIM, GRUB1, EVIL))
    evil = ["--eventlog", str(evil_log), *common, "--version", "9", "-o", str(tmp_path / "e.pol")]
    assert main(["release", "policy", "-", "--current", *evil]) == 1
    assert main(["release", "policy", str(update), "--key", f"{key}.pub", *evil]) == 1
    assert not (tmp_path / "e.pol").exists()
