"""The one way trustedge writes a file that matters: atomically, durably, never half-written.

* :func:`atomic_output` -- a context manager yielding a binary file object; on success the data
  is fsynced, given its name by one ``rename`` over ``path`` and the directory is fsynced; on
  any exception (or a kill at any system call) ``path`` keeps its old content or stays absent.
* :func:`atomic_write` -- the same for bytes already in memory (state files: rollback floors,
  trust roots, software-TPM state, key blobs).
* :class:`AtomicFile` -- the object form of :func:`atomic_output` (``commit``/``discard``), for
  writers fed in pieces.
* :func:`create_exclusive` -- a new file that must not exist yet (``O_EXCL``), is never reached
  through a symlink (``O_NOFOLLOW``) and has the given mode from its first byte (key files).

On Linux the temporary file has no name until it is complete (``O_TMPFILE``): a process killed
while writing (SIGKILL, power loss) leaves nothing behind, not even a hidden file of partial
plaintext. Elsewhere it is a hidden ``.NAME.*.tmp`` file beside ``path``, removed on any
exception. Paths are always the caller's: nothing here picks a location.

Large outputs are written back while they are written: every :data:`WRITEBACK_STEP` bytes the
kernel is asked to start writing the new pages to the device (Linux ``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE``, which does not wait), so the disk works while the producer still
computes and the ``fsync`` at commit waits only for the last pages. It is a hint: durability
still comes from that ``fsync`` (file) and the directory ``fsync``, whatever the hint did.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "WRITEBACK_STEP",
    "AtomicFile",
    "atomic_output",
    "atomic_write",
    "create_exclusive",
    "fsync_directory",
    "replace_directory",
]


#: Bytes written between two requests to start write-back (8 MiB: the device gets work early,
#: the request costs one system call per step).
WRITEBACK_STEP = 8 << 20
_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range: Any = None  # the libc function once looked up; False where there is none


def _start_writeback(fd: int, offset: int) -> None:
    """Ask the kernel to start writing ``fd``'s dirty pages from ``offset`` to its end to the
    device, without waiting (a hint; errors and missing support are ignored)."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        try:
            import ctypes  # only for outputs larger than one step

            fn = ctypes.CDLL(None, use_errno=True).sync_file_range
            fn.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
            fn.restype = ctypes.c_int
            _sync_file_range = fn
        except (OSError, AttributeError):
            return
    if _sync_file_range:
        _sync_file_range(fd, offset, 0, _SYNC_FILE_RANGE_WRITE)


class _WriteBackFile(io.FileIO):
    """A write-only file that starts write-back of every :data:`WRITEBACK_STEP` bytes as soon
    as they are written (see the module notes; sequential writers, the common case)."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "wb", closefd=True)
        self._written = 0
        self._requested = 0

    def write(self, b: ReadableBuffer, /) -> int:
        n = super().write(b)
        if n:
            self._written += n
            if self._written - self._requested >= WRITEBACK_STEP:
                _start_writeback(self.fileno(), self._requested)
                self._requested = self._written
        return n


def fsync_directory(directory: str | Path) -> None:
    """fsync ``directory`` so that a rename or a new name inside it is durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(
    path: str | Path, *, mode: int = 0o600, stream_to_devices: bool = True
) -> Iterator[IO[bytes]]:
    """Write to an unnamed (or hidden) temporary file beside ``path``; on success fsync it,
    rename it over ``path`` and fsync the directory; on any exception remove it, so no partial
    or unverified output is ever left at ``path``. The new file has ``mode`` (before umask is
    not applied: the mode is set explicitly with ``fchmod``).

    With ``stream_to_devices`` (the default, for command output), an existing ``path`` that is
    not a regular file (``/dev/null``, a FIFO, a terminal) is written in place, as a stream like
    stdout: renaming over it would replace the device node with a file. State files pass
    ``stream_to_devices=False``: they are always replaced.
    """
    target = Path(path)
    if stream_to_devices:
        try:
            st_mode: int | None = os.stat(target).st_mode
        except FileNotFoundError:
            st_mode = None
        if st_mode is not None and not stat.S_ISREG(st_mode):
            with io.open(target, "wb") as fh:  # noqa: UP020 (a stream, written in place)
                yield fh
            return
    writer = AtomicFile(target, mode=mode)
    try:
        yield writer.file
    except BaseException:
        writer.discard()
        raise
    writer.commit()


