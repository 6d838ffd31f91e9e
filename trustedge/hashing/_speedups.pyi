"""Typing stub of the C extension; ``_native.py`` has the same signatures."""

from collections.abc import Callable, Sequence
from typing import Protocol

class _CancelFlag(Protocol):
    def is_set(self) -> bool: ...

SIMD_PATHS: tuple[str, ...]

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
    /,
) -> tuple[bytes | None, list[bytes]]: ...
def sha256_many(messages: Sequence[bytes], simd: str, /) -> list[bytes]: ...
def sha256_ranges(
    ranges: Sequence[tuple[int, int, int]],
    threads: int,
    simd: str,
    progress: Callable[[int, int], object] | None,
    cancel: _CancelFlag | None,
    /,
) -> list[bytes]: ...
