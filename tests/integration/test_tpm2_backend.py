"""Tpm2Backend against a real swtpm: EKs, AKs, quotes (checked by tpm2_checkquote and by
`cryptography` right here), AK persistence, credential activation, error mapping, and
that no transient handle or session is left behind on any path."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.swtpm import Swtpm
from trustedge.attestation.backends.tpm2 import Tpm2Backend
from trustedge.errors import BackendError, BackendUnavailableError, MalformedInputError
from trustedge.hazmat.tpmbackend import AKHandle, QuoteResult, TPMBackend

pytestmark = pytest.mark.tpm

SELECTION = {"sha256": [0, 1, 2, 3, 7, 16]}


@pytest.fixture
def backend(swtpm: Swtpm) -> Iterator[Tpm2Backend]:
    with Tpm2Backend(swtpm.tcti) as tpm:
        yield tpm
        assert tpm.loaded_handles() == [], "a transient object or session leaked"


# -- helpers: verify a quote the way a verifier would, with nothing from trustedge ----------


def pem_of(public: bytes) -> bytes:
    from tpm2_pytss.types import TPM2B_PUBLIC

    area, used = TPM2B_PUBLIC.unmarshal(public)
    assert used == len(public)
    return bytes(area.to_pem())


def verify_signature(public: bytes, message: bytes, signature: bytes) -> None:
    """Check a TPMT_SIGNATURE over ``message`` with the AK; raises InvalidSignature."""
    key = load_pem_public_key(pem_of(public))
    alg, hash_alg = struct.unpack(">HH", signature[:4])
    assert hash_alg == 0x000B  # sha256
    body = signature[4:]
    if alg == 0x0018:  # ECDSA: TPM2B r, TPM2B s
        rlen = int.from_bytes(body[:2])
        r = int.from_bytes(body[2 : 2 + rlen])
        slen = int.from_bytes(body[2 + rlen : 4 + rlen])
        s = int.from_bytes(body[4 + rlen : 4 + rlen + slen])
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(SHA256()))
        return
    sig = body[2 : 2 + int.from_bytes(body[:2])]
    pad = (
        padding.PKCS1v15()
        if alg == 0x0014
        else padding.PSS(mgf=padding.MGF1(SHA256()), salt_length=padding.PSS.AUTO)
    )
    key.verify(sig, message, pad, SHA256())  # type: ignore[union-attr,call-arg]


def check_quote(
    ak: AKHandle, quote: QuoteResult, nonce: bytes, selection: dict[str, list[int]]
) -> None:
    from tpm2_pytss.types import TPMS_ATTEST

    verify_signature(ak.public, quote.message, quote.signature)
    attest, used = TPMS_ATTEST.unmarshal(quote.message)
    assert used == len(quote.message)
    assert attest.magic == 0xFF544347 and attest.type == 0x8018
    assert bytes(attest.extraData) == nonce
    assert bytes(attest.qualifiedSigner)  # present
    expected = hashlib.sha256(
        b"".join(quote.pcrs[bank][i] for bank, idx in selection.items() for i in sorted(idx))
    ).digest()
    assert bytes(attest.attested.quote.pcrDigest) == expected
    assert {b: sorted(v) for b, v in quote.pcrs.items()} == {
        b: sorted(v) for b, v in selection.items()
    }


def checkquote(tmp: Path, ak: AKHandle, quote: QuoteResult, nonce: bytes) -> int:
    (tmp / "q.msg").write_bytes(quote.message)
    (tmp / "q.sig").write_bytes(quote.signature)
    (tmp / "ak.pem").write_bytes(pem_of(ak.public))
    cmd = ["tpm2_checkquote", "-u", tmp / "ak.pem", "-m", tmp / "q.msg", "-s", tmp / "q.sig"]
    cmd += ["-g", "sha256", "-q", nonce.hex()]
    return subprocess.run(
        cmd, capture_output=True, env={**os.environ, "TSS2_LOG": "all+none"}
    ).returncode


# -- tests ----------------------------------------------------------------------------------


def test_satisfies_the_protocol(backend: Tpm2Backend) -> None:
    assert isinstance(backend, TPMBackend)


def test_info(backend: Tpm2Backend) -> None:
    info = backend.info()
    assert info.kind == "tpm"
    assert info.manufacturer == "IBM"  # swtpm's libtpms
    assert info.firmware_version > 0
    assert "sha256" in info.banks
    assert info.ek_certificate_present is False
    assert info.details["spec_revision"]


@pytest.mark.parametrize(
    ("kind", "alg", "detail"),
    [("rsa2048", 0x0001, 2048), ("ecc-p256", 0x0023, 0x0003), ("ecc-p384", 0x0023, 0x0004)],
)
def test_ek_from_tcg_template(backend: Tpm2Backend, kind: str, alg: int, detail: int) -> None:
    from tpm2_pytss.types import TPM2B_PUBLIC

    public = backend.ek_public(kind)  # type: ignore[arg-type]
    area = TPM2B_PUBLIC.unmarshal(public)[0].publicArea
    assert int(area.type) == alg
    if alg == 0x0001:
        assert int(area.parameters.rsaDetail.keyBits) == detail
    else:
        assert int(area.parameters.eccDetail.curveID) == detail
    # Primary keys are derived from the endorsement seed: the same key every time.
    assert backend.ek_public(kind) == public  # type: ignore[arg-type]
    assert backend.ek_certificate(kind) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("algorithm", "ek_kind"),
    [
        ("ecc-p256-ecdsa", "rsa2048"),
        ("ecc-p256-ecdsa", "ecc-p256"),
        ("ecc-p256-ecdsa", "ecc-p384"),
        ("rsa2048-rsassa", "ecc-p256"),
        ("rsa2048-rsapss", "rsa2048"),
    ],
)
def test_quote_verifies_with_tpm2_checkquote_and_cryptography(
    backend: Tpm2Backend, tmp_path: Path, algorithm: str, ek_kind: str
) -> None:
    ak = backend.create_ak(algorithm, ek_kind=ek_kind)  # type: ignore[arg-type]
    assert ak.algorithm == algorithm and ak.ek_kind == ek_kind
    # name = nameAlg (sha256) || H(TPMT_PUBLIC)
    assert ak.name == b"\x00\x0b" + hashlib.sha256(ak.public[2:]).digest()
    nonce = os.urandom(20)
    quote = backend.quote(ak, nonce, SELECTION)
    check_quote(ak, quote, nonce, SELECTION)
    if algorithm == "rsa2048-rsapss":
        # tpm2-tools 5.4's checkquote cannot check RSAPSS quotes at all (it does not take
        # the scheme from the key; tpm2-tools #3283): `cryptography` checked it above.
        return
    assert checkquote(tmp_path, ak, quote, nonce) == 0
    assert checkquote(tmp_path, ak, quote, os.urandom(20)) != 0  # wrong nonce


def test_tampered_quote_fails_verification(backend: Tpm2Backend) -> None:
    from cryptography.exceptions import InvalidSignature

    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    quote = backend.quote(ak, b"n" * 16, SELECTION)
    tampered = bytearray(quote.message)
    tampered[-1] ^= 1
    with pytest.raises(InvalidSignature):
        verify_signature(ak.public, bytes(tampered), quote.signature)


def test_quote_over_more_than_eight_pcrs_and_two_banks(backend: Tpm2Backend) -> None:
    # TPM2_PCR_Read returns at most 8 digests per call: the backend reads in chunks.
    selection = {"sha256": list(range(24)), "sha1": [0, 7]}
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    quote = backend.quote(ak, b"", selection)
    check_quote(ak, quote, b"", selection)
    assert len(quote.pcrs["sha1"][7]) == 20


def test_load_ak_from_blob_and_file(backend: Tpm2Backend, tmp_path: Path) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    again = backend.load_ak(ak.blob)
    assert again == ak
    Tpm2Backend.save_ak_file(ak, tmp_path / "ak.bin")
    from_file = backend.load_ak_file(tmp_path / "ak.bin")
    assert from_file == ak
    quote = backend.quote(from_file, b"x", SELECTION)
    check_quote(ak, quote, b"x", SELECTION)


@pytest.mark.parametrize("blob", [b"", b"\xa0", b"garbage", b"\xa1avb1", b"\xff" * 40], ids=repr)
def test_load_ak_rejects_malformed_blobs(backend: Tpm2Backend, blob: bytes) -> None:
    with pytest.raises(MalformedInputError):
        backend.load_ak(blob)


def test_persist_ak_at_handle(backend: Tpm2Backend) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    persisted = backend.persist_ak(ak, 0x81000123)
    try:
        assert persisted.name == ak.name and persisted.blob != ak.blob
        reloaded = backend.load_ak(persisted.blob)
        quote = backend.quote(reloaded, b"persist", SELECTION)
        check_quote(ak, quote, b"persist", SELECTION)
        with pytest.raises(ValueError, match="not persisted"):
            backend.evict_ak(ak)
    finally:
        backend.evict_ak(persisted)
    with pytest.raises(BackendError):
        backend.load_ak(persisted.blob)


def _make_credential(
    tmp: Path, ek_public: bytes, name: bytes, secret: bytes
) -> tuple[bytes, bytes]:
    from tpm2_pytss.utils import tools_to_credential

    (tmp / "ek.pub").write_bytes(ek_public)
    (tmp / "secret.bin").write_bytes(secret)
    subprocess.run(
        [
            "tpm2_makecredential",
            "-T",
            "none",
            "-u",
            tmp / "ek.pub",
            "-s",
            tmp / "secret.bin",
            "-n",
            name.hex(),
            "-o",
            tmp / "cred.blob",
        ],
        check=True,
        capture_output=True,
    )
    id_object, encrypted = tools_to_credential((tmp / "cred.blob").read_bytes())
    return bytes(id_object.marshal()), bytes(encrypted.marshal())


@pytest.mark.parametrize(
    ("ek_kind", "algorithm"), [("rsa2048", "ecc-p256-ecdsa"), ("ecc-p256", "ecc-p256-ecdsa")]
)
def test_activate_credential(
    backend: Tpm2Backend, tmp_path: Path, ek_kind: str, algorithm: str
) -> None:
    ak = backend.create_ak(algorithm, ek_kind=ek_kind)  # type: ignore[arg-type]
    secret = os.urandom(32)
    blob, encrypted = _make_credential(tmp_path, backend.ek_public(ek_kind), ak.name, secret)  # type: ignore[arg-type]
    assert backend.activate_credential(ak, blob, encrypted) == secret


def test_activate_credential_for_another_ak_name_fails(
    backend: Tpm2Backend, tmp_path: Path
) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    other = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    blob, encrypted = _make_credential(
        tmp_path, backend.ek_public("ecc-p256"), other.name, b"s" * 16
    )
    with pytest.raises(BackendError) as info:
        backend.activate_credential(ak, blob, encrypted)
    assert info.value.code is not None and info.value.code & 0x3F == 0x1F  # TPM_RC_INTEGRITY
    assert backend.loaded_handles() == []
    assert backend.activate_credential(other, blob, encrypted) == b"s" * 16


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x00\x05abc", b"\x00\x01ab"], ids=repr)
def test_activate_credential_rejects_malformed_tpm2b(backend: Tpm2Backend, bad: bytes) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    with pytest.raises(MalformedInputError):
        backend.activate_credential(ak, bad, b"\x00\x00")


def test_tpm_error_carries_code_and_text(backend: Tpm2Backend) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    # An AK blob whose public does not match its private: the TPM refuses to load it.
    other = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    from trustedge.attestation.backends import _tpm2_blobs as blobs

    mixed = blobs.decode_ak_blob(ak.blob)
    bad = blobs.encode_ak_blob(
        blobs.AKBlob(mixed.ek_kind, mixed.algorithm, other.public, private=mixed.private)
    )
    with pytest.raises(BackendError) as info:
        backend.quote(backend.load_ak(bad), b"", SELECTION)
    assert info.value.code is not None and info.value.code != 0
    assert "loading the AK" in str(info.value)
    assert backend.loaded_handles() == []


def test_pcr_reset_of_a_firmware_pcr_is_refused(backend: Tpm2Backend) -> None:
    with pytest.raises(BackendError):
        backend.pcr_reset(0)


def test_argument_misuse_is_value_error(backend: Tpm2Backend) -> None:
    ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
    with pytest.raises(ValueError):
        backend.quote(ak, b"n" * 65, SELECTION)
    with pytest.raises(ValueError):
        backend.pcr_read({"md5": [0]})
    with pytest.raises(ValueError):
        backend.pcr_read({"sha256": [24]})
    with pytest.raises(ValueError):
        backend.pcr_extend(16, {"sha256": b"short"})
    with pytest.raises(ValueError):
        backend.nv_counter_define(0x81000000)


def test_closed_backend_and_unreachable_tpm() -> None:
    with pytest.raises(BackendUnavailableError):
        Tpm2Backend("swtpm:host=127.0.0.1,port=1")
    with pytest.raises(ValueError):
        Tpm2Backend("")


def test_closed_backend_raises(swtpm: Swtpm) -> None:
    tpm = Tpm2Backend(swtpm.tcti)
    tpm.close()
    tpm.close()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        tpm.info()
