"""The rollback state's sealed MAC key through the CLI, on the software TPM.

update policy-counter init -> release policy --current -> update state-key provision ->
release create/sign an update with boot measurements -> release policy (predicted) ->
update apply --state-counter --tpm-policy NEW -> reboot into the new chain -> update confirm
--state-counter --policy-counter -> the old chain cannot open the state (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_sealed_update_cli import _boot, _json
from tests.integration.test_sealed_update_e2e import (
    CLASS,
    EVIL,
    GRUB1,
    GRUB2,
    KERNEL1,
    KERNEL2,
    SHIM,
    VENDOR,
)
from trustedge._cli import main
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.measuredboot.authenticode import authenticode_digest

COUNTER = "0x01500D11"
STATE_COUNTER = "0x01500D12"


def test_cli_sealed_state_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tpm, log = tmp_path / "tpm", tmp_path / "boot.log"
    SoftwareTPM(tpm)
    _boot(tpm, log, SHIM, GRUB1, KERNEL1)
    soft = ["--software", str(tpm)]
    counter = _json(capsys, "update", "policy-counter", "init", "--index", COUNTER, *soft)
    v0, name = int(str(counter["version"])), str(counter["nv_name"])

    key = tmp_path / "release.pem"
    assert main(["release", "keygen", "-o", str(key)]) == 0
    approved = [authenticode_digest(i).hex() for i in (SHIM, GRUB1, GRUB2, KERNEL1, KERNEL2)]
    boot_policy = tmp_path / "boot-policy.json"
    rule = {"rule": "boot_applications", "bank": "sha256", "digests": approved}
    boot_policy.write_text(json.dumps({"version": 1, "rules": [rule]}))
    common = ["--sign", str(key), "--nv-index", COUNTER, "--nv-name", name]
    common += ["--boot-policy", str(boot_policy)]
    old = tmp_path / "old.pol"
    _json(capsys, "release", "policy", "-", "--current", "--eventlog", str(log), *common,
          "--version", str(v0), "-o", str(old))  # fmt: skip

    state = tmp_path / "state"
    sealed = ["--state-counter", STATE_COUNTER, "--tpm-authority", f"{key}.pub", *soft]
    shown = _json(capsys, "update", "state-key", "provision", "--state", str(state), *sealed,
                  "--tpm-policy", str(old))  # fmt: skip
    assert shown["policy_versions"] == [v0] and shown["pending"] is False
    assert main(["update", "state-key", "provision", "--state", str(state), *sealed,
                 "--tpm-policy", str(old)]) == 1  # fmt: skip  # already provisioned

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
    _json(capsys, "release", "policy", str(update), "--eventlog", str(log), "--key",
          f"{key}.pub", *common, "--version", str(v0 + 1), "-o", str(new))  # fmt: skip

    dev = ["--state", str(state), "--device", str(tmp_path / "device"),
           "--vendor-id", VENDOR, "--class-id", CLASS]  # fmt: skip
    apply = ["update", "apply", str(update), "--key", f"{key}.pub", *dev, *sealed]
    assert main(apply) == 2  # a sealed state needs the update's policy
    assert _json(capsys, *apply, "--tpm-policy", str(new))["installed"] is True

    show = ["update", "state-key", "show", "--state", str(state), *sealed]
    _boot(tpm, log, SHIM, GRUB2, KERNEL2)  # the new chain opens the state
    shown = _json(capsys, *show)
    assert shown["policy_versions"] == [v0, v0 + 1] and shown["pending"] is True
    _boot(tpm, log, SHIM, GRUB2, EVIL)  # an unapproved kernel does not
    assert main(show) == 1
    assert "refused to unseal the OTA state key" in capsys.readouterr().err

    _boot(tpm, log, SHIM, GRUB2, KERNEL2)
    confirm = ["update", "confirm", *dev, *sealed, "--policy-counter", COUNTER]
    confirmed = _json(capsys, *confirm)
    assert confirmed["policy_version"] == v0 + 1
    assert set(confirmed["floors"].values()) == {2}  # type: ignore[union-attr]
    assert _json(capsys, *show)["policy_versions"] == [v0 + 1]
    _boot(tpm, log, SHIM, GRUB1, KERNEL1)  # the downgraded chain after confirm
    assert main(show) == 1
    assert "revoked" in capsys.readouterr().err
