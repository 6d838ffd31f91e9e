"""The ``trustedge`` command: a thin client of the public API.

Each command group lives in its own module with a ``register(subparsers)``
function; handlers take the parsed arguments and return an exit code.

Exit codes (documented in docs/cli.md and tested):

==  =====================================================================
0   success
1   verification failed (signature, replay, policy, rollback, ...)
2   usage error (bad arguments)
3   malformed or unsupported input
4   environment: backend unavailable or failed, file not readable
==  =====================================================================
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from trustedge._cli._common import (
    EXIT_ENVIRONMENT,
    EXIT_MALFORMED,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
    emit_failure,
    failure_line,
    reset_json_state,
)
from trustedge._version import __version__
from trustedge.errors import (
    BackendError,
    BackendUnavailableError,
    MalformedInputError,
    TrustedgeError,
    UnsupportedAlgorithmError,
    VerificationError,
)

__all__ = ["build_parser", "describe_failure", "exit_code_for", "main"]

# Command-group modules, in the order they appear in --help.
_GROUPS: tuple[str, ...] = (
    "demo",
    "measuredboot",
    "attestation",
    "envelope",
    "ota",
    "hashing",
    "models",
    "policy",
    "fleet",
)


#: Top-level command -> (the group module that defines it, its help line), in --help order.
#: ``main`` imports only the group of the command it runs; ``trustedge --help`` prints this
#: list without importing any group (tests/cli/test_startup.py checks that it is the full
#: parser's text, so a help line changed in a group's ``register`` must change here too).
_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "demo",
        "remote attestation end to end on a software TPM: enroll, boot, attest, tamper",
    ),
    "eventlog": ("measuredboot", "TCG firmware event logs (binary_bios_measurements)"),
    "ima": ("measuredboot", "Linux IMA measurement lists (ASCII or binary)"),
    "tpm": ("attestation", "use a TPM (software or real) through one interface"),
    "quote": ("attestation", "verify TPM quotes"),
    "credential": ("attestation", "AK enrollment: MakeCredential / ActivateCredential"),
    "attest": ("attestation", "remote attestation: evidence, appraisal, results"),
    "envelope": ("envelope", "envelope encryption (seal, open, rewrap)"),
    "release": ("ota", "create, sign, verify and inspect SUIT manifests"),
    "root": ("ota", "trust roots: keys, thresholds, rotation"),
    "update": ("ota", "apply and confirm updates on a device"),
    "hash": ("hashing", "SHA-256 and tree digests of large files and model directories"),
    "model": ("models", "sign and verify ML models (OpenSSF Model Signing v1.0 bundles)"),
    "policy": ("policy", "generate reference-value policies (boot and IMA)"),
    "verifier": ("fleet", "the fleet verifier service (HTTP)"),
    "agent": ("fleet", "device agent: enroll once, push evidence on a schedule"),
}


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not a top-level option."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(
    groups: Sequence[str] = _GROUPS, *, only: str | None = None, summary: bool = False
) -> argparse.ArgumentParser:
    """The argument parser with the given command groups (all by default).

    ``main`` builds less, because building every command's parser cost more than the
    interpreter's own start-up: ``only=COMMAND`` builds that top-level command alone (the
    rest of its group is skipped), ``summary=True`` only the list of commands with their
    help lines from ``_COMMANDS``, importing no group (``trustedge --help``, no command, a
    mistyped one). Both print what the full parser prints for what they build
    (``tests/cli/test_startup.py``).
    """
    parser = argparse.ArgumentParser(
        prog="trustedge",
        description="Device security and attestation at the edge.",
        epilog="Exit codes: 0 ok, 1 verification failed, 2 usage, 3 malformed input, "
        "4 environment/backend.",
    )
    parser.add_argument("--version", action="version", version=f"trustedge {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show a traceback when a command fails"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if summary:
        for command, (_, help_line) in _COMMANDS.items():
            sub.add_parser(command, help=help_line, add_help=False)
        return parser
    target: Any = sub if only is None else _Selected(sub, only)
    for name in groups:
        module = importlib.import_module(f"trustedge._cli.{name}")
        module.register(target)
    return parser


class _Selected:
    """The top-level subparsers as a group's ``register`` sees them in a partial build:
    ``add_parser`` builds the selected command for real and stands in a :class:`_Skipped`
    for the group's other commands."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 only: str) -> None:  # fmt: skip
        self._sub = sub
        self._only = only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._only:
            return self._sub.add_parser(name, **kwargs)
        return _Skipped()


