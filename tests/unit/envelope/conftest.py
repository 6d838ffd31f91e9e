"""Fixtures of the envelope tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.swtpm import Swtpm
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.backends.tpm2 import Tpm2Backend
from trustedge.hazmat.tpmbackend import TPMBackend


@pytest.fixture(params=["software", "tpm2"])
def tpm_backend(
    request: pytest.FixtureRequest, tmp_path: Path, swtpm_factory: type[Swtpm]
) -> Iterator[TPMBackend]:
    """The real TPM backends that hold TPM-sealed KEKs: the software TPM, and
    Tpm2Backend on a fresh swtpm (PCR 16 is reset by the tests that extend it)."""
    if request.param == "software":
        yield SoftwareTPM(tmp_path / "software-tpm")
        return
    tpm = swtpm_factory().start()
    with Tpm2Backend(tpm.tcti) as backend:
        yield backend