class AtomicFile:
    """An open, not yet visible replacement of ``path`` (the object form of
    :func:`atomic_output`, for writers fed in pieces such as an OTA slot).

    :attr:`file` takes the data; :meth:`commit` fsyncs it, renames it over ``path`` and fsyncs
    the directory; :meth:`discard` (or a kill at any point before the rename) leaves ``path``
    as it was. Exactly one of the two is called, once.
    """

    def __init__(self, path: str | Path, *, mode: int = 0o600) -> None:
        self.path = Path(path)
        self._directory = self.path.parent if str(self.path.parent) else Path(".")
        fd, tmp = _unnamed_file(self._directory, self.path.name)
        if tmp is None:
            fd, tmp = _named_temp_file(self._directory, self.path.name)
            self._named = True
        else:
            self._named = False
        self._tmp = tmp
        try:
            raw = _WriteBackFile(fd)
        except BaseException:
            os.close(fd)
            if self._named:
                os.unlink(tmp)
            raise
        self.file: IO[bytes] = io.BufferedWriter(raw)
        try:
            os.fchmod(fd, mode)
        except BaseException:
            self.discard()
            raise

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            if not self._named:
                # Complete and synced: only now give it a name, to rename over
                # ``path``. /proc/self/fd/N names the open, unlinked file.
                _link_fd(self.file.fileno(), self._tmp)
                self._named = True
            self.file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        self._named = False
        fsync_directory(self._directory)

    def discard(self) -> None:
        self.file.close()
        if self._named:
            self._named = False
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass


def atomic_write(path: str | Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see :func:`atomic_output`)."""
    with atomic_output(path, mode=mode, stream_to_devices=False) as fh:
        fh.write(data)


def create_exclusive(path: str | Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``; it must not exist (``FileExistsError``), and a symlink
    at ``path`` is refused (``FileExistsError`` as well: a link never follows its target).

    The file is complete, synced and has ``mode`` before it gets its name: on Linux it is
    written unnamed (``O_TMPFILE``) and then linked to ``path`` (``linkat`` fails if the name
    exists); elsewhere a hidden temporary file is hard-linked to ``path`` and unlinked. A kill
    at any system call leaves ``path`` absent or complete, never a partial key.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = _unnamed_file(directory, target.name)
    named = tmp is None
    if tmp is None:
        fd, tmp = _named_temp_file(directory, target.name)
    try:
        os.fchmod(fd, mode)  # umask would otherwise narrow or keep the requested mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        if named:
            os.link(tmp, target)  # never replaces: EEXIST for a file or a symlink
        else:
            _link_fd(fd, str(target))
    finally:
        os.close(fd)
        if named:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    fsync_directory(directory)


def replace_directory(new: str | Path, target: str | Path) -> None:
    """Put the complete directory ``new`` at ``target`` (both in one parent) in one step.

    The caller has fsynced ``new``'s files and directories. An existing ``target`` is swapped
    with ``new`` by one ``renameat2(RENAME_EXCHANGE)`` (Linux), so ``target`` always names a
    whole directory, the old or the new one, and the old one is then removed. Where the
    exchange is not available, ``target`` is first renamed aside: a crash between the two
    renames leaves ``target`` absent and the old directory under a ``.old-*`` name.
    """
    import shutil  # only here: it imports bz2 and lzma, start-up every command would pay

    src, dst = Path(new), Path(target)
    if dst.exists():
        if _exchange(src, dst):
            fsync_directory(dst.parent)
            shutil.rmtree(src, ignore_errors=True)
            return
        aside = dst.with_name(f"{dst.name}.old-{os.urandom(8).hex()}")
        os.replace(dst, aside)
        os.replace(src, dst)
        fsync_directory(dst.parent)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(src, dst)
    fsync_directory(dst.parent)


def _exchange(a: Path, b: Path) -> bool:
    """``renameat2(a, b, RENAME_EXCHANGE)``; False where the C library or the file system
    does not offer it."""
    import ctypes  # only for a directory swap

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _unnamed_file(directory: Path, name: str) -> tuple[int, str | None]:
    """An unnamed 0600 file in ``directory`` (Linux ``O_TMPFILE``) and the name
    it will get; ``(-1, None)`` where that is not available."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return -1, None
    try:
        fd = os.open(directory, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError:  # a file system without O_TMPFILE support (EOPNOTSUPP, EISDIR)
        return -1, None
    return fd, str(directory / f".{name}.{os.urandom(8).hex()}.tmp")


def _named_temp_file(directory: Path, name: str) -> tuple[int, str]:
    import tempfile  # only where O_TMPFILE is missing: 2 ms of start-up otherwise

    return tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)


def _link_fd(fd: int, name: str) -> None:
    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N; os.link uses plain link(2),
    # which would link the /proc symlink itself, unless a dir fd is given.
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)
