"""The audit store's own health figures: writes per minute, write latency p95, failed and
retried writes (counted by the exporter) and size, index size and growth (asked of the store).

``STORE_THRESHOLDS`` are the warning/critical levels a compliance team watches on an audit
store; :func:`threshold_levels` says which one each figure has reached, for alerting.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoreThreshold:
    """Levels for one KPI: ``warning`` and ``critical`` are reached at or above the value."""

    kpi: str
    warning: float
    critical: float
    unit: str


STORE_THRESHOLDS = (
    StoreThreshold("write_latency_p95_ms", 20.0, 50.0, "ms"),
    StoreThreshold("size_mb", 500.0, 1024.0, "MB"),
    StoreThreshold("growth_mb_per_month", 100.0, 200.0, "MB/month"),
)


def threshold_levels(values: dict[str, Any]) -> dict[str, str | None]:
    """KPI name → ``"ok" | "warning" | "critical"`` (``None`` when the value is unknown)."""
    levels: dict[str, str | None] = {}
    for threshold in STORE_THRESHOLDS:
        value = values.get(threshold.kpi)
        if value is None:
            levels[threshold.kpi] = None
        elif value >= threshold.critical:
            levels[threshold.kpi] = "critical"
        else:
            levels[threshold.kpi] = "warning" if value >= threshold.warning else "ok"
    return levels


class WriteCounters:
    """Counts the exporter's writes; thread-safe (written by the worker, read by anyone).

    Latencies are kept for the last ``window`` writes and write times for the last minute, so
    memory stays bounded however long the process runs.
    """

    def __init__(self, window: int = 1024) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=window)
        self._recent: deque[tuple[float, int]] = deque()
        self.events_written = 0
        self.duplicates_skipped = 0
        self.batches = 0
        self.failed = 0
        self.retried = 0
        self._failing = False
        self.last_error: str | None = None

    def written(self, seconds: float, events: int, duplicates: int = 0) -> None:
        """One successful write of ``events`` events, ``duplicates`` of them already stored."""
        now = time.monotonic()
        with self._lock:
            self._latencies.append(seconds * 1000.0)
            self._recent.append((now, events))
            self._trim(now)
            self.events_written += events - duplicates
            self.duplicates_skipped += duplicates
            self.batches += 1
            self._failing = False

    def attempt(self) -> None:
        """An export call starts; it is a retry when the previous one failed."""
        with self._lock:
            if self._failing:
                self.retried += 1

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            self._failing = True
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - 60.0:
            self._recent.popleft()

    def snapshot(self) -> dict[str, Any]:
        """The counters, writes in the last minute and the nearest-rank p95 write latency."""
        with self._lock:
            self._trim(time.monotonic())
            latencies = sorted(self._latencies)
            per_minute = sum(n for _, n in self._recent)
            values = {"events_written": self.events_written,
                      "duplicates_skipped": self.duplicates_skipped,
                      "batches": self.batches, "failed": self.failed,
                      "retried": self.retried, "last_error": self.last_error}
        p95 = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None
        return {**values, "writes_per_minute": per_minute, "write_latency_p95_ms": p95}


def storage_figures(size_bytes: int | None, index_bytes: int | None,
                    days_covered: float | None, rows: int | None = None) -> dict[str, Any]:
    """Size, index size and growth. Growth is the stored size over the days the stored
    events span (at least one day), so it is the rate at which retention fills the store.
    In MB for people, and in bytes (``size_bytes``, ``growth_bytes_per_month``) for the alert
    engine's store rules. With ``rows``: the row count and the bytes per event (data and
    indexes)."""
    if size_bytes is None:
        return {"size_mb": None, "index_size_mb": None, "growth_mb_per_day": None,
                "growth_mb_per_month": None, "size_bytes": None, "growth_bytes_per_month": None}
    size_mb = size_bytes / 1e6
    per_day = size_mb / max(1.0, days_covered or 0.0)
    figures: dict[str, Any] = {
        "size_mb": size_mb, "index_size_mb": None if index_bytes is None else index_bytes / 1e6,
        "growth_mb_per_day": per_day, "growth_mb_per_month": per_day * 30.0,
        "size_bytes": size_bytes, "growth_bytes_per_month": per_day * 30.0 * 1e6}
    if rows is not None:
        figures["rows"] = rows
        figures["bytes_per_event"] = (size_bytes + (index_bytes or 0)) / rows if rows else None
    return figures
