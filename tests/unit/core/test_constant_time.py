"""Secrets, MACs, nonces and digests are compared in constant time, and every such
comparison is listed in docs/threat-model.md.

Walks every module of the package with ``ast``:

* an ``==``/``!=`` between two non-literal operands where either
  operand is named like a digest, MAC, nonce, tag, commitment, key or secret
  is a finding, unless the line carries ``# not secret: <why>`` (public values,
  e.g. a digest shown to the user, an algorithm id). Set membership (``in``)
  against public allow-lists is not flagged;
* every ``hmac.compare_digest`` / ``compare_digest`` call site must appear in
  the constant-time table of ``docs/threat-model.md`` as ``module:function``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent.parent
PACKAGE = ROOT / "trustedge"
THREAT_MODEL = ROOT / "docs" / "threat-model.md"

SENSITIVE = re.compile(
    r"(digest|mac|hmac|nonce|commit|secret|psk|auth_?tag|^tag$|_tag$|signature|pcr_?value|"
    r"key_?id|kek_?id|expected|extra_?data|qualifying)",
    re.IGNORECASE,
)
WAIVER = "# not secret:"


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    if isinstance(node, ast.Call):
        return _name(node.func) + "()"
    return ""


def _trivial(node: ast.AST) -> bool:
    """Literals, len(...), and other comparisons that cannot leak a secret byte by byte."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(
        isinstance(e, ast.Constant) for e in node.elts
    ):
        return True
    if isinstance(node, ast.Call) and _name(node.func) in ("len", "type", "isinstance", "id"):
        return True
    if isinstance(node, ast.Attribute) and node.attr.isupper():  # enum / constant members
        return True
    return isinstance(node, ast.Name) and node.id.isupper()


def _modules() -> list[tuple[str, Path, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _functions(tree: ast.Module) -> dict[ast.AST, str]:
    """Map every node to the name of the innermost function (or class.method) holding it."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{scope}.{child.name}" if scope else child.name
            owner[child] = name
            visit(child, name)

    visit(tree, "")
    return owner


def variable_time_comparisons() -> list[str]:
    found = []
    for _module, path, tree in _modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                if not isinstance(op, (ast.Eq, ast.NotEq)):
                    continue
                if _trivial(left) or _trivial(right):
                    continue
                names = (_name(left), _name(right))
                if not any(SENSITIVE.search(n) for n in names if n):
                    continue
                line = lines[node.lineno - 1]
                if WAIVER in line or (node.lineno >= 2 and WAIVER in lines[node.lineno - 2]):
                    continue
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line.strip()}")
    return found


def compare_digest_sites() -> list[str]:
    sites = []
    for module, _path, tree in _modules():
        owner = _functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == "compare_digest":
                sites.append(f"{module}:{owner.get(node, '<module>')}")
    return sorted(set(sites))


def test_no_variable_time_comparison_of_secrets() -> None:
    found = variable_time_comparisons()
    assert not found, (
        "compare these with hmac.compare_digest (or mark a public value with "
        f"'{WAIVER} <why>'):\n" + "\n".join(found)
    )


def test_every_constant_time_site_is_documented() -> None:
    text = THREAT_MODEL.read_text(encoding="utf-8")
    missing = [site for site in compare_digest_sites() if f"`{site}`" not in text]
    assert not missing, (
        "add these rows to the constant-time table of docs/threat-model.md:\n"
        + "\n".join(f"| `{site}` | what is compared | |" for site in missing)
    )


def test_the_checker_sees_a_variable_time_compare(tmp_path: Path) -> None:
    tree = ast.parse("def f(mac, expected_mac):\n    return mac == expected_mac\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
    assert not _trivial(node.left) and SENSITIVE.search(_name(node.left))
    tree = ast.parse("def f(digest):\n    return len(digest) == 32\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Compare))
    assert _trivial(node.left) or _trivial(node.comparators[0])
