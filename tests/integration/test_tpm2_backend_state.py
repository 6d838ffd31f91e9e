"""Tpm2Backend state that outlives a call: PCRs, NV counters (across a swtpm restart),
sealing to PCRs and auth values. Each test gets its own swtpm so PCR and NV changes
and dictionary-attack counters never leak into other tests."""

from __future__ import annotations

import hashlib
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.requirements import unavailable
from tests.swtpm import Swtpm, _free_adjacent_ports
from trustedge.attestation.backends.tpm2 import Tpm2Backend
from trustedge.errors import BackendError, MalformedInputError, VerificationError

pytestmark = pytest.mark.tpm

COUNTER = 0x01500020
ZERO = bytes(32)


@pytest.fixture
def own_tpm(swtpm_factory: type[Swtpm]) -> Swtpm:
    return swtpm_factory().start()


@pytest.fixture
def backend(own_tpm: Swtpm) -> Iterator[Tpm2Backend]:
    with Tpm2Backend(own_tpm.tcti) as tpm:
        yield tpm
        assert tpm.loaded_handles() == [], "a transient object or session leaked"


def d(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# -- PCRs --------------------------------------------------------------------------------


def test_pcr_extend_reset_and_read_in_two_banks(backend: Tpm2Backend) -> None:
    sha1 = hashlib.sha1(b"event").digest()
    backend.pcr_extend(16, {"sha256": d(b"event"), "sha1": sha1})
    values = backend.pcr_read({"sha256": [16], "sha1": [16]})
    assert values["sha256"][16] == d(ZERO + d(b"event"))
    assert values["sha1"][16] == hashlib.sha1(bytes(20) + sha1).digest()
    backend.pcr_reset(16)
    assert backend.pcr_read({"sha256": [16]}) == {"sha256": {16: ZERO}}


def test_unallocated_bank_is_a_backend_error(swtpm_factory: type[Swtpm], tmp_path: Path) -> None:
    # Leave only sha256 allocated, as Debian's swtpm_setup does.
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--pcr-banks", "sha256",
         "--overwrite", "--logfile", str(tmp_path / "log")],
        check=True, capture_output=True,
    )  # fmt: skip
    tpm = swtpm_factory(state).start()
    with Tpm2Backend(tpm.tcti) as backend:
        assert backend.info().banks == ("sha256",)
        with pytest.raises(BackendError, match="not allocated"):
            backend.pcr_read({"sha1": [0]})
        with pytest.raises(BackendError, match="not allocated"):
            backend.pcr_extend(16, {"sha1": bytes(20)})


# -- NV counters ---------------------------------------------------------------------------


def test_nv_counter_survives_restart_and_is_certified(own_tpm: Swtpm) -> None:
    with Tpm2Backend(own_tpm.tcti) as backend:
        backend.nv_counter_define(COUNTER)
        with pytest.raises(BackendError, match="before being initialized"):
            backend.nv_counter_read(COUNTER)  # never incremented
        first = backend.nv_counter_increment(COUNTER)
        second = backend.nv_counter_increment(COUNTER)
        assert second == first + 1 == backend.nv_counter_read(COUNTER)
        with pytest.raises(BackendError):
            backend.nv_counter_define(COUNTER)  # already defined: TPM_RC_NV_DEFINED
    own_tpm.restart()
    with Tpm2Backend(own_tpm.tcti) as backend:
        assert backend.nv_counter_read(COUNTER) == second
        assert backend.nv_counter_increment(COUNTER) == second + 1

        from tpm2_pytss.types import TPMS_ATTEST

        from tests.integration.test_tpm2_backend import verify_signature

        ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        message, signature = backend.nv_certify(ak, COUNTER, b"rollback-floor")
        verify_signature(ak.public, message, signature)
        attest = TPMS_ATTEST.unmarshal(message)[0]
        assert attest.type == 0x8014 and bytes(attest.extraData) == b"rollback-floor"
        assert struct.unpack(">Q", bytes(attest.attested.nv.nvContents)) == (second + 1,)

        backend.nv_counter_undefine(COUNTER)
        with pytest.raises(BackendError) as info:
            backend.nv_counter_read(COUNTER)
        assert info.value.code is not None
        assert backend.loaded_handles() == []


def test_nv_counter_with_auth_policy(backend: Tpm2Backend) -> None:
    backend.nv_counter_define(COUNTER + 1, auth=b"updater-secret")
    with pytest.raises(BackendError):
        backend.nv_counter_read(COUNTER + 1)  # never incremented
    first = backend.nv_counter_increment(COUNTER + 1, auth=b"updater-secret")
    with pytest.raises(VerificationError):
        backend.nv_counter_increment(COUNTER + 1)  # no auth
    with pytest.raises(VerificationError):
        backend.nv_counter_increment(COUNTER + 1, auth=b"guess")
    assert backend.nv_counter_read(COUNTER + 1) == first  # anyone may read
    assert backend.nv_counter_increment(COUNTER + 1, auth=b"updater-secret") == first + 1
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    message, _ = backend.nv_certify(ak, COUNTER + 1, b"n")
    assert message[4:6] == b"\x80\x14"
    backend.nv_counter_undefine(COUNTER + 1)
    assert backend.loaded_handles() == []


# -- sealing -----------------------------------------------------------------------------


