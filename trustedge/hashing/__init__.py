"""Large-blob hashing: whole-file SHA-256 and a parallel chunk-tree digest.

Two digests describe a blob (docs/hashing.md has the exact definition):

* ``sha256``: SHA-256 of the whole file, what hubs, OCI and ``sha256sum`` use.
* the **tree root**: the file is cut into leaves of ``leaf_size`` bytes (a power
  of two, default 4 MiB; the last leaf may be shorter; an empty file has no
  leaves); ``leaf_i = SHA-256(0x00 || leaf bytes)`` and
  ``root = SHA-256(0x01 || "trustedge-tree-v1/sha256" || u64be(leaf_size) ||
  u64be(size) || leaf_0 || ... || leaf_n-1)``. Leaves hash in parallel, and the
  leaf list lets a device verify one byte range without reading the rest.

The C extension ``_speedups`` is used when it was built; ``_native`` (hashlib)
is the twin that gives identical digests. ``IMPLEMENTATION`` names the active
one (``"speedups"`` or ``"native"``); ``TRUSTEDGE_HASHING=native`` forces the
twin. ``SIMD_PATH`` names the leaf kernel (``avx512``, ``avx2``, ``shani``,
``portable``; ``hashlib`` for the twin); ``TRUSTEDGE_HASHING_SIMD`` forces one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Protocol

from trustedge.errors import (
    LimitExceededError,
    MalformedInputError,
    UnsupportedAlgorithmError,
    VerificationError,
)

__all__ = [
    "DEFAULT_LEAF_SIZE",
    "IMPLEMENTATION",
    "MAX_LEAF_SIZE",
    "MIN_LEAF_SIZE",
    "SIMD_PATH",
    "TREE_DOMAIN",
    "BlobDigest",
    "BlobHasher",
    "CancelFlag",
    "ProgressCallback",
    "available_simd_paths",
    "default_threads",
    "hash_file",
    "leaf_count",
    "sha256_chain",
    "sha256_each",
    "sha256_file",
    "sha256_ranges",
    "tree_digest",
    "tree_root",
    "verify_file",
]

DEFAULT_LEAF_SIZE: Final = 4 * 1024 * 1024
MIN_LEAF_SIZE: Final = 4096
MAX_LEAF_SIZE: Final = 1 << 30
#: Domain string of the tree root (after the 0x01 node prefix).
TREE_DOMAIN: Final = b"trustedge-tree-v1/sha256"
#: Most leaves a digest object may carry (4 PiB at 4 MiB leaves); bounds decoding.
MAX_LEAVES: Final = 1 << 30

#: ``progress(done_bytes, total_bytes)``; raising from it cancels the hash.
ProgressCallback = Callable[[int, int], object]


class CancelFlag(Protocol):
    """Anything with ``is_set()``, e.g. :class:`threading.Event`."""

    def is_set(self) -> bool: ...


def _select() -> tuple[ModuleType, str]:
    # The twin is imported only when it is used (it pulls in concurrent.futures: start-up).
    if os.environ.get("TRUSTEDGE_HASHING", "") == "native":
        from trustedge.hashing import _native

        return _native, "native"
    try:
        from trustedge.hashing import _speedups
    except ImportError as exc:
        _say_not_built(exc)
        from trustedge.hashing import _native

        return _native, "native"
    return _speedups, "speedups"


def _say_not_built(exc: ImportError) -> None:
    # A failed build must be visible (pip hides build output without -v): say it once, on a
    # terminal only, so that pipes and logs of callers stay clean.
    stream = sys.stderr
    if stream is None or not stream.isatty():
        return
    stream.write(
        "trustedge: the C extension trustedge.hashing._speedups is not built "
        f"({exc}); hashing uses the pure-Python twin (same digests, slower). Reinstall with "
        "a C compiler and the Python headers (python3-dev), or set TRUSTEDGE_HASHING=native "
        "to choose the twin and silence this.\n"
    )


def _select_simd(impl: ModuleType) -> str:
    paths: tuple[str, ...] = impl.SIMD_PATHS
    forced = os.environ.get("TRUSTEDGE_HASHING_SIMD", "")
    if forced and forced in paths:
        return forced
    return paths[0]


_impl, IMPLEMENTATION = _select()
SIMD_PATH: str = _select_simd(_impl)


def available_simd_paths() -> tuple[str, ...]:
    """SIMD paths the active implementation can run on this CPU, fastest first."""
    paths: tuple[str, ...] = _impl.SIMD_PATHS
    return paths


def default_threads() -> int:
    """Number of CPUs this process may run on (the default worker count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def leaf_count(size: int, leaf_size: int) -> int:
    """Number of leaves of a ``size``-byte file (0 for an empty file)."""
    return -(-size // leaf_size)


def _check_leaf_size(leaf_size: int) -> None:
    if (
        not isinstance(leaf_size, int)
        or leaf_size < MIN_LEAF_SIZE
        or leaf_size > MAX_LEAF_SIZE
        or leaf_size & (leaf_size - 1)
    ):
        raise ValueError(
            f"leaf_size must be a power of two in [{MIN_LEAF_SIZE}, {MAX_LEAF_SIZE}], "
            f"got {leaf_size!r}"
        )


def tree_root(size: int, leaf_size: int, leaves: Sequence[bytes]) -> bytes:
    """The tree root over ``leaves`` for a file of ``size`` bytes.

    Raises ``ValueError`` if the leaf count does not fit ``size``/``leaf_size``.
    """
    _check_leaf_size(leaf_size)
    if len(leaves) != leaf_count(size, leaf_size) or any(len(x) != 32 for x in leaves):
        raise ValueError("leaf list does not match size and leaf_size")
    h = hashlib.sha256(b"\x01" + TREE_DOMAIN)
    h.update(leaf_size.to_bytes(8, "big"))
    h.update(size.to_bytes(8, "big"))
    h.update(b"".join(leaves))
    return h.digest()


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise MalformedInputError(f"{what} must be 64 lowercase hex digits")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MalformedInputError(f"{what} must be 64 lowercase hex digits") from None
    if raw.hex() != value:
        raise MalformedInputError(f"{what} must be 64 lowercase hex digits")
    return raw


@dataclass(frozen=True)
class BlobDigest:
    """Digests of one blob: its size, the tree (root + leaves) and optionally
    the whole-file SHA-256.

    Objects built by :meth:`from_parts` / :meth:`from_json` are checked: the
    leaf list matches ``size``/``leaf_size`` and hashes to ``root``.
    """

    size: int
    leaf_size: int
    root: bytes
    leaves: tuple[bytes, ...]
    sha256: bytes | None = None

    @classmethod
    def from_parts(
        cls,
        *,
        size: Any,
        leaf_size: Any,
        root: Any,
        leaves: Any,
        sha256: Any = None,
    ) -> BlobDigest:
        """Build from untrusted parts; raises :class:`MalformedInputError` unless
        every field has the right type and the leaves hash to ``root``."""
        if type(size) is not int or not 0 <= size < 1 << 63:
            raise MalformedInputError("size must be a non-negative 63-bit integer")
        if type(leaf_size) is not int:
            raise MalformedInputError("leaf_size must be an integer")
        try:
            _check_leaf_size(leaf_size)
        except ValueError as exc:
            raise UnsupportedAlgorithmError(str(exc)) from None
        n = leaf_count(size, leaf_size)
        if n > MAX_LEAVES:
            raise LimitExceededError(f"{n} leaves exceed the limit of {MAX_LEAVES}")
        if not isinstance(leaves, (list, tuple)) or len(leaves) != n:
            raise MalformedInputError(f"expected a list of {n} leaf digests")
        if not all(isinstance(x, bytes) and len(x) == 32 for x in leaves):
            raise MalformedInputError("each leaf digest must be 32 bytes")
        if not isinstance(root, bytes) or len(root) != 32:
            raise MalformedInputError("root must be 32 bytes")
        if sha256 is not None and (not isinstance(sha256, bytes) or len(sha256) != 32):
            raise MalformedInputError("sha256 must be 32 bytes")
        if not hmac.compare_digest(tree_root(size, leaf_size, leaves), root):
            raise MalformedInputError("leaf list does not hash to the tree root")
        return cls(size, leaf_size, root, tuple(leaves), sha256)

    def leaf_range(self, start: int, end: int) -> range:
        """Indices of the leaves covering bytes ``[start, end)`` of the blob."""
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"range [{start}, {end}) outside a blob of {self.size} bytes")
        if start == end:
            return range(0)
        return range(start // self.leaf_size, leaf_count(end, self.leaf_size))

    def to_json(self) -> dict[str, Any]:
        """JSON form: sizes as integers, digests as lowercase hex."""
        out: dict[str, Any] = {"size": self.size}
        if self.sha256 is not None:
            out["sha256"] = self.sha256.hex()
        out["tree"] = {
            "leaf_size": self.leaf_size,
            "root": self.root.hex(),
            "leaves": [x.hex() for x in self.leaves],
        }
        return out

    @classmethod
    def from_json(cls, obj: Any) -> BlobDigest:
        """Inverse of :meth:`to_json` for untrusted input (checked like
        :meth:`from_parts`); raises :class:`MalformedInputError`."""
        if not isinstance(obj, dict) or not isinstance(obj.get("tree"), dict):
            raise MalformedInputError("expected an object with 'size' and 'tree'")
        tree = obj["tree"]
        if set(obj) - {"size", "sha256", "tree"} or set(tree) != {"leaf_size", "root", "leaves"}:
            raise MalformedInputError("unexpected or missing fields in blob digest")
        leaves = tree["leaves"]
        if not isinstance(leaves, list) or len(leaves) > MAX_LEAVES:
            raise MalformedInputError("tree.leaves must be a list")
        sha = obj.get("sha256")
        return cls.from_parts(
            size=obj.get("size"),
            leaf_size=tree["leaf_size"],
            root=_hex32(tree["root"], "tree.root"),
            leaves=[_hex32(x, "tree leaf") for x in leaves],
            sha256=None if sha is None else _hex32(sha, "sha256"),
        )


class BlobHasher:
    """Both digests of a byte stream fed in order, e.g. while it downloads.

    ``update()`` takes chunks of any size; ``digest()`` gives the same
    :class:`BlobDigest` that :func:`hash_file` gives for a file with those
    bytes, and may be called at any point (the hasher keeps going). Pure
    Python on hashlib, which releases the GIL for chunks of 2 KiB or more.
    """

    def __init__(self, leaf_size: int = DEFAULT_LEAF_SIZE) -> None:
        _check_leaf_size(leaf_size)
        self.leaf_size = leaf_size
        self._whole = hashlib.sha256()
        self._leaf = hashlib.sha256(b"\x00")
        self._in_leaf = 0
        self._leaves: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the blob."""
        view = memoryview(data).cast("B")
        self._whole.update(view)
        self._size += len(view)
        while view:
            take = min(len(view), self.leaf_size - self._in_leaf)
            self._leaf.update(view[:take])
            self._in_leaf += take
            view = view[take:]
            if self._in_leaf == self.leaf_size:
                self._leaves.append(self._leaf.digest())
                self._leaf = hashlib.sha256(b"\x00")
                self._in_leaf = 0

    def digest(self) -> BlobDigest:
        """The digests of everything fed so far (with ``sha256``)."""
        leaves = list(self._leaves)
        if self._in_leaf:
            leaves.append(self._leaf.digest())
        root = tree_root(self._size, self.leaf_size, leaves)
        return BlobDigest(self._size, self.leaf_size, root, tuple(leaves), self._whole.digest())


def _open(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{os.fspath(path)!r} is not a regular file")
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _run(
    path: str | os.PathLike[str],
    leaf_size: int,
    want_sha256: bool,
    indices: Callable[[int], Iterable[int]],
    threads: int | None,
    progress: ProgressCallback | None,
    cancel: CancelFlag | None,
    simd: str | None,
) -> tuple[int, bytes | None, list[bytes]]:
    _check_leaf_size(leaf_size)
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError("threads must be at least 1")
    path_simd = SIMD_PATH if simd is None else simd
    fd, before = _open(path)
    try:
        size = before.st_size
        wanted = list(indices(size))
        sha, leaves = _impl.hash_fd(
            fd, size, leaf_size, want_sha256, wanted, threads, path_simd, progress, cancel
        )
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise VerificationError(
            f"{os.fspath(path)!r} changed while it was hashed "
            f"(size {before.st_size} -> {after.st_size})"
        )
    return size, sha, leaves


def sha256_each(messages: Sequence[bytes]) -> list[bytes]:
    """SHA-256 of each of many short messages (multi-buffer SIMD lanes in C).

    The same digests as ``[hashlib.sha256(m).digest() for m in messages]``,
    several times faster for thousands of small messages (IMA template data).
    """
    digests: list[bytes] = _impl.sha256_many(messages, SIMD_PATH)
    return digests


def sha256_chain(initial: bytes, digests: Sequence[bytes]) -> list[bytes]:
    """Every running value of the PCR extend ``value = SHA-256(value || digest)``.

    ``initial`` and each digest are 32 bytes (``ValueError`` otherwise); the
    result has one value per digest, the last being the final PCR value.
    """
    values: list[bytes] = _impl.sha256_chain(bytes(initial), digests, SIMD_PATH)
    return values


def sha256_file(
    path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    simd: str | None = None,
) -> bytes:
    """Whole-file SHA-256 of ``path`` (same as ``sha256sum``).

    Reads with pread into a bounded buffer. Raises ``OSError`` if the file
    cannot be read, :class:`VerificationError` if it shrank or changed while
    being hashed, ``InterruptedError`` if ``cancel`` was set.
    """
    _, sha, _ = _run(path, DEFAULT_LEAF_SIZE, True, lambda s: (), 1, progress, cancel, simd)
    assert sha is not None
    return sha


#: Files :func:`sha256_ranges` keeps open at once.
_MAX_OPEN: Final = 256


def sha256_ranges(
    ranges: Sequence[tuple[str | os.PathLike[str], int, int]],
    *,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    simd: str | None = None,
) -> list[bytes]:
    """Plain SHA-256 of each ``(path, start, end)`` byte range (``end``
    exclusive), in the given order: the digests of OMS files and shards.

    Ranges hash in parallel on ``threads`` workers (default: usable CPUs);
    with SHA-NI each worker interleaves two ranges in one kernel (about twice
    one stream's rate per core). Each file is opened once per batch and must
    be a regular file at least ``end`` bytes long. Raises ``OSError`` if a file
    cannot be read, ``ValueError`` for a bad range or a non-regular file,
    :class:`VerificationError` if a file shrank or changed while hashed,
    ``InterruptedError`` if ``cancel`` was set.
    """
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError("threads must be at least 1")
    path_simd = SIMD_PATH if simd is None else simd
    items = [(os.fspath(p), int(s), int(e)) for p, s, e in ranges]
    for p, s, e in items:
        if s < 0 or e < s:
            raise ValueError(f"bad range {s}:{e} of {p!r}")
    # Largest first, so the long pole starts early; results go back in order.
    order = sorted(range(len(items)), key=lambda i: items[i][2] - items[i][1], reverse=True)
    out: list[bytes] = [b""] * len(items)
    total = sum(e - s for _, s, e in items)
    done_before = 0
    batch: list[int] = []
    paths: dict[str, None] = {}

    def flush() -> None:
        nonlocal done_before
        if not batch:
            return
        fds: dict[str, tuple[int, os.stat_result]] = {}
        try:
            for p in paths:
                fds[p] = _open(p)
            for i in batch:
                p, _, e = items[i]
                if e > fds[p][1].st_size:
                    raise VerificationError(
                        f"{p!r} has {fds[p][1].st_size} bytes, fewer than the range end {e}"
                    )
            base = done_before
            cb = None if progress is None else (lambda d, _t: progress(base + d, total))
            digests = _impl.sha256_ranges(
                [(fds[items[i][0]][0], items[i][1], items[i][2] - items[i][1]) for i in batch],
                threads,
                path_simd,
                cb,
                cancel,
            )
            for p, (fd, before) in fds.items():
                after = os.fstat(fd)
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    raise VerificationError(f"{p!r} changed while it was hashed")
        finally:
            for fd, _ in fds.values():
                os.close(fd)
        for i, d in zip(batch, digests, strict=True):
            out[i] = d
        done_before += sum(items[i][2] - items[i][1] for i in batch)
        batch.clear()
        paths.clear()

    for i in order:
        if items[i][0] not in paths and len(paths) >= _MAX_OPEN:
            flush()
        paths[items[i][0]] = None
        batch.append(i)
    flush()
    return out


def tree_digest(
    path: str | os.PathLike[str],
    leaf_size: int = DEFAULT_LEAF_SIZE,
    *,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    simd: str | None = None,
) -> BlobDigest:
    """Tree digest (root + leaves) of ``path``; ``sha256`` is left ``None``.

    Leaves hash on ``threads`` workers (default: usable CPUs). Errors as for
    :func:`sha256_file`; ``ValueError`` for a bad ``leaf_size``.
    """
    return hash_file(
        path,
        leaf_size,
        threads=threads,
        progress=progress,
        cancel=cancel,
        simd=simd,
        whole_file=False,
    )


def hash_file(
    path: str | os.PathLike[str],
    leaf_size: int = DEFAULT_LEAF_SIZE,
    *,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    simd: str | None = None,
    whole_file: bool = True,
) -> BlobDigest:
    """Both digests of ``path`` in one call: the whole-file SHA-256 runs on one
    worker while the others hash leaves, so it costs about the SHA-256 alone.

    Errors as for :func:`sha256_file`; ``ValueError`` for a bad ``leaf_size``.
    """
    size, sha, leaves = _run(
        path,
        leaf_size,
        whole_file,
        lambda s: range(leaf_count(s, leaf_size)),
        threads,
        progress,
        cancel,
        simd,
    )
    return BlobDigest(size, leaf_size, tree_root(size, leaf_size, leaves), tuple(leaves), sha)


def verify_file(
    path: str | os.PathLike[str],
    expected: BlobDigest,
    *,
    ranges: Sequence[tuple[int, int]] | None = None,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    simd: str | None = None,
) -> None:
    """Check ``path`` against ``expected``; returns ``None`` or raises.

    First the leaf list of ``expected`` is checked against its root and the
    file size against ``expected.size``. With ``ranges`` (``(start, end)`` byte
    ranges, end exclusive) only the leaves covering those ranges are hashed, so
    a device can check one tensor of a large file. Without ``ranges`` every leaf
    is hashed, and the whole-file SHA-256 too when ``expected.sha256`` is set.
    Raises :class:`VerificationError` on any mismatch; ``ValueError`` for a
    range outside the blob.
    """
    if not hmac.compare_digest(
        tree_root(expected.size, expected.leaf_size, expected.leaves), expected.root
    ):
        raise VerificationError("expected digest: leaf list does not match its root")
    if ranges is None:
        wanted: list[int] | None = None
    else:
        picked: set[int] = set()
        for start, end in ranges:
            picked.update(expected.leaf_range(start, end))
        wanted = sorted(picked)

    def indices(size: int) -> Iterable[int]:
        if size != expected.size:
            raise VerificationError(f"file has {size} bytes, expected {expected.size}")
        return range(len(expected.leaves)) if wanted is None else wanted

    want_sha = ranges is None and expected.sha256 is not None
    _, sha, leaves = _run(
        path, expected.leaf_size, want_sha, indices, threads, progress, cancel, simd
    )
    order = range(len(expected.leaves)) if wanted is None else wanted
    bad = [
        i
        for i, got in zip(order, leaves, strict=True)
        if not hmac.compare_digest(got, expected.leaves[i])
    ]
    if bad:
        raise VerificationError(
            f"{len(bad)} leaf digest(s) differ, first at leaf {bad[0]} "
            f"(bytes from {bad[0] * expected.leaf_size})"
        )
    if want_sha and (sha is None or not hmac.compare_digest(sha, expected.sha256 or b"")):
        raise VerificationError("whole-file SHA-256 differs")
