"""Replay vectors/fuzz/cbor_decode.json: hostile CBOR and every fuzz finding, with the
outcome each must have (tools/vectors/gen_fuzz.py)."""

from __future__ import annotations

import pytest

from tests.vectors import VectorCase, error_class, vector_cases
from trustedge import _cbor
from trustedge._cbor import DecodeLimits


def _decode(case: VectorCase) -> object:
    base = DecodeLimits()
    limits = DecodeLimits(
        max_size=case.get("maxSize", base.max_size),
        max_depth=case.get("maxDepth", base.max_depth),
        max_items=case.get("maxItems", base.max_items),
    )
    return _cbor.decode(
        case.hex("input"),
        canonical=case["canonical"],
        allow_indefinite=case["allowIndefinite"],
        limits=limits,
    )


@vector_cases("fuzz/cbor_decode.json")
def test_cbor_decode_regressions(case: VectorCase) -> None:
    if case.result == "valid":
        assert _cbor.encode(_decode(case)).hex() == case["encoded"]
    else:
        assert case.error is not None
        with pytest.raises(error_class(case.error)) as info:
            _decode(case)
        # The exact class, not a parent: a limit must not be reported as plain malformation.
        assert type(info.value) is error_class(case.error)
