"""Model manifests: the digests of every file of a model directory.

``hash_model(dir)`` walks a directory (safetensors, GGUF, ONNX, tokenizer
files, ...) and gives a :class:`ModelManifest`: one entry per regular file, in
sorted, normalised relative POSIX paths, each with its size, whole-file
SHA-256 and tree digest (root and leaves). Symlinks, device files and
non-portable names are refused, so the manifest binds names, lengths and the
exact file set. It serialises to deterministic CBOR (what gets signed, e.g.
in a COSE_Sign1 by the OTA layer) and to JSON (for humans).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import stat
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trustedge import _cbor
from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    UnsupportedAlgorithmError,
    VerificationError,
)
from trustedge.hashing import (
    DEFAULT_LEAF_SIZE,
    BlobDigest,
    CancelFlag,
    ProgressCallback,
    default_threads,
    hash_file,
    sha256_ranges,
    verify_file,
)

__all__ = [
    "MANIFEST_VERSION",
    "MAX_FILES",
    "ModelFile",
    "ModelManifest",
    "hash_model",
    "normalise_path",
    "sha256_model",
    "verify_model",
]

MANIFEST_VERSION: Final = 1
TREE_NAME: Final = "trustedge-tree-v1"
#: Most files one manifest may list.
MAX_FILES: Final = 100_000
_MAX_PATH_BYTES: Final = 4096
_KEYS: Final = frozenset({"v", "alg", "tree", "leaf_size", "files"})
_FILE_KEYS: Final = frozenset({"path", "size", "sha256", "root", "leaves"})


def normalise_path(path: str) -> str:
    """Check that ``path`` is a normalised relative POSIX path and return it.

    Rules: UTF-8 text in Unicode NFC, 1 to 4096 bytes, ``/`` separators, no
    empty, ``.`` or ``..`` component, no leading ``/``, no backslash and no
    control characters. Raises :class:`MalformedInputError` otherwise.
    """
    if not isinstance(path, str) or not path:
        raise MalformedInputError("path must be a non-empty string")
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInputError("path is not valid UTF-8 text") from None
    if len(raw) > _MAX_PATH_BYTES:
        raise LimitExceededError(f"path longer than {_MAX_PATH_BYTES} bytes")
    if unicodedata.normalize("NFC", path) != path:
        raise MalformedInputError(f"path {path!r} is not in Unicode NFC")
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise MalformedInputError(f"path {path!r} has a backslash or control character")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise MalformedInputError(f"path {path!r} is not a normalised relative path")
    return path


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its relative path and its digests (with ``sha256``)."""

    path: str
    digest: BlobDigest


