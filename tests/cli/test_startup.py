"""Start-up stays cheap: what each command imports, checked in a fresh interpreter.

Not a timing test (``tools/bench/startup.py`` measures the time); these assertions fail when
a change makes building the parser, ``--help`` or a small command import an implementation
module it does not run -- the regression that made ``trustedge --help`` cost 0.5 s.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustedge._cli import _COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent.parent
LOG = ROOT / "tests/data/third_party/eventlog/tpm2-tss/binary_measurements_pc_client.bin"

#: Never loaded by building the parser or printing help: the heavy layers and peers.
HEAVY = (
    "cryptography",
    "cbor2",
    "tpm2_pytss",
    "nacl",
    "starlette",
    "uvicorn",
    "psycopg",
    "sqlite3",
    "trustedge.attestation.",
    "trustedge.ota.",
    "trustedge.envelope.",
    "trustedge.fleet",
    "trustedge.models",
    "trustedge.cose",
    "trustedge.keys",
    # (the bank table, hazmat.tpm2.constants, is what ``--bank`` lists: it loads no cryptography)
    "trustedge.hazmat.tpm2.public",
    "trustedge.hazmat.tpm2.structures",
    "trustedge.hazmat.tpm2.files",
    "trustedge.hazmat.tpm2.credential",
    "trustedge.measuredboot._parse",
    "trustedge.measuredboot.policy",
)

#: What ``quote verify`` must not load: appraisal, verifier, stores, TPM stack, OTA, ...
NOT_FOR_QUOTE = (
    "trustedge.attestation.verifier",
    "trustedge.attestation.appraisal",
    "trustedge.attestation.store",
    "trustedge.attestation.evidence",
    "trustedge.attestation.backends",
    "trustedge.measuredboot.",
    "trustedge.ota.",
    "trustedge.envelope.",
    "trustedge.models",
    "trustedge.fleet",
    "tpm2_pytss",
    "cbor2",
    "cryptography.x509",
    "cryptography.hazmat.primitives.serialization",
    "sqlite3",
)

#: What ``eventlog replay`` must not load: no cryptography at all, no decoders, no policy.
NOT_FOR_REPLAY = (
    "cryptography",
    "trustedge.attestation.",
    "trustedge.measuredboot._decode",
    "trustedge.measuredboot.policy",
    "trustedge.measuredboot.classify",
    "trustedge.ota.",
    "trustedge.envelope.",
    "cbor2",
)


def _modules_after(argv: list[str], cwd: Path | None = None) -> set[str]:
    """``sys.modules`` after ``main(argv)`` in a fresh interpreter (output discarded)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from trustedge._cli import main\n"
        "quiet = io.StringIO()\n"
        "with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p) for p in prefixes))


def _build_parser_modules() -> set[str]:
    code = (
        "import json, sys\nfrom trustedge._cli import build_parser\nbuild_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_building_the_whole_parser_imports_no_implementation() -> None:
    assert _loaded(_build_parser_modules(), HEAVY) == []


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["no-such-command"], ["attest", "--help"], ["quote", "verify", "--help"],
     ["eventlog", "--help"], ["ima", "verify", "--help"], ["release", "verify", "--help"],
     ["hash", "--help"], ["update", "--help"], ["verifier", "--help"], ["demo", "--help"]],
    ids=" ".join,
)  # fmt: skip
def test_help_imports_no_implementation(argv: list[str]) -> None:
    assert _loaded(_modules_after(argv), HEAVY) == []


def test_top_level_help_imports_no_command_group() -> None:
    groups = _loaded(_modules_after(["--help"]), ("trustedge._cli.",))
    assert groups == ["trustedge._cli._common"]


