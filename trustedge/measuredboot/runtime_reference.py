"""IMA runtime policies generated from what will run: a file tree or Debian packages.

The documents are in Keylime's runtime-policy layout (``digests`` path -> hex
list, ``excludes``, ``keyrings``), the layout
:func:`~trustedge.measuredboot.policy.load_ima_policy` reads:

- :func:`runtime_policy_from_entries` — the pure core: (path, digest) pairs in,
  document out;
- :func:`runtime_policy_from_tree` — every regular file under a root filesystem
  tree (symbolic links are not followed: IMA records the path of the file it
  measured, not of a link to it);
- :func:`runtime_policy_from_debs` — every regular file of Debian packages, read
  from the ``.deb`` archives themselves (nothing is installed or unpacked to
  disk; the ``ar`` container goes through the bounded reader, ``data.tar.*``
  through :mod:`tarfile` in stream mode with size limits);
- :func:`merge_runtime_policies` — the union of two policies for an upgrade window
  (old and new files both allowed until the window closes, keylime#1515).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

from trustedge._binary import Reader
from trustedge.errors import LimitExceededError, MalformedInputError, UnsupportedAlgorithmError
from trustedge.hashing import sha256_file

__all__ = [
    "DebLimits",
    "merge_runtime_policies",
    "runtime_policy_from_debs",
    "runtime_policy_from_entries",
    "runtime_policy_from_tree",
]

_HASHES: Final = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512,
                  "sha1": hashlib.sha1}  # fmt: skip
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class DebLimits:
    """Bounds for reading ``.deb`` archives (untrusted input)."""

    max_archive: int = 1 << 30
    max_members: int = 200_000
    max_file: int = 2 << 30
    max_total: int = 16 << 30


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in _HASHES:
        raise UnsupportedAlgorithmError(f"unsupported IMA digest algorithm {algorithm!r}")


def _ima_path(prefix: str, relative: str) -> str:
    path = posixpath.normpath(posixpath.join(prefix, relative.lstrip("/")))
    if not path.startswith("/"):
        path = "/" + path
    return path


def runtime_policy_from_entries(
    entries: Iterable[tuple[str, bytes]],
    *,
    excludes: Sequence[str] = (),
    keyrings: Mapping[str, Iterable[bytes]] | None = None,
    generator: str = "trustedge",
) -> dict[str, Any]:
    """A Keylime-layout runtime policy allowing each (absolute path, digest) pair (pure)."""
    digests: dict[str, set[str]] = {}
    for path, digest in entries:
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise MalformedInputError(f"IMA policy paths must be absolute: {path!r}")
        digests.setdefault(path, set()).add(digest.hex())
    return {
        "meta": {"version": 1, "generator": generator},
        "release": 0,
        "digests": {p: sorted(v) for p, v in sorted(digests.items())},
        "excludes": list(excludes),
        "keyrings": {k: sorted(d.hex() for d in v) for k, v in sorted((keyrings or {}).items())},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }


def _tree_entries(root: Path, prefix: str, algorithm: str) -> Iterator[tuple[str, bytes]]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue  # links, devices, sockets: not what IMA measures under this path
            rel = full.relative_to(root).as_posix()
            if algorithm == "sha256":
                digest = sha256_file(full)
            else:
                h = _HASHES[algorithm]()
                with open(full, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        h.update(chunk)
                digest = h.digest()
            yield _ima_path(prefix, rel), digest


def runtime_policy_from_tree(
    root: str | os.PathLike[str],
    *,
    prefix: str = "/",
    algorithm: str = "sha256",
    excludes: Sequence[str] = (),
) -> dict[str, Any]:
    """A runtime policy for every regular file under ``root`` (mounted at ``prefix``)."""
    _check_algorithm(algorithm)
    base = Path(root)
    if not base.is_dir():
        raise MalformedInputError(f"{base}: not a directory")
    return runtime_policy_from_entries(_tree_entries(base, prefix, algorithm), excludes=excludes)


# -- Debian packages ----------------------------------------------------------------------
_AR_MAGIC: Final = b"!<arch>\n"


def _ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    r = Reader(data)
    if r.read(8, "ar magic") != _AR_MAGIC:
        raise MalformedInputError("not a Debian package (no ar magic)")
    count = 0
    while not r.at_end():
        count += 1
        if count > 64:
            raise MalformedInputError("a .deb has a few ar members, not this many")
        header = r.read(60, "ar member header")
        if header[58:60] != b"`\n":
            raise MalformedInputError("malformed ar member header")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        size_text = header[48:58].decode("ascii", "replace").strip()
        if not size_text.isdigit():
            raise MalformedInputError(f"ar member {name!r}: bad size field")
        size = int(size_text)
        body = r.read(size, f"ar member {name!r}")
        if size % 2 and not r.at_end():
            r.skip(1, "ar padding")
        yield name, body


def _decompress(name: str, body: bytes) -> IO[bytes]:
    raw = io.BytesIO(body)
    if name == "data.tar":
        return raw
    if name == "data.tar.xz" or name == "data.tar.lzma":
        return lzma.LZMAFile(raw)
    if name == "data.tar.gz":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    if name == "data.tar.bz2":
        return bz2.BZ2File(raw)
    if name == "data.tar.zst":
        try:
            import zstandard  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise UnsupportedAlgorithmError(
                "data.tar.zst needs the zstandard module (pip install zstandard)"
            ) from None
        stream: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw)
        return stream
    raise UnsupportedAlgorithmError(f"unsupported .deb data member {name!r}")


def _deb_entries(
    data: bytes, prefix: str, algorithm: str, limits: DebLimits, budget: list[int]
) -> Iterator[tuple[str, bytes]]:
    members = dict(_ar_members(data))
    if members.get("debian-binary", b"").strip() != b"2.0":
        raise MalformedInputError("not a Debian binary package (debian-binary is not 2.0)")
    names = [n for n in members if n.startswith("data.tar")]
    if len(names) != 1:
        raise MalformedInputError("a .deb must have exactly one data.tar member")
    stream = _decompress(names[0], members[names[0]])
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise LimitExceededError(f"more than {limits.max_members} files in a package")
                if not member.isreg():
                    continue
                if member.size > limits.max_file:
                    raise LimitExceededError(f"{member.name}: larger than {limits.max_file} bytes")
                budget[0] -= member.size
                if budget[0] < 0:
                    raise LimitExceededError(f"packages hold more than {limits.max_total} bytes")
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                h = _HASHES[algorithm]()
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
                yield _ima_path(prefix, member.name), h.digest()
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, zlib.error) as exc:
        raise MalformedInputError(f"broken package data: {exc}") from None


def runtime_policy_from_debs(
    packages: Iterable[str | os.PathLike[str]],
    *,
    prefix: str = "/",
    algorithm: str = "sha256",
    excludes: Sequence[str] = (),
    limits: DebLimits | None = None,
) -> dict[str, Any]:
    """A runtime policy for every regular file the given ``.deb`` packages install."""
    _check_algorithm(algorithm)
    lim = limits or DebLimits()
    budget = [lim.max_total]
    entries: list[tuple[str, bytes]] = []
    for package in packages:
        path = Path(package)
        size = path.stat().st_size
        if size > lim.max_archive:
            raise LimitExceededError(f"{path}: larger than {lim.max_archive} bytes")
        with open(path, "rb") as fh:
            data = fh.read(lim.max_archive + 1)
        try:
            entries.extend(_deb_entries(data, prefix, algorithm, lim, budget))
        except MalformedInputError as exc:
            raise MalformedInputError(f"{path}: {exc}") from None
    return runtime_policy_from_entries(entries, excludes=excludes)


def merge_runtime_policies(*policies: Mapping[str, Any]) -> dict[str, Any]:
    """The union of runtime policies: every digest any of them allows for a path,
    every exclude and keyring of any (for an upgrade window: old and new both pass)."""
    if not policies:
        raise MalformedInputError("merge needs at least one policy")
    digests: dict[str, set[str]] = {}
    keyrings: dict[str, set[str]] = {}
    excludes: list[str] = []
    for doc in policies:
        raw = doc.get("digests", {})
        rings = doc.get("keyrings", {})
        ex = doc.get("excludes", [])
        if not isinstance(raw, dict) or not isinstance(rings, dict) or not isinstance(ex, list):
            raise MalformedInputError("not a runtime policy (digests/keyrings/excludes)")
        for path, values in raw.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise MalformedInputError(f"runtime policy digests of {path!r} must be a list")
            digests.setdefault(str(path), set()).update(v.lower() for v in values)
        for name, values in rings.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise MalformedInputError(f"runtime policy keyring {name!r} must be a list")
            keyrings.setdefault(str(name), set()).update(v.lower() for v in values)
        excludes.extend(str(e) for e in ex if str(e) not in excludes)
    out = dict(policies[0])
    out["digests"] = {p: sorted(v) for p, v in sorted(digests.items())}
    out["keyrings"] = {k: sorted(v) for k, v in sorted(keyrings.items())}
    out["excludes"] = excludes
    return out
