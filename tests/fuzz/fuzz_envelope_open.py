"""atheris entry point: envelope parsing and opening of hostile bytes.

Run: ``python tests/fuzz/fuzz_envelope_open.py`` (needs ``atheris``). Only
trustedge errors may escape; anything else is a bug.
"""

from __future__ import annotations

import io
import sys

from tests.fuzz._harness import json_hex_values
from trustedge import envelope
from trustedge.errors import TrustedgeError

_KEK = envelope.KEK(b"\x44" * 32)
_SEED = envelope.seal(b"fuzz seed " * 2000, [_KEK], context={"k": "v"})

MAX_LEN = 16384


def seeds() -> list[bytes]:
    """The project's envelope vectors (header, slots, chunks; hostile cases among them)
    and a small sealed envelope of each slot-count shape."""
    out = list(json_hex_values("vectors/envelope/envelope.json", keys=["envelope"]))
    out += [envelope.seal(b"x" * n, [_KEK] * k) for n, k in ((0, 1), (100, 1), (5000, 3))]
    return out


def TestOneInput(data: bytes) -> None:
    for candidate in (data, _SEED[: len(data) % (len(_SEED) + 1)] + data):
        try:
            envelope.inspect(candidate)
        except TrustedgeError:
            pass
        try:
            reader = envelope.Reader(io.BytesIO(candidate), [_KEK])
            reader.pread(len(data), 100)
            reader.read()
        except TrustedgeError:
            pass


def main() -> None:  # pragma: no cover - needs atheris
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
