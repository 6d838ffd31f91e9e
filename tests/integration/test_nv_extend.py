"""NV extend indices and TPM2_NV_Certify, on the SoftwareTPM and on swtpm (same bytes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trustedge.errors import BackendError
from trustedge.hazmat.tpm2 import TPM_GENERATED_VALUE, TPMST, Attest, NVCertifyInfo
from trustedge.hazmat.tpm2.nv import EXTEND_ATTRIBUTES, TPMANV, TPMNT, NVPublic
from trustedge.hazmat.tpmbackend import TPMBackend

INDEX = 0x01500B20


@pytest.fixture(params=["software", "tpm2"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "software":
        from trustedge.attestation.backends.software import SoftwareTPM

        yield SoftwareTPM(tmp_path / "softtpm")
        return
    from trustedge.attestation.backends.tpm2 import Tpm2Backend

    tpm = Tpm2Backend(request.getfixturevalue("tcti"))
    try:
        for index in (INDEX, INDEX + 1):
            try:
                tpm.nv_undefine(index)
            except BackendError:
                pass
        yield tpm
    finally:
        for index in (INDEX, INDEX + 1):
            try:
                tpm.nv_undefine(index)
            except BackendError:
                pass
        tpm.close()


def test_extend_index_public_area() -> None:
    public = NVPublic.extend_index(INDEX)
    assert public.type == TPMNT.EXTEND and public.data_size == 32 and not public.written
    assert NVPublic.unmarshal(public.marshal()) == public
    assert public.attributes & TPMANV.CLEAR_STCLEAR and public.attributes == EXTEND_ATTRIBUTES
    assert public.expected_name() != public.name()  # WRITTEN is part of the name
    assert public.expected_name()[:2] == b"\x00\x0b"


def test_extend_read_certify(backend: TPMBackend) -> None:
    public = NVPublic.unmarshal(backend.nv_extend_define(INDEX))
    assert public == NVPublic.extend_index(INDEX)
    assert backend.nv_extend_define(INDEX) == public.marshal()  # idempotent
    assert backend.nv_extend_read(INDEX) is None
    a, b = hashlib.sha256(b"model a").digest(), hashlib.sha256(b"model b").digest()
    backend.nv_extend(INDEX, a)
    backend.nv_extend(INDEX, b)
    expected = hashlib.sha256(hashlib.sha256(bytes(32) + a).digest() + b).digest()
    assert backend.nv_extend_read(INDEX) == expected
    ak = backend.create_ak("ecc-p256-ecdsa")
    message, signature = backend.nv_certify(ak, INDEX, b"nonce-123", size=32)
    attest = Attest.unmarshal(message)
    assert attest.magic == TPM_GENERATED_VALUE and attest.type == TPMST.ATTEST_NV
    assert attest.extra_data == b"nonce-123"
    assert isinstance(attest.attested, NVCertifyInfo)
    assert attest.attested.index_name == public.expected_name()
    assert attest.attested.nv_contents == expected and attest.attested.offset == 0
    assert signature[:2] == b"\x00\x18"  # TPM_ALG_ECDSA


def test_other_definitions_refused(backend: TPMBackend) -> None:
    backend.nv_counter_define(INDEX + 1)
    with pytest.raises(BackendError):
        backend.nv_extend_define(INDEX + 1)
    with pytest.raises(BackendError):
        backend.nv_extend(INDEX + 1, bytes(32))


def test_unwritten_index_cannot_be_certified(backend: TPMBackend) -> None:
    backend.nv_extend_define(INDEX)
    ak = backend.create_ak("ecc-p256-ecdsa")
    with pytest.raises(BackendError):
        backend.nv_certify(ak, INDEX, b"n", size=32)


def test_software_reboot_clears_the_index(tmp_path: Path) -> None:
    from trustedge.attestation.backends.software import SoftwareTPM

    tpm = SoftwareTPM(tmp_path / "t")
    tpm.nv_extend_define(INDEX)
    tpm.nv_extend(INDEX, bytes(32))
    assert SoftwareTPM(tmp_path / "t").nv_extend_read(INDEX) is not None  # survives a restart
    tpm.reboot()
    assert tpm.nv_extend_read(INDEX) is None  # TPMA_NV_CLEAR_STCLEAR
