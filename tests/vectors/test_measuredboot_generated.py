"""The project's own vectors: vectors/measuredboot/*.json."""

from __future__ import annotations

import pytest

from tests.vectors import VectorCase, error_class, vector_cases
from trustedge.measuredboot import parse_event_log, parse_ima_log


@vector_cases("measuredboot/eventlog.json")
def test_eventlog_vectors(case: VectorCase) -> None:
    data = case.hex("log")
    if case.result == "invalid":
        with pytest.raises(error_class(case.error or "MalformedInputError")) as info:
            parse_event_log(data)
        assert getattr(info.value, "offset", None) == case["offset"]
        return
    log = parse_event_log(data)
    assert len(log.unverified_events) == case["records"]
    assert [ev.type_name for ev in log.unverified_events] == case["types"]
    replayed = {
        bank: {str(k): v.hex() for k, v in values.items()}
        for bank, values in log.replay().items()
        if values
    }
    assert replayed == case["replay"]
    pcrs = {bank: {int(k): bytes.fromhex(v) for k, v in vals.items()} for bank, vals in replayed.items()}
    log.verify(pcrs)


@vector_cases("measuredboot/ima.json")
def test_ima_vectors(case: VectorCase) -> None:
    data = case.hex("list")
    if case.result == "invalid":
        with pytest.raises(error_class(case.error or "MalformedInputError")) as info:
            parse_ima_log(data)
        assert getattr(info.value, "offset", None) == case["offset"]
        return
    log = parse_ima_log(data)
    assert len(log.unverified_entries) == case["entries"]
    assert log.replay("sha1").hex() == case["pcr10_sha1"]
    assert log.replay("sha256").hex() == case["pcr10_sha256"]
