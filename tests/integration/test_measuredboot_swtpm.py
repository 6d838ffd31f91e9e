"""Replay against a real TPM: extend swtpm PCRs with a log's digests, read them back
with tpm2_pcrread, and verify the log (API and CLI with the tpm2_pcrread YAML)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge._cli import main
from trustedge._cli.measuredboot import parse_pcr_values
from trustedge.errors import ReplayMismatchError
from trustedge.measuredboot import EventType, parse_event_log
from trustedge.measuredboot.build import LogEvent, build_event_log

EVENTS = [
    LogEvent(8, EventType.EV_IPL, b"grub_cmd: linux /vmlinuz ro\x00"),
    LogEvent(8, EventType.EV_IPL, b"kernel_cmdline: /vmlinuz ro\x00"),
    LogEvent(9, EventType.EV_IPL, b"/boot/grub/grub.cfg\x00"),
    LogEvent(14, EventType.EV_IPL, b"MokList\x00"),
    LogEvent(9, EventType.EV_NO_ACTION, b"not extended"),
]


def _extend(tpm: Swtpm, data: bytes) -> None:
    log = parse_event_log(data)
    for ev in log.unverified_events[1:]:
        if ev.event_type == EventType.EV_NO_ACTION:
            continue
        spec = ",".join(f"{bank}={digest.hex()}" for bank, digest in ev.digests.items())
        subprocess.run(["tpm2_pcrextend", f"{ev.pcr}:{spec}"], env=tpm.env(), check=True)


def _pcrread(tpm: Swtpm) -> str:
    out = subprocess.run(
        ["tpm2_pcrread", "sha1:8,9,14+sha256:8,9,14"],
        env=tpm.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.tpm
def test_log_replays_to_swtpm_pcrs(
    swtpm_factory: type[Swtpm], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tpm = swtpm_factory().start()
    data = build_event_log(EVENTS, banks=("sha1", "sha256"))
    _extend(tpm, data)
    text = _pcrread(tpm)
    pcrs = parse_pcr_values(text)
    verified = parse_event_log(data).verify(pcrs)
    assert verified.verified_pcrs == {8, 9, 14}

    log_path = tmp_path / "binary_bios_measurements"
    log_path.write_bytes(data)
    pcr_path = tmp_path / "pcrs.yaml"
    pcr_path.write_text(text)
    assert main(["eventlog", "verify", str(log_path), "--pcrs", str(pcr_path)]) == 0
    capsys.readouterr()

    # One more extend the log does not know about: verification must fail closed.
    subprocess.run(["tpm2_pcrextend", f"9:sha256={'00' * 32}"], env=tpm.env(), check=True)
    pcrs = parse_pcr_values(_pcrread(tpm))
    with pytest.raises(ReplayMismatchError) as info:
        parse_event_log(data).verify(pcrs)
    assert info.value.mismatches == [("sha256", 9)]
    pcr_path.write_text(_pcrread(tpm))
    assert main(["eventlog", "verify", str(log_path), "--pcrs", str(pcr_path)]) == 1
