"""Shared helpers of the CLI: exit codes, --json output (success and failure documents),
``-`` for stdin/stdout, input and output files, key files, passphrases, progress."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from trustedge._fs import atomic_output, create_exclusive
from trustedge.errors import TrustedgeError

if TYPE_CHECKING:
    from trustedge.measuredboot import Workaround

__all__ = [
    "EXIT_ENVIRONMENT",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_VERIFICATION",
    "CommandError",
    "Handler",
    "LazyChoices",
    "Progress",
    "add_json_flag",
    "add_password_file",
    "add_workaround_flag",
    "capture_emits",
    "emit",
    "emit_failure",
    "failure_fields",
    "failure_line",
    "json_emitted",
    "key_password",
    "lazy_choices",
    "mark_json_emitted",
    "read_input",
    "reset_json_state",
    "to_jsonable",
    "to_stdout",
    "workarounds_of",
    "write_key_file",
    "write_output",
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


class LazyChoices(Sequence[str]):
    """An option's choices, read from the module that owns them only when argparse looks
    (parsing that option, or its command's ``--help``): building the parser must not import
    implementation modules (``--bank`` comes from the one hash-bank table). Set it with
    :func:`lazy_choices`: ``add_argument(choices=...)`` would format the list at once."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._values: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()


def lazy_choices(action: argparse.Action, load: Callable[[], Iterable[str]]) -> None:
    """Give ``action`` (what ``add_argument`` returned) the choices ``load()`` returns, loaded
    on first use (:class:`LazyChoices`)."""
    action.choices = LazyChoices(load)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The one ``--json`` convention: machine-readable output on stdout."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )


def add_workaround_flag(parser: argparse.ArgumentParser) -> None:
    """The one ``--workaround NAME`` option (repeatable) of every command that parses event
    logs; :func:`workarounds_of` reads it."""
    from trustedge.measuredboot import WORKAROUNDS

    names = ", ".join(w.value for w in WORKAROUNDS)
    parser.add_argument(
        "--workaround",
        action="append",
        default=[],
        metavar="NAME",
        help=f"enable a named firmware-bug workaround ({names})",
    )


def workarounds_of(args: argparse.Namespace) -> set[Workaround]:
    """The workarounds named by ``--workaround`` (a usage error for an unknown name)."""
    from trustedge.measuredboot import Workaround

    out = set()
    for name in args.workaround:
        try:
            out.add(Workaround(name))
        except ValueError:
            raise CommandError(f"unknown workaround {name!r}") from None
    return out


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


#: Whether a JSON document went to stdout in this process: ``main`` prints the failure
#: document only when none did, so ``--json`` always prints exactly one.
_json_state: dict[str, bool] = {"emitted": False}
#: Fields a command adds to its failure document (e.g. ``{"verified": False}``).
_failure_fields: dict[str, Any] = {}


def json_emitted() -> bool:
    """True once :func:`emit` printed a JSON document (or :func:`reset` was not called)."""
    return _json_state["emitted"]


def reset_json_state() -> None:
    """Forget earlier documents (``main`` calls it once per run; tests run many in-process)."""
    _json_state["emitted"] = False
    _failure_fields.clear()


def failure_fields(handler: Handler, **fields: Any) -> Handler:
    """``handler``, whose ``--json`` failure document carries ``fields`` too (e.g.
    ``verified=False``). The failure itself stays main's: one stderr line, one document."""

    def run(args: argparse.Namespace) -> int:
        _failure_fields.update(fields)
        return handler(args)

    return run


def mark_json_emitted() -> None:
    """Record that this run printed its JSON output (batch mode writes its own lines)."""
    _json_state["emitted"] = True


#: What :func:`emit` is asked to print while batch mode collects it (innermost last).
_captures: list[list[tuple[Any, str]]] = []


@contextlib.contextmanager
def capture_emits() -> Iterator[list[tuple[Any, str]]]:
    """Collect ``(data, text)`` of every :func:`emit` in the block instead of printing it:
    batch mode (``trustedge._cli._batch``) turns each input's result into one line."""
    found: list[tuple[Any, str]] = []
    _captures.append(found)
    try:
        yield found
    finally:
        _captures.pop()


def emit(args: argparse.Namespace, data: Any, text: str | Callable[[], str]) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``text``."""
    if _captures:
        if callable(text):
            text = "" if getattr(args, "json", False) else text()
        _captures[-1].append((data, text))
        return
    if getattr(args, "json", False):
        json.dump(to_jsonable(data), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
        _json_state["emitted"] = True
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")


def failure_line(text: str) -> None:
    """The one stderr line of a failed command, ``trustedge: TEXT`` (whitespace folded),
    also when the command's ``--json`` document on stdout says why."""
    print(f"trustedge: {' '.join(text.split()) or 'failed'}", file=sys.stderr)


def emit_failure(error: str, message: str, exit_code: int) -> None:
    """The one JSON document of a failed ``--json`` command (unless one was printed):
    ``{"ok": false, "valid": false, "error": CLASS, "message": TEXT, "exit_code": N}``."""
    if _json_state["emitted"]:
        return
    doc = {**_failure_fields, "ok": False, "valid": False, "error": error, "message": message,
           "exit_code": exit_code}  # fmt: skip
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    _json_state["emitted"] = True


def read_input(path: str | None, *, limit: int = 1 << 30) -> bytes:
    """Read a file (or stdin for ``None``/``-``), refusing more than ``limit`` bytes.

    A directory is an environment error (exit 4) with its name, not a bare ``IsADirectoryError``.
    """
    if path in (None, "-"):
        data = sys.stdin.buffer.read(limit + 1)
    else:
        assert path is not None
        if os.path.isdir(path):
            raise CommandError(f"{path}: is a directory, not a file", exit_code=EXIT_ENVIRONMENT)
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    if len(data) > limit:
        raise CommandError(f"input larger than {limit} bytes", exit_code=EXIT_MALFORMED)
    return data


def write_output(path: str | None, data: bytes, *, mode: int = 0o644) -> None:
    """Write command output: to stdout for ``None``/``-``, else atomically to ``path``
    (through ``trustedge._fs``; a device or FIFO such as ``/dev/null`` is written in place)."""
    if path in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    assert path is not None
    with atomic_output(path, mode=mode) as fh:
        fh.write(data)


def to_stdout(args: argparse.Namespace, path: str | None) -> bool:
    """Whether ``path`` means stdout (``-``); then the command's binary output owns stdout,
    so ``--json`` is a usage error and the text summary is not printed."""
    if path != "-":
        return False
    if getattr(args, "json", False):
        raise CommandError("--json prints a document on stdout: give -o FILE for the output")
    return True


def write_key_file(path: str, data: bytes, *, mode: int = 0o600) -> None:
    """Create a new key file (``-``: stdout): ``O_EXCL``, ``mode`` from creation, never through
    a symlink, never over an existing file (exit 4 with the reason)."""
    if path == "-":
        write_output(path, data)
        return
    try:
        create_exclusive(path, data, mode=mode)
    except FileExistsError:
        what = "a symlink" if os.path.islink(path) else "it exists"
        raise CommandError(
            f"{path}: refusing to write a key: {what} (remove it first)",
            exit_code=EXIT_ENVIRONMENT,
        ) from None


def add_password_file(parser: argparse.ArgumentParser) -> None:
    """``--password-file``: the passphrase of an encrypted key (first line)."""
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="passphrase of an encrypted private key (first line of FILE; default: "
        "$TRUSTEDGE_KEY_PASSWORD, else a prompt on a terminal)",
    )


def key_password(args: argparse.Namespace) -> Callable[[], bytes]:
    """The passphrase source for ``trustedge.keys``: asked only for an encrypted key, from
    ``--password-file``, ``$TRUSTEDGE_KEY_PASSWORD`` or a terminal prompt, in that order."""

    def ask() -> bytes:
        path = getattr(args, "password_file", None)
        if path:
            data = read_input(path, limit=1 << 16)
            return data.splitlines()[0] if data.strip() else b""
        env = os.environ.get("TRUSTEDGE_KEY_PASSWORD")
        if env is not None:
            return os.fsencode(env)
        if sys.stdin.isatty() and stat.S_ISCHR(os.fstat(sys.stdin.fileno()).st_mode):
            return getpass.getpass("passphrase: ").encode()
        raise CommandError(
            "the key is encrypted: give --password-file FILE or set TRUSTEDGE_KEY_PASSWORD",
            exit_code=EXIT_USAGE,
        )

    return ask


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
