"""Service metrics in the Prometheus text format, shared by every worker process.

The supervisor allocates one anonymous shared-memory block before it forks the workers;
each worker owns one row of counters and writes only its row (no locks: one writer per
row, and within a worker only the event-loop thread writes), and ``GET /metrics`` on any
worker sums every row. So a scrape that lands on any worker sees the whole service.
A service started without the supervisor (``create_app`` under another ASGI server) gets a
private block of one row.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Final

__all__ = ["LATENCY_BUCKETS", "STATUSES", "Metrics", "SharedCounters"]

#: Appraisal outcomes counted (EAR trust tiers, plus requests that ended in an error).
STATUSES: Final = ("affirming", "warning", "contraindicated", "none", "error")
#: Upper bounds (seconds) of the appraisal latency histogram; +Inf is implied.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REQUEST_CODES: Final = ("2xx", "4xx", "429", "5xx")

# Layout of one row (unsigned 64-bit slots).
_STATUS0: Final = 0
_BUCKET0: Final = _STATUS0 + len(STATUSES)
_LAT_COUNT: Final = _BUCKET0 + len(LATENCY_BUCKETS) + 1
_LAT_SUM_US: Final = _LAT_COUNT + 1
_REQ0: Final = _LAT_SUM_US + 1
_POOL_SIZE: Final = _REQ0 + len(_REQUEST_CODES)
_POOL_AVAILABLE: Final = _POOL_SIZE + 1
_POOL_WAITING: Final = _POOL_AVAILABLE + 1
_POOL_MAX: Final = _POOL_WAITING + 1
_IN_FLIGHT: Final = _POOL_MAX + 1
_SLOTS: Final = _IN_FLIGHT + 1


class SharedCounters:
    """``rows`` rows of counters in one ``MAP_SHARED`` anonymous mapping (inherited by fork)."""

    def __init__(self, rows: int) -> None:
        if not 1 <= rows <= 4096:
            raise ValueError("rows must be 1-4096")
        self.rows = rows
        self._map = mmap.mmap(-1, rows * _SLOTS * 8)
        self._view = memoryview(self._map).cast("Q")

    def row(self, index: int) -> Metrics:
        """The writer for row ``index`` (one per worker)."""
        if not 0 <= index < self.rows:
            raise IndexError(index)
        return Metrics(self, index)

    def total(self, slot: int) -> int:
        return sum(self._view[r * _SLOTS + slot] for r in range(self.rows))

    def _add(self, row: int, slot: int, value: int) -> None:
        i = row * _SLOTS + slot
        self._view[i] = (self._view[i] + value) & 0xFFFF_FFFF_FFFF_FFFF

    def _set(self, row: int, slot: int, value: int) -> None:
        self._view[row * _SLOTS + slot] = max(0, value)


class Metrics:
    """One worker's row: it records; :meth:`render` reports the sum over all rows."""

    def __init__(self, counters: SharedCounters, row: int) -> None:
        self._c = counters
        self._row = row

    def appraisal(self, status: str, seconds: float) -> None:
        """Count one appraisal with its outcome and latency."""
        slot = STATUSES.index(status) if status in STATUSES else STATUSES.index("error")
        self._c._add(self._row, _STATUS0 + slot, 1)
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._c._add(self._row, _BUCKET0 + i, 1)
                break
        else:
            self._c._add(self._row, _BUCKET0 + len(LATENCY_BUCKETS), 1)
        self._c._add(self._row, _LAT_COUNT, 1)
        self._c._add(self._row, _LAT_SUM_US, int(seconds * 1e6))

    def request(self, status_code: int) -> None:
        code = (
            "429"
            if status_code == 429
            else "2xx"
            if status_code < 400
            else "4xx"
            if status_code < 500
            else "5xx"
        )
        self._c._add(self._row, _REQ0 + _REQUEST_CODES.index(code), 1)

    def in_flight(self, delta: int) -> None:
        self._c._add(self._row, _IN_FLIGHT, delta)

    def pool(self, stats: dict[str, int]) -> None:
        """Record this worker's connection-pool gauges (``PostgresStore.pool_stats``)."""
        self._c._set(self._row, _POOL_SIZE, stats.get("size", 0))
        self._c._set(self._row, _POOL_AVAILABLE, stats.get("available", 0))
        self._c._set(self._row, _POOL_WAITING, stats.get("waiting", 0))
        self._c._set(self._row, _POOL_MAX, stats.get("max", 0))

    def render(self) -> str:
        """All rows, summed, in the Prometheus text exposition format (version 0.0.4)."""
        c = self._c
        out: list[str] = [
            "# HELP trustedge_appraisals_total Appraisals by result status.",
            "# TYPE trustedge_appraisals_total counter",
        ]
        out += [
            f'trustedge_appraisals_total{{status="{s}"}} {c.total(_STATUS0 + i)}'
            for i, s in enumerate(STATUSES)
        ]
        out += [
            "# HELP trustedge_appraisal_seconds Appraisal latency (evidence request to signed"
            " result).",
            "# TYPE trustedge_appraisal_seconds histogram",
        ]
        running = 0
        bounds: Sequence[str] = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
        for i, bound in enumerate(bounds):
            running += c.total(_BUCKET0 + i)
            out.append(f'trustedge_appraisal_seconds_bucket{{le="{bound}"}} {running}')
        out.append(f"trustedge_appraisal_seconds_sum {c.total(_LAT_SUM_US) / 1e6:.6f}")
        out.append(f"trustedge_appraisal_seconds_count {c.total(_LAT_COUNT)}")
        out += [
            "# HELP trustedge_http_requests_total HTTP responses by status class.",
            "# TYPE trustedge_http_requests_total counter",
        ]
        out += [
            f'trustedge_http_requests_total{{code="{code}"}} {c.total(_REQ0 + i)}'
            for i, code in enumerate(_REQUEST_CODES)
        ]
        out += [
            "# HELP trustedge_requests_in_flight Requests being handled now.",
            "# TYPE trustedge_requests_in_flight gauge",
            f"trustedge_requests_in_flight {c.total(_IN_FLIGHT)}",
            "# HELP trustedge_db_pool_connections Store connections (all workers).",
            "# TYPE trustedge_db_pool_connections gauge",
            f'trustedge_db_pool_connections{{state="open"}} {c.total(_POOL_SIZE)}',
            f'trustedge_db_pool_connections{{state="idle"}} {c.total(_POOL_AVAILABLE)}',
            f'trustedge_db_pool_connections{{state="max"}} {c.total(_POOL_MAX)}',
            "# HELP trustedge_db_pool_waiting Requests waiting for a store connection.",
            "# TYPE trustedge_db_pool_waiting gauge",
            f"trustedge_db_pool_waiting {c.total(_POOL_WAITING)}",
        ]
        return "\n".join(out) + "\n"
