"""The contract every fuzz harness is held to, and the plumbing around it.

A harness is a module ``tests/fuzz/fuzz_<name>.py`` that defines
``TestOneInput(data: bytes) -> None`` and imports without atheris. The
contract for each input:

* it returns, or raises a :class:`~trustedge.errors.TrustedgeError` subclass;
* it finishes within the harness's time limit (``TIME_LIMIT`` seconds,
  :data:`DEFAULT_TIME_LIMIT` when not declared) on inputs up to ``MAX_LEN``
  bytes (:data:`DEFAULT_MAX_LEN`); the first input of a process is exempt from
  the time limit, as it may pay for lazy imports. libFuzzer's own ``-timeout``
  (five times the limit) catches hangs the wrapper cannot see.

Anything else -- another exception (``IndexError``, ``struct.error``,
``RecursionError``, an ``AssertionError`` from the harness's own invariant
checks, ...) or a slow input -- is a *finding*. :func:`enforce_contract` wraps a
``TestOneInput`` so that the fuzzer (``tools/fuzz``, atheris) and the plain
pytest run (``tests/fuzz/test_fuzz_seeds.py``) apply the same rule; the wrapper
is applied by the runners, so a harness may but need not use
:func:`fuzz_target` itself.

Optional module attributes a harness may declare:

* ``SEEDS``: list of globs. ``third_party/<glob>`` is relative to the vendored
  third-party corpora (``tests/data/third_party``), anything else to the
  project root (e.g. ``vectors/fuzz/cbor/*.bin``). Each matching file is one seed.
* ``seeds()``: a function returning an iterable of ``bytes`` seeds (use
  :func:`files`, :func:`json_hex_values` to pull inputs out of vector files).
* ``MAX_LEN``, ``TIME_LIMIT``, ``MUTATIONS`` (inputs the pytest run derives
  from the seeds; :data:`DEFAULT_MUTATIONS`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trustedge.errors import TrustedgeError

__all__ = [
    "DEFAULT_MAX_LEN",
    "DEFAULT_MUTATIONS",
    "DEFAULT_TIME_LIMIT",
    "FUZZ_DIR",
    "MAX_SEEDS",
    "ROOT",
    "ContractViolation",
    "Harness",
    "discover",
    "enforce_contract",
    "files",
    "fuzz_target",
    "json_hex_values",
    "load_harness",
    "mutations",
    "THIRD_PARTY",
]

ROOT = Path(__file__).resolve().parent.parent.parent
FUZZ_DIR = ROOT / "tests" / "fuzz"

#: Largest input the fuzzer generates unless a harness declares ``MAX_LEN``.
DEFAULT_MAX_LEN = 4096
#: Seconds one input may take (wall clock, generous: the fuzzer's instrumentation
#: and a shared CPU slow things down); a parser that needs longer is a finding.
DEFAULT_TIME_LIMIT = 1.0
#: Mutated inputs the pytest run derives from a harness's seeds.
DEFAULT_MUTATIONS = 2000
#: Seeds the pytest run replays per harness (the fuzzer's corpus takes them all).
MAX_SEEDS = 400

Target = Callable[[bytes], object]


class ContractViolation(AssertionError):
    """An input broke the harness contract in a way that is not an exception of its own."""


def enforce_contract(fn: Target, *, time_limit: float = DEFAULT_TIME_LIMIT) -> Target:
    """Wrap ``fn`` so a ``TrustedgeError`` counts as success and a slow input as a finding.

    Every other exception propagates unchanged (the fuzzer records the input).
    Wrapping twice is harmless: an already wrapped function is returned as is.
    """
    if getattr(fn, "__fuzz_contract__", False):
        return fn

    warm = False

    @functools.wraps(fn)
    def wrapper(data: bytes) -> None:
        nonlocal warm
        start = time.perf_counter()
        try:
            fn(data)
        except TrustedgeError:
            pass
        elapsed = time.perf_counter() - start
        # The first call may pay for lazy imports and caches; every later one must not.
        if elapsed > time_limit and warm:
            raise ContractViolation(
                f"{len(data)}-byte input took {elapsed:.3f} s (limit {time_limit} s)"
            )
        warm = True

    wrapper.__fuzz_contract__ = True  # type: ignore[attr-defined]
    wrapper.__fuzz_time_limit__ = time_limit  # type: ignore[attr-defined]
    return wrapper


def fuzz_target(*, time_limit: float = DEFAULT_TIME_LIMIT) -> Callable[[Target], Target]:
    """Decorator form of :func:`enforce_contract` for ``TestOneInput``."""
    return functools.partial(enforce_contract, time_limit=time_limit)


# -- seeds ---------------------------------------------------------------------


#: The vendored third-party corpora (each folder with its SOURCES.md and licence).
THIRD_PARTY = ROOT / "tests" / "data" / "third_party"


def _glob(pattern: str) -> list[Path]:
    if pattern.startswith("third_party/"):
        base = THIRD_PARTY
        pattern = pattern[len("third_party/") :]
    else:
        base = ROOT
    return sorted(p for p in base.glob(pattern) if p.is_file())


def files(*patterns: str, max_len: int | None = None) -> Iterator[bytes]:
    """Contents of the files matching ``patterns`` (see ``SEEDS``), sorted by path."""
    for pattern in patterns:
        for path in _glob(pattern):
            data = path.read_bytes()
            if max_len is None or len(data) <= max_len:
                yield data


def _hex_strings(node: Any) -> Iterator[bytes]:
    if isinstance(node, str):
        if len(node) >= 2 and len(node) % 2 == 0:
            try:
                yield bytes.fromhex(node)
            except ValueError:
                pass
    elif isinstance(node, dict):
        for value in node.values():
            yield from _hex_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _hex_strings(value)


def json_hex_values(*patterns: str, keys: Iterable[str] | None = None) -> Iterator[bytes]:
    """Every hex string inside the JSON files matching ``patterns``.

    With ``keys``, only values under those object keys (at any depth) count,
    e.g. ``keys=["cbor"]`` for the COSE working group's examples.
    """
    wanted = None if keys is None else set(keys)
    for pattern in patterns:
        for path in _glob(pattern):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if wanted is None:
                yield from _hex_strings(doc)
            else:
                yield from _keyed(doc, wanted)


def _keyed(node: Any, wanted: set[str]) -> Iterator[bytes]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in wanted:
                yield from _hex_strings(value)
            else:
                yield from _keyed(value, wanted)
    elif isinstance(node, list):
        for value in node:
            yield from _keyed(value, wanted)


# -- harness modules -----------------------------------------------------------


@dataclass(frozen=True)
class Harness:
    """A loaded harness: its module, the contract-wrapped target and its settings."""

    name: str
    path: Path
    module: ModuleType
    target: Target
    max_len: int
    time_limit: float
    mutations: int

    def seeds(self, limit: int | None = None) -> list[bytes]:
        """Deduplicated seeds from ``SEEDS`` and ``seeds()`` (the first ``limit`` of them)."""
        found: list[bytes] = []
        patterns = getattr(self.module, "SEEDS", [])
        found.extend(files(*patterns))
        extra = getattr(self.module, "seeds", None)
        if callable(extra):
            found.extend(bytes(s) for s in extra())
        seen: set[bytes] = set()
        out = []
        for seed in found:
            if seed not in seen:
                seen.add(seed)
                out.append(seed)
        return out[:limit]


def load_harness(path: Path) -> Harness:
    """Import ``tests/fuzz/fuzz_<name>.py`` (without atheris) and wrap its target."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    modname = f"tests.fuzz.{path.stem}"
    module = sys.modules.get(modname)
    if module is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
    target = getattr(module, "TestOneInput", None)
    if not callable(target):
        raise ImportError(f"{path} defines no TestOneInput(data: bytes)")
    time_limit = float(getattr(module, "TIME_LIMIT", DEFAULT_TIME_LIMIT))
    time_limit = float(getattr(target, "__fuzz_time_limit__", time_limit))
    return Harness(
        name=path.stem.removeprefix("fuzz_"),
        path=path,
        module=module,
        target=enforce_contract(target, time_limit=time_limit),
        max_len=int(getattr(module, "MAX_LEN", DEFAULT_MAX_LEN)),
        time_limit=time_limit,
        mutations=int(getattr(module, "MUTATIONS", DEFAULT_MUTATIONS)),
    )