def test_seal_to_pcr_fails_after_extend(backend: Tpm2Backend) -> None:
    blob = backend.seal(b"kek" * 10, pcrs={"sha256": [16, 23]})
    assert backend.unseal(blob) == b"kek" * 10
    assert backend.unseal(blob, auth=b"not needed") == b"kek" * 10  # ignored, not garbage
    backend.pcr_extend(16, {"sha256": d(b"tampered")})
    with pytest.raises(VerificationError):
        backend.unseal(blob)
    assert backend.loaded_handles() == []
    backend.pcr_reset(16)  # back to the sealed value
    assert backend.unseal(blob) == b"kek" * 10


def test_seal_to_auth_value(backend: Tpm2Backend) -> None:
    blob = backend.seal(b"secret", auth=b"passphrase")
    assert backend.unseal(blob, auth=b"passphrase") == b"secret"
    with pytest.raises(VerificationError):
        backend.unseal(blob, auth=b"wrong")
    assert backend.loaded_handles() == []


def test_seal_to_pcrs_and_auth(backend: Tpm2Backend) -> None:
    blob = backend.seal(b"both", pcrs={"sha256": [16]}, auth=b"pin")
    assert backend.unseal(blob, auth=b"pin") == b"both"
    with pytest.raises(VerificationError):
        backend.unseal(blob, auth=b"nip")
    backend.pcr_extend(16, {"sha256": d(b"x")})
    with pytest.raises(VerificationError):
        backend.unseal(blob, auth=b"pin")


def test_seal_without_policy_is_bound_to_this_tpm(
    backend: Tpm2Backend, swtpm_factory: type[Swtpm]
) -> None:
    blob = backend.seal(b"device-bound")
    assert backend.unseal(blob) == b"device-bound"
    other = swtpm_factory().start()
    with Tpm2Backend(other.tcti) as elsewhere, pytest.raises(BackendError):
        elsewhere.unseal(blob)  # another TPM's SRK cannot load it


def test_seal_limits_and_malformed_blobs(backend: Tpm2Backend) -> None:
    with pytest.raises(ValueError):
        backend.seal(bytes(129))
    assert backend.unseal(backend.seal(bytes(128))) == bytes(128)
    for bad in (b"", b"\xa0", b"\x82\x01\x02", b"not cbor at all"):
        with pytest.raises(MalformedInputError):
            backend.unseal(bad)
    from trustedge.attestation.backends import _tpm2_blobs as blobs

    good = blobs.decode_sealed_blob(backend.seal(b"x"))
    flipped = bytearray(good.private)
    flipped[-1] ^= 1
    tampered = blobs.encode_sealed_blob(
        blobs.SealedBlob(good.public, bytes(flipped), good.pcrs, good.auth)
    )
    with pytest.raises(BackendError):
        backend.unseal(tampered)  # integrity check of the private area


@contextmanager
def bare_swtpm(state: Path, *, flags: str, log: Path | None = None) -> Iterator[str]:
    """swtpm started by hand (other flags or log level than the fixture's); yields the TCTI."""
    if shutil.which("swtpm") is None:
        unavailable("swtpm is not installed")
    extra = ["--log", f"file={log},level=20"] if log else []
    for _ in range(10):
        port = _free_adjacent_ports()
        proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", flags, *extra],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(250):
            if proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port + 1), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        if proc.poll() is None:
            break
    try:
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        proc.terminate()
        proc.wait()


def test_startup_is_sent_when_the_tpm_needs_it(tmp_path: Path) -> None:
    with bare_swtpm(tmp_path, flags="not-need-init") as tcti, Tpm2Backend(tcti) as backend:
        ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        assert backend.quote(ak, b"n", {"sha256": [0]}).message[:4] == b"\xffTCG"


def test_sealed_secret_and_auth_never_cross_the_bus_in_the_clear(tmp_path: Path) -> None:
    """swtpm at log level 20 dumps every command and response: neither the secret nor
    the auth value may appear there (parameter encryption with SRK-salted sessions)."""
    log = tmp_path / "swtpm.log"
    secret, auth = b"key-encryption-key-0123456789", b"correct horse battery"
    with bare_swtpm(tmp_path, flags="not-need-init,startup-clear", log=log) as tcti:
        with Tpm2Backend(tcti) as backend:
            for blob in (
                backend.seal(secret, pcrs={"sha256": [16]}),
                backend.seal(secret, auth=auth),
                backend.seal(secret, pcrs={"sha256": [16]}, auth=auth),
            ):
                assert backend.unseal(blob, auth=auth) == secret
    dump = "".join(log.read_text().split()).lower()
    assert len(dump) > 1000  # the traffic was logged
    assert secret.hex() not in dump
    assert auth.hex() not in dump


def test_hierarchy_auth_values(own_tpm: Swtpm) -> None:
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import ESYS_TR

    with ESAPI(own_tpm.tcti) as esapi:
        esapi.hierarchy_change_auth(ESYS_TR.OWNER, b"owner-pw")
        esapi.hierarchy_change_auth(ESYS_TR.ENDORSEMENT, b"endorsement-pw")
    with Tpm2Backend(own_tpm.tcti) as backend:
        with pytest.raises(BackendError):
            backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        with pytest.raises(BackendError):
            backend.nv_counter_define(COUNTER)
    with Tpm2Backend(
        own_tpm.tcti, owner_auth=b"owner-pw", endorsement_auth=b"endorsement-pw"
    ) as backend:
        ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        assert backend.quote(ak, b"n", {"sha256": [0]}).message[:4] == b"\xffTCG"
        backend.nv_counter_define(COUNTER)
        backend.nv_counter_increment(COUNTER)
        backend.nv_counter_undefine(COUNTER)
        assert backend.unseal(backend.seal(b"s", pcrs={"sha256": [0]})) == b"s"
        assert backend.loaded_handles() == []
