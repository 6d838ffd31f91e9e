"""Shared helpers of the CLI: exit codes, --json output, input files, progress."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

from trustedge.errors import TrustedgeError

__all__ = [
    "EXIT_ENVIRONMENT",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_VERIFICATION",
    "CommandError",
    "Handler",
    "Progress",
    "add_json_flag",
    "emit",
    "read_input",
    "to_jsonable",
]

EXIT_OK: Final = 0
EXIT_VERIFICATION: Final = 1
EXIT_USAGE: Final = 2
EXIT_MALFORMED: Final = 3
EXIT_ENVIRONMENT: Final = 4

#: What ``set_defaults(handler=...)`` takes: parsed args in, exit code out.
Handler = Callable[[argparse.Namespace], int]


class CommandError(TrustedgeError):
    """A CLI-level failure with an explicit exit code (e.g. a usage problem
    discovered after parsing)."""

    label = "error"

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        self.exit_code = exit_code
        super().__init__(message)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The one ``--json`` convention: machine-readable output on stdout."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )


def to_jsonable(obj: Any) -> Any:
    """Convert bytes to lowercase hex, paths to str, tuples/sets to lists,
    dataclass-like objects with ``to_json()`` to their JSON form."""
    if hasattr(obj, "to_json") and callable(obj.to_json):
        return to_jsonable(obj.to_json())
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    return obj


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``text``."""
    if getattr(args, "json", False):
        json.dump(to_jsonable(data), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")


def read_input(path: str | None, *, limit: int = 1 << 30) -> bytes:
    """Read a file (or stdin for ``None``/``-``), refusing more than ``limit`` bytes."""
    if path in (None, "-"):
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    if len(data) > limit:
        raise CommandError(f"input larger than {limit} bytes", exit_code=EXIT_MALFORMED)
    return data


class Progress:
    """A minimal progress bar on stderr, shown only when stderr is a TTY."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = min(100, done * 100 // self.total)
        if pct == self._last:
            return
        self._last = pct
        bar = "#" * (pct // 4)
        self.stream.write(f"\r{self.label} [{bar:<25}] {pct:3d}%")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()
