"""Signed PCR policies (TPM2_PolicyAuthorize + PolicyPCR + PolicyNV) on both backends.

The software TPM computes policy digests with ``trustedge.hazmat.tpm2.policy``;
swtpm computes them in trial sessions: they must be equal. Then the same
behaviour on SoftwareTPM and on Tpm2Backend (a fresh swtpm per test): an
approved policy unseals, a changed PCR or a revoked version does not, a
signature by another key does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.swtpm import Swtpm
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import PolicyError, SignatureError
from trustedge.hazmat.tpm2.policy import (
    PCRPolicy,
    SignedPolicy,
    authority_public,
    policy_authorize,
    sign_policy,
)

COUNTER = 0x01500B01
AUTHORITY = ec.derive_private_key(0x5EED, ec.SECP256R1())
OTHER = ec.derive_private_key(0xBAD, ec.SECP256R1())


def _tpm2(tcti: str) -> Any:
    from trustedge.attestation.backends.tpm2 import Tpm2Backend  # type: ignore[import-not-found]

    return Tpm2Backend(tcti)


@pytest.fixture
def fresh_swtpm(swtpm_factory: type[Swtpm]) -> Iterator[Any]:
    tpm = swtpm_factory().start()
    backend = _tpm2(tpm.tcti)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(params=["software", "tpm2"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "software":
        return SoftwareTPM(tmp_path / "soft")
    return request.getfixturevalue("fresh_swtpm")


SELECTIONS = [
    {"sha256": (4,)},
    {"sha256": (4, 7, 11)},
    {"sha1": (0, 4), "sha256": (4, 7)},
    {"sha256": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14)},
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=lambda s: "+".join(s))
@pytest.mark.parametrize("version", [0, 1, 7, 2**40 + 3])
def test_policy_digests_equal_swtpm(
    fresh_swtpm: Any, tmp_path: Path, selection: dict[str, tuple[int, ...]], version: int
) -> None:
    soft = SoftwareTPM(tmp_path / "soft")
    for tpm in (fresh_swtpm, soft):
        tpm.nv_counter_define(COUNTER)
        tpm.nv_counter_increment(COUNTER)
    name = fresh_swtpm.nv_name(COUNTER)
    assert soft.nv_name(COUNTER) == name  # same attributes, WRITTEN set: same name
    values = {
        b: {i: hashlib.new(b, b"%d" % i).digest() for i in idx} for b, idx in selection.items()
    }
    for nv in (False, True):
        policy = PCRPolicy.from_values(
            values,
            selection,
            nv_index=COUNTER if nv else 0,
            nv_name=name if nv else b"",
            version=version,
        )
        assert fresh_swtpm.trial_policy_digest(policy) == policy.digest()


@pytest.mark.parametrize("ref", [b"", b"trustedge/boot", bytes(range(32))])
@pytest.mark.parametrize("key", ["p256", "p384", "rsa2048"])
def test_authorize_digests_equal_swtpm(fresh_swtpm: Any, ref: bytes, key: str) -> None:
    if key == "rsa2048":
        pub = rsa.generate_private_key(65537, 2048).public_key()
    else:
        curve = ec.SECP256R1() if key == "p256" else ec.SECP384R1()
        pub = ec.generate_private_key(curve).public_key()
    authority = authority_public(pub)
    expected = policy_authorize(authority.name(), ref)
    assert fresh_swtpm.trial_authorize_digest(authority.marshal_tpm2b(), ref) == expected


def _policy(tpm: Any, version: int, *, key: Any = AUTHORITY, pcrs: Any = None) -> bytes:
    selection = {"sha256": (4, 7)}
    values = pcrs if pcrs is not None else tpm.pcr_read(selection)
    policy = PCRPolicy.from_values(
        values, selection, nv_index=COUNTER, nv_name=tpm.nv_name(COUNTER), version=version
    )
    return sign_policy(policy, key, policy_ref=b"boot").encode()


def test_signed_policy_lifecycle(backend: Any) -> None:
    authority = authority_public(AUTHORITY.public_key()).marshal_tpm2b()
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    blob = backend.seal_authorized(b"K" * 32, authority=authority, policy_ref=b"boot")
    old = _policy(backend, version)
    assert backend.unseal_authorized(blob, old, authority=authority) == b"K" * 32

    # the boot chain changes: the old policy no longer matches the PCRs
    backend.pcr_extend(4, {"sha256": hashlib.sha256(b"new loader").digest()})
    with pytest.raises(PolicyError):
        backend.unseal_authorized(blob, old, authority=authority)
    new = _policy(backend, version + 1)
    assert backend.unseal_authorized(blob, new, authority=authority) == b"K" * 32

    # confirm: the counter passes the old version; new still unseals, old never again
    assert backend.nv_counter_increment(COUNTER) == version + 1
    assert backend.unseal_authorized(blob, new, authority=authority) == b"K" * 32
    stale = _policy(backend, version)  # even with matching PCRs: revoked
    with pytest.raises(PolicyError, match="revoked"):
        backend.unseal_authorized(blob, stale, authority=authority)


def test_signature_of_another_key_is_refused(backend: Any) -> None:
    authority = authority_public(AUTHORITY.public_key()).marshal_tpm2b()
    other = authority_public(OTHER.public_key()).marshal_tpm2b()
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    blob = backend.seal_authorized(b"S" * 16, authority=authority, policy_ref=b"boot")
    forged = _policy(backend, version, key=OTHER)
    with pytest.raises(SignatureError):
        backend.unseal_authorized(blob, forged, authority=authority)
    # a policy the other key signed, presented with the other key: wrong object authority
    with pytest.raises(PolicyError):
        backend.unseal_authorized(blob, forged, authority=other)
    # a tampered policy document (version bumped after signing)
    good = SignedPolicy.decode(_policy(backend, version))
    bumped = SignedPolicy(
        PCRPolicy(
            good.policy.selection,
            good.policy.pcr_digest,
            good.policy.nv_index,
            good.policy.nv_name,
            good.policy.version + 5,
        ),
        good.policy_ref,
        good.signature,
    )
    with pytest.raises(SignatureError):
        backend.unseal_authorized(blob, bumped.encode(), authority=authority)


# -- attacks on the policy document: only what the signature covers counts ---------------


def _edit(doc: bytes, **changes: Any) -> bytes:
    signed = SignedPolicy.decode(doc)
    fields = {
        "selection": signed.policy.selection,
        "pcr_digest": signed.policy.pcr_digest,
        "nv_index": signed.policy.nv_index,
        "nv_name": signed.policy.nv_name,
        "version": signed.policy.version,
    }
    fields.update(changes)
    return SignedPolicy(PCRPolicy(**fields), signed.policy_ref, signed.signature).encode()


def test_edited_policy_documents_are_refused(backend: Any) -> None:
    authority = authority_public(AUTHORITY.public_key()).marshal_tpm2b()
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    blob = backend.seal_authorized(b"S" * 16, authority=authority, policy_ref=b"boot")
    good = _policy(backend, version)
    # a stale policy pointed at a fresh counter that is still low: the name is in the
    # signed digest, the index is not -- the TPM hashes the real index's name
    backend.nv_counter_increment(COUNTER)
    stale = _policy(backend, version)
    fresh = COUNTER + 1
    backend.nv_counter_define(fresh)
    backend.nv_counter_increment(fresh)
    with pytest.raises(PolicyError):
        backend.unseal_authorized(blob, _edit(stale, nv_index=fresh), authority=authority)
    # PCRs dropped from the selection, or the digest of other PCR values
    with pytest.raises(SignatureError):
        backend.unseal_authorized(
            blob, _edit(good, selection={"sha256": (4,)}), authority=authority
        )
    with pytest.raises(SignatureError):
        backend.unseal_authorized(blob, _edit(good, pcr_digest=bytes(32)), authority=authority)
    # another policyRef than the object's
    signed = SignedPolicy.decode(good)
    other_ref = sign_policy(signed.policy, AUTHORITY, policy_ref=b"other").encode()
    with pytest.raises(PolicyError):
        backend.unseal_authorized(blob, other_ref, authority=authority)


@pytest.mark.parametrize(
    "junk",
    [b"", b"TEPOL\x01", b"TEPOL\x02" + bytes(64), b"TEPOL\x01" + b"\xff" * 40, bytes(5000)],
    ids=["empty", "magic-only", "wrong-version", "garbage", "huge"],
)
def test_junk_policy_documents_are_malformed(junk: bytes) -> None:
    from trustedge.errors import MalformedInputError

    with pytest.raises(MalformedInputError):
        SignedPolicy.decode(junk)


def test_a_junk_policy_does_not_hide_a_good_one(backend: Any) -> None:
    from trustedge import envelope

    authority = authority_public(AUTHORITY.public_key()).marshal_tpm2b()
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    kek = envelope.TPMSealedKEK.create_authorized(backend, authority=authority, policy_ref=b"boot")
    sealed = envelope.seal(b"x", [kek])
    policies = [b"junk", _policy(backend, version, key=OTHER), _policy(backend, version)]
    again = envelope.TPMSealedKEK(backend, kek.sealed, authority=authority, policies=policies)
    assert envelope.open(sealed, [again]) == b"x"


def test_rsa_and_p384_authorities(backend: Any) -> None:
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    for key in (RSA_KEY, ec.derive_private_key(0x384, ec.SECP384R1())):
        authority = authority_public(key.public_key()).marshal_tpm2b()
        blob = backend.seal_authorized(b"R" * 32, authority=authority, policy_ref=b"boot")
        policy = _policy(backend, version, key=key)
        assert backend.unseal_authorized(blob, policy, authority=authority) == b"R" * 32
        with pytest.raises(SignatureError):
            backend.unseal_authorized(
                blob, _policy(backend, version, key=OTHER), authority=authority
            )


RSA_KEY = rsa.generate_private_key(65537, 2048)


def test_policy_naming_a_missing_counter_is_refused(backend: Any) -> None:
    authority = authority_public(AUTHORITY.public_key()).marshal_tpm2b()
    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    blob = backend.seal_authorized(b"S" * 16, authority=authority, policy_ref=b"boot")
    good = _policy(backend, version)
    for index in (COUNTER + 7, 0x01FFFFFF):
        with pytest.raises(PolicyError):
            backend.unseal_authorized(blob, _edit(good, nv_index=index), authority=authority)
    backend.nv_counter_undefine(COUNTER)  # the counter itself deleted
    with pytest.raises(PolicyError):
        backend.unseal_authorized(blob, good, authority=authority)


def test_authority_that_is_not_a_signing_key_is_refused(backend: Any) -> None:
    """A TPM verifies policy signatures only with an unrestricted signing key."""
    from trustedge.hazmat.tpm2 import Scheme, TPMAlg, TPMAObject, public_from_key

    backend.nv_counter_define(COUNTER)
    version = backend.nv_counter_increment(COUNTER)
    decrypt = public_from_key(
        AUTHORITY.public_key(),
        attributes=int(TPMAObject.DECRYPT | TPMAObject.USER_WITH_AUTH),
        scheme=Scheme(int(TPMAlg.NULL), int(TPMAlg.NULL)),
    ).marshal_tpm2b()
    blob = backend.seal_authorized(b"S" * 16, authority=decrypt, policy_ref=b"boot")
    with pytest.raises(SignatureError):
        backend.unseal_authorized(blob, _policy(backend, version), authority=decrypt)
