from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from trustedge import __version__
from trustedge._cli import exit_code_for, main
from trustedge._cli._common import CommandError, emit
from trustedge.errors import (
    BackendUnavailableError,
    ExpiredError,
    LimitExceededError,
    MalformedInputError,
    SignatureError,
    UnsupportedAlgorithmError,
)


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"trustedge {__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        [str(Path(sys.executable).parent / "trustedge"), "--version"],
        [sys.executable, "-m", "trustedge", "--version"],
    ],
)
def test_version_as_installed_commands(argv: list[str]) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"trustedge {__version__}"


def test_no_command_is_usage_error() -> None:
    assert main([]) == 2


def test_unknown_option_is_usage_error() -> None:
    assert main(["--no-such-flag"]) == 2


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (SignatureError("x"), 1),
        (ExpiredError("x"), 1),
        (MalformedInputError("x"), 3),
        (LimitExceededError("x"), 3),
        (UnsupportedAlgorithmError("x"), 3),
        (BackendUnavailableError("x"), 4),
        (FileNotFoundError(2, "No such file", "x"), 4),
        (CommandError("x", exit_code=2), 2),
    ],
)
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def test_errors_become_diagnostics_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(args: argparse.Namespace) -> int:
        raise MalformedInputError("bad header", offset=4)

    from trustedge import _cli

    parser = _cli.build_parser()
    args = parser.parse_args([])
    args.handler = handler
    original = _cli.build_parser

    class _P:
        def parse_args(self, argv: object) -> argparse.Namespace:
            return args

    try:
        _cli.build_parser = lambda *a, **k: _P()  # type: ignore[assignment,return-value]
        assert main([]) == 3
    finally:
        _cli.build_parser = original
    err = capsys.readouterr().err
    assert err.strip() == "trustedge: malformed input: bad header, at offset 4"
    assert "Traceback" not in err


def test_emit_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(json=True), {"digest": b"\x01\xff", 1: (1, 2)}, "unused")
    assert capsys.readouterr().out == '{\n  "digest": "01ff",\n  "1": [\n    1,\n    2\n  ]\n}\n'
    emit(argparse.Namespace(json=False), {}, lambda: "hello\n")
    assert capsys.readouterr().out == "hello\n"


def test_command_table_matches_the_groups() -> None:
    """main() imports only the group of the command given: the table must name
    every command each group registers, and nothing else."""
    from trustedge import _cli

    for group in _cli._GROUPS:
        parser = _cli.build_parser((group,))
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert {c for c, (g, _) in _cli._COMMANDS.items() if g == group} == set(sub.choices), group


def test_version_imports_no_command_group() -> None:
    code = (
        "import sys; from trustedge._cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('trustedge._cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['trustedge._cli._common']"
