"""The swtpm fixture serves a real TPM: commands through tpm2-tools and tpm2-pytss."""

from __future__ import annotations

import subprocess

from tests.swtpm import Swtpm


def test_getrandom_through_tpm2_tools(swtpm: Swtpm) -> None:
    out = subprocess.run(
        ["tpm2_getrandom", "--hex", "16"], env=swtpm.env(), capture_output=True, check=True
    )
    assert len(bytes.fromhex(out.stdout.decode().strip())) == 16


def test_getrandom_through_tpm2_pytss(swtpm: Swtpm) -> None:
    from tpm2_pytss import ESAPI

    with ESAPI(swtpm.tcti) as esapi:
        first = bytes(esapi.get_random(32))
        second = bytes(esapi.get_random(32))
    assert len(first) == 32 and first != second


def test_restart_keeps_state_and_moves_reset_count(swtpm_factory: type[Swtpm]) -> None:
    from tpm2_pytss import ESAPI
    from tpm2_pytss.constants import TPM2_CAP, TPM2_PT

    def reset_count(tpm: Swtpm) -> int:
        with ESAPI(tpm.tcti) as esapi:
            _, data = esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, TPM2_PT.FIXED, 1)
            ti = esapi.read_clock()
            assert data is not None
            return int(ti.clockInfo.resetCount)

    tpm = swtpm_factory().start()
    before = reset_count(tpm)
    tpm.restart()
    assert reset_count(tpm) > before
