"""CoRIM: the draft's examples decode; trustedge's CoRIMs round-trip to the same appraisal.

The draft's examples (``tests/data/third_party/corim``, CBOR diagnostic notation) are
converted with PyPI ``cbor-diag`` (an independent EDN/CBOR implementation), which also
reads back every CoRIM trustedge writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cbor_diag
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.vectors import third_party_dir
from tests.vectors.test_measuredboot_reference import GOLDEN, _mutations
from trustedge import _cbor
from trustedge.attestation.corim import (
    decode_corim,
    export_corim,
    import_corim,
    verify_signed_corim,
)
from trustedge.errors import MalformedInputError, PolicyError, ReplayMismatchError, SignatureError
from trustedge.measuredboot import load_policy
from trustedge.measuredboot.reference import policy_from_event_logs, self_verified

EXAMPLES = sorted((third_party_dir() / "corim" / "examples").glob("*.diag"))
#: Examples with the draft's placeholders (``TBD1``, a CBOR tag not yet assigned): not EDN.
NOT_EDN = {"cmw-corim-collection.diag"}
KEY = ec.derive_private_key(0xC0819, ec.SECP256R1())


def test_examples_are_vendored() -> None:
    assert len(EXAMPLES) >= 40


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_draft_example_decodes(path: Path) -> None:
    if path.name in NOT_EDN:
        with pytest.raises(ValueError):
            cbor_diag.diag2cbor(path.read_text(encoding="utf-8"))
        return
    data = cbor_diag.diag2cbor(path.read_text(encoding="utf-8"))
    item = _cbor.decode(data)
    if path.name.startswith("corim-"):
        corim = decode_corim(data)
    elif path.name.startswith("comid-"):
        wrapped = _cbor.CBORTag(501, {0: "x", 1: [_cbor.CBORTag(506, _cbor.encode(item))]})
        corim = decode_corim(_cbor.encode(wrapped))
        assert len(corim.comids) == 1
    else:
        return  # CoTL, CMW collections, header maps, intermediate representations
    imported = import_corim(corim)
    assert imported.document["rules"] == []  # nothing of the draft is the trustedge profile
    assert imported.unconverted
    import_corim(corim, any_profile=True)  # read leniently: no error on a valid CoRIM


def test_round_trip_keeps_the_appraisal_outcome() -> None:
    """export -> sign -> verify -> import gives a policy with the same verdicts."""
    checked = 0
    for name, log in GOLDEN[:8]:
        verified = self_verified(log)
        policy_doc = policy_from_event_logs([verified]).document
        signed = export_corim(policy_doc, corim_id=name, vendor="acme", model="gw-1",
                              signer=KEY, not_after=2_000_000_000)  # fmt: skip
        back = import_corim(verify_signed_corim(signed, [KEY.public_key()], now=1_900_000_000))
        assert not back.unconverted, back.unconverted
        assert back.environments == ({"vendor": "acme", "model": "gw-1"},)
        before, after = load_policy(json.dumps(policy_doc)), load_policy(json.dumps(back.document))
        after.check(verified)
        for _, mutated in _mutations(log, set(policy_from_event_logs([verified]).stable_pcrs))[:6]:
            try:
                candidate = self_verified(mutated)
            except (ReplayMismatchError, MalformedInputError):
                continue
            outcomes = []
            for policy in (before, after):
                try:
                    policy.check(candidate)
                    outcomes.append(True)
                except PolicyError:
                    outcomes.append(False)
            assert outcomes == [False, False], name
            checked += 1
        # An independent CBOR implementation reads what trustedge wrote, byte for byte.
        assert cbor_diag.diag2cbor(cbor_diag.cbor2diag(signed)) == signed
    assert checked >= 20


def _policy() -> dict[str, object]:
    return {"version": 1, "rules": [
        {"rule": "secure_boot"},
        {"rule": "pcr_values", "pcr": 0, "bank": "sha256", "values": ["11" * 32, "22" * 32]},
        {"rule": "boot_applications", "bank": "sha256", "digests": ["33" * 32]},
        {"rule": "db", "required": ["44" * 32], "allowed": ["44" * 32, "55" * 32]},
        {"rule": "kernel_cmdline", "required": ["^root=/dev/sda1 ro$"], "forbidden": ["init="]},
        {"rule": "event_digests", "pcr": 1, "bank": "sha384", "digests": ["66" * 48]},
        {"rule": "secure_boot", "enabled": False},
    ]}  # fmt: skip


def test_every_rule_kind_round_trips() -> None:
    unsigned = export_corim(_policy(), corim_id="p", vendor="v", model="m")
    back = import_corim(decode_corim(unsigned))
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, back.document["rules"])) == sorted(map(key, _policy()["rules"]))  # type: ignore[arg-type]


def test_signed_corim_refusals() -> None:
    signed = export_corim(_policy(), corim_id="p", vendor="v", model="m", signer=KEY,
                          not_after=1000)  # fmt: skip
    other = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    with pytest.raises(SignatureError):
        verify_signed_corim(signed, [other.public_key()], now=0)
    with pytest.raises(PolicyError):
        verify_signed_corim(signed, [KEY.public_key()], now=1000)
    with pytest.raises(SignatureError):  # an unsigned CoRIM is not a signed one
        verify_signed_corim(export_corim(_policy(), corim_id="p", vendor="v", model="m"),
                            [KEY.public_key()], now=0)  # fmt: skip
    assert decode_corim(signed).signer_name == "trustedge"
    tampered = bytearray(signed)
    tampered[len(tampered) // 2] ^= 1
    with pytest.raises((SignatureError, MalformedInputError)):
        verify_signed_corim(bytes(tampered), [KEY.public_key()], now=0)


def test_hostile_corims() -> None:
    cases = [
        b"",
        b"\xff",
        _cbor.encode(_cbor.CBORTag(502, {})),
        _cbor.encode(_cbor.CBORTag(501, {0: "x"})),
        _cbor.encode(_cbor.CBORTag(501, {0: "x", 1: [_cbor.CBORTag(506, 5)]})),
        _cbor.encode(_cbor.CBORTag(501, {0: "x", 1: [_cbor.CBORTag(506, b"\xa1\x01\x02")]})),
        _cbor.encode(_cbor.CBORTag(501, {0: "x", 1: [_cbor.CBORTag(506, _cbor.encode(
            {1: {0: "t"}, 4: {0: [[{}, [{1: {2: [[99, b"x"]]}, 0: "boot-applications"}]]]}}))]})),
        _cbor.encode(_cbor.CBORTag(501, {0: "x", 1: [_cbor.CBORTag(506, _cbor.encode(
            {1: {0: "t"}, 4: {0: [[{}, [{1: {4: _cbor.CBORTag(560, b"\xff")},
                                         0: "kernel-cmdline/required"}]]]}}))]})),
        _cbor.encode([1, 2, 3]),
    ]  # fmt: skip
    for data in cases:
        with pytest.raises(MalformedInputError):
            import_corim(decode_corim(data), any_profile=True)
