"""atheris entry point: envelope parsing and opening of hostile bytes.

Run: ``python tests/fuzz/fuzz_envelope_open.py`` (needs ``atheris``). Only
trustedge errors may escape; anything else is a bug.
"""

from __future__ import annotations

import io
import sys

from trustedge import envelope
from trustedge.errors import TrustedgeError

_KEK = envelope.KEK(b"\x44" * 32)
_SEED = envelope.seal(b"fuzz seed " * 2000, [_KEK], context={"k": "v"})


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
