"""atheris entry point: TCG firmware event logs (parse, replay, event data decoders,
the mismatch explanation).

IMA lists have their own harness (``fuzz_measuredboot_ima.py``).

Run: ``python tests/fuzz/fuzz_measuredboot_parsers.py [corpus_dir]`` with atheris installed.
Only MalformedInputError (and its LimitExceededError subclass) may escape the parsers.
"""

from __future__ import annotations

import sys

from tests.fuzz._harness import json_hex_values
from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    BANK_SIZES,
    EventLogLimits,
    check_events,
    decode_event,
    diff_event_logs,
    explain_mismatch,
    parse_event_log,
)

MAX_LEN = 65536
SEEDS = [
    "third_party/eventlog/**/*.bin",
    "third_party/eventlog/**/*binary_bios_measurements*",
]


def seeds() -> list[bytes]:
    """The project's event-log vectors (hostile cases among them)."""
    return list(json_hex_values("vectors/measuredboot/eventlog.json", keys=["log"]))


_LIMITS = EventLogLimits(max_log_size=1 << 20, max_event_size=1 << 16, max_events=4096)


def TestOneInput(data: bytes) -> None:
    try:
        log = parse_event_log(data, limits=_LIMITS)
    except MalformedInputError:
        pass
    else:
        log.replay()
        for ev in log.unverified_events:
            decode_event(ev)
        for bank in log.banks:
            check_events(log.unverified_events, bank)
        # a hostile log against values it does not reach (the appraisal path)
        pcrs = {b: {p: b"\x5a" * BANK_SIZES[b] for p in range(24)} for b in log.banks}
        explain_mismatch(log, pcrs)
        if log.banks:
            diff_event_logs(log, log)


def main() -> None:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