def discover(fuzz_dir: Path = FUZZ_DIR) -> list[Path]:
    """Every ``fuzz_*.py`` harness file, sorted."""
    return sorted(fuzz_dir.glob("fuzz_*.py"))


# -- deterministic mutations (the pytest run's poor man's fuzzer) ----------------

_INTERESTING = [
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80", b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x18", b"\x19", b"\x1a", b"\x1b", b"\x1f", b"\x9f", b"\xbf", b"\x5f", b"\x7f",
]  # fmt: skip


def _mutate(rng: random.Random, data: bytes, pool: list[bytes], max_len: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:  # insert an interesting value
            buf[pos:pos] = rng.choice(_INTERESTING)
        elif op == 3 and buf:  # overwrite with an interesting value
            val = rng.choice(_INTERESTING)
            buf[pos : pos + len(val)] = val
        elif op == 4 and buf:  # delete a range
            end = min(len(buf), pos + rng.randint(1, 16))
            del buf[pos:end]
        elif op == 5:  # truncate
            del buf[pos:]
        elif op == 6 and buf:  # duplicate a range
            start = rng.randrange(len(buf))
            end = min(len(buf), start + rng.randint(1, 32))
            buf[pos:pos] = buf[start:end]
        elif pool:  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf[pos:] = other[cut:]
    return bytes(buf[:max_len])


def mutations(seeds: list[bytes], count: int, *, seed: int = 0, max_len: int = DEFAULT_MAX_LEN
              ) -> Iterator[bytes]:  # fmt: skip
    """``count`` deterministic mutants of ``seeds`` (random bytes when there are none)."""
    rng = random.Random(seed)
    pool = [s[:max_len] for s in seeds] or [b""]
    for _ in range(count):
        if rng.random() < 0.05:
            yield rng.randbytes(rng.randrange(min(max_len, 256) + 1))
        else:
            yield _mutate(rng, rng.choice(pool), pool, max_len)
