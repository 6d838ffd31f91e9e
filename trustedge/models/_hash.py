"""Hashing a model's files and shards in parallel, and the signer's cache.

Work units are whole files (``files``) or byte ranges (``shards``); they run
on a pool of ``threads`` workers. SHA-256 goes through
:mod:`trustedge.hashing` (the C extension: pread, SHA-NI, the GIL released;
pairs of whole files interleave two SHA-NI streams on one core), BLAKE2b and
BLAKE3 through hashlib / blake3 (both release the GIL for large updates).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trustedge import _fs, hashing
from trustedge.errors import UnsupportedAlgorithmError, VerificationError
from trustedge.models._walk import ModelFileEntry

__all__ = ["FileDigests", "HashCache", "hash_model_files", "shard_bounds"]

_CHUNK: Final = 1 << 20
_CACHE_VERSION: Final = 1
_MAX_CACHE_BYTES: Final = 256 << 20


@dataclass(frozen=True)
class FileDigests:
    """The digests of one file: ``(start, end, digest)`` per unit (one unit
    covering the whole file for ``files``; none for an empty file under
    ``shards``)."""

    name: str
    size: int
    units: tuple[tuple[int, int, bytes], ...]


def shard_bounds(size: int, shard_size: int | None) -> list[tuple[int, int]]:
    """The units of a ``size``-byte file: ``[(0, size)]`` for ``files``
    (``shard_size`` None), else consecutive ``shard_size`` ranges (none for
    an empty file, OMS §6.3.2)."""
    if shard_size is None:
        return [(0, size)]
    return [(s, min(s + shard_size, size)) for s in range(0, size, shard_size)]


def _factory(hash_type: str) -> Callable[[], Any]:
    if hash_type == "sha256":
        return hashlib.sha256
    if hash_type == "blake2b":
        return hashlib.blake2b
    if hash_type == "blake3":
        try:
            import blake3
        except ImportError:
            raise UnsupportedAlgorithmError(
                "blake3 needs the 'blake3' package (pip install blake3)"
            ) from None
        return lambda: blake3.blake3(max_threads=1)
    raise UnsupportedAlgorithmError(f"hash type {hash_type!r} is not supported")


def _hash_range(
    path: Path, start: int, end: int, factory: Callable[[], Any], add: Callable[[int], None]
) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        h = factory()
        buf = bytearray(min(_CHUNK, max(end - start, 1)))
        view = memoryview(buf)
        off = start
        while off < end:
            n = os.preadv(fd, [view[: min(len(buf), end - off)]], off)
            if n <= 0:
                raise VerificationError(f"{os.fspath(path)!r} shrank while it was hashed")
            h.update(view[:n])
            off += n
            add(n)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise VerificationError(f"{os.fspath(path)!r} changed while it was hashed")
    digest: bytes = h.digest()
    return digest


class HashCache:
    """Digests of files hashed by an earlier signing, so re-signing after a
    small change re-hashes only what changed.

    An entry is keyed on the file's absolute path, size, ``st_mtime_ns``,
    ``st_ctime_ns`` (which no user can set back), inode and device, and the
    hash configuration; any difference is a miss. For signing only: a
    verifier never reads a cache (a digest is only as good as the bytes it
    was just computed from). The file is JSON, written atomically by
    :meth:`save`; an unreadable or malformed cache is treated as empty.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, list[Any]] = {}
        self.hits = 0
        self.misses = 0
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(_MAX_CACHE_BYTES + 1)
            doc = json.loads(raw) if len(raw) <= _MAX_CACHE_BYTES else None
            if isinstance(doc, dict) and doc.get("v") == _CACHE_VERSION:
                entries = doc.get("entries")
                if isinstance(entries, dict):
                    self._entries = entries
        except (OSError, ValueError):
            self._entries = {}

    @staticmethod
    def _key(entry: ModelFileEntry, config: str) -> tuple[str, list[int]]:
        st = entry.st
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
        return f"{config}|{os.path.abspath(entry.path)}", stamp

    def get(self, entry: ModelFileEntry, config: str) -> tuple[tuple[int, int, bytes], ...] | None:
        """The cached units of ``entry`` under ``config``, or None."""
        key, stamp = self._key(entry, config)
        with self._lock:
            got = self._entries.get(key)
        try:
            if isinstance(got, list) and len(got) == 2 and got[0] == stamp:
                units = tuple((int(s), int(e), bytes.fromhex(d)) for s, e, d in got[1])
                self.hits += 1
                return units
        except (TypeError, ValueError):
            pass
        self.misses += 1
        return None

    def put(
        self, entry: ModelFileEntry, config: str, units: Sequence[tuple[int, int, bytes]]
    ) -> None:
        """Remember ``units`` for ``entry``, if the file still has the stat
        it was listed with (a file changed while hashed is not cached)."""
        try:
            now = os.stat(entry.path, follow_symlinks=False)
        except OSError:
            return
        st = entry.st
        if (now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
        ):
            return
        key, stamp = self._key(entry, config)
        with self._lock:
            self._entries[key] = [stamp, [[s, e, d.hex()] for s, e, d in units]]

    def save(self) -> None:
        """Write the cache atomically (mode 0600)."""
        with self._lock:
            data = json.dumps({"v": _CACHE_VERSION, "entries": self._entries}).encode()
        _fs.atomic_write(self.path, data)