class _Skipped:
    """Takes every call a ``register`` makes on a parser, argument or group and does
    nothing (an attribute set on it, e.g. ``lazy_choices``, is kept and ignored)."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *args: object, **kwargs: object) -> _Skipped:
        return self


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an exception escaping a command."""
    if isinstance(exc, CommandError):
        return exc.exit_code
    if isinstance(exc, VerificationError):
        return EXIT_VERIFICATION
    if isinstance(exc, (MalformedInputError, UnsupportedAlgorithmError)):
        return EXIT_MALFORMED
    if isinstance(exc, (BackendUnavailableError, BackendError, OSError)):
        return EXIT_ENVIRONMENT
    if isinstance(exc, TrustedgeError):
        return EXIT_VERIFICATION
    return EXIT_ENVIRONMENT


def describe_failure(exc: Exception) -> tuple[str, str, int]:
    """``(error class, one-line message, exit code)`` of an exception escaping a command:
    what ``main`` prints (and batch mode reports per input)."""
    if isinstance(exc, TrustedgeError):
        text = exc.diagnostics()
        kind = type(exc).__name__
    elif isinstance(exc, OSError):
        text = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        kind = type(exc).__name__
    else:
        # A bug, not a user error: still one line (the traceback is behind --debug).
        text = f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"
        kind = "InternalError"
    return kind, _one_line(text), exit_code_for(exc)


def _one_line(text: str) -> str:
    """A message as the one stderr line the CLI promises."""
    return " ".join(text.split()) or "failed"


def _wants_json(words: Sequence[str]) -> bool:
    return "--json" in words[: words.index("--")] if "--" in words else "--json" in words


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it).

    Failures print one line on stderr (no traceback without ``--debug``) and, with
    ``--json``, one failure document on stdout; a closed stdout (``| head -c1``) ends the
    command with one line and exit 4 (environment), never a "BrokenPipeError" traceback.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    reset_json_state()
    command = _command_of(words)
    if command in _COMMANDS:
        parser = build_parser((_COMMANDS[command][0],), only=command)
    elif command is None and "--version" in words:
        parser = build_parser(())
    else:  # --help, no command, a typo: argparse lists every command
        parser = build_parser(summary=True)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if code != 0 and _wants_json(words):
            emit_failure("UsageError", "invalid arguments (see the line above)", code)
        return code
    handler = getattr(args, "handler", None)
    if handler is None:
        build_parser(summary=True).print_help(sys.stderr)
        if getattr(args, "json", False) or _wants_json(words):
            emit_failure("UsageError", "no command given", EXIT_USAGE)
        return EXIT_USAGE
    try:
        # A handler that returns a failure code has printed its own document (e.g. a
        # contraindicated appraisal); only exceptions get main's failure document.
        code = int(handler(args))
        _flush_stdout()
        return code
    except KeyboardInterrupt:
        print("trustedge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as exc:
        if args.debug:
            raise
        kind, text, code = describe_failure(exc)
        failure_line(text)
        if getattr(args, "json", False):
            try:
                emit_failure(kind, text, code)
                _flush_stdout()
            except BrokenPipeError:
                return _broken_pipe()
        return code


def _flush_stdout() -> None:
    """Flush now, so that a closed pipe (``| head``) raises here and not at interpreter exit."""
    sys.stdout.flush()


def _broken_pipe() -> int:
    """The reader of stdout went away: drop what is buffered (a second flush at exit would
    raise again) and say so once."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    print("trustedge: output closed early (broken pipe)", file=sys.stderr)
    return EXIT_ENVIRONMENT
