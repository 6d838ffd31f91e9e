"""Read a regular file ahead of the AEAD loop in one helper thread.

File reads (``readinto``) release the GIL, so a helper thread can copy the
next blocks out of the page cache while the calling thread encrypts or
decrypts the current one: on two cores seal and open then take about as long
as the larger of the two costs instead of their sum.

The AEAD work itself stays on the calling thread. ``cryptography`` releases
the GIL inside every ``encrypt_into``/``decrypt_into`` call too, but the
format fixes the chunk at 16 KiB (one call each), and handing the GIL back and
forth between two encrypting threads 65,536 times per GiB costs as much as the
second core brings (measured on this project's 2-vCPU machine: 1 GiB in 1 MiB
batches, one thread 0.18 s, two threads 0.18-0.20 s wall with 0.21-0.23 s of
CPU). Spending the second core on the copy out of the page cache pays instead.

Only regular files are read ahead: a read from a regular file always
returns, so stopping the helper thread (on an error, on Ctrl-C) is bounded by
one block. Pipes and terminals, whose reads may block for ever, are read on
the calling thread as before, and so is everything on a single CPU, where the
thread could only add switches.
"""

from __future__ import annotations

import os
import queue
import stat
import threading
from collections.abc import Iterator
from typing import IO, Final

__all__ = ["BLOCK", "ReadAhead", "is_regular_file", "worth_reading_ahead"]

#: Bytes per block: 1 MiB, a multiple of the 16 KiB chunk. Larger blocks bring
#: nothing measurable and fall out of the L2 cache.
BLOCK: Final = 1024 * 1024
#: Buffers per reader: one handed out, up to two filled ahead. Memory is
#: ``DEPTH * block`` whatever the file size.
DEPTH: Final = 3


def is_regular_file(f: object) -> bool:
    """True when ``f`` is a file object over a regular file (reads never block
    indefinitely); False for pipes, terminals, sockets and in-memory streams."""
    try:
        fileno = f.fileno  # type: ignore[attr-defined]
        return stat.S_ISREG(os.fstat(fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False


def worth_reading_ahead(f: object) -> bool:
    """Read ``f`` ahead only when it is a regular file and this process may run
    on more than one CPU: on a single core the helper thread could only add
    thread switches (about 10% more CPU time per GiB)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity outside Linux
        cpus = os.cpu_count() or 1
    return cpus > 1 and is_regular_file(f)


class ReadAhead:
    """Blocks of ``src`` (from its current position), filled by a helper thread.

    Iterating yields memoryviews of at most ``block`` bytes; each is full
    except the last (at end of file, or at ``limit`` bytes). A view stays
    valid until the next one is requested: its buffer is refilled only after
    that. A read error is raised by the iteration in the consumer's thread,
    after the blocks read before it.

    Use as a context manager: leaving the ``with`` block (normally, on an
    error or on ``KeyboardInterrupt``) stops the thread and joins it, which
    waits for at most the one read in progress. ``src`` must not be used by
    anyone else in between.
    """

    def __init__(
        self,
        src: IO[bytes],
        *,
        block: int = BLOCK,
        depth: int = DEPTH,
        limit: int | None = None,
    ) -> None:
        if block <= 0 or depth < 2:
            raise ValueError("block must be > 0 and depth >= 2")
        self._src = src
        self._views = [memoryview(bytearray(block)) for _ in range(depth)]
        self._limit = limit
        self._free: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        # (buffer, bytes) for a filled block, None at the end, or the read's exception.
        self._full: queue.SimpleQueue[tuple[int, int] | BaseException | None] = queue.SimpleQueue()
        for i in range(depth):
            self._free.put(i)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="trustedge-read", daemon=True)
        self._started = False

    def __enter__(self) -> ReadAhead:
        self._thread.start()
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helper thread and wait for it (bounded by one read)."""
        self._stop = True
        self._free.put(None)  # wakes the thread if it waits for a buffer
        if self._started:
            self._thread.join()
            self._started = False

    def _run(self) -> None:
        readinto = self._src.readinto  # type: ignore[attr-defined]
        left = self._limit
        while True:
            i = self._free.get()
            if i is None or self._stop:
                return
            view = self._views[i]
            if left is not None:
                view = view[: min(len(view), left)]
            try:
                got = 0
                # Fill the whole block: a short read is allowed only at the end.
                while got < len(view) and (n := readinto(view[got:])):
                    got += n
            except BaseException as exc:  # handed to the consumer, raised there
                self._full.put(exc)
                return
            eof = got < len(view)
            if left is not None:
                left -= got
                eof = eof or left == 0
            if got:
                self._full.put((i, got))
            if eof:
                self._full.put(None)
                return

    def __iter__(self) -> Iterator[memoryview]:
        held: int | None = None
        while True:
            if held is not None:
                self._free.put(held)
                held = None
            item = self._full.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            held, n = item
            yield self._views[held][:n]
