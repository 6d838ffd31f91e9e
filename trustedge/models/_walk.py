"""Enumerating the files of a model (OMS §6.1, §6.2): regular files only,
no symlinks, default and caller-given exclusions, canonical relative names."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from trustedge.errors import LimitExceededError, MalformedInputError
from trustedge.models._bundle import check_path

__all__ = ["DEFAULT_IGNORE_PATHS", "MAX_FILES", "ModelFileEntry", "list_model_files"]

#: Excluded at the top level of every model (OMS §6.2).
DEFAULT_IGNORE_PATHS: Final = (".git", ".gitattributes", ".github", ".gitignore")
#: Most files a model may have.
MAX_FILES: Final = 200_000


@dataclass(frozen=True)
class ModelFileEntry:
    """One regular file of a model: its OMS name, its path on disk and the
    ``stat`` taken while listing (size, mtime, inode for the cache)."""

    name: str
    path: Path
    st: os.stat_result


def _normalise_ignore(path: str) -> str:
    if not isinstance(path, str):
        raise TypeError("ignore paths are strings")
    p = path.strip("/") if path != "/" else path
    while p.startswith("./"):
        p = p[2:]
    p = "/".join(part for part in p.split("/") if part not in ("", "."))
    if not p or any(c in p for c in "*?[") or p == ".." or p.startswith("../"):
        raise ValueError(f"ignore path {path!r} must be a relative path inside the model")
    return p


def _ignored(name: str, ignore: frozenset[str]) -> bool:
    if name in ignore:
        return True
    parts = name.split("/")
    return any("/".join(parts[:i]) in ignore for i in range(1, len(parts)))


def list_model_files(
    model: str | os.PathLike[str],
    ignore_paths: Iterable[str] = (),
) -> list[ModelFileEntry]:
    """The files of ``model`` (a directory, or one file) sorted by name.

    ``ignore_paths`` are model-relative paths (a directory excludes its
    subtree) added to :data:`DEFAULT_IGNORE_PATHS`. Raises
    :class:`MalformedInputError` for a symlink, a special file, a name that
    is not UTF-8, or a model with no file left; ``OSError`` if it cannot be
    read.
    """
    root = Path(model)
    st = root.stat() if not root.is_symlink() else root.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise MalformedInputError(f"{os.fspath(root)!r} is a symbolic link")
    if stat.S_ISREG(st.st_mode):
        name = root.name
        check_path(name, "model file name")
        return [ModelFileEntry(name, root, st)]
    if not stat.S_ISDIR(st.st_mode):
        raise MalformedInputError(f"{os.fspath(root)!r} is neither a file nor a directory")
    ignore = frozenset(_normalise_ignore(p) for p in (*DEFAULT_IGNORE_PATHS, *ignore_paths))
    out: list[ModelFileEntry] = []
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            try:
                e.name.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedInputError(
                    f"file name {e.name!r} in {os.fspath(directory)!r} is not UTF-8"
                ) from None
            name = prefix + e.name
            if _ignored(name, ignore):
                continue
            est = e.stat(follow_symlinks=False)
            if stat.S_ISLNK(est.st_mode):
                raise MalformedInputError(f"{name!r} is a symbolic link (OMS allow_symlinks=false)")
            if stat.S_ISDIR(est.st_mode):
                stack.append((Path(e.path), name + "/"))
            elif stat.S_ISREG(est.st_mode):
                check_path(name, "file name")
                out.append(ModelFileEntry(name, Path(e.path), est))
                if len(out) > MAX_FILES:
                    raise LimitExceededError(f"model has more than {MAX_FILES} files")
            else:
                raise MalformedInputError(f"{name!r} is not a regular file or directory")
    if not out:
        raise MalformedInputError("the model has no file to sign (OMS §6.1: an empty model)")
    out.sort(key=lambda f: f.name)
    return out