def hash_model_files(
    entries: Sequence[ModelFileEntry],
    *,
    hash_type: str = "sha256",
    shard_size: int | None = None,
    threads: int | None = None,
    progress: hashing.ProgressCallback | None = None,
    cancel: hashing.CancelFlag | None = None,
    cache: HashCache | None = None,
) -> list[FileDigests]:
    """Digests of every file of ``entries`` (same order), units hashed in
    parallel on ``threads`` workers (default: usable CPUs).

    Raises ``OSError`` if a file cannot be read, :class:`VerificationError`
    if one changed while it was hashed, ``InterruptedError`` if ``cancel``
    was set (checked every 50 ms).
    """
    workers = hashing.default_threads() if threads is None else threads
    if workers < 1:
        raise ValueError("threads must be at least 1")
    factory = _factory(hash_type)
    config = f"{hash_type}/{shard_size or 'files'}"
    results: dict[str, list[tuple[int, int, bytes]]] = {}
    jobs: list[tuple[ModelFileEntry, int, int]] = []
    total = 0
    for e in entries:
        cached = cache.get(e, config) if cache is not None else None
        if cached is not None:
            results[e.name] = list(cached)
            continue
        results[e.name] = []
        for start, end in shard_bounds(e.st.st_size, shard_size):
            jobs.append((e, start, end))
            total += end - start
    lock = threading.Lock()
    done = [0]

    def add(n: int) -> None:
        with lock:
            done[0] += n

    if hash_type == "sha256":
        # The C path: every file or shard in one call, two interleaved SHA-NI
        # streams per worker, the GIL released throughout.
        if jobs:
            digests = hashing.sha256_ranges(
                [(e.path, s, t) for e, s, t in jobs],
                threads=workers,
                progress=progress,
                cancel=cancel,
            )
            for (e, s, t), d in zip(jobs, digests, strict=True):
                results[e.name].append((s, t, d))
    else:
        _hash_other(jobs, factory, workers, results, add, lock, done, total, progress, cancel)
    # The units were cut from the listing's stat: a file that grew, shrank or
    # was rewritten since would be signed or verified on stale bounds.
    for e in {id(j[0]): j[0] for j in jobs}.values():
        now = os.stat(e.path, follow_symlinks=False)
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (
            e.st.st_size,
            e.st.st_mtime_ns,
            e.st.st_ino,
        ):
            raise VerificationError(f"{e.name!r} changed while the model was hashed")
    out = []
    for e in entries:
        units = tuple(sorted(results[e.name]))
        if cache is not None:
            cache.put(e, config, units)
        out.append(FileDigests(e.name, e.st.st_size, units))
    return out


def _hash_other(
    jobs: list[tuple[ModelFileEntry, int, int]],
    factory: Callable[[], Any],
    workers: int,
    results: dict[str, list[tuple[int, int, bytes]]],
    add: Callable[[int], None],
    lock: threading.Lock,
    done: list[int],
    total: int,
    progress: hashing.ProgressCallback | None,
    cancel: hashing.CancelFlag | None,
) -> None:
    """BLAKE2b / BLAKE3 units on a thread pool (hashlib and blake3 release the
    GIL for large updates), largest first."""
    jobs = sorted(jobs, key=lambda j: j[2] - j[1], reverse=True)
    if not jobs:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_hash_range, e.path, s, t, factory, add) for e, s, t in jobs]
        try:
            pending = set(futures)
            while pending:
                _, pending = concurrent.futures.wait(pending, timeout=0.05)
                if cancel is not None and cancel.is_set():
                    raise InterruptedError("hashing cancelled")
                if progress is not None:
                    with lock:
                        now = done[0]
                    progress(now, total)
            for (e, s, t), f in zip(jobs, futures, strict=True):
                results[e.name].append((s, t, f.result()))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
