"""A missing C extension is said plainly on a terminal, and only there."""

from __future__ import annotations

import io

import pytest

import trustedge.hashing as hashing


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_built_note_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    hashing._say_not_built(ImportError("No module named 'trustedge.hashing._speedups'"))
    note = tty.getvalue()
    assert note.count("\n") == 1 and "is not built" in note and "python3-dev" in note


def test_no_note_into_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    hashing._say_not_built(ImportError("x"))
    assert pipe.getvalue() == ""
