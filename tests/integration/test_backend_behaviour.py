"""One behaviour suite for every TPMBackend implementation.

``BACKEND_KINDS`` lists the implementations under test; the ``backend`` fixture
builds a fresh one per test ("software": a SoftwareTPM in a temporary
directory; "tpm2": Tpm2Backend on the session swtpm). Quotes are checked with
trustedge's verifier and credentials made with trustedge's MakeCredential.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustedge.attestation import QuoteNonceError, verify_quote
from trustedge.errors import BackendError, VerificationError
from trustedge.hazmat.tpm2 import EK_TEMPLATES, Public, make_credential
from trustedge.hazmat.tpmbackend import AKAlgorithm, EKKind, TPMBackend

BACKEND_KINDS = ["software", "tpm2"]

AK_ALGORITHMS: list[AKAlgorithm] = ["ecc-p256-ecdsa", "rsa2048-rsassa", "rsa2048-rsapss"]
NV_INDEX = 0x01500A10


@pytest.fixture(params=BACKEND_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "software":
        from trustedge.attestation.backends.software import SoftwareTPM

        yield SoftwareTPM(tmp_path / "softtpm")
    elif request.param == "tpm2":
        from trustedge.attestation.backends.tpm2 import Tpm2Backend  # type: ignore[import-not-found]

        tpm = Tpm2Backend(request.getfixturevalue("tcti"))
        try:
            yield tpm
        finally:
            close = getattr(tpm, "close", None)
            if close is not None:
                close()
    else:  # pragma: no cover
        raise AssertionError(request.param)


def test_implements_protocol(backend: TPMBackend) -> None:
    assert isinstance(backend, TPMBackend)
    info = backend.info()
    assert "sha256" in info.banks


@pytest.mark.parametrize("algorithm", AK_ALGORITHMS)
def test_create_ak_quote_verify(backend: TPMBackend, algorithm: AKAlgorithm) -> None:
    ak = backend.create_ak(algorithm)
    public = Public.unmarshal_tpm2b(ak.public)
    assert public.name() == ak.name
    assert backend.load_ak(ak.blob).name == ak.name
    nonce = hashlib.sha256(b"nonce" + algorithm.encode()).digest()
    selection = {"sha256": [0, 1, 2, 7, 16]}
    q = backend.quote(ak, nonce, selection)
    verified = verify_quote(q.message, q.signature, public, nonce=nonce, pcrs=q.pcrs,
                            selection=selection)  # fmt: skip
    assert verified.ak_name == ak.name
    with pytest.raises(QuoteNonceError):
        verify_quote(q.message, q.signature, public, nonce=nonce[::-1], pcrs=q.pcrs)


def test_successive_quotes_advance_the_clock(backend: TPMBackend) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa")
    public = Public.unmarshal_tpm2b(ak.public)
    first = backend.quote(ak, b"n1", {"sha256": [0]})
    second = backend.quote(ak, b"n2", {"sha256": [0]})
    v1 = verify_quote(first.message, first.signature, public, nonce=b"n1", pcrs=first.pcrs)
    v2 = verify_quote(second.message, second.signature, public, nonce=b"n2", pcrs=second.pcrs,
                      last=v1.state)  # fmt: skip
    assert v2.state > v1.state


def test_pcr_extend_reset_semantics(backend: TPMBackend) -> None:
    backend.pcr_reset(16)
    zero = backend.pcr_read({"sha256": [16], "sha1": [16]})
    assert zero == {"sha256": {16: bytes(32)}, "sha1": {16: bytes(20)}}
    d256, d1 = hashlib.sha256(b"a").digest(), hashlib.sha1(b"a").digest()
    backend.pcr_extend(16, {"sha256": d256, "sha1": d1})
    after = backend.pcr_read({"sha256": [16], "sha1": [16]})
    assert after["sha256"][16] == hashlib.sha256(bytes(32) + d256).digest()
    assert after["sha1"][16] == hashlib.sha1(bytes(20) + d1).digest()
    backend.pcr_reset(16)
    assert backend.pcr_read({"sha256": [16]}) == {"sha256": {16: bytes(32)}}
    with pytest.raises(BackendError):
        backend.pcr_reset(0)


def test_nv_counter(backend: TPMBackend) -> None:
    backend.nv_counter_define(NV_INDEX)
    try:
        with pytest.raises(BackendError):
            backend.nv_counter_read(NV_INDEX)
        with pytest.raises(BackendError):
            backend.nv_counter_define(NV_INDEX)
        first = backend.nv_counter_increment(NV_INDEX)
        assert backend.nv_counter_increment(NV_INDEX) == first + 1
        assert backend.nv_counter_read(NV_INDEX) == first + 1
    finally:
        backend.nv_counter_undefine(NV_INDEX)
    backend.nv_counter_define(NV_INDEX)
    try:
        # Redefining never rolls the counter back.
        assert backend.nv_counter_increment(NV_INDEX) > first + 1
    finally:
        backend.nv_counter_undefine(NV_INDEX)
    with pytest.raises(BackendError):
        backend.nv_counter_read(NV_INDEX)


def test_seal_unseal(backend: TPMBackend) -> None:
    backend.pcr_reset(16)
    blob = backend.seal(b"kek-material", pcrs={"sha256": [16]})
    assert backend.unseal(blob) == b"kek-material"
    backend.pcr_extend(16, {"sha256": bytes(range(32))})
    with pytest.raises(VerificationError):
        backend.unseal(blob)
    with_auth = backend.seal(b"pin-protected", auth=b"1234")
    assert backend.unseal(with_auth, auth=b"1234") == b"pin-protected"
    with pytest.raises(VerificationError):
        backend.unseal(with_auth, auth=b"4321")


@pytest.mark.parametrize("ek_kind", ["rsa2048", "ecc-p256"])
def test_activate_credential(backend: TPMBackend, ek_kind: EKKind) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind=ek_kind)
    ek = Public.unmarshal_tpm2b(backend.ek_public(ek_kind))
    secret = b"0123456789abcdef0123456789abcdef"
    cred = make_credential(ek, secret, ak.name)
    assert backend.activate_credential(ak, cred.credential_blob, cred.encrypted_secret) == secret
    wrong = make_credential(ek, secret, ak.name[:-1] + bytes([ak.name[-1] ^ 1]))
    with pytest.raises((BackendError, VerificationError)):
        backend.activate_credential(ak, wrong.credential_blob, wrong.encrypted_secret)


@pytest.mark.parametrize("ek_kind", ["rsa2048", "ecc-p256"])
def test_ek_public_and_certificate(backend: TPMBackend, ek_kind: EKKind) -> None:
    ek = Public.unmarshal_tpm2b(backend.ek_public(ek_kind))
    template = EK_TEMPLATES[ek_kind]
    assert (ek.type, ek.name_alg, ek.attributes, ek.auth_policy, ek.parameters) == (
        template.type, template.name_alg, template.attributes, template.auth_policy,
        template.parameters,
    )  # fmt: skip
    cert = backend.ek_certificate(ek_kind)
    if cert is None:
        return  # a TPM without a provisioned certificate
    loaded = x509.load_der_x509_certificate(cert)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert loaded.public_key().public_bytes(serialization.Encoding.DER, spki) == (
        ek.public_key().public_bytes(serialization.Encoding.DER, spki)
    )
