"""Imports point downwards only (DESIGN.md layer table), and no package reaches
into another package's private modules. Walks every module with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "trustedge"

#: Level of each top-level component of the package (DESIGN.md §Layers).
LEVELS: dict[str, int] = {
    "errors": 0,
    "_version": 0,
    "_lazy": 0,
    "__init__": 0,
    # DESIGN.md's level 1, split: hashing (model manifests) encodes with _cbor.
    "_binary": 1,
    "_cbor": 1,
    "_fs": 1,
    "hashing": 2,
    "keys": 4,
    "cose": 3,
    "hazmat": 3,
    "measuredboot": 4,
    "envelope": 4,
    "models": 4,
    "attestation": 5,
    "ota": 5,
    "fleet": 6,
    "_cli": 7,
    "__main__": 8,
}

#: Shared low-level private modules any package may use.
SHARED_PRIVATE = {"_binary", "_cbor", "_fs", "_lazy", "_version"}


def _module_name(root: Path, path: Path, package: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.AST, module: str, is_pkg: bool) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            # ``from trustedge.x import _y`` reaches into _y as well.
            found.extend(f"{target}.{alias.name}" for alias in node.names)
    return found


def check_tree(root: Path, package: str = "trustedge") -> list[str]:
    """Return one message per layering violation in the package at ``root``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(root, path, package)
        parts = module.split(".")
        own = parts[1] if len(parts) > 1 else "__init__"
        if own not in LEVELS:
            problems.append(f"{module}: component {own!r} has no level in the layer table")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target in _imports(tree, module, path.name == "__init__.py"):
            tparts = target.split(".")
            if tparts[0] != package or len(tparts) < 2:
                continue
            comp = tparts[1]
            if comp not in LEVELS:
                continue  # a name imported from the top-level package, e.g. __version__
            if comp != own and LEVELS[comp] >= LEVELS[own] and own != "__init__":
                problems.append(
                    f"{module}: imports {target} (level {LEVELS[comp]}) from level {LEVELS[own]}"
                )
            if comp != own and len(tparts) > 2:
                if any(p.startswith("_") and not p.startswith("__") for p in tparts[2:]):
                    problems.append(f"{module}: reaches into private module {target}")
    return problems


def test_trustedge_layering() -> None:
    assert check_tree(PACKAGE_ROOT) == []


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("rel", "source", "fragment"),
    [
        ("hazmat/x.py", "from trustedge.attestation import verify\n", "level 5) from level 3"),
        ("_binary.py", "import trustedge.measuredboot\n", "level 4) from level 1"),
        ("envelope/y.py", "from trustedge.ota.rollback import State\n", "level 5) from level 4"),
        ("ota/z.py", "from trustedge.attestation import x\n", "level 5) from level 5"),
        ("ota/w.py", "from trustedge.hashing._native import f\n", "private module"),
        ("ota/v.py", "from trustedge.hashing import _native\n", "private module"),
        ("hazmat/u.py", "from ..ota import updater\n", "level 5) from level 3"),
        ("zzz.py", "x = 1\n", "no level"),
    ],
)
def test_layering_catches_violation(tmp_path: Path, rel: str, source: str, fragment: str) -> None:
    _write(tmp_path, "__init__.py", "")
    _write(tmp_path, "errors.py", "")
    _write(tmp_path, rel, source)
    problems = check_tree(tmp_path)
    assert any(fragment in p for p in problems), problems


def test_layering_allows_downward_and_shared(tmp_path: Path) -> None:
    _write(tmp_path, "__init__.py", "from trustedge._version import __version__\n")
    _write(
        tmp_path,
        "ota/a.py",
        "from trustedge import _cbor\nfrom trustedge.errors import X\n"
        "from trustedge.envelope import seal\nfrom . import b\nfrom ._c import d\n",
    )
    assert check_tree(tmp_path) == []
