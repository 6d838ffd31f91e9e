"""Resource limits of the foundation parsers, measured on worst-case inputs.

Each case builds the worst input the default limits still allow (or the first
one they reject), decodes it in a fresh subprocess and asserts wall time and
peak-RSS growth (``VmHWM``) against generous bounds: the machine is shared, so the
bounds catch blow-ups (quadratic time, an allocation driven by a length
field) rather than measure performance. The figures are in
``docs/threat-model.md`` (resource limits table). Cheap cases run in-process
under ``tracemalloc``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from trustedge import _cbor
from trustedge._binary import DEFAULT_MAX_SIZE, Reader
from trustedge._cbor import DEFAULT_LIMITS, DecodeLimits
from trustedge.errors import LimitExceededError, MalformedInputError

LIMITS = DEFAULT_LIMITS
MiB = 1024 * 1024

_CHILD = textwrap.dedent(
    """
    import gc, importlib, json, sys, time

    def peak_rss_kib():
        # VmHWM belongs to this process image; ru_maxrss would carry the parent's
        # high-water mark across exec.
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

    modname, _, attr = sys.argv[1].partition(":")
    fn = importlib.import_module(modname)
    for part in attr.split("."):  # "module:Class.method" works too
        fn = getattr(fn, part)
    kwargs = json.loads(sys.argv[3])
    data = open(sys.argv[2], "rb").read()
    gc.collect()
    base = peak_rss_kib()
    t0 = time.perf_counter()
    try:
        fn(data, **kwargs)
        outcome = "ok"
    except Exception as exc:
        outcome = type(exc).__name__
    seconds = time.perf_counter() - t0
    peak = peak_rss_kib()
    print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_mib": (peak - base) / 1024}))
    """
)


def measure_call(tmp_path: Path, target: str, data: bytes, **kwargs: object) -> dict[str, object]:
    """Run ``target(data, **kwargs)`` (``"module:function"`` or ``"module:Class.method"``)
    in a fresh interpreter.

    Returns ``{"outcome": "ok" | <exception class name>, "seconds": wall time of the call,
    "rss_mib": growth of the peak RSS during the call}``. ``kwargs`` must be JSON values.
    Module limit tests use this for their worst cases (an event log of maximal event
    count, an envelope with the maximal slot count, ...).
    """
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, target, str(path), json.dumps(kwargs)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _measure(tmp_path: Path, data: bytes, *, canonical: bool = False) -> dict[str, object]:
    """Decode ``data`` with the default limits in a fresh interpreter."""
    return measure_call(tmp_path, "trustedge._cbor:decode", data, canonical=canonical)


def _max_map() -> bytes:
    # The map itself counts as one item and each pair as two.
    return _cbor.encode({i: i for i in range((LIMITS.max_items - 1) // 2)})


@pytest.mark.slow
@pytest.mark.parametrize("canonical", [False, True], ids=["plain", "canonical"])
def test_largest_map_is_bounded(tmp_path: Path, canonical: bool) -> None:
    data = _max_map()
    m = _measure(tmp_path, data, canonical=canonical)
    assert m["outcome"] == "ok"
    assert float(m["seconds"]) < 30  # ~2 s (plain) / ~4 s (canonical) here, unloaded
    assert float(m["rss_mib"]) < 400  # ~40 / ~90 MiB


@pytest.mark.slow
def test_most_items_is_bounded_and_one_more_is_rejected(tmp_path: Path) -> None:
    at_limit = _measure(tmp_path, _cbor.encode([0] * (LIMITS.max_items - 1)))
    assert at_limit["outcome"] == "ok"
    over = _measure(tmp_path, _cbor.encode([0] * LIMITS.max_items))
    assert over["outcome"] == "LimitExceededError"
    for m in (at_limit, over):
        assert float(m["seconds"]) < 20
        assert float(m["rss_mib"]) < 200


@pytest.mark.slow
def test_many_strings_at_the_item_limit_are_bounded(tmp_path: Path) -> None:
    # Text items allocate the most per input byte: 1M ten-byte strings, 11 MB of input.
    m = _measure(tmp_path, _cbor.encode(["a" * 10] * (LIMITS.max_items - 1)))
    assert m["outcome"] == "ok"
    assert float(m["seconds"]) < 30
    assert float(m["rss_mib"]) < 400


def test_largest_input_of_deep_nesting_stops_at_the_depth_limit(tmp_path: Path) -> None:
    m = _measure(tmp_path, b"\x81" * LIMITS.max_size)
    assert m["outcome"] == "LimitExceededError"
    assert float(m["seconds"]) < 1


def test_deepest_nesting_allowed_and_one_deeper() -> None:
    deepest = b"\x81" * LIMITS.max_depth + b"\x00"
    value = _cbor.decode(deepest, canonical=True)
    for _ in range(LIMITS.max_depth):
        assert isinstance(value, list)
        value = value[0]
    assert value == 0
    for prefix in (b"\x81", b"\xa1\x00", b"\xc1"):  # array, map value, tag
        with pytest.raises(LimitExceededError, match="nesting"):
            _cbor.decode(prefix * (LIMITS.max_depth + 1) + b"\x00")


def test_largest_byte_string_costs_one_copy(tmp_path: Path) -> None:
    data = _cbor.encode(b"\x00" * (LIMITS.max_size - 16))
    m = _measure(tmp_path, data, canonical=True)
    assert m["outcome"] == "ok"
    assert float(m["seconds"]) < 5
    assert float(m["rss_mib"]) < 4 * LIMITS.max_size / MiB


def _tracemalloc_peak(fn: object) -> tuple[float, int]:
    assert callable(fn)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return seconds, peak


@pytest.mark.parametrize(
    "data",
    [
        b"\x5b" + b"\xff" * 8,  # byte string of 2**64-1 bytes
        b"\x7a\xff\xff\xff\xff" + b"a" * 100,  # text string of 4 GiB
        b"\x9b" + b"\xff" * 8 + b"\x00" * 100,  # array of 2**64-1 elements
        b"\xba\xff\xff\xff\xff" + b"\x00" * 100,  # map of 4G pairs
    ],
    ids=["bstr", "tstr", "array", "map"],
)
def test_lying_cbor_lengths_allocate_nothing(data: bytes) -> None:
    def run() -> None:
        with pytest.raises(MalformedInputError):
            _cbor.decode(data)

    seconds, peak = _tracemalloc_peak(run)
    assert seconds < 0.5
    assert peak < 64 * 1024


def test_oversized_cbor_input_is_rejected_before_parsing() -> None:
    data = bytes(LIMITS.max_size + 1)

    def run() -> None:
        with pytest.raises(LimitExceededError):
            _cbor.decode(data)

    seconds, peak = _tracemalloc_peak(run)
    assert seconds < 0.5
    assert peak < 2 * LIMITS.max_size  # the one defensive copy at most


def test_tight_limits_cut_work_short() -> None:
    tight = DecodeLimits(max_size=4096, max_depth=4, max_items=100)
    with pytest.raises(LimitExceededError, match="items"):
        _cbor.decode(_cbor.encode(list(range(200))), limits=tight)
    with pytest.raises(LimitExceededError, match="exceeds"):
        _cbor.decode(bytes(4097), limits=tight)


@pytest.mark.parametrize(
    "method", ["bytes_u32le", "bytes_u32be", "bytes_u16le", "bytes_u16be", "bytes_u8"]
)
def test_lying_reader_lengths_allocate_nothing(method: str) -> None:
    data = b"\xff" * 4 + b"x" * 10

    def run() -> None:
        with pytest.raises(MalformedInputError):
            getattr(Reader(data), method)()

    seconds, peak = _tracemalloc_peak(run)
    assert seconds < 0.5
    assert peak < 64 * 1024


def test_reader_caps() -> None:
    with pytest.raises(LimitExceededError):
        Reader(b"\x00" * 11, max_size=10)
    with pytest.raises(LimitExceededError):
        Reader(b"\x40\x00" + b"x" * 64).bytes_u16le(max_len=63)
    with pytest.raises(LimitExceededError):
        Reader(b"").count(1001, 1000)
    assert DEFAULT_MAX_SIZE == 64 * MiB
