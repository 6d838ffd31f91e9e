"""One hash-bank table and one PCR reset rule: every other table is derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustedge.attestation.backends import _tpm2_blobs
from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.attestation.evidence import BANK_ALGORITHMS
from trustedge.errors import UnsupportedAlgorithmError
from trustedge.hazmat.tpm2 import hash_alg_by_id, hash_alg_by_name, hash_for
from trustedge.hazmat.tpm2.constants import HASH_ALGS
from trustedge.hazmat.tpm2.pcr import pcr_extendable, pcr_reset_value, pcr_resettable
from trustedge.measuredboot import initial_pcr_value
from trustedge.measuredboot.events import BANK_BY_ALG_ID, BANK_SIZES, bank_hash


def test_every_bank_table_agrees_with_the_one_table() -> None:
    table = {h.alg.value: (h.name, h.digest_size) for h in HASH_ALGS}
    assert dict(BANK_ALGORITHMS) == table
    assert BANK_BY_ALG_ID == {alg: name for alg, (name, _) in table.items()}
    assert BANK_SIZES == {name: size for name, size in table.values()}
    assert _tpm2_blobs.BANKS == tuple(name for name, _ in table.values())
    assert table[0x0012] == ("sm3_256", 32)


def test_sm3_is_one_algorithm_everywhere() -> None:
    sm3 = hash_alg_by_id(0x0012)
    assert sm3 is hash_alg_by_name("sm3_256")
    expected = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 A.1
    assert sm3.digest(b"abc").hex() == expected
    assert bank_hash("sm3_256", b"abc").hex() == expected
    assert hash_for(0x0012).name == "sm3"
    with pytest.raises(UnsupportedAlgorithmError):
        hash_alg_by_id(0x0027)  # SHA3-256: not a bank trustedge knows


def test_replay_and_software_tpm_use_the_one_reset_rule(tmp_path: Path) -> None:
    tpm = SoftwareTPM(tmp_path, seed=b"s" * 32)
    values = tpm.pcr_read({"sha256": list(range(24))})["sha256"]
    for pcr in range(24):
        assert values[pcr] == pcr_reset_value("sha256", pcr) == initial_pcr_value("sha256", pcr)
    assert pcr_reset_value("sha384", 17) == b"\xff" * 48
    assert pcr_reset_value("sha1", 0, locality=3) == bytes(19) + b"\x03"
    assert initial_pcr_value("sha1", 0, locality=4) == bytes(19) + b"\x04"


@pytest.mark.parametrize(
    ("index", "locality", "reset", "extend"),
    [(0, 0, False, True), (15, 4, False, True), (16, 0, True, True), (17, 0, False, False),
     (17, 4, True, True), (20, 2, False, True), (21, 2, True, True), (22, 4, False, True),
     (23, 0, True, True)],
)  # fmt: skip
def test_pcr_locality_rules(index: int, locality: int, reset: bool, extend: bool) -> None:
    assert pcr_resettable(index, locality) is reset
    assert pcr_extendable(index, locality) is extend
