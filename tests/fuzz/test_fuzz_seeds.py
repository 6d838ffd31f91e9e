"""The fuzz contract, checked in the normal test run (no atheris needed).

Every harness in ``tests/fuzz/fuzz_*.py`` gets its seeds (shared and project
vectors) and a few thousand deterministic mutations of them; each input must
return or raise a ``TrustedgeError`` within the harness's time limit
(``tests/fuzz/_harness.py``). ``tools/fuzz`` applies the same contract under
atheris with coverage guidance.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import pytest

from tests.fuzz._harness import (
    MAX_SEEDS,
    ContractViolation,
    discover,
    enforce_contract,
    load_harness,
    mutations,
)
from trustedge.errors import MalformedInputError, SignatureError

HARNESSES = discover()
IDS = [p.stem.removeprefix("fuzz_") for p in HARNESSES]


def _run_all(path: Path, inputs: list[bytes]) -> None:
    harness = load_harness(path)
    for data in inputs:
        try:
            harness.target(data)
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            pytest.fail(
                f"{harness.name}: {len(data)}-byte input {data[:512].hex()} broke the "
                f"contract: {detail}\n{traceback.format_exc()}"
            )


def test_there_are_harnesses() -> None:
    assert {"cbor_decode", "cbor_differential", "binary_reader"} <= set(IDS)


@pytest.mark.parametrize("path", HARNESSES, ids=IDS)
def test_seeds_keep_the_contract(path: Path) -> None:
    harness = load_harness(path)
    seeds = harness.seeds(MAX_SEEDS)
    assert seeds, f"{harness.name} has no seeds"
    _run_all(path, seeds)


@pytest.mark.parametrize("path", HARNESSES, ids=IDS)
def test_mutations_keep_the_contract(path: Path) -> None:
    harness = load_harness(path)
    seeds = harness.seeds(MAX_SEEDS)
    inputs = list(
        mutations(seeds, harness.mutations, seed=len(harness.name), max_len=harness.max_len)
    )
    _run_all(path, inputs)


# -- the contract wrapper itself ------------------------------------------------


def test_trustedge_errors_are_within_the_contract() -> None:
    def target(data: bytes) -> None:
        if data == b"m":
            raise MalformedInputError("bad")
        raise SignatureError("no")

    wrapped = enforce_contract(target)
    wrapped(b"m")
    wrapped(b"s")
    assert enforce_contract(wrapped) is wrapped


@pytest.mark.parametrize("exc", [IndexError, KeyError, RecursionError, ValueError, TypeError])
def test_other_exceptions_are_findings(exc: type[Exception]) -> None:
    def target(data: bytes) -> None:
        raise exc("x")

    with pytest.raises(exc):
        enforce_contract(target)(b"")


def test_slow_inputs_are_findings() -> None:
    wrapped = enforce_contract(lambda data: time.sleep(0.05), time_limit=0.01)
    wrapped(b"warm-up")  # the first call may be slow (lazy imports)
    with pytest.raises(ContractViolation, match="took"):
        wrapped(b"abc")


def test_mutations_are_deterministic() -> None:
    seeds = [b"\xa1\x01\x02", b"hello"]
    assert list(mutations(seeds, 50, seed=3)) == list(mutations(seeds, 50, seed=3))
    assert list(mutations(seeds, 50, seed=3)) != list(mutations(seeds, 50, seed=4))
