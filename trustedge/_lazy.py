"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package such as ``trustedge.attestation`` re-exports names from its submodules; importing
them all eagerly made ``import trustedge.attestation`` cost about 0.3 s, paid by every CLI
command that needed one function. Each package lists ``name -> submodule`` and resolves a
name on first access; the names are imported under ``TYPE_CHECKING`` too, so ``mypy
--strict`` and editors see the same public surface. ``tests/test_startup.py`` checks that
every exported name resolves and that the CLI registry loads none of the heavy modules.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping

__all__ = ["load_export", "shield_exports"]


def load_export(package: str, exports: Mapping[str, str], name: str) -> object:
    """The value of ``package.name``: imported from ``exports[name]`` and cached on the
    package (later look-ups are plain attribute reads); ``AttributeError`` otherwise."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    setattr(sys.modules[package], name, value)
    return value


class _ExportsFirst(types.ModuleType):
    """A package whose exported names win over same-named submodules: importing
    ``pkg.name`` (which makes the import system set ``pkg.name = <module>``) keeps
    ``pkg.name`` the exported object, as an eager ``from pkg.name import name`` did."""

    _shielded: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: object) -> None:
        if name in self._shielded and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


def shield_exports(package: str, names: frozenset[str]) -> None:
    """Make ``names`` of ``package`` (each also the name of a submodule defining it) never
    be shadowed by that submodule once it is imported (see :class:`_ExportsFirst`)."""
    module = sys.modules[package]
    module.__class__ = _ExportsFirst
    object.__setattr__(module, "_shielded", names)
