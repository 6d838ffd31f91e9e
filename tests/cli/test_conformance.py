"""CLI conformance, generated from the argparse registry (``trustedge._cli.build_parser``):
every command present and future gets these checks without being listed here.

* ``--help`` exits 0;
* a garbage file, an empty file and a directory in place of each input file give exit 3
  (malformed) or 4 (environment) with exactly one stderr line and no traceback;
* with ``--json`` the same failures print exactly one JSON document on stdout.

Arguments that are not input files get a valid value from ``_VALUES`` (by option and,
where one option means different things, by command). A new command whose required
non-file option is missing there fails :func:`test_registry_is_covered` until it is added.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustedge._cli import build_parser

_TRUSTEDGE = str(Path(sys.executable).parent / "trustedge")


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


COMMANDS = dict(_leaves(build_parser()))

#: Commands that read no input file (nothing to feed bad bytes into) or that serve forever.
_NO_INPUT: frozenset[tuple[str, ...]] = frozenset(
    {("demo",), ("tpm", "info"), ("tpm", "pcrread"), ("tpm", "init"), ("tpm", "extend"),
     ("tpm", "nv-counter"), ("release", "keygen"), ("envelope", "keygen"),
     ("update", "policy-counter")}
)  # fmt: skip

#: Values of required arguments that are not input files: (command or "*", dest) -> value.
_VALUES: dict[tuple[str, str], str] = {
    ("*", "nonce"): "00112233445566778899aabbccddeeff",
    ("*", "device_id"): "dev-1",
    ("*", "ak_name"): "000b" + "00" * 32,
    ("*", "root_threshold"): "1",
    ("*", "firmware_threshold"): "1",
    ("*", "expires"): "4102444800",
    ("*", "server"): "http://127.0.0.1:9",
    ("tpm quote", "pcrs"): "sha256:0",
    ("tpm extend", "pcr"): "16",
    ("*", "sequence"): "1",
    ("*", "version"): "1",
    ("*", "policy_version"): "1",
    ("*", "index"): "0x01500020",
    ("*", "nv_index"): "0x01500020",
}

#: Outputs: a fresh path in an empty directory (never the bad input).
_OUTPUTS = frozenset({"output"})
#: Optional input files fed as well (no required input, or the main input is optional).
_OPTIONAL_INPUTS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("envelope", "inspect"): ("-i",),
    ("attest", "evidence"): ("--challenge",),
    ("envelope", "seal"): ("-i", "--recipient"),
    ("envelope", "open"): ("-i", "--identity"),
    ("envelope", "rewrap"): ("-i", "--identity"),
    ("release", "verify"): ("--key",),
    ("update", "apply"): ("--key",),
    ("model", "verify"): ("--key",),
    ("policy", "from-update"): ("--key",),
    ("update", "state-key"): ("--tpm-authority",),
}

#: Optional non-file values a command needs to get as far as its inputs.
_OPTIONAL_VALUES: dict[tuple[str, ...], tuple[str, ...]] = {
    cmd: ("--vendor-id", "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe",
          "--class-id", "1492af14-2569-5e48-bf42-9b2d51f2ab45")
    for cmd in (("update", "apply"), ("update", "confirm"), ("update", "load"))
}  # fmt: skip
_OPTIONAL_VALUES["update", "load"] += ("--component", "00")
_OPTIONAL_VALUES["update", "state-key"] = ("--state-counter", "0x01500021")

#: Inputs where any bytes are valid (``hash`` hashes anything; an empty IMA list is a list).
_VALID: dict[tuple[str, ...], frozenset[str]] = {
    ("hash",): frozenset({"garbage", "empty", "directory"}),
    ("ima", "show"): frozenset({"empty"}),
    ("ima", "verify"): frozenset({"empty"}),
    ("policy", "from-tree"): frozenset({"directory"}),  # a directory tree is its input
    ("update", "confirm"): frozenset({"directory"}),  # empty state and device: nothing pending
}


def _required(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if (a.required or not a.option_strings) and not isinstance(a, argparse._HelpAction)
    ]


def _value(command: tuple[str, ...], action: argparse.Action) -> str | None:
    for key in (" ".join(command), "*"):
        if (key, action.dest) in _VALUES:
            return _VALUES[key, action.dest]
    if action.choices:
        return str(next(iter(action.choices)))
    return None


def _argv(command: tuple[str, ...], bad: Path, out_dir: Path) -> list[str]:
    parser = COMMANDS[command]
    argv = list(command)
    for action in _required(parser):
        value = _value(command, action)
        if action.dest in _OUTPUTS:
            value = str(out_dir / f"out-{action.dest}")
        elif value is None:
            value = str(bad)  # an input file
        if action.option_strings:
            argv += [action.option_strings[0], value]
        else:
            argv.append(value)
    for group in parser._mutually_exclusive_groups:
        if group.required:  # e.g. (--software DIR | --tcti TCTI): the directory, fed bad
            argv += [group._group_actions[0].option_strings[0], str(bad)]
    for option in _OPTIONAL_INPUTS.get(command, ()):
        argv += [option, str(bad)]
    argv += _OPTIONAL_VALUES.get(command, ())
    if command[0] == "envelope" and command[1] in ("seal", "open", "rewrap"):
        argv += ["-o", str(out_dir / "out")]
    return argv


def _run(argv: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONFAULTHANDLER="", TRUSTEDGE_KEY_PASSWORD="x")
    return subprocess.run(
        [_TRUSTEDGE, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=60, cwd=cwd, env=env,
    )  # fmt: skip


_FED = sorted(c for c in COMMANDS if c not in _NO_INPUT)


def test_registry_is_covered() -> None:
    """Every command either takes inputs the test can feed or is listed as input-less."""
    assert len(COMMANDS) >= 40
    for command in _FED:
        argv = _argv(command, Path("BAD"), Path("OUT"))
        assert "BAD" in argv, f"{' '.join(command)}: no input file found to feed"


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_help_exits_0(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    from trustedge._cli import main

    assert main([*command, "--help"]) == 0
    assert "usage: trustedge" in capsys.readouterr().out


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    garbage = tmp / "garbage"
    garbage.write_bytes(b"\x00\xffgarbage\x80" * 7)
    empty = tmp / "empty"
    empty.write_bytes(b"")
    directory = tmp / "dir"
    directory.mkdir()
    return {"garbage": garbage, "empty": empty, "directory": directory}


@pytest.mark.parametrize("command", _FED, ids=" ".join)
def test_bad_inputs_one_line_exit_3_or_4(command: tuple[str, ...], tmp_path: Path) -> None:
    for kind, bad in _bad_inputs(tmp_path).items():
        for use_json in (False, True):
            out_dir = tmp_path / f"out-{kind}-{use_json}"
            out_dir.mkdir()
            argv = _argv(command, bad, out_dir)
            if use_json and _has_json(command):
                argv.append("--json")
            res = _run(argv, cwd=tmp_path)
            where = f"{' '.join(argv)} ({kind})"
            assert "Traceback" not in res.stderr, where + res.stderr
            if kind in _VALID.get(command, ()):
                assert res.returncode == 0, f"{where}: exit {res.returncode}: {res.stderr}"
                if use_json and _has_json(command):
                    json.loads(res.stdout)
                continue
            assert res.returncode in (3, 4), f"{where}: exit {res.returncode}: {res.stderr}"
            lines = res.stderr.splitlines()
            json_mode = use_json and _has_json(command)
            # Exactly one stderr line, with --json too (the document is on stdout).
            assert len(lines) == 1, (where, lines)
            assert lines[0].startswith("trustedge: "), (where, lines)
            if json_mode:
                doc = json.loads(res.stdout)  # exactly one document: loads rejects extra data
                assert doc.get("ok", False) is False, where
                assert doc["exit_code"] == res.returncode, where
            assert not any(out_dir.iterdir()), f"{where}: left output behind"


def _has_json(command: tuple[str, ...]) -> bool:
    return any("--json" in a.option_strings for a in COMMANDS[command]._actions)


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_json(command: tuple[str, ...]) -> None:
    assert _has_json(command), f"{' '.join(command)} has no --json"
