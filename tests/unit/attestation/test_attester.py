"""Attester: evidence from a SoftwareTPM, and where the IMA list resumes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from trustedge.attestation import Attester, Evidence
from trustedge.attestation.attester import ima_tail
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.simulate import measure_file
from trustedge.errors import MalformedInputError
from trustedge.measuredboot import parse_ima_log
from trustedge.measuredboot.build import build_ima_entry

ENTRIES = [build_ima_entry(f"/bin/p{i}", bytes([i]) * 32, algo="sha256") for i in range(5)]
LIST = b"".join(ENTRIES)


def test_ima_tail_from_an_offset() -> None:
    assert ima_tail(LIST, 0) == (LIST, 0)
    tail, offset = ima_tail(LIST, 2)
    assert offset == 2 and tail == b"".join(ENTRIES[2:])
    assert ima_tail(LIST, 5) == (b"", 5)


def test_ima_tail_after_a_reboot_starts_again() -> None:
    assert ima_tail(LIST, 9) == (LIST, 0)
    assert ima_tail(b"", 3) == (b"", 0)


def test_ima_tail_leaves_out_a_record_being_written() -> None:
    tail, offset = ima_tail(LIST + ENTRIES[0][:10], 4)
    assert offset == 4 and tail == ENTRIES[4]


def test_ima_tail_rejects_garbage_and_misuse() -> None:
    with pytest.raises(MalformedInputError):
        ima_tail(b"\xff" * 64, 0)
    with pytest.raises(ValueError):
        ima_tail(LIST, -1)


def test_evidence_from_a_software_tpm(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    ak = tpm.create_ak()
    ima = tmp_path / "ima"
    ima.write_bytes(b"")
    for i in range(3):
        measure_file(tpm, ima, f"/bin/p{i}", hashlib.sha256(b"%d" % i).digest())
    (tmp_path / "log").write_bytes(b"firmware log bytes")
    agent = Attester(tpm, ak=ak, device_id="d1", eventlog_path=tmp_path / "log", ima_path=ima)
    ev = agent.evidence(bytes(range(32)), pcrs=(0, 10), ima_offset=1, enrollment_ref="r1")
    assert Evidence.decode(ev.encode()) == ev
    assert ev.ima_offset == 1 and len(parse_ima_log(ev.ima_log or b"").unverified_entries) == 2
    assert sorted(ev.bank("sha256")) == [0, 10]
    assert ev.bank("sha256")[10] == tpm.pcr_read({"sha256": [10]})["sha256"][10]
    assert ev.event_log == b"firmware log bytes" and ev.enrollment_ref == "r1"
    request = agent.enrollment_request()
    assert request.ak_public == ak.public and request.ek_certificate is not None


def test_evidence_without_logs(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    agent = Attester(tpm, ak=tpm.create_ak(), device_id="d1")
    ev = agent.evidence(bytes(32), pcrs=(7,), ima_offset=9)
    assert ev.event_log is None and ev.ima_log is None and ev.ima_offset == 0
    with pytest.raises(ValueError):
        Attester(tpm, ak=tpm.create_ak(), device_id="d1", bank="md5")
