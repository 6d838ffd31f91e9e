"""Concurrent appraisals of the same evidence: exactly one is accepted.

Eight worker processes, each with its own Verifier and database connection,
appraise the same evidence bundle at the same moment, on SQLite and on
PostgreSQL. One result is affirming; every other is contraindicated with
``nonce-rejected`` (or a lost compare-and-set), and the stored clock state
advanced once.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.test_attestation_e2e import DEVICE, golden_policy, make_world
from tests.unit.attestation.stores import Opener, open_store, race
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.ear import TrustTier
from trustedge.attestation.ekcert import load_certificates
from trustedge.attestation.store._sql import SQLStore
from trustedge.attestation.verifier import TrustAnchors, Verifier
from trustedge.errors import NonceError, RollbackError

__all__ = ["open_store"]  # fixture imported for pytest

WORKERS = 8


def test_parallel_appraisals_of_one_evidence_accept_exactly_one(
    open_store: Opener, tmp_path: Path
) -> None:
    tpm = SoftwareTPM(tmp_path / "tpm")
    anchors = TrustAnchors(
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        software_roots=tuple(load_certificates(tpm.ek_ca_certificate())),
    )
    world = make_world(tpm, tmp_path, anchors, enroll=False)
    main = open_store()
    now = int(time.time())
    verifier = Verifier(main, golden_policy(), anchors, now=lambda: now)
    world.verifier = verifier
    req = world.attester.enrollment_request()
    cred = verifier.enrollment.enroll(
        DEVICE, ek_public=req.ek_public, ak_public=req.ak_public, ek_certificate=req.ek_certificate
    )
    verifier.enrollment.complete(DEVICE, world.attester.activate(cred))
    world.boot()
    wire = world.evidence().encode()

    def appraise(store: SQLStore, i: int) -> None:
        outcome = Verifier(store, golden_policy(), anchors, now=lambda: now).appraise(wire)
        if outcome.status is not TrustTier.AFFIRMING:
            reasons = " ".join(outcome.appraisal.reasons)
            if "nonce-rejected" in reasons:
                raise NonceError(reasons)
            raise RollbackError(reasons)

    outcomes = race(open_store, appraise, workers=WORKERS)
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) <= {"ok", "NonceError", "RollbackError"}, outcomes
    assert main.get_quote_state(DEVICE) is not None
    ima = main.get_ima_state(DEVICE)
    assert ima is not None and ima.entries == 3
    # The evidence is spent for good.
    assert verifier.appraise(wire).status is TrustTier.CONTRAINDICATED
