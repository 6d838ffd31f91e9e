"""Pure-Python twin of ``_speedups``: same signatures, same digests.

It hashes leaves on a thread pool with :mod:`hashlib`, which releases the GIL
for updates of 2048 bytes or more, so a 2-core machine still gets about 2x.
Reads use ``os.preadv`` into per-call bounded buffers (never mmap), so a file
truncated while it is hashed gives a clean error instead of a crash.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from trustedge.errors import VerificationError

__all__ = ["SIMD_PATHS", "hash_fd", "sha256_chain", "sha256_many", "sha256_ranges"]

#: The twin has one "SIMD path": whatever hashlib (OpenSSL) picks.
SIMD_PATHS: tuple[str, ...] = ("hashlib",)

_CHUNK = 1 << 20  # bytes per read; bounded memory is threads x _CHUNK
_TICK = 0.02  # seconds between progress/cancel checks (Ctrl-C within 100 ms, loaded)


class _CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class _Stop(Exception):
    """Internal: a worker saw the stop flag."""


def sha256_many(messages: Sequence[bytes], simd: str) -> list[bytes]:
    """SHA-256 of each message (the test hook that exercises SIMD lanes in C)."""
    if simd not in SIMD_PATHS:
        raise ValueError(f"unknown SIMD path {simd!r}")
    return [hashlib.sha256(m).digest() for m in messages]


def sha256_chain(initial: bytes, digests: Sequence[bytes], simd: str) -> list[bytes]:
    """Every running value of ``value = SHA-256(value || digest)`` (PCR extends)."""
    if simd not in SIMD_PATHS:
        raise ValueError(f"unknown SIMD path {simd!r}")
    if len(initial) != 32:
        raise ValueError("initial value must be 32 bytes")
    sha256 = hashlib.sha256
    value = bytes(initial)
    out = []
    for d in digests:
        if not isinstance(d, bytes) or len(d) != 32:
            raise ValueError("each digest must be 32 bytes")
        value = sha256(value + d).digest()
        out.append(value)
    return out


class _Job:
    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = 0

    def feed(self, h: hashlib._Hash, offset: int, length: int, buf: bytearray) -> None:
        view = memoryview(buf)
        end = offset + length
        while offset < end:
            if self.stop.is_set():
                raise _Stop
            want = min(len(buf), end - offset)
            got = os.preadv(self.fd, [view[:want]], offset)
            if got <= 0:
                raise VerificationError(
                    f"file is shorter than its size when hashing started: read ended at "
                    f"offset {offset} of {self.size} (truncated while hashing?)"
                )
            h.update(view[:got])
            offset += got
            with self.lock:
                self.done += got

    def whole(self) -> bytes:
        h = hashlib.sha256()
        self.feed(h, 0, self.size, bytearray(min(_CHUNK, max(self.size, 1))))
        return h.digest()

    def leaf(self, index: int, leaf_size: int) -> bytes:
        start = index * leaf_size
        length = min(leaf_size, self.size - start)
        h = hashlib.sha256(b"\x00")
        self.feed(h, start, length, bytearray(min(_CHUNK, max(length, 1))))
        return h.digest()


def hash_fd(
    fd: int,
    size: int,
    leaf_size: int,
    want_sha256: bool,
    leaf_indices: Sequence[int],
    threads: int,
    simd: str,
    progress: Callable[[int, int], object] | None,
    cancel: _CancelFlag | None,
) -> tuple[bytes | None, list[bytes]]:
    """Hash an open regular file of ``size`` bytes.

    Returns ``(sha256 or None, [leaf digest for each of leaf_indices])``.
    Raises :class:`VerificationError` when the file turns out shorter than
    ``size``, ``InterruptedError`` when ``cancel.is_set()``, and lets
    ``KeyboardInterrupt`` through after stopping the workers.
    """
    if simd not in SIMD_PATHS:
        raise ValueError(f"unknown SIMD path {simd!r}")
    job = _Job(fd, size)
    total = (size if want_sha256 else 0) + sum(
        min(leaf_size, size - i * leaf_size) for i in leaf_indices
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads))
    try:
        whole = pool.submit(job.whole) if want_sha256 else None
        leaves = [pool.submit(job.leaf, i, leaf_size) for i in leaf_indices]
        pending: set[concurrent.futures.Future[bytes]] = set(leaves)
        if whole is not None:
            pending.add(whole)
        while pending:
            finished, pending = concurrent.futures.wait(
                pending, timeout=_TICK, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            for fut in finished:
                fut.result()  # re-raise the first worker error here
            if cancel is not None and cancel.is_set():
                raise InterruptedError("hashing cancelled")
            if progress is not None and pending:
                progress(job.done, total)
        if progress is not None:
            progress(total, total)
        return (
            whole.result() if whole is not None else None,
            [fut.result() for fut in leaves],
        )
    finally:
        job.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def sha256_ranges(
    ranges: Sequence[tuple[int, int, int]],
    threads: int,
    simd: str,
    progress: Callable[[int, int], object] | None,
    cancel: _CancelFlag | None,
) -> list[bytes]:
    """Plain SHA-256 of each ``(fd, offset, length)`` range, on ``threads``
    workers. Errors as for :func:`hash_fd`."""
    if simd not in SIMD_PATHS:
        raise ValueError(f"unknown SIMD path {simd!r}")
    if threads < 1:
        raise ValueError("threads must be at least 1")
    jobs = {fd: _Job(fd, 0) for fd, _, _ in ranges}
    stop = threading.Event()
    for job in jobs.values():
        job.stop = stop
    total = sum(length for _, _, length in ranges)

    def one(fd: int, offset: int, length: int) -> bytes:
        h = hashlib.sha256()
        jobs[fd].feed(h, offset, length, bytearray(min(_CHUNK, max(length, 1))))
        return h.digest()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
    try:
        futures = [pool.submit(one, fd, off, length) for fd, off, length in ranges]
        pending: set[concurrent.futures.Future[bytes]] = set(futures)
        while pending:
            finished, pending = concurrent.futures.wait(
                pending, timeout=_TICK, return_when=concurrent.futures.FIRST_EXCEPTION
            )
            for fut in finished:
                fut.result()
            if cancel is not None and cancel.is_set():
                raise InterruptedError("hashing cancelled")
            if progress is not None and pending:
                progress(sum(j.done for j in jobs.values()), total)
        if progress is not None:
            progress(total, total)
        return [fut.result() for fut in futures]
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
