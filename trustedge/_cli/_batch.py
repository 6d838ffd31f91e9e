"""Batch mode: one command, many inputs, one process (like ``sha256sum FILE...``).

``quote verify``, ``eventlog replay|verify``, ``ima verify``, ``release verify`` and ``hash
verify`` take several inputs so that a script pays start-up once, not once per file. With
one input nothing changes (same output, same exit code, same tests). With several:

* text: one line per input, ``INPUT: RESULT`` on success, ``INPUT: FAILED: WHY``
  (verification failed, exit 1) or ``INPUT: ERROR: WHY`` (malformed input, unreadable file,
  ...), and at the end one stderr line ``trustedge: N of M inputs failed`` when any did;
* ``--json``: JSON lines, one compact document per input in input order, each with
  ``"input"`` and ``"exit_code"``; a failure has ``"ok": false``, ``"error"`` and
  ``"message"`` as main's failure document does;
* the exit status is the worst (highest) of the inputs' exit codes.

An input's options that vary per input (``quote verify --nonce``, ``eventlog verify
--pcrs``, ...) are given once for all inputs or once per input, in input order.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trustedge._cli._common import (
    EXIT_VERIFICATION,
    CommandError,
    Handler,
    capture_emits,
    mark_json_emitted,
    to_jsonable,
)

__all__ = ["batched", "run_batch"]

#: One input's result line (text mode) from its JSON-ready result document.
LineFormat = Callable[[Any], str]


def _default_line(doc: Any, text: str) -> str:
    return " ".join(text.split()) or "OK"


def run_batch(
    args: argparse.Namespace,
    inputs: Sequence[str],
    one: Callable[[argparse.Namespace, int], int],
    *,
    line: LineFormat | None = None,
) -> int:
    """Run ``one(args, i)`` for each input ``i`` (its output captured), print one line or
    JSON document per input, return the worst exit code (see the module docstring)."""
    from trustedge._cli import describe_failure

    if sum(1 for name in inputs if name == "-") > 1:
        raise CommandError("stdin (-) can be only one of the inputs")
    use_json = bool(getattr(args, "json", False))
    worst = 0
    failed = 0
    for index, name in enumerate(inputs):
        with capture_emits() as emitted:
            try:
                code = int(one(args, index))
                error = None
            except Exception as exc:
                if getattr(args, "debug", False):
                    raise
                kind, message, code = describe_failure(exc)
                error = (kind, message)
        worst = max(worst, code)
        failed += code != 0
        data, text = emitted[-1] if emitted else (None, "")
        if use_json:
            doc: dict[str, Any] = {"input": name, "exit_code": code}
            if error is not None:
                doc.update(ok=False, valid=False, error=error[0], message=error[1])
            elif isinstance(jsonable := to_jsonable(data), dict):
                doc.update(jsonable)
            elif data is not None:
                doc["result"] = jsonable
            sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
        else:
            if error is not None:
                label = "FAILED" if code == EXIT_VERIFICATION else "ERROR"
                result = f"{label}: {error[1]}"
            elif code != 0:
                label = "FAILED" if code == EXIT_VERIFICATION else "ERROR"
                result = f"{label}: {_default_line(data, text)}"
            elif line is not None:
                result = line(to_jsonable(data))
            else:
                result = _default_line(data, text)
            sys.stdout.write(f"{name}: {result}\n")
    if use_json:
        mark_json_emitted()
    if failed:
        print(f"trustedge: {failed} of {len(inputs)} inputs failed", file=sys.stderr)
    return worst


def batched(
    handler: Handler,
    inputs: str,
    *,
    each: Sequence[str] = (),
    line: LineFormat | None = None,
) -> Handler:
    """``handler`` (which reads one input from ``args.<inputs>``) over every value of that
    list (``nargs="+"`` or ``action="append"``). The options named in ``each`` (lists too)
    hold one value for all inputs or one per input. One input: ``handler`` as it was."""

    def run(args: argparse.Namespace) -> int:
        names = _as_list(getattr(args, inputs))
        values = {dest: _as_list(getattr(args, dest)) for dest in each}
        for dest, given in values.items():
            if len(given) not in (0, 1, len(names)):
                flag = "--" + dest.replace("_", "-")
                raise CommandError(
                    f"{flag}: give it once, or once per input ({len(names)}), not {len(given)}"
                )

        def one(base: argparse.Namespace, index: int) -> int:
            ns = argparse.Namespace(**vars(base))
            setattr(ns, inputs, names[index])
            for dest, given in values.items():
                value = None if not given else given[index if len(given) > 1 else 0]
                setattr(ns, dest, value)
            return handler(ns)

        if len(names) == 1:
            return one(args, 0)
        return run_batch(args, names, one, line=line)

    return run


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]
