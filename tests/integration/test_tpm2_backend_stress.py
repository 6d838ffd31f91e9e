"""500 consecutive quote cycles on one swtpm (three transient slots, no resource
manager): any object or session left behind would exhaust the TPM long before."""

from __future__ import annotations

import pytest

from tests.swtpm import Swtpm
from trustedge.attestation.backends.tpm2 import Tpm2Backend

pytestmark = pytest.mark.tpm

CYCLES = 500


def test_500_quote_cycles_leave_nothing_loaded(swtpm_factory: type[Swtpm]) -> None:
    tpm = swtpm_factory().start()
    with Tpm2Backend(tpm.tcti) as backend:
        ak = backend.create_ak("ecc-p256-ecdsa", ek_kind="ecc-p256")
        messages = set()
        for i in range(CYCLES):
            # A full cycle: EK from its saved context, EK policy session, AK load,
            # quote, PCR read, and everything flushed again.
            quote = backend.quote(ak, i.to_bytes(8, "big"), {"sha256": [0, 7, 16]})
            messages.add(quote.message)
            if i % 100 == 0:
                assert backend.loaded_handles() == []
        assert len(messages) == CYCLES
        assert backend.loaded_handles() == []
