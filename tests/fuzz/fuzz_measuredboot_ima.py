"""atheris entry point: IMA measurement lists, ASCII and binary.

``parse_ima_log`` detects the format from the first bytes; the first input byte
here picks the binary template-hash width (20 or 32) and whether a partial tail
is accepted, the rest is the list. A parsed list is replayed into PCR 10 (SHA-1
and SHA-256) and each entry's template fields are decoded.
"""

from __future__ import annotations

import sys

from tests.fuzz._harness import files, json_hex_values
from trustedge.errors import MalformedInputError
from trustedge.measuredboot import parse_ima_log

MAX_LEN = 65536
SEEDS = [
    "third_party/eventlog/**/ima/**/*.bin",
    "third_party/eventlog/**/*.ascii",
    "third_party/eventlog/**/*runtime_measurements*",
]


def seeds() -> list[bytes]:
    """Shared IMA lists and the project's IMA vectors, behind a mode byte."""
    bodies = list(files(*SEEDS))
    bodies += list(json_hex_values("vectors/measuredboot/ima.json", keys=["list"]))
    return [bytes([mode]) + body for body in bodies for mode in (0, 1)]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0], data[1:]
    try:
        ima = parse_ima_log(
            body, allow_partial_tail=bool(mode & 1), template_hash_size=32 if mode & 2 else 20
        )
    except MalformedInputError:
        return
    for bank in ("sha1", "sha256"):
        ima.replay(bank)
    for entry in ima.unverified_entries:
        try:
            entry.fields()
        except MalformedInputError:
            pass


if __name__ == "__main__":  # pragma: no cover
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
