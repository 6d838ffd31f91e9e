"""The OpenSSF Model Signing v1.0 test vectors (tests/data/third_party/oms),
each against its expected result in ``expected-results.json``: valid bundles
are accepted (their signature verified, their statement parsed), invalid ones
rejected with the named trustedge error."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests import vectors
from trustedge import models
from trustedge.errors import SignatureError
from trustedge.models._bundle import dsse_pae

OMS = Path(__file__).resolve().parents[1] / "data" / "third_party" / "oms"
VECTORS = OMS / "test-vectors" / "v1.0"
EXPECTED: list[dict[str, Any]] = json.loads((OMS / "expected-results.json").read_text())["vectors"]


@dataclass(frozen=True)
class _Curve:
    """Short-Weierstrass parameters (a = -3) of a NIST curve; G and b are
    derived from ``cryptography`` (the public key of private value 1), p and
    n are FIPS 186-4 D.1.2 constants checked by :func:`_curve`."""

    curve: ec.EllipticCurve
    p: int
    n: int
    b: int
    g: tuple[int, int]
    hash: Callable[[bytes], Any]
    size: int


def _curve(curve: ec.EllipticCurve, p: int, n: int, hash_: Callable[[bytes], Any]) -> _Curve:
    g = ec.derive_private_key(1, curve).public_key().public_numbers()
    b = (g.y * g.y - g.x**3 + 3 * g.x) % p
    minus_g = ec.derive_private_key(n - 1, curve).public_key().public_numbers()
    assert (minus_g.x, minus_g.y) == (g.x, p - g.y), "wrong curve order"
    return _Curve(curve, p, n, b, (g.x, g.y), hash_, (p.bit_length() + 7) // 8)


P256 = _curve(
    ec.SECP256R1(),
    2**256 - 2**224 + 2**192 + 2**96 - 1,
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    hashlib.sha256,
)
P384 = _curve(
    ec.SECP384R1(),
    2**384 - 2**128 - 2**96 + 2**32 - 1,
    int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    hashlib.sha384,
)
Point = tuple[int, int] | None


def _add(c: _Curve, a: Point, b: Point) -> Point:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % c.p == 0:
        return None
    if a == b:
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, c.p) % c.p
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, c.p) % c.p
    x = (lam * lam - a[0] - b[0]) % c.p
    return x, (lam * (a[0] - x) - a[1]) % c.p


def _mul(c: _Curve, k: int, pt: Point) -> Point:
    out: Point = None
    while k:
        if k & 1:
            out = _add(c, out, pt)
        pt = _add(c, pt, pt)
        k >>= 1
    return out


def recover_keys(c: _Curve, signature: bytes, message: bytes) -> list[ec.EllipticCurvePublicKey]:
    """The public keys for which ``signature`` (DER ECDSA, the curve's hash)
    verifies over ``message`` (SEC 1 v2 §4.1.6 public key recovery; both
    curves have p = 3 mod 4, so y = sqrt(y^2) = (y^2)^((p+1)/4))."""
    r, s = decode_dss_signature(signature)
    z = int.from_bytes(c.hash(message).digest(), "big")
    y2 = (pow(r, 3, c.p) - 3 * r + c.b) % c.p
    y = pow(y2, (c.p + 1) // 4, c.p)
    keys = []
    for ry in (y, c.p - y):
        if ry * ry % c.p != y2:
            continue
        rinv = pow(r, -1, c.n)
        q = _add(c, _mul(c, s * rinv % c.n, (r, ry)), _mul(c, -z * rinv % c.n, c.g))
        if q is None:
            continue
        raw = b"\x04" + q[0].to_bytes(c.size, "big") + q[1].to_bytes(c.size, "big")
        keys.append(ec.EllipticCurvePublicKey.from_encoded_point(c.curve, raw))
    return keys


def _bundle(case: dict[str, Any]) -> bytes:
    return (VECTORS / case["file"]).read_bytes()


def test_every_vector_has_an_expected_result() -> None:
    on_disk = sorted(p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*.json"))
    assert on_disk == sorted(c["file"] for c in EXPECTED)


@pytest.mark.parametrize("case", EXPECTED, ids=[c["file"] for c in EXPECTED])
def test_vector(case: dict[str, Any]) -> None:
    data = _bundle(case)
    if case["result"] == "invalid":
        error = vectors.error_class(case["error"])
        if case.get("stage") == "statement":
            parsed = models.parse_bundle(data)
            with pytest.raises(error):
                models.parse_statement(parsed.payload)
        else:
            with pytest.raises(error):
                models.parse_bundle(data)
        return
    parsed = models.parse_bundle(data)
    assert parsed.method == case["method"]
    statement = models.parse_statement(parsed.payload)
    assert statement.subject_name == case["subject"]
    assert statement.subject_digest.hex() == case["digest"]
    assert [r.path for r in statement.resources] == case["resources"]
    if case["method"] == "key":
        _check_key_vector(data, parsed)
    elif case["method"] == "certificate":
        _check_certificate_vector(data, parsed)
    else:
        with pytest.raises(vectors.error_class(case["verify_error"])):
            models.verify_bundle(
                data, public_key=ec.generate_private_key(ec.SECP256R1()).public_key()
            )


def _check_key_vector(data: bytes, parsed: models.UnverifiedBundle) -> None:
    pae = dsse_pae(parsed.payload_type, parsed.payload)
    (sig,) = parsed.signatures
    candidates = [k for c in (P256, P384) for k in recover_keys(c, sig, pae)]
    hint = json.loads(data)["verificationMaterial"]["publicKey"]["hint"]
    named = [k for k in candidates if models.key_hint(k) == hint]
    assert len(named) == 1, "no recovered key matches the bundle's key hint"
    verified = models.verify_bundle(data, public_key=named[0])
    assert verified.signer.method == "key"
    assert verified.digest == models.parse_statement(parsed.payload).subject_digest
    # The same bundle with one payload byte changed no longer verifies.
    doc = json.loads(data)
    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload[payload.index(b"signme-1")] ^= 0x01
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(SignatureError):
        models.verify_bundle(json.dumps(doc).encode(), public_key=named[0])


def _check_certificate_vector(data: bytes, parsed: models.UnverifiedBundle) -> None:
    material = parsed.material
    assert isinstance(material, models._bundle.CertificateChainMaterial)
    certs = [x509.load_der_x509_certificate(c) for c in material.certificates]
    # Its root CA is not shipped: trust the bundled intermediate instead.
    verified = models.verify_bundle(
        data, trusted_certificates=[certs[-1]], now=certs[0].not_valid_before_utc
    )
    assert verified.signer.method == "certificate"
    assert len(verified.signer.chain) == 2
    # Against an unrelated root it is refused.
    from tests.models_support import make_chain

    with pytest.raises(SignatureError):
        models.verify_bundle(
            data, trusted_certificates=[make_chain().root], now=certs[0].not_valid_before_utc
        )