@dataclass(frozen=True)
class ModelManifest:
    """Digests of every file of a model directory, sorted by path.

    Build it with :func:`hash_model` or decode it with :meth:`from_cbor` /
    :meth:`from_json`; both check every entry (paths, order, leaf lists
    against roots). Decoding does not make it trusted: check the signature
    over :meth:`to_cbor` first.
    """

    leaf_size: int
    files: tuple[ModelFile, ...]

    def __post_init__(self) -> None:
        paths = [f.path for f in self.files]
        for p in paths:
            normalise_path(p)
        keys = [p.encode() for p in paths]
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise MalformedInputError("file paths must be unique and sorted (by UTF-8 bytes)")
        if len(paths) > MAX_FILES:
            raise LimitExceededError(f"more than {MAX_FILES} files")
        for f in self.files:
            if f.digest.leaf_size != self.leaf_size or f.digest.sha256 is None:
                raise MalformedInputError(
                    f"{f.path!r}: digest lacks sha256 or has another leaf size"
                )

    def file(self, path: str) -> ModelFile:
        """The entry for ``path``; raises ``KeyError`` if it is not listed."""
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def to_cbor(self) -> bytes:
        """Deterministic CBOR: the bytes to sign."""
        return _cbor.encode(
            {
                "v": MANIFEST_VERSION,
                "alg": "sha256",
                "tree": TREE_NAME,
                "leaf_size": self.leaf_size,
                "files": [
                    {
                        "path": f.path,
                        "size": f.digest.size,
                        "sha256": f.digest.sha256,
                        "root": f.digest.root,
                        "leaves": b"".join(f.digest.leaves),
                    }
                    for f in self.files
                ],
            }
        )

    @classmethod
    def from_cbor(
        cls, data: bytes, *, limits: _cbor.DecodeLimits = _cbor.DEFAULT_LIMITS
    ) -> ModelManifest:
        """Decode untrusted bytes (deterministic CBOR only).

        Raises :class:`MalformedInputError` / :class:`LimitExceededError` for
        anything that is not a well-formed manifest, and
        :class:`UnsupportedAlgorithmError` for another version or hash.
        """
        obj = _cbor.decode(data, canonical=True, limits=limits)
        if not isinstance(obj, dict) or set(obj) != _KEYS:
            raise MalformedInputError(
                "manifest must be a map with keys " + ", ".join(sorted(_KEYS))
            )
        if obj["v"] != MANIFEST_VERSION or type(obj["v"]) is not int:
            raise UnsupportedAlgorithmError(f"manifest version {obj['v']!r}")
        if obj["alg"] != "sha256" or obj["tree"] != TREE_NAME:
            raise UnsupportedAlgorithmError(f"hash {obj['alg']!r} / tree {obj['tree']!r}")
        files = obj["files"]
        if not isinstance(files, list):
            raise MalformedInputError("files must be an array")
        if len(files) > MAX_FILES:
            raise LimitExceededError(f"more than {MAX_FILES} files")
        entries = []
        for entry in files:
            if not isinstance(entry, dict) or set(entry) != _FILE_KEYS:
                raise MalformedInputError(
                    "file entry must be a map with keys " + ", ".join(sorted(_FILE_KEYS))
                )
            leaves = entry["leaves"]
            if not isinstance(leaves, bytes) or len(leaves) % 32:
                raise MalformedInputError("leaves must be a byte string of 32-byte digests")
            digest = BlobDigest.from_parts(
                size=entry["size"],
                leaf_size=obj["leaf_size"],
                root=entry["root"],
                leaves=[leaves[i : i + 32] for i in range(0, len(leaves), 32)],
                sha256=entry["sha256"],
            )
            if digest.sha256 is None:
                raise MalformedInputError("sha256 must be 32 bytes")
            entries.append(ModelFile(normalise_path(entry["path"]), digest))
        return cls(obj["leaf_size"], tuple(entries))

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``version``, ``leaf_size`` and ``files`` (each entry a
        ``path`` plus :meth:`BlobDigest.to_json`)."""
        return {
            "version": MANIFEST_VERSION,
            "leaf_size": self.leaf_size,
            "files": [{"path": f.path, **f.digest.to_json()} for f in self.files],
        }

    @classmethod
    def from_json(cls, obj: Any) -> ModelManifest:
        """Inverse of :meth:`to_json` for untrusted input; raises
        :class:`MalformedInputError` (or a subclass)."""
        if not isinstance(obj, dict) or set(obj) != {"version", "leaf_size", "files"}:
            raise MalformedInputError("manifest must have version, leaf_size and files")
        if obj["version"] != MANIFEST_VERSION:
            raise UnsupportedAlgorithmError(f"manifest version {obj['version']!r}")
        if not isinstance(obj["files"], list) or len(obj["files"]) > MAX_FILES:
            raise MalformedInputError("files must be a list")
        entries = []
        for entry in obj["files"]:
            if not isinstance(entry, dict):
                raise MalformedInputError("file entry must be an object")
            rest = {k: v for k, v in entry.items() if k != "path"}
            digest = BlobDigest.from_json(rest)
            if digest.sha256 is None:
                raise MalformedInputError("file entry lacks sha256")
            entries.append(ModelFile(normalise_path(entry.get("path", "")), digest))
        return cls(obj["leaf_size"], tuple(entries))

    def digest(self) -> bytes:
        """SHA-256 of :meth:`to_cbor`: one value naming the whole model."""
        import hashlib

        return hashlib.sha256(self.to_cbor()).digest()


def _walk(directory: Path, ignore: frozenset[str]) -> list[tuple[str, Path]]:
    """Regular files under ``directory`` as (normalised path, path), sorted."""
    found: list[tuple[str, Path]] = []

    def visit(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = list(it)
        for entry in entries:
            try:
                name = entry.name.encode("utf-8", "strict").decode("utf-8")
            except UnicodeError:
                raise ValueError(f"file name {entry.name!r} in {folder} is not UTF-8") from None
            rel = f"{prefix}{name}"
            if rel in ignore:
                continue
            try:
                normalise_path(rel)
            except MalformedInputError as exc:
                raise ValueError(f"unsupported file name: {exc}") from None
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise ValueError(f"{rel!r} is a symlink: model directories may not hold links")
            if stat.S_ISDIR(mode):
                visit(Path(entry.path), rel + "/")
            elif stat.S_ISREG(mode):
                found.append((rel, Path(entry.path)))
            else:
                raise ValueError(f"{rel!r} is not a regular file or directory")

    visit(directory, "")
    found.sort(key=lambda item: item[0].encode())
    if len(found) > MAX_FILES:
        raise ValueError(f"more than {MAX_FILES} files")
    return found


def hash_model(
    directory: str | os.PathLike[str],
    leaf_size: int = DEFAULT_LEAF_SIZE,
    *,
    ignore: Iterable[str] = (),
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> ModelManifest:
    """Hash every regular file under ``directory`` (both digests per file).

    ``ignore`` lists relative paths (files or directories) to leave out, e.g.
    ``[".git"]``. Raises ``ValueError`` for a symlink, a special file or a
    file name that is not a normalised UTF-8 NFC path component; errors of
    :func:`~trustedge.hashing.hash_file` otherwise.
    """
    root = Path(directory)
    if not root.is_dir() or root.is_symlink():
        raise ValueError(f"{os.fspath(directory)!r} is not a directory")
    files = _walk(root, frozenset(ignore))
    sizes = [p.stat().st_size for _, p in files]
    grand = 2 * sum(sizes)
    workers = default_threads() if threads is None else threads
    if workers < 1:
        raise ValueError("threads must be at least 1")
    # Files in parallel: with as many files as workers, each file takes one
    # worker (its whole-file SHA-256 and its leaves in one interleaved pass);
    # fewer, larger files share the workers. Largest first.
    per_file = max(1, workers // max(1, len(files)))
    lock = threading.Lock()
    done = [0] * len(files)

    def one(i: int) -> BlobDigest:
        def cb(d: int, _total: int) -> None:
            with lock:
                done[i] = d
                now = sum(done)
            assert progress is not None
            progress(now, grand)

        return hash_file(
            files[i][1],
            leaf_size,
            threads=per_file,
            progress=None if progress is None else cb,
            cancel=cancel,
        )

    order = sorted(range(len(files)), key=lambda i: sizes[i], reverse=True)
    digests: dict[int, BlobDigest] = {}
    if len(files) <= 1 or workers == 1:
        for i in order:
            digests[i] = one(i)
    else:
        import concurrent.futures  # here, not at import: start-up of every command

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(files))) as pool:
            futures = {i: pool.submit(one, i) for i in order}
            try:
                for i, fut in futures.items():
                    digests[i] = fut.result()
            except BaseException:
                for fut in futures.values():
                    fut.cancel()
                raise
    entries = [ModelFile(rel, digests[i]) for i, (rel, _) in enumerate(files)]
    return ModelManifest(leaf_size, tuple(entries))


def sha256_model(
    directory: str | os.PathLike[str],
    *,
    ignore: Iterable[str] = (),
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> list[tuple[str, int, bytes]]:
    """``(path, size, sha256)`` of every regular file under ``directory``,
    sorted like a manifest (same walk and refusals as :func:`hash_model`).

    Only the whole-file SHA-256: what ``trustedge hash DIR`` prints and what
    ``sha256sum`` or model_signing compute. All files go to the C workers in
    one :func:`~trustedge.hashing.sha256_ranges` call (two SHA-NI streams
    interleaved per worker, the GIL released), so it costs one SHA-256 per
    byte, half of :func:`hash_model` (which also computes the tree).
    """
    root = Path(directory)
    if not root.is_dir() or root.is_symlink():
        raise ValueError(f"{os.fspath(directory)!r} is not a directory")
    files = _walk(root, frozenset(ignore))
    sizes = [p.stat().st_size for _, p in files]
    digests = sha256_ranges(
        [(p, 0, n) for (_, p), n in zip(files, sizes, strict=True)],
        threads=threads,
        progress=progress,
        cancel=cancel,
    )
    return [(rel, n, d) for (rel, _), n, d in zip(files, sizes, digests, strict=True)]


def verify_model(
    directory: str | os.PathLike[str],
    manifest: ModelManifest,
    *,
    paths: Sequence[str] | None = None,
    check_sha256: bool = True,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> None:
    """Check ``directory`` against a (signature-checked) manifest; returns None or raises.

    The set of regular files must equal the manifest's exactly (no file
    missing, none extra, no symlinks), then every file is verified: its tree
    (every leaf, in parallel) and, with ``check_sha256`` (the default), its
    whole-file SHA-256 too; ``check_sha256=False`` checks the tree alone,
    which binds the same bytes at a fraction of the cost (``hash verify``'s
    choice, see docs/hashing.md). Files verify in parallel (as many at once
    as workers). With ``paths`` only those listed files are hashed (the file
    set is still checked). Raises :class:`VerificationError`.
    """
    try:
        found = _walk(Path(directory), frozenset())
    except ValueError as exc:
        raise VerificationError(str(exc)) from None
    listed = [f.path for f in manifest.files]
    present = [rel for rel, _ in found]
    if present != listed:
        missing = sorted(set(listed) - set(present))
        extra = sorted(set(present) - set(listed))
        raise VerificationError(f"file set differs: missing {missing[:5]}, unexpected {extra[:5]}")
    wanted = set(listed if paths is None else paths)
    if not wanted <= set(listed):
        raise VerificationError(f"not in the manifest: {sorted(wanted - set(listed))[:5]}")
    jobs = [
        (path, entry.digest if check_sha256 else dataclasses.replace(entry.digest, sha256=None))
        for (rel, path), entry in zip(found, manifest.files, strict=True)
        if rel in wanted
    ]
    workers = default_threads() if threads is None else threads
    if workers < 1:
        raise ValueError("threads must be at least 1")
    per_file = max(1, workers // max(1, len(jobs)))
    passes = [(2 if d.sha256 is not None else 1) * d.size for _, d in jobs]
    grand = sum(passes)
    lock = threading.Lock()
    done = [0] * len(jobs)

    def one(i: int) -> None:
        def cb(d: int, total: int) -> None:
            with lock:
                done[i] = d * passes[i] // max(total, 1)
                now = sum(done)
            assert progress is not None
            progress(now, grand)

        path, expected = jobs[i]
        verify_file(
            path,
            expected,
            threads=per_file,
            progress=None if progress is None else cb,
            cancel=cancel,
        )

    order = sorted(range(len(jobs)), key=lambda i: jobs[i][1].size, reverse=True)
    if len(jobs) <= 1 or workers == 1:
        for i in order:
            one(i)
        return
    # Largest first; the first failure (in that order) is the one raised.
    import concurrent.futures  # here, not at import: start-up of every command

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(one, i) for i in order]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
