"""Encoder parity: ``release create`` from suit-tool inputs equivalent to the
draft's examples produces the draft's manifest bytes (hence digests).

The inputs below are written in suit-tool's JSON format with the values the
draft's ``examples/exampleN.json`` use. Examples 2 (text, reference-uri,
severed members) and 4 (download-id/load-id, payload-fetch, copy) use
suit-tool features ``release create`` does not offer; see docs/ota.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trustedge.ota.release import compile_spec, create_envelope, sign_envelope
from trustedge.ota.suit import KeySet, authenticate, decode_envelope, encode_manifest

V = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe"
C = "1492af14-2569-5e48-bf42-9b2d51f2ab45"
D1 = {
    "algorithm-id": "sha256",
    "digest-bytes": "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210",
}
D2 = {
    "algorithm-id": "sha256",
    "digest-bytes": "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
}


def _c(**kw: Any) -> dict[str, Any]:
    return {"install-id": ["00"], "vendor-id": V, "class-id": C, **kw}


SPECS: dict[int, list[dict[str, Any]]] = {
    0: [_c(bootable=True, **{"install-digest": D1, "install-size": 34768})],
    1: [_c(uri="http://example.com/file.bin", **{"install-digest": D1, "install-size": 34768})],
    3: [
        _c(slot=0, uri="http://example.com/file1.bin", bootable=True,
           **{"install-digest": D1, "install-size": 34768}),
        _c(slot=1, uri="http://example.com/file2.bin", bootable=True,
           **{"install-digest": D2, "install-size": 76834}),
    ],
    5: [
        _c(uri="http://example.com/file1.bin", bootable=True,
           **{"install-digest": D1, "install-size": 34768}),
        {"install-id": ["01"], "uri": "http://example.com/file2.bin",
         "install-digest": D2, "install-size": 76834},
    ],
}


@pytest.mark.parametrize("number", sorted(SPECS))
def test_create_matches_draft_example(number: int, third_party: Path) -> None:
    spec = {"manifest-version": 1, "manifest-sequence-number": number, "components": SPECS[number]}
    draft = third_party / f"suit/ietf-suit-manifest-37/example{number}.signed.suit"
    expected = decode_envelope(draft.read_bytes())
    raw, _ = encode_manifest(compile_spec(spec))
    assert raw == expected.manifest_raw
    # the unsigned envelope is byte-identical too (same digest, no signatures)
    unsigned = third_party / f"suit/ietf-suit-manifest-37/example{number}.unsigned.suit"
    assert create_envelope(spec) == unsigned.read_bytes()


def test_signed_by_us_verifies() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    spec = {"manifest-version": 1, "manifest-sequence-number": 0, "components": SPECS[0]}
    env = sign_envelope(create_envelope(spec), [key])
    auth = authenticate(decode_envelope(env), KeySet.of([key.public_key()]))
    assert auth.manifest.sequence_number == 0
