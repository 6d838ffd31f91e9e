"""Hostile bundles that once escaped the error hierarchy (fuzz findings) and
other named bad inputs: each must raise its trustedge error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustedge import models
from trustedge.errors import KeyNotFoundError, MalformedInputError, TrustedgeError


@pytest.fixture
def bundle(model: Path, p256: ec.EllipticCurvePrivateKey) -> dict[str, object]:
    doc: dict[str, object] = json.loads(models.sign_model(model, p256))
    return doc


@pytest.mark.parametrize(
    "hint",
    ["32eb5f7f2a07b9aab4a\u0363bb289b8500", "\ud800", "é" * 64, ""],
    ids=["non-ascii", "lone-surrogate", "latin", "empty"],
)
def test_key_hint_that_is_not_ascii(
    bundle: dict[str, object], p256: ec.EllipticCurvePrivateKey, hint: str
) -> None:
    # fuzz finding (models_bundle): hmac.compare_digest raised TypeError on non-ASCII str.
    bundle["verificationMaterial"] = {"publicKey": {"hint": hint}, "tlogEntries": []}
    data = json.dumps(bundle).encode("utf-8", "surrogatepass")
    with pytest.raises(TrustedgeError) as info:
        models.verify_bundle(data, public_key=p256.public_key())
    assert isinstance(info.value, (KeyNotFoundError, MalformedInputError))