def test_summary_help_is_the_full_parsers_help() -> None:
    """``trustedge --help`` prints the command table of ``_COMMANDS``: the same text as the
    parser built from every group (so a help line changed in one place fails here)."""
    assert build_parser(summary=True).format_help() == build_parser().format_help()


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_one_command_build_prints_the_same_help(command: str) -> None:
    """``main`` builds only the command it runs: its help is the full parser's."""
    full = build_parser()
    alone = build_parser((_COMMANDS[command][0],), only=command)

    def help_of(parser: object) -> str:
        import argparse

        assert isinstance(parser, argparse.ArgumentParser)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sub.choices[command].format_help()

    assert help_of(alone) == help_of(full)


def test_quote_verify_loads_only_the_quote_path(tmp_path: Path) -> None:
    from trustedge._cli import main

    soft = tmp_path / "soft"
    assert main(["tpm", "init", "--software", str(soft), "-o", str(tmp_path / "ak")]) == 0
    q = tmp_path / "q"
    assert main(["tpm", "quote", "--software", str(soft), "--pcrs", "sha256:0,7", "--nonce",
                 "0102", "-o", str(q)]) == 0  # fmt: skip
    ak = str(tmp_path / "ak.tpm2b")
    argv = ["quote", "verify", "--message", f"{q}.msg", "--signature", f"{q}.sig",
            "--pcr-values", f"{q}.pcrs", "--ak", ak, "--nonce", "0102"]  # fmt: skip
    modules = _modules_after(argv)
    assert "trustedge.attestation.quote" in modules  # it did verify
    assert _loaded(modules, NOT_FOR_QUOTE) == []


def test_eventlog_replay_loads_no_cryptography() -> None:
    modules = _modules_after(["eventlog", "replay", str(LOG)])
    assert "trustedge.measuredboot.replay" in modules
    assert _loaded(modules, NOT_FOR_REPLAY) == []


def test_hash_loads_no_cryptography(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 1000)
    modules = _modules_after(["hash", str(tmp_path / "f")])
    assert _loaded(modules, ("cryptography", "trustedge.attestation.", "cbor2")) == []


LAZY_PACKAGES = (
    "trustedge.attestation",
    "trustedge.measuredboot",
    "trustedge.envelope",
    "trustedge.ota",
    "trustedge.cose",
    "trustedge.hazmat.tpm2",
    "trustedge.fleet",
)


def _type_checking_imports(package: str) -> dict[str, str]:
    """name -> module of the ``if TYPE_CHECKING:`` imports of a package ``__init__``."""
    path = ROOT / (package.replace(".", "/") + "/__init__.py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                found.update({a.asname or a.name: stmt.module for a in stmt.names})
    return found


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_lazy_exports_match_the_typed_surface(package: str) -> None:
    """The PEP 562 table names what mypy sees (the TYPE_CHECKING imports), module for
    module, and every exported name resolves to an object defined there."""
    module = importlib.import_module(package)
    table: dict[str, str] = module._LAZY
    assert table == _type_checking_imports(package)
    for name in module.__all__:
        value = getattr(module, name)
        if name in table:  # (trustedge.fleet imports its agent and client eagerly)
            assert value is getattr(importlib.import_module(table[name]), name), name
        assert name in dir(module)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_import_of_a_package_loads_none_of_its_submodules() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import {p}\n" for p in LAZY_PACKAGES if p != "trustedge.fleet")
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stdout))
    assert _loaded(modules, ("cryptography", "cbor2", "trustedge.attestation.")) == []


def test_classify_stays_the_function_after_its_submodule_is_imported() -> None:
    code = (
        "import trustedge.measuredboot as mb\n"
        "import trustedge.measuredboot.secureboot  # imports the classify submodule\n"
        "import trustedge.measuredboot.classify\n"
        "from trustedge.measuredboot import classify\n"
        "assert callable(mb.classify) and classify is mb.classify, mb.classify\n"
        "assert mb.classify.__module__ == 'trustedge.measuredboot.classify'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_nv_index_default_is_the_model_logs() -> None:
    from trustedge._cli.ota import MODEL_NV_INDEX
    from trustedge.attestation.modellog import DEFAULT_NV_INDEX

    assert MODEL_NV_INDEX == DEFAULT_NV_INDEX
