from __future__ import annotations

import inspect

import pytest

import trustedge.errors as errors
from trustedge.errors import (
    MalformedInputError,
    PolicyError,
    ReplayMismatchError,
    TrustedgeError,
    VerificationError,
)

ALL_CLASSES = [getattr(errors, name) for name in errors.__all__]


def test_every_public_error_derives_from_base() -> None:
    for cls in ALL_CLASSES:
        assert inspect.isclass(cls) and issubclass(cls, TrustedgeError), cls


def test_malformed_is_value_error_and_carries_offset() -> None:
    exc = MalformedInputError("bad", offset=12, expected="u32")
    assert isinstance(exc, ValueError)
    assert exc.diagnostics() == "malformed input: bad, expected u32, at offset 12"


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_diagnostics_is_one_line(cls: type[TrustedgeError]) -> None:
    exc = cls("first line\nsecond line")
    text = exc.diagnostics()
    assert "\n" not in text
    assert text.startswith(cls.label + ": ")


def test_structured_fields() -> None:
    assert ReplayMismatchError("x", mismatches=[("sha256", 7)]).mismatches == [("sha256", 7)]
    assert PolicyError("x", violations=["a", "b"]).violations == ["a", "b"]
    assert issubclass(PolicyError, VerificationError)
