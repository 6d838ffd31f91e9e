"""atheris entry point: trust-root documents (``trustedge.ota.trustroot``).

The input is a signed trust root (COSE_Sign over the deterministic-CBOR document):
it is loaded as a provisioned root (its own root threshold must sign) and offered
as the rotation N+1 of a fixed root. Seeds are trust roots signed by the harness's
own keys (so valid documents reach every check behind the signatures) and the
trust roots of the project's OTA scenarios.
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.fuzz._harness import json_hex_values
from trustedge.errors import TrustedgeError
from trustedge.ota import TrustRoot, build_trust_root

MAX_LEN = 16384
_NOW = 1_700_000_000
_ED = [ed25519.Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in (1, 2, 3)]
_EC = ec.derive_private_key(0x5EED, ec.SECP256R1())


def _root(version: int, signers: list[ed25519.Ed25519PrivateKey], **extra: object) -> bytes:
    return build_trust_root(
        version=version,
        expires=_NOW + 3600,
        root_keys=[k.public_key() for k in _ED[:2]],
        root_threshold=2,
        firmware_keys=[_ED[2].public_key(), _EC.public_key()],
        firmware_threshold=1,
        signers=signers,
        **extra,  # type: ignore[arg-type]
    )


_BASE = TrustRoot.load(_root(1, _ED[:2]), now=_NOW)


def seeds() -> list[bytes]:
    """Signed roots of several shapes, and the OTA scenarios' roots."""
    out = [
        _root(1, _ED[:2]),
        _root(2, _ED[:2]),
        _root(2, _ED[:1]),
        _root(2, _ED[:2], floor_reset={b"fw": 3}),
        _root(2, _ED[:2], component_roles={b"app": ([_ED[2].public_key()], 1)}),
    ]
    out += list(json_hex_values("vectors/ota/scenarios.json", keys=["root"]))
    return out


def TestOneInput(data: bytes) -> None:
    for check in (lambda: TrustRoot.load(data, now=_NOW), lambda: _BASE.rotate(data, now=_NOW)):
        try:
            root = check()
        except TrustedgeError:
            continue
        for name in root.roles:
            root.keyset(name)


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
