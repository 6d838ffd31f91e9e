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
import sys
from collections.abc import Sequence

from trustedge._cli._common import (
    EXIT_ENVIRONMENT,
    EXIT_MALFORMED,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(words)
    if command in _COMMANDS:
        groups: Sequence[str] = (_COMMANDS[command],)
    elif command is None and "--version" in words:
        groups = ()
    else:
        groups = _GROUPS  # --help, a typo: argparse lists every command
    parser = build_parser(groups)
    args = parser.parse_args(words)
    handler = getattr(args, "handler", None)
    if handler is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = handler(args)
        return code
    except KeyboardInterrupt:
        print("trustedge: interrupted", file=sys.stderr)
        return 130
    except (TrustedgeError, OSError) as exc:
        if args.debug:
            raise
        if isinstance(exc, TrustedgeError):
            text = exc.diagnostics()
        else:
            text = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        print(f"trustedge: {text}", file=sys.stderr)
        return exit_code_for(exc)
    finally:
        # Flush so that a closed pipe (| head) is reported here, not at exit.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass
