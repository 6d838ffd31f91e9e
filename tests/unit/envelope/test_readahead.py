"""The read-ahead path of seal and open (a helper thread reads regular files):
same bytes as the single-threaded path, errors surface in the caller's
thread, and the helper thread is always gone afterwards."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from trustedge import envelope
from trustedge.envelope import _cobblestone as cb
from trustedge.envelope._readahead import BLOCK, ReadAhead, is_regular_file
from trustedge.errors import ChunkAuthenticationError, TruncationError

KEK = envelope.KEK(bytes(range(32)))
#: Several 1 MiB read-ahead blocks and a ragged tail.
SIZE = 3 * BLOCK + 12345


def _data(n: int = SIZE) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def _fixed_rng() -> envelope.slots.RandomSource:
    """A deterministic RNG: same file key, salt and slot nonce for every seal."""
    state = [0]

    def rng(n: int) -> bytes:
        state[0] += 1
        return bytes([state[0]]) * n

    return rng


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "trustedge-read"]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    assert _readers() == [], "a read-ahead thread outlived its call"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    p = tmp_path / "plain"
    p.write_bytes(_data())
    return p


@pytest.mark.parametrize(
    "size", [0, 1, cb.CHUNK_SIZE, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, SIZE]
)
@pytest.mark.parametrize("limit", [None, 0, 5, BLOCK, BLOCK + 7, 10 * BLOCK])
def test_blocks_concatenate_to_the_file(tmp_path: Path, size: int, limit: int | None) -> None:
    p = tmp_path / "f"
    p.write_bytes(_data(size))
    got = []
    with p.open("rb", buffering=0) as f, ReadAhead(f, limit=limit) as blocks:
        for view in blocks:
            got.append(bytes(view))
    expected = _data(size)[:limit]
    assert b"".join(got) == expected
    assert all(len(b) == BLOCK for b in got[:-1])
    assert all(got)


def test_regular_file_detection(tmp_path: Path, plain: Path) -> None:
    with plain.open("rb") as f:
        assert is_regular_file(f)
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf, os.fdopen(w, "wb"):
        assert not is_regular_file(rf)
    assert not is_regular_file(io.BytesIO(b"x"))
    assert not is_regular_file(object())


def test_threaded_seal_is_byte_identical_to_single_threaded(plain: Path, tmp_path: Path) -> None:
    # Fixed keys and salt: the read-ahead path (regular file), the in-thread
    # path (in-memory stream) and plain write() must produce the same bytes.
    outs = []
    for source in ("file", "bytesio", "bytes"):
        out = io.BytesIO()
        with envelope.Writer(out, [KEK], size=SIZE, rng=_fixed_rng()) as w:
            if source == "file":
                with plain.open("rb", buffering=0) as f:
                    assert w.write_from(f) == SIZE
            elif source == "bytesio":
                assert w.write_from(io.BytesIO(_data())) == SIZE
            else:
                w.write(_data())
        outs.append(out.getvalue())
    assert outs[0] == outs[1] == outs[2]
    dst = tmp_path / "sealed"
    envelope.seal_file(plain, dst, [KEK], rng=_fixed_rng())
    assert dst.read_bytes() == outs[0]


def test_threaded_open_matches_and_reports_progress(plain: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    seen: list[int] = []
    out = io.BytesIO()
    with sealed.open("rb") as f:
        assert envelope.Reader(f, [KEK]).copy_to(out, seen.append) == SIZE
    assert out.getvalue() == _data()
    assert seen == sorted(seen) and seen[-1] == SIZE and len(seen) == 4


@pytest.mark.parametrize("offset", [0, 1, cb.CHUNK_SIZE, BLOCK + 5, SIZE - 1, SIZE])
def test_copy_to_from_any_position(plain: Path, tmp_path: Path, offset: int) -> None:
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    out = io.BytesIO()
    with sealed.open("rb") as f:
        reader = envelope.Reader(f, [KEK])
        reader.seek(offset)
        assert reader.copy_to(out) == SIZE - offset
        assert reader.tell() == SIZE
        assert reader.read(1) == b""
    assert out.getvalue() == _data()[offset:]


class _FailingFile(io.RawIOBase):
    """A regular file whose reads fail after ``ok`` bytes (a disk error mid-file)."""

    def __init__(self, path: Path, ok: int) -> None:
        self._f = path.open("rb", buffering=0)
        self._ok = ok

    def fileno(self) -> int:
        return self._f.fileno()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._f.tell() >= self._ok:
            raise OSError(5, "Input/output error")
        view = memoryview(b)[: self._ok - self._f.tell()]
        return self._f.readinto(view) or 0

    def close(self) -> None:
        self._f.close()
        super().close()


def test_read_error_mid_file_on_seal(plain: Path, tmp_path: Path) -> None:
    src = _FailingFile(plain, 2 * BLOCK + 100)
    with (
        pytest.raises(OSError, match="Input/output error"),
        envelope.Writer(io.BytesIO(), [KEK]) as w,
    ):
        w.write_from(src)
    src.close()


def test_read_error_mid_file_on_open(plain: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    src = _FailingFile(sealed, 2 * BLOCK)
    out = io.BytesIO()
    reader = envelope.Reader(src, [KEK])  # type: ignore[arg-type]
    with pytest.raises(OSError, match="Input/output error"):
        reader.copy_to(out)
    assert _data().startswith(out.getvalue())
    src.close()


def test_seal_file_read_error_leaves_no_output(
    plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = io.open
    failing = _FailingFile(plain, BLOCK + 1)

    def failing_open(path: object, mode: str = "r", *args: object, **kw: object) -> IO[bytes]:
        if path == plain:
            return failing  # type: ignore[return-value]
        return real_open(path, mode, *args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(io, "open", failing_open)
    dst = tmp_path / "sealed"
    with pytest.raises(OSError):
        envelope.seal_file(plain, dst, [KEK])
    monkeypatch.undo()
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["plain"]


@pytest.mark.parametrize("chunk", [0, 63, 64, 130, 192])
def test_tamper_in_a_late_chunk_on_open(plain: Path, tmp_path: Path, chunk: int) -> None:
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    data = bytearray(sealed.read_bytes())
    lay = cb.layout_for_plaintext(SIZE)
    body = len(data) - (cb.Layout.chunk_offset(lay.chunks - 1) + lay.final_ct_size)
    data[body + cb.Layout.chunk_offset(chunk) + 100] ^= 1
    sealed.write_bytes(data)
    out = io.BytesIO()
    with sealed.open("rb") as f:
        reader = envelope.Reader(f, [KEK])
        with pytest.raises(ChunkAuthenticationError) as err:
            reader.copy_to(out)
        assert err.value.index == chunk
        # Only whole authenticated batches before the bad one were written.
        assert out.getvalue() == _data()[: chunk // 64 * BLOCK]
        with pytest.raises(ChunkAuthenticationError):  # sticky
            reader.copy_to(out)
    dst = tmp_path / "opened"
    with pytest.raises(ChunkAuthenticationError):
        envelope.open_file(sealed, dst, [KEK])
    assert not dst.exists()


def test_source_shrinking_during_open_is_truncation(plain: Path, tmp_path: Path) -> None:
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    with sealed.open("rb") as f:
        reader = envelope.Reader(f, [KEK])  # the length was checked here
        os.truncate(sealed, os.path.getsize(sealed) - BLOCK)
        out = io.BytesIO()
        with pytest.raises(TruncationError, match="shrank"):
            reader.copy_to(out)
    assert _data().startswith(out.getvalue())


def test_interrupt_in_the_consumer_stops_the_thread(plain: Path, tmp_path: Path) -> None:
    # Ctrl-C arrives in the main thread, here while it handles the second block.
    calls = []

    def progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), plain.open("rb") as f:
        envelope.Writer(io.BytesIO(), [KEK]).write_from(f, progress)
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK])
    calls.clear()
    with pytest.raises(KeyboardInterrupt), sealed.open("rb") as f:
        envelope.Reader(f, [KEK]).copy_to(io.BytesIO(), progress)


def test_a_stuck_consumer_holds_bounded_memory(plain: Path) -> None:
    # The helper thread fills at most the free buffers, then waits.
    with plain.open("rb", buffering=0) as f, ReadAhead(f, depth=2) as blocks:
        it = iter(blocks)
        first = next(it)
        # Give the thread time to run ahead: it may fill the other buffer only,
        # never the one handed out.
        threading.Event().wait(0.05)
        assert f.tell() <= 2 * BLOCK
        assert bytes(first) == _data()[:BLOCK]
        assert bytes(next(it)) == _data()[BLOCK : 2 * BLOCK]


def test_single_cpu_reads_on_the_calling_thread(
    plain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    started = []
    monkeypatch.setattr(ReadAhead, "__enter__", lambda self: started.append(self))
    sealed = tmp_path / "sealed"
    envelope.seal_file(plain, sealed, [KEK], rng=_fixed_rng())
    out = io.BytesIO()
    with sealed.open("rb") as f:
        envelope.Reader(f, [KEK]).copy_to(out)
    assert started == []
    assert out.getvalue() == _data()
    monkeypatch.undo()
    again = tmp_path / "again"
    envelope.seal_file(plain, again, [KEK], rng=_fixed_rng())
    assert again.read_bytes() == sealed.read_bytes()
