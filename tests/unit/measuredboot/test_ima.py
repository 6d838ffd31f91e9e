"""IMA list details: per-bank lists, violations, templates, limits."""

from __future__ import annotations

import hashlib

import pytest

from trustedge.errors import LimitExceededError, MalformedInputError, ReplayMismatchError
from trustedge.measuredboot import ImaLimits, ImaState, parse_ima_log, verify_ima_log
from trustedge.measuredboot.build import build_ima_entry


def _sha256_column(record: bytes) -> bytes:
    """Rewrite a classic record into a per-bank (SHA-256 template hash) record."""
    pcr, rest = record[:4], record[24:]
    name_len = int.from_bytes(rest[:4], "little")
    template = rest[4 + name_len + 4 :]
    return pcr + hashlib.sha256(template).digest() + rest


def test_per_bank_binary_list() -> None:
    records = [build_ima_entry(p, bytes(32)) for p in ("boot_aggregate", "/bin/a", "/bin/b")]
    data = b"".join(_sha256_column(r) for r in records)
    log = parse_ima_log(data, template_hash_size=32)
    assert len(log.unverified_entries) == 3
    pcr = log.replay("sha256")
    assert len(verify_ima_log(log, pcr, bank="sha256").entries) == 3
    with pytest.raises(ReplayMismatchError):
        verify_ima_log(log, bytes(20), bank="sha1")
    with pytest.raises(ValueError):
        parse_ima_log(data, template_hash_size=7)


def test_violation_extends_all_ones() -> None:
    line = b"10 " + b"0" * 40 + b" ima-ng sha1:" + b"0" * 40 + b" /tmp/x\n"
    log = parse_ima_log(line)
    assert log.unverified_entries[0].is_violation
    want = hashlib.sha1(bytes(20) + b"\xff" * 20).digest()
    assert log.replay("sha1") == want
    want256 = hashlib.sha256(bytes(32) + b"\xff" * 32).digest()
    assert log.replay("sha256") == want256
    verify_ima_log(log, want)


def test_templates_from_ascii() -> None:
    sig = "030204aabbccdd0002beef"
    lines = [
        f"10 {'11' * 20} ima-sig sha256:{'22' * 32} /usr/bin/x {sig}",
        f"10 {'11' * 20} ima-sig sha256:{'22' * 32} /usr/bin/unsigned ",
        f"10 {'11' * 20} ima-buf sha256:{'33' * 32} .ima 3082",
        f"10 {'11' * 20} ima {'44' * 20} /old/style",
        f"10 {'11' * 20} ima-modsig sha256:{'55' * 32} /lib/m.ko {sig} sha256:{'66' * 32} 00",
    ]
    log = parse_ima_log(("\n".join(lines) + "\n").encode())
    fields = [e.fields() for e in log.unverified_entries]
    assert fields[0].signature.hex() == sig
    assert fields[1].signature == b"" and fields[1].path == "/usr/bin/unsigned"
    assert fields[2].buffer == bytes.fromhex("3082")
    assert fields[3].digest_algorithm == "sha1" and fields[3].path == "/old/style"
    assert fields[4].path == "/lib/m.ko"
    with pytest.raises(ReplayMismatchError):
        verify_ima_log(log, bytes(20))  # template hashes are placeholders


@pytest.mark.parametrize(
    "data",
    [
        b"10 zz ima-ng sha1:00 /x\n",
        b"99 " + b"0" * 40 + b" ima-ng sha1:00 /x\n",
        b"10 " + b"0" * 40 + b" ima-unknown foo\n",
        b"10 " + b"0" * 40 + b" ima-ng nocolon /x\n",
        b"10 " + b"0" * 40 + b" ima-ng sha1:00 /x",
    ],
)
def test_bad_ascii(data: bytes) -> None:
    with pytest.raises(MalformedInputError) as info:
        parse_ima_log(data)
    assert info.value.offset == 0


def test_limits_and_state_checks() -> None:
    data = b"".join(build_ima_entry(f"/f{i}", bytes(32)) for i in range(5))
    with pytest.raises(LimitExceededError):
        parse_ima_log(data, limits=ImaLimits(max_entries=2))
    with pytest.raises(LimitExceededError):
        parse_ima_log(data, limits=ImaLimits(max_list_size=10))
    log = parse_ima_log(data)
    with pytest.raises(ValueError):
        verify_ima_log(log, bytes(20), state=ImaState(0, 99, bytes(20)))
    with pytest.raises(ValueError):
        verify_ima_log(log, bytes(32))
    with pytest.raises(TypeError):
        parse_ima_log("text")  # type: ignore[arg-type]
