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

__all__ = ["build_parser", "exit_code_for", "main"]

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


#: Top-level command -> the group module that defines it. Lets ``main`` import
#: only the group it needs: importing every group (attestation, TPM, OTA, ...)
#: costs about 0.3 s of start-up, which dominated short commands.
_COMMANDS: dict[str, str] = {
    "demo": "demo",
    "eventlog": "measuredboot",
    "ima": "measuredboot",
    "tpm": "attestation",
    "quote": "attestation",
    "credential": "attestation",
    "attest": "attestation",
    "envelope": "envelope",
    "release": "ota",
    "root": "ota",
    "update": "ota",
    "hash": "hashing",
    "model": "models",
    "policy": "policy",
    "verifier": "fleet",
    "agent": "fleet",
}


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not a top-level option."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(groups: Sequence[str] = _GROUPS) -> argparse.ArgumentParser:
    """The argument parser with the given command groups (all by default)."""
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
    for name in groups:
        module = importlib.import_module(f"trustedge._cli.{name}")
        module.register(sub)
    return parser


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
        groups: Sequence[str] = (_COMMANDS[command],)
    elif command is None and "--version" in words:
        groups = ()
    else:
        groups = _GROUPS  # --help, a typo: argparse lists every command
    parser = build_parser(groups)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if code != 0 and _wants_json(words):
            emit_failure("UsageError", "invalid arguments (see the line above)", code)
        return code
    handler = getattr(args, "handler", None)
    if handler is None:
        build_parser().print_help(sys.stderr)
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
        code = exit_code_for(exc)
        failure_line(text)
        if getattr(args, "json", False):
            try:
                emit_failure(kind, _one_line(text), code)
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
