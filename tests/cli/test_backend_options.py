"""One TPM option set and one opener for every command that takes a TPM."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trustedge._cli import build_parser
from trustedge._cli._common import CommandError
from trustedge._cli.attestation import open_backend
from trustedge.attestation.backends.software import SoftwareTPM


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))
    yield words, parser


def test_every_command_with_a_tpm_takes_the_same_options() -> None:
    seen = 0
    for words, parser in _commands(build_parser()):
        flags = {s for a in parser._actions for s in a.option_strings}
        if "--software" in flags or "--software-tpm" in flags or "--tcti" in flags:
            if words == ("demo",):
                continue  # the demo takes --tcti only: its software TPM is its own
            seen += 1
            assert {"--software", "--software-tpm", "--tcti"} <= flags, words
    assert seen >= 10


@pytest.mark.parametrize("spelling", ["--software", "--software-tpm"])
def test_both_spellings_open_the_software_tpm(spelling: str, tmp_path: Path) -> None:
    args = build_parser().parse_args(["tpm", "info", spelling, str(tmp_path)])
    backend = open_backend(args)
    assert isinstance(backend, SoftwareTPM)


def test_no_backend_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="--tcti TCTI or --software DIR"):
        open_backend(argparse.Namespace(software=None, tcti=None))
