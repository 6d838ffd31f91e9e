"""atheris entry point: event logs, event data decoders and IMA lists.

Run: ``python tests/fuzz/fuzz_measuredboot_parsers.py [corpus_dir]`` with atheris installed.
Only MalformedInputError (and its LimitExceededError subclass) may escape the parsers.
"""

from __future__ import annotations

import sys

from trustedge.errors import MalformedInputError
from trustedge.measuredboot import (
    EventLogLimits,
    check_events,
    decode_event,
    parse_event_log,
    parse_ima_log,
)

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
    try:
        ima = parse_ima_log(data, allow_partial_tail=True)
    except MalformedInputError:
        return
    ima.replay("sha1")
    for entry in ima.unverified_entries:
        try:
            entry.fields()
        except MalformedInputError:
            pass


def main() -> None:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
