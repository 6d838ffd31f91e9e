"""Every hazmat.tpm2 parser: mutated and random input raises only MalformedInputError;
generated structures round-trip byte for byte."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustedge.attestation.backends.software import SoftwareTPM
from trustedge.errors import MalformedInputError, UnsupportedAlgorithmError, VerificationError
from trustedge.hazmat.tpm2 import (
    EK_TEMPLATES,
    TPM_GENERATED_VALUE,
    TPMST,
    Attest,
    ClockInfo,
    Credential,
    PCRSelection,
    PCRSelectionList,
    Public,
    QuoteInfo,
    Signature,
    TPMAlg,
    ak_template,
    load_public,
    read_pcr_file,
    unmarshal_digest_list,
    write_pcr_file,
)

PARSERS: dict[str, Callable[[bytes], object]] = {
    "attest": Attest.unmarshal,
    "attest2b": Attest.unmarshal_tpm2b,
    "signature": Signature.unmarshal,
    "public": Public.unmarshal,
    "public2b": Public.unmarshal_tpm2b,
    "selection": PCRSelectionList.unmarshal,
    "digests": unmarshal_digest_list,
    "pcrfile": read_pcr_file,
    "credential": Credential.from_tpm2_tools,
    "loadpublic": load_public,
}

selections = st.lists(
    st.tuples(st.sampled_from(["sha1", "sha256", "sha384"]),
              st.lists(st.integers(0, 23), min_size=1, max_size=8, unique=True)),
    max_size=3, unique_by=lambda t: t[0],
).map(lambda items: PCRSelectionList.from_mapping(dict(items)))  # fmt: skip

attests = st.builds(
    lambda sel, signer, extra, clock, fw, digest: Attest(
        TPM_GENERATED_VALUE,
        int(TPMST.ATTEST_QUOTE),
        signer,
        extra,
        clock,
        fw,
        QuoteInfo(sel, digest),
    ),
    selections,
    st.binary(max_size=66),
    st.binary(max_size=64),
    st.builds(
        ClockInfo,
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.booleans(),
    ),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=64),
)


def _seeds() -> list[bytes]:
    sel = PCRSelectionList.from_mapping({"sha256": [0, 1, 16]})
    values = {"sha256": {i: bytes([i]) * 32 for i in (0, 1, 16)}}
    sig = Signature(int(TPMAlg.ECDSA), int(TPMAlg.SHA256), r=b"\x01" * 32, s=b"\x02" * 32)
    return [
        Attest(
            TPM_GENERATED_VALUE,
            int(TPMST.ATTEST_QUOTE),
            b"\x00\x0b" + bytes(32),
            b"n" * 32,
            ClockInfo(1, 2, 3, True),
            4,
            QuoteInfo(sel, bytes(32)),
        ).marshal(),
        sig.marshal(),
        EK_TEMPLATES["rsa2048"].marshal_tpm2b(),
        EK_TEMPLATES["ecc-p256"].marshal(),
        ak_template("rsa2048-rsapss").marshal_tpm2b(),
        write_pcr_file(sel, values),
        Credential(b"\x00\x04" + b"abcd", b"\x00\x02" + b"ef").to_tpm2_tools(),
    ]


SEEDS = _seeds()


def _call(parser: Callable[[bytes], object], data: bytes) -> None:
    try:
        parser(data)
    except (MalformedInputError, UnsupportedAlgorithmError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=300))
def test_random_bytes_raise_only_malformed(name: str, data: bytes) -> None:
    _call(PARSERS[name], data)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(PARSERS)), st.sampled_from(range(len(SEEDS))), st.data())
def test_mutations_raise_only_malformed(name: str, seed: int, data: st.DataObject) -> None:
    buf = bytearray(SEEDS[seed])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut" and buf:
            del buf[data.draw(st.integers(0, len(buf) - 1)) :]
        else:
            i = data.draw(st.integers(0, len(buf)))
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    _call(PARSERS[name], bytes(buf))


@settings(deadline=None)
@given(attests)
def test_attest_round_trip(a: Attest) -> None:
    raw = a.marshal()
    assert Attest.unmarshal(raw) == a
    assert Attest.unmarshal(raw).marshal() == raw


@settings(deadline=None)
@given(st.sampled_from(["sha1", "sha256"]), st.lists(st.integers(0, 31), max_size=10))
def test_selection_indices_round_trip(bank: str, indices: list[int]) -> None:
    sel = PCRSelection.from_indices(bank, indices)
    assert sel.indices == tuple(sorted(set(indices)))


@pytest.fixture(scope="module")
def soft_tpm(tmp_path_factory: pytest.TempPathFactory) -> SoftwareTPM:
    return SoftwareTPM(tmp_path_factory.mktemp("soft"), seed=b"property-test-seed-0123456789")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_unseal_random_blobs(soft_tpm: SoftwareTPM, data: bytes) -> None:
    for blob in (data, b"TESEAL\x01" + data):
        try:
            soft_tpm.unseal(blob)
        except (MalformedInputError, VerificationError):
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_entry_points_smoke(data: bytes) -> None:
    from tests.fuzz import fuzz_tpm2_quote, fuzz_tpm2_structures

    fuzz_tpm2_structures.TestOneInput(data)
    fuzz_tpm2_quote.TestOneInput(data)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_state_files_raise_only_malformed(data: st.DataObject) -> None:
    import tempfile
    from pathlib import Path

    from trustedge import _cbor

    pcrs = {b: [bytes(n)] * 24 for b, n in (("sha1", 20), ("sha256", 32), ("sha384", 48))}
    fields = {"v": 1, "seed": b"", "drbg": 0, "primary": bytes(32), "clock": 0, "clock_nv": 0,
              "reset": 0, "restart": 0, "safe": True, "pcrs": pcrs, "eks": {}, "aks": {},
              "nv": {}, "nv_max": 0}  # fmt: skip
    junk = (
        st.none() | st.integers(-5, 5) | st.binary(max_size=4) | st.text(max_size=3) | st.booleans()
    )
    nested = (
        junk
        | st.dictionaries(junk.filter(lambda x: x is not None), junk, max_size=2)
        | st.dictionaries(
            st.sampled_from(["sha1", "sha256", "x"]),
            st.lists(st.binary(max_size=33), max_size=25),
            max_size=3,
        )
    )
    key = data.draw(st.sampled_from(sorted(fields)))
    state = dict(fields)
    state[key] = data.draw(nested)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "softtpm.cbor").write_bytes(_cbor.encode(state))
        try:
            tpm = SoftwareTPM(Path(d))
            tpm.pcr_read({"sha256": [0]})
        except (MalformedInputError, VerificationError):
            pass
        except Exception as exc:  # BackendError for a state without that bank is fine too
            from trustedge.errors import BackendError

            assert isinstance(exc, BackendError), repr(exc)
