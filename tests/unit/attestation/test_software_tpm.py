"""SoftwareTPM: persistence, clock/reset/restart, localities, NV, sealing, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustedge.attestation import QuoteState, verify_quote
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import BackendError, MalformedInputError, PolicyError, VerificationError
from trustedge.hazmat.tpm2 import Attest, Public

SEED = b"trustedge-test-seed-0123456789ab"


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _quote(tpm: SoftwareTPM, nonce: bytes = b"nonce") -> tuple[Attest, QuoteState]:
    ak = tpm.load_ak((tpm.state_dir / "ak").read_bytes())
    q = tpm.quote(ak, nonce, {"sha256": [0, 16]})
    v = verify_quote(q.message, q.signature, Public.unmarshal_tpm2b(ak.public), nonce=nonce,
                     pcrs=q.pcrs, qualified_signer=tpm.qualified_name(ak))  # fmt: skip
    return v.attest, v.state


@pytest.fixture
def tpm(tmp_path: Path) -> SoftwareTPM:
    t = SoftwareTPM(tmp_path / "state", seed=SEED)
    ak = t.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    (t.state_dir / "ak").write_bytes(ak.blob)
    return t


def test_state_persists_and_construction_is_not_a_reboot(tpm: SoftwareTPM) -> None:
    tpm.pcr_extend(16, {"sha256": b"\x01" * 32})
    _, before = _quote(tpm)
    again = SoftwareTPM(tpm.state_dir)
    assert again.pcr_read({"sha256": [16]}) == tpm.pcr_read({"sha256": [16]})
    _, after = _quote(again)
    assert after > before and after.reset_count == before.reset_count
    assert [p.name for p in tpm.state_dir.iterdir() if p.name.startswith(".")] == []


def test_reboot_resume_and_unclean_reset(tpm: SoftwareTPM) -> None:
    tpm.pcr_extend(16, {"sha256": b"\x01" * 32})
    _, s0 = _quote(tpm)
    tpm.resume()
    _, s1 = _quote(tpm)
    assert (s1.reset_count, s1.restart_count) == (s0.reset_count, s0.restart_count + 1)
    assert tpm.pcr_read({"sha256": [16]})["sha256"][16] != bytes(32)
    tpm.reboot()
    a2, s2 = _quote(tpm)
    assert (s2.reset_count, s2.restart_count) == (s0.reset_count + 1, 0) and a2.clock_info.safe
    assert s2.clock > s1.clock
    assert tpm.pcr_read({"sha256": [16]})["sha256"][16] == bytes(32)
    tpm.reboot(orderly=False)
    a3, s3 = _quote(tpm)
    assert not a3.clock_info.safe and s3.reset_count == s2.reset_count + 1
    tpm.reboot(startup_locality=3)
    assert tpm.pcr_read({"sha256": [0]})["sha256"][0] == bytes(31) + b"\x03"


def test_clock_follows_time_source(tmp_path: Path) -> None:
    clock = FakeTime()
    tpm = SoftwareTPM(tmp_path / "s", time_source=clock)
    c1 = tpm.clock_info().clock
    clock.now += 2.5
    c2 = tpm.clock_info().clock
    assert c2 - c1 >= 2499  # the first reading was already forced 1 ms ahead


def test_localities(tpm: SoftwareTPM) -> None:
    with pytest.raises(BackendError):
        tpm.pcr_extend(17, {"sha256": bytes(32)})
    tpm.pcr_extend(17, {"sha256": bytes(32)}, locality=4)
    assert tpm.pcr_read({"sha256": [17]})["sha256"][17] != b"\xff" * 32
    with pytest.raises(BackendError):
        tpm.pcr_reset(17, locality=2)
    tpm.pcr_reset(17, locality=4)
    tpm.locality = 2
    tpm.pcr_reset(21)
    with pytest.raises(BackendError):
        tpm.pcr_reset(0)
    with pytest.raises(BackendError):
        tpm.pcr_extend(24, {"sha256": bytes(32)})
    with pytest.raises(BackendError):
        tpm.pcr_extend(1, {"sha256": bytes(20)})
    with pytest.raises(BackendError):
        tpm.pcr_read({"sha512": [0]})


def test_nv_errors(tpm: SoftwareTPM) -> None:
    with pytest.raises(BackendError):
        tpm.nv_counter_define(0x02000000)
    with pytest.raises(BackendError):
        tpm.nv_counter_increment(0x01000001)
    with pytest.raises(BackendError):
        tpm.nv_counter_undefine(0x01000001)


def test_quote_nonce_limit_and_unknown_ak(tpm: SoftwareTPM) -> None:
    ak = tpm.load_ak((tpm.state_dir / "ak").read_bytes())
    with pytest.raises(BackendError):
        tpm.quote(ak, b"x" * 65, {"sha256": [0]})
    with pytest.raises(BackendError):
        tpm.load_ak(b"\x00" * 16)


def test_sealed_blob_checks(tpm: SoftwareTPM, tmp_path: Path) -> None:
    blob = tpm.seal(b"secret", pcrs={"sha256": [16]})
    with pytest.raises(MalformedInputError):
        tpm.unseal(b"junk")
    with pytest.raises(MalformedInputError):
        tpm.unseal(blob[:-3])
    other = SoftwareTPM(tmp_path / "other", seed=b"another-seed-0123456789abcdef")
    with pytest.raises(VerificationError):
        other.unseal(blob)
    tpm.pcr_extend(16, {"sha256": b"\x02" * 32})
    with pytest.raises(PolicyError):
        tpm.unseal(blob)
    with pytest.raises(ValueError):
        tpm.seal(b"x" * 129)


def test_deterministic_mode_reproduces_bytes(tmp_path: Path) -> None:
    out = []
    for name in ("a", "b"):
        t = SoftwareTPM(tmp_path / name, seed=SEED)
        ak = t.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        out.append((ak.public, t.quote(ak, b"n", {"sha256": [0]}).signature,
                    t.ek_certificate("ecc-p256")))  # fmt: skip
    assert out[0] == out[1]


def test_ek_certificate_chains_to_software_ca(tpm: SoftwareTPM) -> None:
    from cryptography import x509

    ca = x509.load_der_x509_certificate(tpm.ek_ca_certificate())
    cert = x509.load_der_x509_certificate(tpm.ek_certificate("ecc-p256") or b"")
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert tpm.info().kind == "software"


def test_corrupt_state_is_malformed(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    (d / "softtpm.cbor").write_bytes(b"\xa1\x61v\x02")
    with pytest.raises(MalformedInputError):
        SoftwareTPM(d)
